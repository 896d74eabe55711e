"""Prometheus metrics of one enforcer, in a registry of its own.

Counters are not kept twice: the pipeline already counts what it does
(:class:`~broker.enforcer.processor.EnforcerStats`,
:class:`~broker.enforcer.runtime.embargo.EmbargoStats`, the decision cache's hits and
misses), and a collector reads those at scrape time. Only durations need
observing as they happen; the runner reports each acknowledged batch through
:meth:`EnforcerMetrics.batch_acknowledged`. Consumer lag is asked of the
consumers just before each scrape.

A registry per enforcer, not prometheus_client's global one, so that several
enforcers in one process (tests, the demo) each export their own numbers.

Labels stay bounded: outcomes, reason codes (the policy's reason codes carry
the agreement id, which comes from configuration), topics and partitions.
A reason that does not look like a code is exported as ``other``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from broker.enforcer.processor import EnforcerStats
from broker.enforcer.runtime.embargo import EmbargoStats
from broker.policy import PolicyDecisionPoint
from broker.policy.cache import CachedDecisionPoint
from broker.wire.records import InboundRecord, Partition

BATCH_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
END_TO_END_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_CODE = re.compile(r"[a-z0-9_.:-]{1,120}")


class LagSource(Protocol):
    async def lag(self) -> Mapping[Partition, int]:
        """Records not yet fetched, per partition owned."""
        ...


@dataclass(frozen=True, slots=True)
class Watched:
    """What the metrics read at scrape time; each part is owned and updated by its component."""

    stats: EnforcerStats
    embargo: EmbargoStats
    held: Callable[[], int]  # deliveries waiting for their embargo to end
    decision_point: Callable[[], PolicyDecisionPoint]  # the one in use now
    consumers: tuple[LagSource, ...] = ()


def reason_label(reason: str) -> str:
    """The reason as a label value if it is a code, else ``other`` (keeps labels bounded)."""
    return reason if _CODE.fullmatch(reason) else "other"


class EnforcerMetrics:
    """The registry of one enforcer: counters read from its stats, durations observed."""

    __slots__ = ("_batch_s", "_end_to_end_s", "_lag", "_watched", "registry")

    def __init__(self, watched: Watched) -> None:
        self._watched = watched
        self._lag: dict[Partition, int] = {}
        self.registry = CollectorRegistry()
        self._batch_s = Histogram(
            "ixb_batch_seconds",
            "From a fetched batch to the acknowledgement of all its outputs (commit excluded).",
            buckets=BATCH_BUCKETS_S,
            registry=self.registry,
        )
        self._end_to_end_s = Histogram(
            "ixb_end_to_end_seconds",
            "From a submission's record timestamp to the acknowledgement of its outputs "
            "(an embargoed delivery's clock stops when it is held).",
            buckets=END_TO_END_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(_StatsCollector(watched, self._lag))

    def batch_acknowledged(self, batch: Sequence[InboundRecord], seconds: float) -> None:
        """Called by the runner once every output of ``batch`` is acknowledged."""
        self._batch_s.observe(seconds)
        now_ms = time.time() * 1000
        for record in batch:
            if record.timestamp_ms > 0:  # -1: the producer set none
                self._end_to_end_s.observe(max(0.0, now_ms - record.timestamp_ms) / 1000)

    async def exposition(self) -> bytes:
        """The text exposition format, with consumer lag asked afresh."""
        lags = await asyncio.gather(*(c.lag() for c in self._watched.consumers))
        self._lag.clear()
        for lag in lags:
            self._lag.update(lag)
        return generate_latest(self.registry)


class _StatsCollector:
    """Reads the pipeline's own counters when Prometheus scrapes."""

    __slots__ = ("_lag", "_watched")

    def __init__(self, watched: Watched, lag: Mapping[Partition, int]) -> None:
        self._watched = watched
        self._lag = lag

    def collect(self) -> Iterable[Metric]:
        stats, embargo = self._watched.stats, self._watched.embargo
        yield _counter(
            "ixb_submissions", "Submissions processed (outputs computed).", stats.submissions
        )
        yield _counter(
            "ixb_submissions_completed",
            "Submissions whose outputs were all acknowledged.",
            stats.completed,
        )
        yield _counter(
            "ixb_batches", "Batches completed (acknowledged; commit attempted).", stats.batches
        )
        yield _counter(
            "ixb_send_retries",
            "Kafka operations tried again: fetches, ledger reads and output sends.",
            stats.retries,
        )
        yield _counter(
            "ixb_deliveries",
            "Deliveries produced to recipients' topics, directly or on release from embargo.",
            stats.deliveries + embargo.released,
        )
        yield _counter(
            "ixb_embargo_released", "Held deliveries released when due.", embargo.released
        )
        decisions = CounterMetricFamily(
            "ixb_decisions",
            "Policy decisions per recipient, by outcome and reason code.",
            labels=["outcome", "reason"],
        )
        decisions.add_metric(["delivered", "allowed"], stats.deliveries)
        decisions.add_metric(["held", "embargo"], stats.held)
        for reason, count in _by_label(stats.withheld.items()):
            decisions.add_metric(["withheld", reason], count)
        yield decisions
        rejected = CounterMetricFamily(
            "ixb_rejected",
            "Records sent to a rejected topic, by reason code.",
            labels=["reason"],
        )
        refusals = [*stats.rejected.items(), ("embargo_release_refused", embargo.refused)]
        for reason, count in _by_label(refusals):
            rejected.add_metric([reason], count)
        yield rejected
        yield GaugeMetricFamily(
            "ixb_held", "Held deliveries waiting for their embargo to end.", self._watched.held()
        )
        point = self._watched.decision_point()
        if isinstance(point, CachedDecisionPoint):
            yield GaugeMetricFamily(
                "ixb_decision_cache_hit_ratio",
                "Share of policy decisions answered from the cache, since the bundle loaded.",
                point.hit_rate,
            )
        lag = GaugeMetricFamily(
            "ixb_consumer_lag",
            "Records not yet fetched, per partition this enforcer owns.",
            labels=["topic", "partition"],
        )
        for (topic, partition), behind in sorted(self._lag.items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _by_label(counts: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Counts summed per label value (several odd reasons may all become ``other``)."""
    summed: dict[str, int] = {}
    for reason, count in counts:
        label = reason_label(reason)
        summed[label] = summed.get(label, 0) + count
    return sorted(summed.items())
