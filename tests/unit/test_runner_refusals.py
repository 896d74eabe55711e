"""A policy engine that cannot decide holds the submission: never a refusal, never a delivery.

The enforcer's batch processing is pure (no I/O), so the stall logic is tested
here with the real intake, fan-out, attester, audit writer and Rego engine;
the only stand-in is an engine wrapper that, like an engine that is down,
cannot decide for reports of one marking.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.app.assembly import attester_for, provision_keys, signer_for
from broker.app.settings import Settings
from broker.auditlog.entries import decode_entry
from broker.domain.decisions import Decision, DecisionInput
from broker.enforcer.processor import BatchProcessor
from broker.enforcer.runtime.backoff import PartitionBackoff
from broker.enforcer.stages.fanout import FanOut
from broker.enforcer.stages.intake import Intake
from broker.enforcer.stages.replay_guard import ACCEPTED_SCHEMA, ReplayGuard
from broker.errors import PolicyUndecided
from broker.policy.archive import archive_bundle
from broker.policy.rego import RegoDecisionPoint
from broker.policy.source import ActivePolicy, FixedPolicy
from broker.trust.keystore import Keystore
from broker.trust.pseudonyms import PseudonymSecrets
from broker.trust.records import KeyRole
from broker.trust.registry_file import RegistryFile
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import seal_submission
from broker.trust.sealing.envelope import Opener
from broker.trust.sealing.parties import BROKER_PARTY
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames
from tests.factories import make_report
from tests.integration.conftest import NL_BE_AGREEMENT
from tests.support.submissions import seal_signed

UNDECIDED_MARKING = "TLP:GREEN"


class _EngineDownForOneMarking:
    """The real Rego engine, except that it cannot decide for ``UNDECIDED_MARKING`` while down."""

    def __init__(self, inner: RegoDecisionPoint) -> None:
        self._inner = inner
        self.down = True

    @property
    def bundle_hash(self) -> str:
        return self._inner.bundle_hash

    def decide(self, decision_input: DecisionInput) -> Decision:
        if self.down and decision_input.marking == UNDECIDED_MARKING:
            raise PolicyUndecided("policy engine unavailable")
        return self._inner.decide(decision_input)


@dataclass
class _Rig:
    processor: BatchProcessor
    engine: _EngineDownForOneMarking
    topics: TopicNames
    catalog: SchemaCatalog
    submit: str
    seal: Callable[[str], bytes]  # a fresh NL report with this marking, sealed by NL's agency

    def inbound(self, partition: int, offset: int, *, marking: str = "TLP:AMBER") -> InboundRecord:
        return InboundRecord(self.submit, partition, offset, b"key", self.seal(marking), (), 0)


@pytest.fixture
def rig(tmp_path: Path, catalog: SchemaCatalog, policies_dir: Path) -> _Rig:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    bundle, archive = archive_bundle(policies_dir, catalog)
    settings = Settings(home=tmp_path)
    provision_keys(settings, ["NL", "BE"])
    topics = TopicNames()
    engine = _EngineDownForOneMarking(RegoDecisionPoint(bundle))
    layout = ReportLayout.from_catalog(catalog)
    opener = Opener(Keystore(settings.keystore_dir), BROKER_PARTY)
    processor = BatchProcessor(
        intake=Intake(
            catalog,
            topics,
            max_clock_skew=dt.timedelta(minutes=5),
            replay=ReplayGuard(dt.timedelta(hours=1)),
            openers=lambda _: opener,
            layout=layout,
        ),
        fanout=FanOut(catalog, topics, PseudonymSecrets(settings.pseudonym_secrets_dir), layout),
        attester=attester_for(settings, catalog),
        catalog=catalog,
        topics=topics,
        registry=RegistryFile(settings.registry_path),
        policy=FixedPolicy(ActivePolicy(engine, bundle, archive)),
    )
    nl = signer_for(settings, catalog, role=KeyRole.AGENCY, nation="NL")

    def seal(marking: str) -> bytes:
        signed = seal_submission(
            catalog, layout, nl, report_to_record(make_report("NL", marking=marking))
        )
        return seal_signed(settings, catalog, signed, topic=topics.submit("NL"))

    return _Rig(processor, engine, topics, catalog, topics.submit("NL"), seal)


def _on(topic: str, outputs: tuple[OutboundRecord, ...]) -> tuple[OutboundRecord, ...]:
    return tuple(o for o in outputs if o.topic == topic)


def _ledger_positions(rig: _Rig, outputs: tuple[OutboundRecord, ...]) -> list[tuple[int, int]]:
    lines = [rig.catalog.decode(o.value, ACCEPTED_SCHEMA) for o in outputs]
    return [(line["partition"], line["offset"]) for line in lines]


async def test_an_undecided_submission_stops_its_partition_leaving_no_trace_of_it_or_what_follows(
    rig: _Rig,
) -> None:
    batch = [
        rig.inbound(0, 10),
        rig.inbound(0, 11, marking=UNDECIDED_MARKING),
        rig.inbound(1, 20),
        rig.inbound(0, 12),  # after the undecided one, in its partition: not processed either
        rig.inbound(1, 21),
    ]

    processed = rig.processor.process(batch)

    assert processed.stalled == {(rig.submit, 0): 11}
    assert [(r.partition, r.offset) for r in processed.done(batch)] == [(0, 10), (1, 20), (1, 21)]
    topics = {o.topic for o in processed.outputs}
    assert rig.topics.rejected("NL") not in topics, "undecided is not a refusal"
    assert sorted(_ledger_positions(rig, _on(rig.topics.accepted, processed.outputs))) == [
        (0, 10),
        (1, 20),
        (1, 21),
    ]
    deliveries = [o for o in processed.outputs if o.topic == rig.topics.deliver("BE")]
    assert len(deliveries) == 3
    # The audit chain has no gap: every entry created is among the outputs, in order.
    audit = [o for o in processed.outputs if o.topic == rig.topics.audit]
    assert [decode_entry(rig.catalog, o.value).writer_seq for o in audit] == list(
        range(rig.processor.audit.next_seq)
    )
    audited_offsets = {
        entry.event.submission.offset
        for entry in (decode_entry(rig.catalog, o.value) for o in audit)
        if entry.event.submission is not None
    }
    assert audited_offsets == {10, 20, 21}
    assert len(rig.processor.intake.replay) == 3, "the held reports are not remembered"
    assert rig.processor.stats.submissions == 3
    assert rig.processor.stats.rejected == {}


async def test_a_held_submission_goes_through_once_the_policy_decides_again(rig: _Rig) -> None:
    held = rig.inbound(0, 11, marking=UNDECIDED_MARKING)
    after = rig.inbound(0, 12)
    first = rig.processor.process([held, after])
    assert first.stalled == {(rig.submit, 0): 11}
    assert first.outputs == ()

    rig.engine.down = False
    again = rig.processor.process([held, after])  # refetched from the stalled offset

    assert again.stalled == {}
    assert sorted(_ledger_positions(rig, _on(rig.topics.accepted, again.outputs))) == [
        (0, 11),
        (0, 12),
    ]
    assert len([o for o in again.outputs if o.topic == rig.topics.deliver("BE")]) == 2
    assert rig.processor.stats.rejected == {}, "not refused as a replay of its first attempt"


def test_the_policy_backoff_doubles_per_partition_up_to_its_cap_and_restarts_after_progress() -> (
    None
):
    backoff = PartitionBackoff(initial_s=0.5, max_s=3.0)
    a, b = ("ixb.submit.NL", 0), ("ixb.submit.NL", 1)

    assert [backoff.next_delay(a) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.next_delay(b) == 0.5, "each partition has its own back-off"
    backoff.reset([a])
    assert backoff.next_delay(a) == 0.5
    assert backoff.next_delay(b) == 1.0
