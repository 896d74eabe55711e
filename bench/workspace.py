"""The bench's world: a temporary IXB home, policies, keys and pre-signed reports.

Reports are signed before any clock starts, with the publisher's own code
path, so an agency's signing cost is never counted as the enforcer's. Every
measurement gets a fresh topic namespace and consumer group, so no phase
reads another's records or offsets. A submission is sealed for its topic,
namespace included, so each phase seals the signed reports for its own
topics, also before its clock starts (:meth:`Phase.seal`).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.embedded import Kafka
from bench.reports import NATIONS, write_agreements
from broker.app.assembly import load_catalog, open_publisher, provision_keys
from broker.app.settings import Settings
from broker.domain.report import ThreatReport
from broker.kafka.admin import TopicAdmin
from broker.kafka.producer import OutputProducer
from broker.resources import POLICIES_DIR
from broker.trust.records import KeyRecord
from broker.trust.registry_file import RegistryFile
from broker.trust.sd.submission import signed_payload_sha256
from broker.trust.sealing.envelope import seal
from broker.trust.sealing.parties import submission_recipients
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord
from broker.wire.topics import TopicNames


@dataclass(frozen=True, slots=True)
class Sealed:
    """One signed submission, sealed for a namespace's submit topic when first asked."""

    nation: str
    key: bytes
    signed: bytes  # the agency's signed submission
    payload_sha256: bytes  # of the report bytes the originator signed
    readers: tuple[KeyRecord, ...] = field(compare=False)  # who the agency seals it to
    catalog: SchemaCatalog = field(compare=False, repr=False)
    _values: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def value(self, topics: TopicNames) -> bytes:
        """The record value on ``topics``' submit topic: sealed once per topic, then kept."""
        topic = topics.submit(self.nation)
        known = self._values.get(topic)
        if known is None:
            known = seal(self.catalog, self.signed, topic=topic, to=self.readers)
            self._values[topic] = known
        return known

    def outbound(self, topics: TopicNames) -> OutboundRecord:
        return OutboundRecord(
            topic=topics.submit(self.nation), key=self.key, value=self.value(topics)
        )

    def inbound(self, topics: TopicNames, offset: int) -> InboundRecord:
        """As the enforcer's consumer would hand it over (for the ceiling loop).

        Stamped now with Kafka's append time, as the submit topics are
        (``LogAppendTime``): the intake judges keys at it.
        """
        return InboundRecord(
            topic=topics.submit(self.nation),
            partition=0,
            offset=offset,
            key=self.key,
            value=self.value(topics),
            headers=(),
            timestamp_ms=int(dt.datetime.now(dt.UTC).timestamp() * 1000),
            log_append_time=True,
        )


def signed_submission(
    catalog: SchemaCatalog,
    readers: dict[str, tuple[KeyRecord, ...]],
    nation: str,
    key: bytes,
    signed: bytes,
) -> Sealed:
    """A signed submission of ``nation``'s, to be sealed to ``readers[nation]``."""
    return Sealed(
        nation=nation,
        key=key,
        signed=signed,
        payload_sha256=signed_payload_sha256(catalog, signed),
        readers=readers[nation],
        catalog=catalog,
    )


@dataclass(frozen=True, slots=True)
class Phase:
    """Settings for one measurement: its own topics and consumer group."""

    settings: Settings
    bootstrap: str

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.settings.topic_namespace)

    def env(self) -> dict[str, str]:
        """The environment for an ``ixb run`` subprocess of this phase: exactly its settings."""
        run = self.settings.model_copy(
            update={
                "kafka_bootstrap": self.bootstrap,
                "metrics_addr": "127.0.0.1:0",  # several processes: each its own free port
            }
        )
        return run.environment(os.environ)

    async def create_topics(self, *, submit_partitions: int) -> None:
        """Submission topics with ``submit_partitions``; outputs as the enforcer makes them.

        Creating everything first lets the enforcers' pattern subscription see
        the submission topics at once and the bench watch the output topics.
        """
        topics = self.topics
        submit = TopicAdmin(self.bootstrap, partitions=submit_partitions)
        outputs = TopicAdmin(self.bootstrap)  # the enforcer's own defaults
        for admin in (submit, outputs):
            await admin.start()
        try:
            await submit.ensure(topics.submit(n) for n in NATIONS)
            await outputs.ensure(
                [*(topics.deliver(n) for n in NATIONS), *(topics.rejected(n) for n in NATIONS)]
            )
        finally:
            for admin in (submit, outputs):
                await admin.close()

    def seal(self, sealed: Iterable[Sealed]) -> None:
        """Seal every submission for this phase's topics now, before anything is timed."""
        topics = self.topics
        for s in sealed:
            s.value(topics)

    async def produce(self, sealed: list[Sealed], *, chunk: int = 2000) -> None:
        """Send ``sealed`` to this phase's submission topics; return once all are acknowledged."""
        admin = TopicAdmin(self.bootstrap)
        producer = OutputProducer(
            self.bootstrap,
            admin,
            client_id="ixb-bench-backlog",
            idempotent=self.settings.kafka_idempotence,
        )
        await admin.start()
        await producer.start()
        try:
            topics = self.topics
            for start in range(0, len(sealed), chunk):
                await producer.send_all([s.outbound(topics) for s in sealed[start : start + chunk]])
        finally:
            await producer.stop()
            await admin.close()


class Workspace:
    """A temporary home with agency keys for the four nations and a broker key."""

    def __init__(self, root: Path, base: Settings) -> None:
        policies = root / "policies"
        shutil.copytree(POLICIES_DIR / "ixb", policies / "ixb")
        write_agreements(policies / "agreements")
        self.root = root
        self.settings = base.model_copy(
            update={"home": root / "home", "policies_dir": policies, "topic_namespace": ""}
        )
        provision_keys(self.settings, list(NATIONS))
        self.catalog: SchemaCatalog = load_catalog(self.settings)
        registry = RegistryFile(self.settings.registry_path).current()
        now = dt.datetime.now(dt.UTC)
        self.readers = {n: tuple(submission_recipients(registry, n, now)) for n in NATIONS}

    def phase(self, label: str, kafka: Kafka) -> Phase:
        """Fresh topics and group on ``kafka``, with its session timeout and idempotence."""
        tag = uuid.uuid4().hex[:8]
        settings = kafka.settings(self.settings).model_copy(
            update={"topic_namespace": f"bench-{label}-{tag}", "group_id": f"bench-{label}-{tag}"}
        )
        return Phase(settings, kafka.bootstrap)

    async def seal(self, reports: list[ThreatReport], kafka: Kafka) -> list[Sealed]:
        """Sign every report with its origin's agency key, as ``ixb publish`` would.

        The result keeps the order of ``reports`` (origins interleaved).
        """
        sealed: dict[int, Sealed] = {}
        settings = kafka.settings(self.settings)
        for nation in NATIONS:
            async with open_publisher(settings, kafka.bootstrap, nation) as publisher:
                for index, report in enumerate(reports):
                    if report.origin == nation:
                        signed = publisher.sign(report)
                        key = str(report.report_id).encode()
                        sealed[index] = signed_submission(
                            self.catalog, self.readers, nation, key, signed
                        )
        return [sealed[i] for i in range(len(reports))]
