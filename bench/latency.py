"""End-to-end latency: from handing a report to Kafka to receiving each delivery.

One enforcer runs and has caught up (a warm-up batch is delivered first).
Reports are then sent at a fixed rate, each send time noted; a watcher
receives the delivery topics and matches every delivery to its report by
the delivery id (the record key, which the enforcer derives from the signed
payload and the recipient). Both clocks are this process's ``perf_counter``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.enforcers import Enforcer, start_group
from bench.kafka import DeliveryWatcher, GroupProbe, PacedProducer, RunFailed
from bench.reports import NATIONS
from bench.workspace import Phase, Sealed
from broker.enforcer.stages.fanout import delivery_id


@dataclass(frozen=True, slots=True)
class LatencyResult:
    target_rate_per_s: float
    achieved_rate_per_s: float
    reports: int
    deliveries: int  # matched and received
    missing: int  # expected but not received before the drain timeout
    unmatched: int  # received but not ours: the warm-up, repeats, or an unknown key scheme
    p50_ms: float
    p99_ms: float
    max_ms: float


class _Ledger:
    """Send times by report, arrival times by delivery id."""

    def __init__(self, sealed: list[Sealed]) -> None:
        self.sent_at: list[float] = [0.0] * len(sealed)
        # delivery id -> report index; removed on arrival, so repeats are not counted twice
        self._index = {
            delivery_id(s.payload_sha256, r).encode(): i
            for i, s in enumerate(sealed)
            for r in NATIONS
            if r != s.nation
        }
        self.latencies_s: list[float] = []
        self.unmatched = 0
        self.expected = len(self._index)
        self.complete = asyncio.Event()  # set once every expected delivery has arrived

    def sent(self, index: int, at: float) -> None:
        self.sent_at[index] = at

    def arrived(self, key: bytes, at: float) -> None:
        index = self._index.pop(key, None)
        if index is None:
            self.unmatched += 1  # warm-up traffic, or a repeat after a retry
            return
        self.latencies_s.append(at - self.sent_at[index])
        if not self._index:
            self.complete.set()


async def measure(
    phase: Phase,
    *,
    warm_up: list[Sealed],
    runs: list[tuple[float, list[Sealed]]],
    logs_dir: Path,
    drain_s: float = 15.0,
) -> tuple[list[LatencyResult], float]:
    """Latency for each (rate, reports) in ``runs``, one after the other; and peak RSS."""
    topics = phase.topics
    probe = GroupProbe(phase.bootstrap, phase.settings.group_id)
    watcher = DeliveryWatcher(phase.bootstrap)
    producer = PacedProducer(phase.bootstrap, idempotent=phase.settings.kafka_idempotence)
    await probe.start()
    await watcher.start(await probe.partitions(topics.deliver(n) for n in NATIONS))
    await producer.start()
    results = []
    enforcers: list[Enforcer] = []
    try:
        submit = await probe.partitions(topics.submit(n) for n in NATIONS)
        phase.seal([*warm_up, *(s for _, run in runs for s in run)])  # before any clock
        enforcers = await start_group(phase, probe, processes=1, logs_dir=logs_dir)
        await phase.produce(warm_up)
        await _wait_for(probe, submit, len(warm_up), enforcers[0], 60.0)
        # This process holds every signed report; a full collection scanning them
        # mid-run would delay the watcher's clock and count as ixb's latency.
        gc.collect()
        gc.freeze()
        for rate, sealed in runs:
            results.append(
                await _one_run(watcher, producer, phase, rate=rate, sealed=sealed, drain_s=drain_s)
            )
        peak = enforcers[0].peak_rss_mb()
    finally:
        gc.unfreeze()
        for e in enforcers:
            e.stop()
        await producer.stop()
        await watcher.stop()
        await probe.stop()
    return results, peak


async def _wait_for(
    probe: GroupProbe, submit: Sequence[Any], count: int, enforcer: Enforcer, timeout_s: float
) -> None:
    """Until ``count`` submissions are committed: the enforcer has caught up."""
    deadline = time.monotonic() + timeout_s
    while await probe.committed_total(submit) < count:
        if not enforcer.alive:
            raise RunFailed(f"the enforcer exited early; its last log lines:\n{enforcer.tail()}")
        if time.monotonic() > deadline:
            raise RunFailed(
                f"the warm-up was not committed within {timeout_s:.0f} s; "
                f"the enforcer's last log lines:\n{enforcer.tail()}"
            )
        await asyncio.sleep(0.05)


async def _one_run(
    watcher: DeliveryWatcher,
    producer: PacedProducer,
    phase: Phase,
    *,
    rate: float,
    sealed: list[Sealed],
    drain_s: float,
) -> LatencyResult:
    ledger = _Ledger(sealed)
    stop = asyncio.Event()
    watching = asyncio.create_task(watcher.run(ledger.arrived, stop))
    records = [(phase.topics.submit(s.nation), s.key, s.value(phase.topics)) for s in sealed]
    try:
        achieved = await producer.send(records, rate_per_s=rate, on_sent=ledger.sent)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ledger.complete.wait(), timeout=drain_s)
    finally:
        stop.set()
        await watching
    latencies_ms = sorted(x * 1000 for x in ledger.latencies_s)
    return LatencyResult(
        target_rate_per_s=rate,
        achieved_rate_per_s=achieved,
        reports=len(sealed),
        deliveries=len(latencies_ms),
        missing=max(0, ledger.expected - len(latencies_ms)),
        unmatched=ledger.unmatched,
        p50_ms=_quantile(latencies_ms, 0.50),
        p99_ms=_quantile(latencies_ms, 0.99),
        max_ms=latencies_ms[-1] if latencies_ms else float("nan"),
    )


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1]
