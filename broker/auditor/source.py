"""Where an auditor reads the decision log, and reading it: one Merkle log per partition.

The auditor's use cases (broker/auditor/use_cases.py) take an
:class:`AuditSource`: the cluster, the topic names, the schemas and the
partner registry to check signatures against. They are typed values the
caller builds once at its edge (``ixb audit`` from its settings,
broker/app/auditing.py), so the library never reads the environment.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from broker.auditlog.checkpoints import log_id_of
from broker.auditlog.log_notes import DEFAULT_ORIGIN_PREFIX
from broker.kafka.reader import read_topic
from broker.trust.records import PartnerRegistry
from broker.wire.codec import SchemaCatalog
from broker.wire.topics import TopicNames

Logs = dict[str, list[tuple[int, bytes]]]
"""Log id -> (offset, record value) of every record of one partition, in offset order."""

IDLE_TIMEOUT_S = 2.0  # a topic read to its end: how long nothing new means the end


@dataclass(frozen=True, slots=True)
class AuditSource:
    """The decision log to audit: where it is, how to read it, whom to believe."""

    bootstrap: str
    topics: TopicNames
    catalog: SchemaCatalog
    registry: PartnerRegistry
    idempotent: bool = True  # whether a producer may ask the cluster for idempotence
    origin_prefix: str = DEFAULT_ORIGIN_PREFIX  # the logs' names in C2SP checkpoints


async def read_logs(bootstrap: str, topic: str) -> Logs:
    """Every record of ``topic``, grouped by partition (one log each), in offset order."""
    logs: Logs = defaultdict(list)
    async for record in read_topic(bootstrap, topic, idle_timeout_s=IDLE_TIMEOUT_S):
        logs[log_id_of(topic, record.partition)].append((record.offset, record.value or b""))
    for records in logs.values():
        records.sort()
    return dict(sorted(logs.items()))


async def read_values(bootstrap: str, topic: str) -> list[bytes]:
    """The value of every record of ``topic`` (partition by partition), tombstones left out."""
    return [
        record.value
        async for record in read_topic(bootstrap, topic, idle_timeout_s=IDLE_TIMEOUT_S)
        if record.value is not None
    ]
