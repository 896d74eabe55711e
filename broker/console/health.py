"""What an operator sees: each enforcer's readiness and metrics, and the rejected topics.

The numbers come from the enforcer's own ``/metrics`` and ``/readyz``
(broker/app/observability/), read over HTTP as Prometheus would, so the
console shows what the enforcer says of itself: decisions by outcome and
reason, rejections by reason, held deliveries, consumer lag per partition.
The rejected topics are read for their reason codes and source positions
only (broker/app/documents.py :func:`rejection_json`), never the refused
bytes they keep.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from broker.app.documents import rejection_json
from broker.console.sources import ConsoleSources
from broker.errors import IxbError
from broker.kafka.reader import read_topic

__all__ = ["EnforcerHealth", "RejectedTopic", "enforcer_health", "rejected_topics"]

_TIMEOUT_S = 2.0


@dataclass
class EnforcerHealth:
    address: str
    reachable: bool = False
    ready: bool = False
    readiness: str = ""  # the enforcer's own words: "ready", or the first unmet condition
    partitions: int | None = None  # submission partitions it owns, as its /readyz says
    counters: dict[str, float] = field(default_factory=dict)  # name -> value
    decisions: dict[tuple[str, str], float] = field(default_factory=dict)  # (outcome, reason)
    rejected: dict[str, float] = field(default_factory=dict)  # reason -> records
    lag: dict[tuple[str, str], float] = field(default_factory=dict)  # (topic, partition)
    held: float = 0.0
    cache_hit_ratio: float | None = None

    @property
    def total_lag(self) -> float:
        return sum(self.lag.values())

    def lag_by_topic(self) -> dict[str, tuple[int, float]]:
        """Topic -> (partitions owned, records behind over them)."""
        topics: dict[str, tuple[int, float]] = {}
        for (topic, _), behind in self.lag.items():
            owned, total = topics.get(topic, (0, 0.0))
            topics[topic] = (owned + 1, total + behind)
        return dict(sorted(topics.items()))

    def by_outcome(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for (outcome, _), count in self.decisions.items():
            totals[outcome] = totals.get(outcome, 0.0) + count
        return dict(sorted(totals.items()))


async def enforcer_health(address: str) -> EnforcerHealth:
    """Readiness and metrics of the enforcer whose probe server is at ``address``."""
    health = EnforcerHealth(address)
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=_TIMEOUT_S) as client:
        try:
            ready, metrics = await asyncio.gather(client.get("/readyz"), client.get("/metrics"))
        except httpx.HTTPError:
            health.readiness = "not reachable"
            return health
    health.reachable = True
    health.ready = ready.status_code == 200
    _read_readiness(health, ready.text)
    if metrics.status_code == 200:
        _read_metrics(health, metrics.text)
    return health


def _read_readiness(health: EnforcerHealth, text: str) -> None:
    """``ready`` or ``not ready: <condition>``, then ``partitions: N`` (ixb 0.3 on)."""
    lines = text.strip().splitlines()
    health.readiness = (lines[0] if lines else "")[:200]
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip() == "partitions" and value.strip().isdigit():
            health.partitions = int(value.strip())


def _read_metrics(health: EnforcerHealth, text: str) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "ixb_decisions_total":
                key = (labels.get("outcome", "?"), labels.get("reason", "?"))
                health.decisions[key] = health.decisions.get(key, 0.0) + value
            elif name == "ixb_rejected_total":
                reason = labels.get("reason", "?")
                health.rejected[reason] = health.rejected.get(reason, 0.0) + value
            elif name == "ixb_consumer_lag":
                health.lag[labels.get("topic", "?"), labels.get("partition", "?")] = value
            elif name == "ixb_held":
                health.held = value
            elif name == "ixb_decision_cache_hit_ratio":
                health.cache_hit_ratio = value
            elif name.endswith("_total") and name.startswith("ixb_"):
                health.counters[name.removesuffix("_total")] = value


@dataclass(frozen=True, slots=True)
class RejectedTopic:
    nation: str
    topic: str
    reasons: Counter[str]
    latest: list[dict[str, object]]  # the newest few: reason, stage, source, when (no bytes)

    @property
    def total(self) -> int:
        return sum(self.reasons.values())


async def rejected_topics(sources: ConsoleSources, *, latest: int = 5) -> list[RejectedTopic]:
    """Every nation's rejected topic: how many records, by reason, and the newest few."""

    async def one(nation: str) -> RejectedTopic:
        topic = sources.topics.rejected(nation)
        documents = []
        try:
            async for record in read_topic(
                sources.bootstrap, topic, idle_timeout_s=sources.read_idle_s
            ):
                documents.append(rejection_json(sources.catalog, record.value or b""))
        except IxbError:
            documents.append({"reason": "topic_unreadable", "detail": "", "source": topic})
        reasons = Counter(str(d["reason"]) for d in documents)
        return RejectedTopic(nation, topic, reasons, documents[-latest:][::-1])

    return list(await asyncio.gather(*(one(n) for n in sources.nations())))
