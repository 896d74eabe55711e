"""Publishing: validate, encode, sign and send one agency's reports.

Used by connectors (``connectors/``) and ``ixb publish``. The publisher signs
with one agency key, so it refuses to send a report claiming another origin:
the enforcer would refuse it anyway, and failing here tells the adapter why.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.domain.report import ThreatReport
from broker.errors import ConfigurationError
from broker.kafka.producer import OutputProducer
from broker.trust.envelopes import Signer
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import seal_submission
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames


@dataclass(frozen=True, slots=True)
class Published:
    topic: str
    report_id: str


class Publisher:
    __slots__ = ("_catalog", "_layout", "_nation", "_producer", "_signer", "_topics")

    def __init__(
        self,
        *,
        nation: str,
        catalog: SchemaCatalog,
        signer: Signer,
        producer: OutputProducer,
        topics: TopicNames,
    ) -> None:
        self._nation = nation
        self._catalog = catalog
        self._signer = signer
        self._producer = producer
        self._topics = topics
        self._layout = ReportLayout.from_catalog(catalog)

    def seal(self, report: ThreatReport) -> OutboundRecord:
        """The signed submission record for ``report``, ready to send.

        Every value becomes a salted disclosure; the agency signs the digests
        (broker/trust/sd/submission.py), so the broker can withhold fields without
        breaking this signature.
        """
        if report.origin != self._nation:
            raise ConfigurationError(
                f"report {report.report_id} claims origin {report.origin}; "
                f"this publisher signs for {self._nation}"
            )
        envelope = seal_submission(
            self._catalog, self._layout, self._signer, report_to_record(report)
        )
        return OutboundRecord(
            topic=self._topics.submit(self._nation),
            key=str(report.report_id).encode(),
            value=envelope,
        )

    async def publish(self, reports: list[ThreatReport]) -> list[Published]:
        """Sign and send every report; returns once all are acknowledged."""
        records = [self.seal(r) for r in reports]
        await self.send_sealed(records)
        return [
            Published(rec.topic, str(rep.report_id))
            for rec, rep in zip(records, reports, strict=True)
        ]

    async def send_sealed(self, records: list[OutboundRecord]) -> None:
        """Send records sealed elsewhere (e.g. by an adapter holding its key in an HSM)."""
        await self._producer.send_all(records)
