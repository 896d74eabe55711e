"""End-to-end latency: from handing a report to Kafka to receiving each delivery.

One enforcer runs and has caught up (a warm-up batch is delivered first).
Reports are then sent at a fixed rate, each send time noted; a watcher
receives the delivery topics and matches every delivery to its report by
the delivery id (the record key, which the enforcer derives from the signed
payload and the recipient). Both clocks are this process's ``perf_counter``.

Each latency is also split where the enforcer stamped the delivery (its
record's CreateTime, taken when the output batch is built, wall clock):
*to output* is the submission's way to the enforcer and through it (fetch,
the batch before it, processing), *from output* the delivery's (produce,
acknowledgement, the watcher's fetch). And the CPU that the enforcer, the
embedded Kafka and this process (the paced producer and the watcher) spend
per report during the run shows what the load costs: on a shared machine,
latency at a fixed rate is mostly waiting for a core (issue 23, item 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.enforcers import Enforcer, cpu_seconds, start_group
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
    to_output_p50_ms: float  # sent -> the enforcer stamped the delivery
    to_output_p99_ms: float
    from_output_p50_ms: float  # stamped -> received by the watcher
    from_output_p99_ms: float
    cpu_ms_per_report: dict[str, float]  # enforcer, kafka, bench: during the run


class _Ledger:
    """Send times by report, arrival times by delivery id."""

    def __init__(self, sealed: list[Sealed]) -> None:
        self.sent_at: list[float] = [0.0] * len(sealed)
        self.sent_wall_ms: list[float] = [0.0] * len(sealed)
        # delivery id -> report index; removed on arrival, so repeats are not counted twice
        self._index = {
            delivery_id(s.payload_sha256, r).encode(): i
            for i, s in enumerate(sealed)
            for r in NATIONS
            if r != s.nation
        }
        self.latencies_s: list[float] = []
        self.to_output_ms: list[float] = []  # wall clock: the stamp is another process's
        self.unmatched = 0
        self.expected = len(self._index)
        self.complete = asyncio.Event()  # set once every expected delivery has arrived

    def sent(self, index: int, at: float) -> None:
        self.sent_at[index] = at
        self.sent_wall_ms[index] = time.time() * 1000

    def arrived(self, key: bytes, at: float, stamped_ms: int) -> None:
        index = self._index.pop(key, None)
        if index is None:
            self.unmatched += 1  # warm-up traffic, or a repeat after a retry
            return
        self.latencies_s.append(at - self.sent_at[index])
        self.to_output_ms.append(stamped_ms - self.sent_wall_ms[index])
        if not self._index:
            self.complete.set()


async def measure(
    phase: Phase,
    *,
    warm_up: list[Sealed],
    runs: list[tuple[float, list[Sealed]]],
    logs_dir: Path,
    broker_pid: int | None = None,
    drain_s: float = 15.0,
) -> tuple[list[LatencyResult], float]:
    """Latency for each (rate, reports) in ``runs``, one after the other; and peak RSS.

    ``broker_pid``: the embedded Kafka's process, whose CPU per report is reported too.
    """
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
            cpu = _CpuMeter(enforcers[0], broker_pid)
            result = await _one_run(
                watcher, producer, phase, rate=rate, sealed=sealed, drain_s=drain_s
            )
            results.append(dataclasses.replace(result, cpu_ms_per_report=cpu.per_report(result)))
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
    to_output = sorted(ledger.to_output_ms)
    from_output = sorted(  # what is left of each latency after the stamp
        total * 1000 - to for total, to in zip(ledger.latencies_s, ledger.to_output_ms, strict=True)
    )
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
        to_output_p50_ms=_quantile(to_output, 0.50),
        to_output_p99_ms=_quantile(to_output, 0.99),
        from_output_p50_ms=_quantile(from_output, 0.50),
        from_output_p99_ms=_quantile(from_output, 0.99),
        cpu_ms_per_report={},
    )


class _CpuMeter:
    """CPU seconds of the enforcer, the embedded Kafka and this process, from its creation."""

    def __init__(self, enforcer: Enforcer, broker_pid: int | None) -> None:
        self._enforcer = enforcer
        self._broker_pid = broker_pid
        self._start = self._sample()

    def _sample(self) -> dict[str, float]:
        sample = {"enforcer": self._enforcer.cpu_s(), "bench": time.process_time()}
        if self._broker_pid:
            sample["kafka"] = cpu_seconds(self._broker_pid)
        return sample

    def per_report(self, result: LatencyResult) -> dict[str, float]:
        """Milliseconds of CPU per report sent, by process."""
        end = self._sample()
        return {k: (end[k] - self._start[k]) * 1000 / result.reports for k in end}


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1]


def print_breakdown(console: Console, figures: dict[str, Any]) -> None:
    """Where the fixed-rate run's latency went, and the CPU its load cost per report."""
    if "latency_ms_to_output_p50" not in figures:
        return
    rate = figures.get("latency_rate_per_s", math.nan)
    table = Table(title=f"latency at {rate:,.0f}/s, split at the enforcer's stamp; CPU per report")
    table.add_column("part")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    for part, key in (
        ("sent -> output stamped", "to_output"),
        ("stamped -> received", "from_output"),
    ):
        p50, p99 = figures[f"latency_ms_{key}_p50"], figures[f"latency_ms_{key}_p99"]
        table.add_row(part, f"{p50:,.1f}", f"{p99:,.1f}")
    for process, ms in figures.get("latency_cpu_ms_per_report", {}).items():
        table.add_row(f"CPU of {process}, ms per report", f"{ms:.3f}", "")
    console.print(table)
