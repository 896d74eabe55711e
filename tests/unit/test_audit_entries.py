"""Audit entries: the writer's hash chain, exact round trips, events built from the pipeline."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from broker.app.assembly import build_stages, provision_keys, signer_for
from broker.app.settings import Settings
from broker.auditlog.entries import (
    ZERO_HASH,
    AuditWriter,
    Outcome,
    SubmissionRef,
    decode_entry,
)
from broker.domain.decisions import DecisionInput
from broker.enforcer.stages.audit_events import (
    decision_events,
    refusal_event,
    release_event,
    submission_ref,
)
from broker.enforcer.stages.context import batch_context
from broker.enforcer.stages.fanout import Routed
from broker.enforcer.stages.intake import Accepted
from broker.errors import DecodeError, RejectedInput
from broker.trust.records import KeyRole
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import seal_submission
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames
from tests.factories import make_report
from tests.support.audit import START, event
from tests.support.submissions import seal_signed


def test_a_writers_entries_count_up_from_zero_each_linked_to_the_hash_of_the_last(
    catalog: SchemaCatalog,
) -> None:
    writer = AuditWriter(catalog)
    values = [writer.entry(event(n)) for n in range(5)]

    entries = [decode_entry(catalog, v) for v in values]

    assert [e.writer_seq for e in entries] == [0, 1, 2, 3, 4]
    assert {e.writer for e in entries} == {writer.writer}
    assert entries[0].writer_prev == ZERO_HASH
    for previous, entry in zip(values, entries[1:], strict=False):
        assert entry.writer_prev == hashlib.sha256(previous).digest()
    assert writer.next_seq == 5


def test_every_process_start_draws_a_new_writer_id(catalog: SchemaCatalog) -> None:
    assert AuditWriter(catalog).writer != AuditWriter(catalog).writer


def test_every_kind_of_event_round_trips_exactly(catalog: SchemaCatalog) -> None:
    writer = AuditWriter(catalog, "w")
    for number in range(len(Outcome)):
        original = event(number, START + dt.timedelta(milliseconds=number))

        decoded = decode_entry(catalog, writer.entry(original)).event

        assert decoded == original, original.outcome


def test_the_time_of_an_event_is_kept_to_the_millisecond(catalog: SchemaCatalog) -> None:
    precise = START + dt.timedelta(microseconds=123_999)
    value = AuditWriter(catalog).entry(event(0, precise))

    assert decode_entry(catalog, value).event.at == START + dt.timedelta(milliseconds=123)


def test_bytes_that_are_not_an_entry_are_refused_by_reason(catalog: SchemaCatalog) -> None:
    with pytest.raises(DecodeError) as refused:
        decode_entry(catalog, AuditWriter(catalog).entry(event(0))[:-2])

    assert refused.value.reason == "truncated"


def test_a_refusal_event_names_the_submission_and_reason_but_carries_nothing_of_it() -> None:
    value = b"secret submission bytes"
    inbound = InboundRecord("ixb.submit.NL", 2, 41, b"k", value, (), 0)

    refused = refusal_event(
        inbound, RejectedInput("bad_signature", "x", stage="signature"), "NL", START
    )

    assert refused.outcome is Outcome.REFUSED
    assert refused.reasons == ("bad_signature",)
    assert refused.submission == SubmissionRef(
        "ixb.submit.NL", 2, 41, hashlib.sha256(value).digest()
    )


def test_a_release_event_names_the_held_delivery_and_its_digest(catalog: SchemaCatalog) -> None:
    decision_input = DecisionInput.model_validate_json(
        '{"origin":"NL","recipient":"BE","report_type":"terrorism",'
        '"marking":"TLP:AMBER","handling_code":"H1","now_s":0}'
    )
    held = {
        "delivery_id": "d1",
        "decision_input": decision_input.model_dump_json(),
        "agreement_id": "benelux-joint-patrol",
        "agreement_version": 3,
        "value": b"the attested delivery",
    }

    digest = hashlib.sha256(b"its statement").digest()
    released = release_event(held, decision_input, digest, START, policy_bundle_hash="sha256:b")
    refused = release_event(
        held,
        decision_input,
        digest,
        START,
        policy_bundle_hash="sha256:b",
        refusal_reasons=("no_agreement",),
    )

    assert (released.outcome, released.origin, released.recipient) == (Outcome.RELEASED, "NL", "BE")
    assert released.delivery_sha256 == digest
    assert refused.outcome is Outcome.RELEASE_REFUSED
    assert refused.reasons == ("no_agreement",)


@pytest.mark.parametrize(
    ("report_type", "observed_ago", "expected"),
    [
        ("smuggling", dt.timedelta(hours=3), {Outcome.DELIVERED, Outcome.WITHHELD}),
        ("terrorism", dt.timedelta(seconds=30), {Outcome.HELD, Outcome.WITHHELD}),
    ],
)
def test_fan_out_gives_one_event_per_partner_with_digests_and_field_paths_never_values(
    tmp_path: Path,
    catalog: SchemaCatalog,
    report_type: str,
    observed_ago: dt.timedelta,
    expected: set[Outcome],
) -> None:
    settings = Settings(home=tmp_path)
    provision_keys(settings, ["NL", "BE", "DE", "FR"])
    stages = build_stages(settings)
    now = dt.datetime.now(dt.UTC)
    report = make_report("NL", report_type=report_type, observed_at=now - observed_ago)
    signed = seal_submission(
        catalog,
        ReportLayout.from_catalog(catalog),
        signer_for(settings, catalog, role=KeyRole.AGENCY, nation="NL"),
        report_to_record(report),
    )
    sealed = seal_signed(settings, catalog, signed, topic=TopicNames().submit("NL"))
    inbound = InboundRecord(TopicNames().submit("NL"), 0, 9, b"k", sealed, (), 0)
    context = batch_context(stages.registry, stages.policy, now)
    accepted = stages.intake.check(inbound, context)
    assert isinstance(accepted, Accepted), accepted
    routed = stages.fanout.route(accepted, context)
    assert isinstance(routed, Routed), routed

    events = decision_events(accepted, routed, submission_ref(inbound), START)

    assert {e.outcome for e in events} == expected
    assert [e.recipient for e in events] == [r for r, _ in routed.decisions]
    produced = {hashlib.sha256(p.statement).digest() for p in routed.pending}
    for e, (_, decision) in zip(events, routed.decisions, strict=True):
        assert e.submission == submission_ref(inbound)
        assert e.policy_bundle_hash == stages.policy.current().bundle.content_hash
        if decision.allow:
            assert decision.agreement is not None
            assert e.delivery_sha256 in produced
            assert (e.agreement_id, e.agreement_version) == (
                decision.agreement.id,
                decision.agreement.version,
            )
        else:
            assert e.reasons == decision.reasons
    if report_type == "smuggling":  # the Schengen rules withhold and generalise fields
        delivered = next(e for e in events if e.outcome is Outcome.DELIVERED)
        assert delivered.withheld_fields == ("subjects[].travel_documents[].number",)
        assert "location" in delivered.derived_fields
    text = repr(events)
    for value in ("Adrian Varga", "HX1234567", "HU-ABC-123", "+36 30 555 0101", "Hazeldonk"):
        assert value not in text
