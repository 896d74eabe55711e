"""Topic names: one place, so every component agrees.

| topic                   | key         | written by        | read by             |
|-------------------------|-------------|-------------------|---------------------|
| ixb.submit.<ORIGIN>     | report id   | agency adapters   | enforcer            |
| ixb.deliver.<RECIPIENT> | delivery id | enforcer          | recipient analysts  |
| ixb.rejected.<ORIGIN>   | source key  | enforcer          | operators, origin   |
| ixb.held                | delivery id | enforcer          | enforcer (embargo)  |
| ixb.accepted            | report id   | enforcer          | enforcer (replay)   |
| ixb.audit               | writer id   | enforcer, releaser | auditors, enforcer |
| ixb.audit.checkpoints   | log id      | enforcer, `ixb audit checkpoint` | auditors |
| ixb.bundles             | bundle hash | enforcer          | auditors (replay)   |
| ixb.registry            | registry hash/previous | enforcer | auditors (replay, receipts) |

A namespace (``IXB_TOPIC_NAMESPACE``) puts every name under a prefix, so
several independent ixb instances (or tests) can share one Kafka cluster.

Most topics are created with the admin's defaults; three kinds are not
(:func:`shape_of`). The submission topics have Kafka stamp every record with
the time it was appended (``message.timestamp.type=LogAppendTime``): a time
the signer cannot choose, at which the intake judges whether the signing
key was still valid (broker/trust/key_checks.py). A cluster's default
retention (a week on Kafka) would
quietly delete the decision log, its checkpoints and the policy archive
that ``ixb audit verify`` and ``replay`` need, so those are kept forever.
The intake ledger is the opposite: every enforcer reads it back whenever
its partitions change, and only lines of reports still inside the
freshness window matter (:func:`ledger_retention`), so a week of it would
be a week of start-up reading.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class TopicNames:
    namespace: str = ""
    _submit: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.namespace and not re.fullmatch(
            r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", self.namespace
        ):
            raise ValueError(f"invalid topic namespace {self.namespace!r}")
        object.__setattr__(self, "_submit", re.compile(self.submit_pattern))

    @property
    def _base(self) -> str:
        return f"{self.namespace}.ixb" if self.namespace else "ixb"

    @property
    def submit_pattern(self) -> str:
        """Regex matching every nation's submission topic (and nothing else)."""
        return "^" + re.escape(self._base) + r"\.submit\.[A-Z]{2}$"

    def submit(self, nation: str) -> str:
        return f"{self._base}.submit.{nation}"

    def deliver(self, nation: str) -> str:
        return f"{self._base}.deliver.{nation}"

    def rejected(self, nation: str) -> str:
        return f"{self._base}.rejected.{nation}"

    @property
    def held(self) -> str:
        """Deliveries under embargo, until they are released."""
        return f"{self._base}.held"

    @property
    def accepted(self) -> str:
        """The intake ledger: report ids accepted, for replay protection."""
        return f"{self._base}.accepted"

    @property
    def audit(self) -> str:
        """The decision log: one entry per outcome, Merkle tree per partition."""
        return f"{self._base}.audit"

    @property
    def audit_checkpoints(self) -> str:
        """Signed checkpoints (log id, size, root, time) of the decision log."""
        return f"{self._base}.audit.checkpoints"

    @property
    def bundles(self) -> str:
        """Every policy bundle the enforcer decided with, archived by content hash."""
        return f"{self._base}.bundles"

    @property
    def registry(self) -> str:
        """Every partner registry version the enforcer checked signatures against, by hash."""
        return f"{self._base}.registry"

    def nation_of_submit_topic(self, topic: str) -> str | None:
        """The nation a submission topic belongs to, or None for any other topic."""
        return topic.rsplit(".", 1)[1] if self._submit.match(topic) else None


@dataclass(frozen=True, slots=True)
class TopicShape:
    """How ixb creates a topic it finds missing."""

    partitions: int | None = None  # None: the creating admin's default
    configs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


_KEPT_FOREVER = MappingProxyType({"retention.ms": "-1", "retention.bytes": "-1"})
LOG_APPEND_TIME = MappingProxyType({"message.timestamp.type": "LogAppendTime"})
_SHAPES = (
    # Stamped by Kafka, not by the producer: revocation is judged at that time.
    (re.compile(r"(?:^|\.)ixb\.submit\.[A-Z]{2}$"), TopicShape(None, LOG_APPEND_TIME)),
    # Every entry ever written: the chains and trees are checked from offset 0.
    (re.compile(r"(?:^|\.)ixb\.audit$"), TopicShape(None, _KEPT_FOREVER)),
    (re.compile(r"(?:^|\.)ixb\.audit\.checkpoints$"), TopicShape(1, _KEPT_FOREVER)),
    # One record per bundle hash, never superseded: compaction keeps them all.
    (
        re.compile(r"(?:^|\.)ixb\.bundles$"),
        TopicShape(1, MappingProxyType({"cleanup.policy": "compact"})),
    ),
    # One record per (registry version, predecessor): compaction keeps every link.
    (
        re.compile(r"(?:^|\.)ixb\.registry$"),
        TopicShape(1, MappingProxyType({"cleanup.policy": "compact"})),
    ),
)


_LEDGER = re.compile(r"(?:^|\.)ixb\.accepted$")


def ledger_retention(max_report_age: dt.timedelta, max_clock_skew: dt.timedelta) -> dt.timedelta:
    """How long an intake-ledger line can still matter to replay protection.

    A line matters while its report is fresh (issued at most ``max_report_age``
    ago); the report was issued at most ``max_clock_skew`` after the line's
    record time, and the enforcer reading the ledger back may run on a host
    whose clock differs by as much again.
    """
    return max_report_age + 2 * max_clock_skew


def shape_of(topic: str, *, ledger_retention: dt.timedelta | None = None) -> TopicShape:
    """The partitions and settings ``topic`` is created with (under any namespace).

    The intake ledger's retention depends on the enforcer's settings: without
    ``ledger_retention`` it gets the admin's defaults.
    """
    for pattern, shape in _SHAPES:
        if pattern.search(topic):
            return shape
    if ledger_retention is not None and _LEDGER.search(topic):
        millis = int(ledger_retention.total_seconds() * 1000)
        # Kafka deletes whole segments, and rolls one a week by default: a
        # segment per quarter of the retention keeps at most 25 % extra.
        configs = {"retention.ms": str(millis), "segment.ms": str(max(millis // 4, 60_000))}
        return TopicShape(None, MappingProxyType(configs))
    return TopicShape()
