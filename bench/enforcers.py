"""``ixb run`` as the operator runs it: subprocesses, timed from outside.

The enforcers are the installed console script with the phase's ``IXB_*``
settings; the bench never reaches into their memory. The steps:

1. start the enforcers on empty submission topics and wait until the group
   is stable with all of them, so no rebalance falls into the measurement;
2. produce the warm-up (every decision input, so the decision caches are
   warm) and then the measured reports, to every partition in that order;
3. once both are in Kafka and the warm-up is committed, start the clock, and
   sample the group's committed offsets until every report is committed
   (outputs acknowledged: at least once is complete).

Peak memory is the kernel's high-water mark (``VmHWM``); CPU time comes from
``/proc/<pid>/stat``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.kafka import GroupProbe, RunFailed, Span
from bench.reports import NATIONS
from bench.workspace import Phase, Sealed

SAMPLE_S = 0.02


def ixb_command() -> list[str]:
    """The ``ixb`` console script next to this interpreter (the project's .venv)."""
    beside = Path(sys.executable).parent / "ixb"
    found = str(beside) if beside.exists() else shutil.which("ixb")
    if found is None:
        raise RuntimeError("no `ixb` console script: run `make install` first")
    return [found, "run"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds process ``pid`` has used so far (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Enforcer:
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    @classmethod
    def start(cls, phase: Phase, log_path: Path) -> Enforcer:
        log = log_path.open("wb")
        process = subprocess.Popen(  # noqa: S603 - our own console script, fixed arguments
            ixb_command(), env=phase.env(), stdout=log, stderr=subprocess.STDOUT
        )
        return cls(process, log_path, log)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def peak_rss_mb(self) -> float:
        """The process's resident-set high-water mark (VmHWM), in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_s(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """SIGTERM (the batch in flight finishes), wait, and return its final counters."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._log.close()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """The ``enforcer_stopped`` and ``decision_cache`` log events, merged."""
        found: dict[str, Any] = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") in (
                "enforcer_stopped",
                "decision_cache",
            ):
                found.update(
                    {k: v for k, v in event.items() if k not in ("event", "level", "timestamp")}
                )
        return found

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True, slots=True)
class PipelineResult:
    processes: int
    warm_up: int
    span: Span  # measured reports committed over time, after the warm-up
    peak_rss_mb: float  # the largest of the processes
    cpu_s: float  # all processes, over the span
    broker_cpu_s: float | None  # the embedded Kafka's, over the span (None: not ours)
    enforcer_summaries: tuple[dict[str, Any], ...]

    @property
    def reports_per_s(self) -> float:
        return self.span.per_s

    @property
    def fan_out(self) -> float:
        """Deliveries per submission, by the enforcers' own counters."""
        submissions = self._counter("submissions")
        return self._counter("deliveries") / submissions if submissions else float("nan")

    @property
    def deliveries_per_s(self) -> float:
        return self.reports_per_s * self.fan_out

    @property
    def repeated(self) -> int:
        """Submissions processed more than once (a rebalance moved uncommitted batches)."""
        return max(0, self._counter("submissions") - self.span.total - self.warm_up)

    def _counter(self, key: str) -> int:
        return sum(int(s.get(key, 0)) for s in self.enforcer_summaries)


async def start_group(
    phase: Phase, probe: GroupProbe, *, processes: int, logs_dir: Path, timeout_s: float = 60.0
) -> list[Enforcer]:
    """Start ``processes`` enforcers and return once their group is stable with all of them."""
    enforcers = [
        Enforcer.start(phase, logs_dir / f"{phase.settings.group_id}-{i}.log")
        for i in range(processes)
    ]
    deadline = time.monotonic() + timeout_s
    try:
        while await probe.members() != ("Stable", processes):
            _check_alive(enforcers)
            if time.monotonic() > deadline:
                raise RunFailed(f"{processes} enforcers did not form a stable group in time")
            await asyncio.sleep(0.1)
    except BaseException:
        for e in enforcers:
            e.stop()
        raise
    return enforcers


def _check_alive(enforcers: Sequence[Enforcer]) -> None:
    for e in enforcers:
        if not e.alive:
            raise RunFailed(f"an enforcer exited early; its last log lines:\n{e.tail()}")


async def run_backlog(
    phase: Phase,
    *,
    processes: int,
    warm_up: list[Sealed],
    reports: list[Sealed],
    logs_dir: Path,
    timeout_s: float,
    broker_pid: int | None = None,
) -> PipelineResult:
    """Time ``processes`` enforcers through ``reports``, after ``warm_up``."""
    probe = GroupProbe(phase.bootstrap, phase.settings.group_id)
    await probe.start()
    enforcers: list[Enforcer] = []
    try:
        submit = await probe.partitions(phase.topics.submit(n) for n in NATIONS)
        phase.seal([*warm_up, *reports])  # sealed for this phase's topics before the clock
        enforcers = await start_group(phase, probe, processes=processes, logs_dir=logs_dir)
        await phase.produce(warm_up)
        await phase.produce(reports)
        samples, cpu, broker_cpu = await _watch(
            probe,
            enforcers=enforcers,
            broker_pid=broker_pid,
            submit=submit,
            warm_up=len(warm_up),
            reports=len(reports),
            timeout_s=timeout_s,
        )
        if await probe.members() != ("Stable", processes):
            raise RunFailed(f"the group of {processes} changed during the run")
        peak = max(e.peak_rss_mb() for e in enforcers)
    finally:
        summaries = tuple(e.stop() for e in enforcers)
        await probe.stop()
    return PipelineResult(
        processes=processes,
        warm_up=len(warm_up),
        span=_span(samples),
        peak_rss_mb=peak,
        cpu_s=cpu,
        broker_cpu_s=broker_cpu,
        enforcer_summaries=summaries,
    )


async def _watch(
    probe: GroupProbe,
    *,
    enforcers: Sequence[Enforcer],
    broker_pid: int | None,
    submit: Sequence[Any],
    warm_up: int,
    reports: int,
    timeout_s: float,
) -> tuple[list[tuple[float, int]], float, float | None]:
    """Sample committed reports past the warm-up until all are committed.

    Returns the samples (time, measured reports committed), and the CPU
    seconds the enforcers and the broker used between the first and last sample.
    """
    samples: list[tuple[float, int]] = []
    first = last = (0.0, 0.0)
    deadline = time.monotonic() + timeout_s
    while True:
        _check_alive(enforcers)
        done = await probe.committed_total(submit) - warm_up
        now = time.perf_counter()
        if done >= 0:
            last = (
                sum(e.cpu_s() for e in enforcers),
                cpu_seconds(broker_pid) if broker_pid else 0.0,
            )
            if not samples:
                first = last
            if not samples or done != samples[-1][1]:
                samples.append((now, done))
        if done >= reports:
            broker = last[1] - first[1] if broker_pid else None
            return samples, last[0] - first[0], broker
        if time.monotonic() > deadline:
            raise RunFailed(f"the backlog was not committed within {timeout_s:.0f} s")
        await asyncio.sleep(SAMPLE_S)


def _span(samples: list[tuple[float, int]]) -> Span:
    """From the first sample to the last: every sample is a new count."""
    start_s, at_start = samples[0]
    end_s, total = samples[-1]
    return Span(total, at_start, start_s, end_s)
