"""``python -m bench.backlog_memory``: does the enforcer's memory grow with the backlog?

For each backlog size, on a fresh embedded Kafka (``IXB_KAFKA_ENGINE``, Apache
Kafka by default) or on ``IXB_KAFKA_BOOTSTRAP``:
the whole backlog is published first, then one ``ixb run`` is started on it,
and its resident set (``VmRSS`` in ``/proc/<pid>/status``) is sampled every
0.5 s together with the group's committed offsets until all is committed.

The claim: the consumer holds one batch (``IXB_BATCH_MAX_RECORDS``) and a
fetch buffer bounded by partitions times the fetch response size
(broker/kafka/consumer.py), so beyond a few MiB per partition what waits in Kafka
never comes into memory. What does grow with the number of
reports *accepted* is the replay guard: one entry per report id inside the
freshness window (``IXB_MAX_REPORT_AGE_S``, 1 h by default), by design
(broker/enforcer/stages/replay_guard.py). Its cost per id is measured here too, in this
process with tracemalloc, so the two can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
import tracemalloc
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.embedded import Kafka, kafka_for
from bench.enforcers import Enforcer, start_group
from bench.kafka import GroupProbe, RunFailed
from bench.reports import NATIONS, generate
from bench.workspace import Sealed, Workspace
from broker.app.settings import Settings
from broker.enforcer.stages.replay_guard import ReplayGuard

SAMPLE_S = 0.5
MARKS = (25, 50, 75, 100)  # progress points reported, in percent


@dataclass(frozen=True, slots=True)
class Run:
    reports: int
    seconds: float
    start_rss_mb: float  # right after start-up, before the first commit
    at_mark_mb: dict[int, float]  # RSS at 25/50/75/100 % of the backlog committed
    peak_rss_mb: float  # VmHWM, the kernel's high-water mark


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(
    workspace: Workspace, sealed: list[Sealed], kafka: Kafka, *, partitions: int, logs: Path
) -> Run:
    phase = workspace.phase(f"mem{len(sealed)}", kafka)
    await phase.create_topics(submit_partitions=partitions)
    await phase.produce(sealed)
    probe = GroupProbe(kafka.bootstrap, phase.settings.group_id)
    await probe.start()
    enforcers: list[Enforcer] = []
    try:
        submit = await probe.partitions(phase.topics.submit(n) for n in NATIONS)
        enforcers = await start_group(phase, probe, processes=1, logs_dir=logs)
        [enforcer] = enforcers
        pid = enforcer.process.pid
        start_rss = rss_mb(pid)
        marks: dict[int, float] = {}
        started = time.monotonic()
        deadline = started + 600
        while len(marks) < len(MARKS):
            if not enforcer.alive:
                raise RunFailed(f"the enforcer exited:\n{enforcer.tail()}")
            if time.monotonic() > deadline:
                raise RunFailed("the backlog was not committed within 600 s")
            done = await probe.committed_total(submit)
            rss = rss_mb(pid)
            for mark in MARKS:
                if mark not in marks and done * 100 >= mark * len(sealed):
                    marks[mark] = rss
            await asyncio.sleep(SAMPLE_S)
        seconds = time.monotonic() - started
        peak = rss_mb(pid, "VmHWM")
    finally:
        for e in enforcers:
            e.stop()
        await probe.stop()
    return Run(len(sealed), seconds, start_rss, marks, peak)


def replay_guard_bytes_per_id(count: int = 20_000) -> float:
    """What the replay guard holds per accepted report id (tracemalloc, this process)."""
    guard = ReplayGuard(dt.timedelta(hours=1))
    now = dt.datetime.now(dt.UTC)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for offset, report_id in enumerate(ids):
        guard.remember(report_id, now, ("ixb.submit.NL", 0, offset))
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return grown / count


async def main_async(sizes: list[int], partitions: int) -> int:
    base = Settings()
    with tempfile.TemporaryDirectory(prefix="ixb-backlog-") as root:
        workspace = Workspace(Path(root), base)
        logs = Path(root) / "logs"
        logs.mkdir()
        print(f"signing {max(sizes):,} reports ...", flush=True)
        reports = generate(max(sizes))
        runs = []
        async with kafka_for(base) as kafka:
            sealed = await workspace.seal(reports, kafka)
        del reports
        for size in sizes:
            print(f"backlog of {size:,}: publishing, then one `ixb run` ...", flush=True)
            async with kafka_for(base) as kafka:  # fresh: nothing of the last size in its caches
                runs.append(
                    await measure(workspace, sealed[:size], kafka, partitions=partitions, logs=logs)
                )
    print()
    header = "backlog   seconds  start_MB  " + "  ".join(f"{m:>3}%_MB" for m in MARKS)
    print(header + "  peak_MB")
    for r in runs:
        at = "  ".join(f"{r.at_mark_mb[m]:7.1f}" for m in MARKS)
        print(
            f"{r.reports:7,}  {r.seconds:8.1f}  {r.start_rss_mb:8.1f}  {at}  {r.peak_rss_mb:7.1f}"
        )
    per_id = replay_guard_bytes_per_id()
    print(
        f"\nreplay guard: {per_id:.0f} bytes per accepted report id (inside the freshness window)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backlog_memory", description=__doc__)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[5000, 20_000], help="backlog sizes"
    )
    parser.add_argument("--partitions", type=int, default=3, help="per submission topic")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(sorted(args.sizes), args.partitions))


if __name__ == "__main__":
    sys.exit(main())
