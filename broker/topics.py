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

A namespace (``IXB_TOPIC_NAMESPACE``) puts every name under a prefix, so
several independent ixb instances (or tests) can share one Kafka cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


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

    def nation_of_submit_topic(self, topic: str) -> str | None:
        """The nation a submission topic belongs to, or None for any other topic."""
        return topic.rsplit(".", 1)[1] if self._submit.match(topic) else None
