"""The ceiling: ixb's own per-report work in a tight loop, without Kafka.

The enforcer's :class:`~broker.enforcer.processor.BatchProcessor` is built
as ``broker.app.enforcer_process.run_enforcer`` builds it and called on each batch: the
batch context, intake (envelope, signature, disclosures, validation, replay
guard), fan-out (cached decisions, selections, derived values, statements),
the batch attestation, the intake ledger, the decision-log entries and the
output records. Only fetching, producing and committing are left out, so
the ceiling follows the pipeline as it changes. Reports are pre-signed; a
warm-up covering every decision input fills the decision cache first, as a
long-running enforcer's would be.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from dataclasses import dataclass

from bench import stages as stage_shares
from bench.workspace import Sealed
from broker.app.assembly import build_stages
from broker.app.settings import Settings
from broker.policy.cache import CachedDecisionPoint
from broker.wire.records import InboundRecord

STAGE_SAMPLE_REPORTS = 2000  # profiled again, untimed, for the split by stage


@dataclass(frozen=True, slots=True)
class CeilingResult:
    reports: int
    deliveries: int
    rejected: int
    seconds: float
    cpu_seconds: float
    warm_up_reports: int
    warm_up_seconds: float
    cache_misses: int  # decisions the warm-up had to evaluate
    cache_misses_timed: int  # should be 0: the timed loop decides from the cache
    stage_shares: dict[str, float]  # of the processing, by stage (bench/stages.py)

    @property
    def miss_ms(self) -> float:
        """Roughly what one uncached decision costs: the warm-up's extra time per miss."""
        hot = self.warm_up_reports * self.seconds / self.reports
        return 1000 * (self.warm_up_seconds - hot) / self.cache_misses if self.cache_misses else 0.0

    @property
    def cpu_ms_per_report(self) -> float:
        return 1000 * self.cpu_seconds / self.reports

    @property
    def reports_per_s(self) -> float:
        return self.reports / self.seconds

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.seconds


class Stages:
    """The enforcer's batch processing (``broker.app.assembly.build_stages``), fed by hand.

    :class:`BatchProcessor` does no I/O, so everything the runner computes
    for a batch is included: intake, decisions, selections and derived
    values, statements, the batch attestation, the intake-ledger lines, the
    decision-log entries and the output records.
    """

    def __init__(self, settings: Settings) -> None:
        self.processor = build_stages(settings).processor()
        self.topics = self.processor.topics
        self.policy = self.processor.policy
        self.stats = self.processor.stats

    def cache_misses(self) -> int:
        point = self.policy.current().point
        return point.misses if isinstance(point, CachedDecisionPoint) else 0

    def process(self, batch: list[InboundRecord]) -> tuple[int, int]:
        """Deliveries (and held) and refusals for one batch, by the runner's own code."""
        before = (self.stats.deliveries + self.stats.held, sum(self.stats.rejected.values()))
        processed = self.processor.process(batch)
        self.processor.archiver.acknowledged(processed.archives)  # as the runner does once sent
        if processed.stalled:
            raise RuntimeError("the policy could not decide during the ceiling run")
        after = (self.stats.deliveries + self.stats.held, sum(self.stats.rejected.values()))
        return after[0] - before[0], after[1] - before[1]


def measure(
    settings: Settings,
    warm_up: list[Sealed],
    sealed: list[Sealed],
    *,
    batch_size: int,
    profile: bool = False,
) -> tuple[CeilingResult, str | None]:
    """Reports per second through the enforcer's processing; the cProfile top 25 if asked.

    ``warm_up`` goes through first, untimed, so every decision comes from the
    cache; the profile is taken on a separate pass, so it never slows the figure.
    """
    stages = Stages(settings)
    warm = [s.inbound(stages.topics, offset) for offset, s in enumerate(warm_up)]
    inbound = [s.inbound(stages.topics, offset) for offset, s in enumerate(sealed)]
    warm_start = time.perf_counter()
    for i in range(0, len(warm), batch_size):
        stages.process(warm[i : i + batch_size])
    warm_seconds = time.perf_counter() - warm_start
    misses = stages.cache_misses()
    batches = [inbound[i : i + batch_size] for i in range(0, len(inbound), batch_size)]
    deliveries = rejected = 0
    cpu_start, start = time.process_time(), time.perf_counter()
    for batch in batches:
        d, r = stages.process(batch)
        deliveries += d
        rejected += r
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    timed_misses = stages.cache_misses() - misses
    sample = batches[: max(1, STAGE_SAMPLE_REPORTS // batch_size)]
    shares = stage_shares.shares(lambda: [stages.process(batch) for batch in sample])
    top = _profiled(stages, batches) if profile else None
    result = CeilingResult(
        reports=len(inbound),
        deliveries=deliveries,
        rejected=rejected,
        seconds=seconds,
        cpu_seconds=cpu,
        warm_up_reports=len(warm),
        warm_up_seconds=warm_seconds,
        cache_misses=misses,
        cache_misses_timed=timed_misses,
        stage_shares=shares,
    )
    return result, top


def _profiled(stages: Stages, batches: list[list[InboundRecord]], count: int = 25) -> str:
    """A second, untimed pass under cProfile: the top ``count`` by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for batch in batches:
        stages.process(batch)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(count)
    return out.getvalue()
