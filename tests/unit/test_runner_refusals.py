"""The enforcer turns a policy engine that cannot decide into a retriable refusal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from broker.codec import SchemaCatalog
from broker.domain.decisions import Decision, DecisionInput
from broker.errors import PolicyUndecided
from broker.pipeline.fanout import FanOut
from broker.pipeline.intake import Intake
from broker.pipeline.rejections import REJECTION_SCHEMA
from broker.pipeline.replay import ReplayGuard
from broker.pipeline.runner import Enforcer
from broker.policy.bundle import load_bundle
from broker.policy.source import ActivePolicy, FixedPolicy
from broker.report_codec import report_to_record
from broker.service import attester_for, provision_keys, signer_for
from broker.settings import Settings
from broker.topics import TopicNames
from broker.transport import InboundRecord, OutputProducer, SubmissionConsumer, TopicAdmin
from broker.trust.disclosure import ReportLayout
from broker.trust.keys import KeyRole, RegistryFile
from broker.trust.pseudonyms import PseudonymSecrets
from broker.trust.submission import seal_submission
from tests.factories import make_report

UNUSED_BOOTSTRAP = "127.0.0.1:1"  # process() does no I/O; nothing connects


class _UnavailableEngine:
    """Test double of the PolicyDecisionPoint protocol: the engine is down."""

    bundle_hash = "sha256:test"

    def decide(self, decision_input: DecisionInput) -> Decision:
        raise PolicyUndecided("policy engine unavailable")


async def test_an_undecided_policy_refuses_the_submission_as_retriable_and_delivers_nothing(
    tmp_path: Path, catalog: SchemaCatalog, policies_dir: Path
) -> None:
    bundle = load_bundle(policies_dir, catalog)  # its parties make NL's partners
    settings = Settings(home=tmp_path, kafka_bootstrap=UNUSED_BOOTSTRAP)
    provision_keys(settings, ["NL", "BE"])
    topics = TopicNames()
    consumer = SubmissionConsumer(
        UNUSED_BOOTSTRAP, group_id="g", pattern=topics.submit_pattern, max_poll_records=1
    )
    producer = OutputProducer(UNUSED_BOOTSTRAP, TopicAdmin(UNUSED_BOOTSTRAP))
    enforcer = Enforcer(
        consumer=consumer,
        producer=producer,
        intake=Intake(
            catalog,
            topics,
            max_clock_skew=dt.timedelta(minutes=5),
            replay=ReplayGuard(dt.timedelta(hours=1)),
        ),
        fanout=FanOut(catalog, topics, PseudonymSecrets(settings.pseudonym_secrets_dir)),
        attester=attester_for(settings, catalog),
        catalog=catalog,
        topics=topics,
        registry=RegistryFile(settings.registry_path),
        policy=FixedPolicy(ActivePolicy(_UnavailableEngine(), bundle)),
    )
    nl = signer_for(settings, catalog, role=KeyRole.AGENCY, nation="NL")
    submission = seal_submission(
        catalog, ReportLayout.from_catalog(catalog), nl, report_to_record(make_report("NL"))
    )
    inbound = InboundRecord(topics.submit("NL"), 0, 7, b"key", submission, (), 0)

    try:
        [output] = await enforcer.process([inbound])
    finally:
        await consumer.stop()
        await producer.stop()

    assert output.topic == topics.rejected("NL")
    refusal = catalog.decode(output.value, REJECTION_SCHEMA)
    assert refusal["reason"] == "policy_undecided"
    assert refusal["retriable"] is True
    assert refusal["stage"] == "policy"
    assert refusal["original_value"] == submission
    assert refusal["source_offset"] == 7
    assert enforcer.stats.rejected == {"policy_undecided": 1}
    assert enforcer.stats.deliveries == 0
