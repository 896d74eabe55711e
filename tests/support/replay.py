"""A recorded enforcer run without Kafka, for replay tests.

The real :class:`~broker.pipeline.runner.Enforcer` (built from
``broker.service.build_stages``, with its audit writer and bundle archiver)
processes submissions sealed with real agency keys; its ``process`` does no
I/O, so the outputs are taken as they would be sent: audit entries in the
order written (one log), bundle archives, and the submissions themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from broker.audit.bundles import BundleArchiver, BundleShelf
from broker.audit.checkpoints import log_id_of
from broker.audit.entries import AuditWriter, decode_entry
from broker.audit.received import ReceivedViews
from broker.audit.replay import LoggedEntry, Replayer
from broker.codec import SchemaCatalog
from broker.domain.report import ThreatReport
from broker.pipeline.intake import Intake
from broker.pipeline.replay import Position, ReplayGuard
from broker.pipeline.runner import Enforcer
from broker.policy.rego import RegoDecisionPoint
from broker.report_codec import report_to_record
from broker.service import build_stages
from broker.settings import Settings
from broker.transport import InboundRecord, OutputProducer, SubmissionConsumer, TopicAdmin
from broker.trust.disclosure import ReportLayout
from broker.trust.keys import RegistryFile
from tests.support.submissions import seal_record

UNUSED_BOOTSTRAP = "127.0.0.1:1"  # process() does no I/O; nothing connects

AGREEMENT = """
id: replay-nl-be
version: {version}
title: NL-BE replay test
purpose: unit tests of audit replay
parties: [NL, BE]
valid_from: 2020-01-01T00:00:00Z
report_types: [smuggling]
max_marking: TLP:AMBER
field_rules:
  "*":
    - {{field: "subjects[].travel_documents[].number", action: redact}}
    - {{field: "subjects[].full_name", action: pseudonymise}}
    - {{field: location, action: generalise, to: 0.1deg}}
{more}"""

STRICTER = "  smuggling:\n    - {field: summary, action: redact}\n"


def write_agreement(policies: Path, *, version: int = 1, more: str = "") -> None:
    text = AGREEMENT.format(version=version, more=more)
    (policies / "agreements" / "replay-nl-be.yaml").write_text(text)


class Recorder:
    """Runs the real enforcer's ``process`` on sealed submissions and keeps what it wrote."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog, now: dt.datetime) -> None:
        self.settings = settings
        self.catalog = catalog
        self.now = now
        stages = build_stages(settings)
        self.topics = stages.topics
        self.policy = stages.policy
        self._consumer = SubmissionConsumer(
            UNUSED_BOOTSTRAP, group_id="g", pattern=self.topics.submit_pattern, max_poll_records=1
        )
        self._producer = OutputProducer(UNUSED_BOOTSTRAP, TopicAdmin(UNUSED_BOOTSTRAP))
        self.enforcer = Enforcer(
            consumer=self._consumer,
            producer=self._producer,
            intake=stages.intake,
            fanout=stages.fanout,
            attester=stages.attester,
            catalog=catalog,
            topics=self.topics,
            registry=stages.registry,
            policy=stages.policy,
            clock=lambda: self.now,
            audit=AuditWriter(catalog),
            archiver=BundleArchiver(self.topics.bundles),
        )
        self.entries: list[LoggedEntry] = []
        self.archives: list[bytes] = []
        self.submissions: dict[Position, bytes | None] = {}
        self._offsets: dict[str, int] = {}

    def seal(self, report: ThreatReport) -> bytes:
        return seal_record(
            self.settings, self.catalog, report_to_record(report), key_nation=report.origin
        )

    async def batch(self, sealed: Iterable[tuple[str, bytes]]) -> list[str]:
        """Process one batch of (nation, submission); the topics of its outputs, in order."""
        inbound = []
        for nation, value in sealed:
            topic = self.topics.submit(nation)
            offset = self._offsets.get(topic, 0)
            self._offsets[topic] = offset + 1
            self.submissions[topic, 0, offset] = value
            inbound.append(InboundRecord(topic, 0, offset, None, value, (), 0))
        outputs = (await self.enforcer.process(inbound)).outputs
        log_id = log_id_of(self.topics.audit, 0)
        for output in outputs:
            if output.topic == self.topics.audit:
                entry = decode_entry(self.catalog, output.value)
                self.entries.append(LoggedEntry(log_id, len(self.entries), entry))
            elif output.topic == self.topics.bundles:
                self.archives.append(output.value)
        return [o.topic for o in outputs]

    def replayer(self, archives: Iterable[bytes] | None = None) -> Replayer:
        """A replayer as ``ixb audit replay`` builds one, over this run's (or other) archives."""
        layout = ReportLayout.from_catalog(self.catalog)
        intake = Intake(
            self.catalog,
            self.topics,
            max_clock_skew=dt.timedelta(seconds=self.settings.max_clock_skew_s),
            replay=ReplayGuard(dt.timedelta(seconds=self.settings.max_report_age_s)),
            layout=layout,
        )
        return Replayer(
            intake,
            RegistryFile(self.settings.registry_path).current(),
            BundleShelf(
                self.archives if archives is None else archives, self.catalog, RegoDecisionPoint
            ),
            ReceivedViews(layout),
        )

    async def close(self) -> None:
        await self._consumer.stop()
        await self._producer.stop()
