"""Publishing: validate, encode, sign, seal and send one agency's reports.

Used by connectors (``connectors/``) and ``ixb publish``. The publisher signs
with one agency key, so it refuses to send a report claiming another origin:
the enforcer would refuse it anyway, and failing here tells the adapter why.

Sign inside, seal outside: the signed submission is sealed
(broker/trust/sealing/envelope.py) for the nation's submit topic to the
broker's current sealing key and to the nation's own data-protection
authority's, if it registered one (broker/trust/sealing/parties.py), both
read from the partner registry as it is when the reports are sealed. Nobody
else who reads the topic, the Kafka operator included, sees a value. The
reports of one :meth:`Publisher.publish` share one content key (each its
own nonce): the broker then opens the lot with one HPKE decapsulation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from broker.domain.report import ThreatReport
from broker.errors import ConfigurationError
from broker.kafka.producer import OutputProducer
from broker.trust.envelopes import Signer
from broker.trust.records import PartnerRegistry
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import seal_submission
from broker.trust.sealing.envelope import ContentKey
from broker.trust.sealing.routes import submission_content_key
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames


@dataclass(frozen=True, slots=True)
class Published:
    topic: str
    report_id: str


class Publisher:
    """Signs and seals one agency's reports and sends them to its nation's submit topic.

    ``registry`` is called for the partner registry each time a report is
    sealed (e.g. ``RegistryFile.current``), so a rotated broker key is
    sealed to from the next report on.
    """

    __slots__ = ("_catalog", "_layout", "_nation", "_producer", "_registry", "_signer", "_topics")

    def __init__(
        self,
        *,
        nation: str,
        catalog: SchemaCatalog,
        signer: Signer,
        producer: OutputProducer,
        topics: TopicNames,
        registry: Callable[[], PartnerRegistry],
    ) -> None:
        self._nation = nation
        self._catalog = catalog
        self._signer = signer
        self._producer = producer
        self._topics = topics
        self._registry = registry
        self._layout = ReportLayout.from_catalog(catalog)

    def seal(self, report: ThreatReport) -> OutboundRecord:
        """The signed and sealed submission record for ``report``, ready to send.

        Every value becomes a salted disclosure; the agency signs the digests
        (broker/trust/sd/submission.py), so the broker can withhold fields without
        breaking this signature; then the whole is sealed to its readers.
        """
        return self.seal_signed(self.sign(report), key=str(report.report_id).encode())

    def seal_signed(
        self, signed: bytes, *, key: bytes, content: ContentKey | None = None
    ) -> OutboundRecord:
        """A submission signed elsewhere (e.g. in an HSM), sealed for this nation's topic.

        ``content``: a content key from :meth:`content_key` shared by several
        submissions (fresh nonces each); by default, one of its own.
        """
        topic = self._topics.submit(self._nation)
        if content is None:
            content = self.content_key()
        if content.topic != topic:
            raise ConfigurationError(f"a content key for {content.topic} seals nothing for {topic}")
        return OutboundRecord(topic=topic, key=key, value=content.seal(self._catalog, signed))

    def content_key(self) -> ContentKey:
        """A content key sealed to this nation's submission readers as the registry has them now."""
        return submission_content_key(
            self._registry(),
            topic=self._topics.submit(self._nation),
            origin=self._nation,
            at=dt.datetime.now(dt.UTC),
        )

    def sign(self, report: ThreatReport) -> bytes:
        """The signed submission for ``report``, not yet sealed (what :meth:`seal` seals)."""
        if report.origin != self._nation:
            raise ConfigurationError(
                f"report {report.report_id} claims origin {report.origin}; "
                f"this publisher signs for {self._nation}"
            )
        return seal_submission(self._catalog, self._layout, self._signer, report_to_record(report))

    async def publish(self, reports: list[ThreatReport]) -> list[Published]:
        """Sign and send every report; returns once all are acknowledged."""
        content = self.content_key()  # one HPKE encapsulation per reader for the whole list
        records = [
            self.seal_signed(self.sign(r), key=str(r.report_id).encode(), content=content)
            for r in reports
        ]
        await self.send_sealed(records)
        return [
            Published(rec.topic, str(rep.report_id))
            for rec, rep in zip(records, reports, strict=True)
        ]

    async def send_sealed(self, records: list[OutboundRecord]) -> None:
        """Send records signed and sealed elsewhere (e.g. by an adapter with its key in an HSM)."""
        await self._producer.send_all(records)
