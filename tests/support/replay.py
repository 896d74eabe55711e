"""A recorded enforcer run without Kafka, for replay tests.

The enforcer's own :class:`~broker.enforcer.processor.BatchProcessor`
(built from ``broker.app.assembly.build_stages``, with its audit writer and
bundle archiver) processes submissions sealed with real agency keys; it
does no I/O, so the outputs are taken as they would be sent: bundle
archives, audit entries in the order written (one log), and the
submissions themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from broker.app.assembly import build_stages
from broker.app.auditing import intake_window
from broker.app.settings import Settings
from broker.auditlog.checkpoints import log_id_of
from broker.auditlog.entries import decode_entry
from broker.auditor.replay import LoggedEntry, Replayer
from broker.auditor.use_cases import replayer_for
from broker.domain.report import ThreatReport
from broker.enforcer.processor import Processed
from broker.enforcer.stages.replay_guard import Position
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.trust.sealing.keys import DecryptionKeys
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord
from broker.wire.report import report_to_record
from tests.support.submissions import seal_record

UNUSED_BOOTSTRAP = "127.0.0.1:1"  # nothing here connects to Kafka

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
    """Runs the enforcer's batch processing on sealed submissions and keeps what it wrote."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog, now: dt.datetime) -> None:
        self.settings = settings
        self.catalog = catalog
        self.now = now
        stages = build_stages(settings)
        self.processor = stages.processor(clock=lambda: self.now)
        self.topics = stages.topics
        self.policy = stages.policy  # reloaded by the tests that change the agreement
        self.entries: list[LoggedEntry] = []
        self.archives: list[bytes] = []  # of policy bundles (ixb.bundles)
        self.registry_archives: list[bytes] = []  # of registry versions (ixb.registry)
        self.submissions: dict[Position, InboundRecord] = {}
        self._offsets: dict[str, int] = {}

    def seal(self, report: ThreatReport) -> bytes:
        return seal_record(
            self.settings, self.catalog, report_to_record(report), key_nation=report.origin
        )

    async def batch(self, sealed: Iterable[tuple[str, bytes]]) -> Processed:
        """Process one batch of (nation, submission) and keep what would be sent."""
        inbound = []
        for nation, value in sealed:
            topic = self.topics.submit(nation)
            offset = self._offsets.get(topic, 0)
            self._offsets[topic] = offset + 1
            record = InboundRecord(topic, 0, offset, None, value, (), 0)
            self.submissions[topic, 0, offset] = record
            inbound.append(record)
        processed = self.processor.process(inbound)
        self.processor.archiver.acknowledged(processed.archives)  # as if Kafka had
        for archive in processed.archives:
            if archive.topic == self.topics.registry:
                self.registry_archives.append(archive.value)
            else:
                self.archives.append(archive.value)
        log_id = log_id_of(self.topics.audit, 0)
        for output in processed.outputs:
            if output.topic == self.topics.audit:
                entry = decode_entry(self.catalog, output.value)
                self.entries.append(LoggedEntry(log_id, len(self.entries), entry))
        return processed

    def replayer(
        self,
        archives: Iterable[bytes] | None = None,
        *,
        registries: Iterable[bytes] | None = None,
        keys: DecryptionKeys | None = None,
    ) -> Replayer:
        """A replayer as ``ixb audit replay`` builds one, over this run's (or other) archives.

        Uncached, so a replay never shares the recording's decision cache.
        ``keys``: the auditor's sealing keys (default: this home's, every
        authority's).
        """
        return replayer_for(
            self.catalog,
            RegistryFile(self.settings.registry_path).current(),
            list(self.archives if archives is None else archives),
            topics=self.topics,
            window=intake_window(self.settings),
            keys=Keystore(self.settings.keystore_dir) if keys is None else keys,
            cached=False,
            registry_archives=list(self.registry_archives if registries is None else registries),
        )
