"""Real verified deliveries without Kafka, for the connectors' unit tests.

The enforcer's own stages (intake, fan-out with its field rules, batch
attestation) turn a report into a delivery under a test agreement that
withholds, pseudonymises and generalises; the recipient library verifies it.
What a connector maps is therefore exactly what a recipient would hold.
Submissions are sealed to the broker as an agency seals them, and each
delivery to its recipient as the enforcer seals it, so the recipient opens
it with its own sealing key.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from broker.app.assembly import attester_for, policy_source, provision_keys, signer_for
from broker.app.settings import Settings
from broker.domain.report import ThreatReport
from broker.enforcer.stages.context import batch_context
from broker.enforcer.stages.fanout import FanOut, Routed
from broker.enforcer.stages.intake import Accepted, Intake
from broker.enforcer.stages.replay_guard import ReplayGuard
from broker.parties.derivations import PartyAgreements
from broker.parties.recipient import DeliveryVerifier, VerifiedDelivery
from broker.trust.keystore import Keystore
from broker.trust.pseudonyms import PseudonymSecrets
from broker.trust.records import KeyRole
from broker.trust.registry_file import RegistryFile
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import seal_submission
from broker.trust.sealing.envelope import Opener
from broker.trust.sealing.parties import BROKER_PARTY
from broker.trust.sealing.routes import delivery_content_key, sealed_submission
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames

REPO = Path(__file__).resolve().parents[2]

# NL shares everything with BE, but BE gets no summary or document numbers,
# pseudonymised names and coordinates on a 0.1-degree grid; DE gets it whole,
# except the names in a document-fraud report.
CONNECTOR_AGREEMENTS = {
    "nl-be-connectors": """
id: nl-be-connectors
version: 2
title: NL-BE connector tests
purpose: connector tests
parties: [NL, BE]
valid_from: 2020-01-01T00:00:00Z
report_types: [smuggling, migrant_smuggling, watchlist_hit, document_fraud, other]
max_marking: TLP:RED
handling_codes: [H0, H1, H2, H3]
h2_consent: {NL: [BE]}
field_rules:
  "*":
    - {field: summary, action: redact}
    - {field: "subjects[].travel_documents[].number", action: redact}
    - {field: "subjects[].full_name", action: pseudonymise}
    - {field: location, action: generalise, to: 0.1deg}
""",
    "nl-de-connectors": """
id: nl-de-connectors
version: 1
title: NL-DE connector tests
purpose: connector tests
parties: [NL, DE]
valid_from: 2020-01-01T00:00:00Z
report_types: [smuggling, migrant_smuggling, watchlist_hit, document_fraud, other]
max_marking: TLP:RED
handling_codes: [H0, H1, H2, H3]
h2_consent: {NL: [DE]}
field_rules:
  document_fraud:
    - {field: "subjects[].full_name", action: redact}
""",
}


class DeliveryFactory:
    """Turns reports into verified deliveries through the enforcer's stages."""

    def __init__(self, home: Path, catalog: SchemaCatalog) -> None:
        policies = home / "policies"
        shutil.copytree(REPO / "policies" / "ixb", policies / "ixb")
        (policies / "agreements").mkdir()
        for name, text in CONNECTOR_AGREEMENTS.items():
            (policies / "agreements" / f"{name}.yaml").write_text(text)
        self.settings = Settings(
            home=home / "home", kafka_bootstrap="127.0.0.1:1", policies_dir=policies
        )
        provision_keys(self.settings, ["NL", "BE", "DE"])
        self.catalog = catalog
        self.topics = TopicNames()
        self.layout = ReportLayout.from_catalog(catalog)
        self.registry = RegistryFile(self.settings.registry_path)
        self.policy = policy_source(self.settings, catalog)
        self.fanout = FanOut(
            catalog, self.topics, PseudonymSecrets(self.settings.pseudonym_secrets_dir)
        )
        self.attester = attester_for(self.settings, catalog)
        self.keys = Keystore(self.settings.keystore_dir)  # every party's, in this test home
        broker = Opener(self.keys, BROKER_PARTY)
        self.intake = Intake(
            catalog,
            self.topics,
            max_clock_skew=dt.timedelta(minutes=5),
            replay=ReplayGuard(dt.timedelta(hours=1)),
            openers=lambda _origin: broker,
        )
        self._offset = 0

    def attested(self, report: ThreatReport) -> dict[str, bytes]:
        """The attested delivery bytes for every recipient the agreements allow, not sealed."""
        signer = signer_for(self.settings, self.catalog, role=KeyRole.AGENCY, nation=report.origin)
        signed = seal_submission(self.catalog, self.layout, signer, report_to_record(report))
        topic = self.topics.submit(report.origin)
        now = dt.datetime.now(dt.UTC)
        value = sealed_submission(
            self.catalog, self.registry.current(), signed, topic=topic, origin=report.origin, at=now
        )
        self._offset += 1
        inbound = InboundRecord(topic, 0, self._offset, b"k", value, (), 0)
        context = batch_context(self.registry, self.policy, now)
        accepted = self.intake.check(inbound, context)
        assert isinstance(accepted, Accepted), accepted
        routed = self.fanout.route(accepted, context)
        assert isinstance(routed, Routed), routed
        sealed = self.attester.attest([p.statement for p in routed.pending])
        return {p.topic.rsplit(".", 1)[1]: a for p, a in zip(routed.pending, sealed, strict=True)}

    def deliver(self, report: ThreatReport, recipient: str) -> VerifiedDelivery:
        """``report`` as ``recipient`` holds it once verified."""
        attested = self.attested(report)[recipient]
        topic = self.topics.deliver(recipient)
        content = delivery_content_key(
            self.registry.current(), topic=topic, recipient=recipient, at=dt.datetime.now(dt.UTC)
        )
        data = content.seal(self.catalog, attested)  # as the enforcer seals it
        agreements = PartyAgreements.from_directory(self.settings.policies_dir / "agreements")
        verifier = DeliveryVerifier(
            self.catalog, recipient, agreements=agreements, keys=self.keys, topics=self.topics
        )
        return verifier.verify(self.registry.current(), data)
