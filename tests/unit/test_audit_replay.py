"""Audit replay: logged decisions re-run with their archived bundle, and every difference named.

The log, the bundle archives and the submissions are the real enforcer's
outputs (tests/support/replay.py), recorded without Kafka.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from broker.app.assembly import provision_keys
from broker.app.settings import Settings
from broker.auditlog.bundles import BundleArchiver
from broker.auditlog.entries import Outcome
from broker.auditor.replay import ACCEPTED, ReplayFilter
from broker.domain.report import ThreatReport
from broker.errors import ConfigurationError
from broker.policy.archive import decode_archive, load_archived_bundle
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole, KeyUse
from broker.trust.registry_file import RegistryFile
from broker.trust.sealing.keys import Keyring
from broker.wire.codec import SchemaCatalog
from tests.factories import make_report
from tests.support.replay import STRICTER, UNUSED_BOOTSTRAP, Recorder, write_agreement
from tests.support.submissions import reseal_value, tamper_signed_payload

T = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
"""The enforcer's clock: a day ahead, so a replay that judged by the wall clock would refuse."""


def _report(issued_at: dt.datetime = T - dt.timedelta(seconds=10)) -> ThreatReport:
    return make_report("NL", issued_at=issued_at, observed_at=T - dt.timedelta(hours=3))


@pytest.fixture
def recorder(tmp_path: Path, catalog: SchemaCatalog, policies_dir: Path) -> Recorder:
    write_agreement(policies_dir)
    settings = Settings(
        home=tmp_path / "home",
        kafka_bootstrap=UNUSED_BOOTSTRAP,
        policies_dir=policies_dir,
        policy_check_interval_s=3600,  # reloads only when a test says so
    )
    provision_keys(settings, ["NL", "BE", "DE"])
    return Recorder(settings, catalog, now=T)


def _bundle_hash(recorder: Recorder) -> str:
    return recorder.policy.current().bundle.content_hash


async def test_decisions_replayed_with_their_archived_bundle_match_what_was_recorded(
    recorder: Recorder,
) -> None:
    reports = [_report(), _report()]
    await recorder.batch([("NL", recorder.seal(r)) for r in reports])

    result = recorder.replayer().replay(recorder.entries, recorder.submissions)

    assert result.ok, result.findings
    assert sorted((r.recipient, r.replayed.outcome) for r in result.replayed if r.replayed) == [
        ("BE", "delivered"),
        ("BE", "delivered"),
        ("DE", "withheld"),
        ("DE", "withheld"),
    ]
    assert {r.bundle_hash for r in result.replayed} == {_bundle_hash(recorder)}
    assert all(r.replayed == r.recorded for r in result.replayed)
    [received] = {r.received for r in result.replayed if r.recipient == "BE"}
    assert received is not None
    assert received.withheld == ("subjects[].travel_documents[].number",)
    assert ("subjects[].full_name", "pseudonymise") in received.derived
    assert ("location.latitude", "generalise:0.1deg") in received.derived
    assert "summary" in received.visible
    assert "subjects[].full_name" not in received.visible
    text = repr(result)
    assert "Adrian Varga" not in text
    assert "HX1234567" not in text


async def test_a_decision_replayed_with_another_bundle_than_the_one_that_made_it_is_reported(
    recorder: Recorder,
) -> None:
    await recorder.batch([("NL", recorder.seal(_report()))])
    first = _bundle_hash(recorder)
    write_agreement(recorder.settings.policies_dir, version=2, more=STRICTER)
    assert recorder.policy.check()
    await recorder.batch([("NL", recorder.seal(_report()))])
    second = _bundle_hash(recorder)
    [under_v2] = [
        e
        for e in recorder.entries
        if e.entry.event.policy_bundle_hash == second and e.entry.event.recipient == "BE"
    ]
    event = under_v2.entry.event
    misattributed = dataclasses.replace(
        under_v2,
        entry=dataclasses.replace(
            under_v2.entry, event=dataclasses.replace(event, policy_bundle_hash=first)
        ),
    )

    honest = recorder.replayer().replay(recorder.entries, recorder.submissions)
    [replayed] = recorder.replayer().replay([misattributed], recorder.submissions).replayed

    assert honest.ok, honest.findings
    assert first != second
    assert replayed.finding == "differs"
    assert replayed.differences == ("agreement_version", "withheld_fields")
    assert replayed.recorded.agreement_version == 2
    assert replayed.replayed is not None
    assert replayed.replayed.agreement_version == 1
    assert "summary" in replayed.recorded.withheld_fields
    assert "summary" not in replayed.replayed.withheld_fields


async def test_a_decision_whose_bundle_was_never_archived_is_reported(
    recorder: Recorder,
) -> None:
    await recorder.batch([("NL", recorder.seal(_report()))])
    write_agreement(recorder.settings.policies_dir, version=2, more=STRICTER)
    assert recorder.policy.check()
    await recorder.batch([("NL", recorder.seal(_report()))])
    first_archive_only = recorder.archives[:1]

    result = recorder.replayer(first_archive_only).replay(recorder.entries, recorder.submissions)

    assert len(recorder.archives) == 2
    assert [(r.recipient, r.finding) for r in result.replayed] == [
        ("BE", None),
        ("DE", None),
        ("BE", "bundle_not_archived"),
        ("DE", "bundle_not_archived"),
    ]


async def test_a_submission_whose_bytes_do_not_match_the_entrys_digest_is_reported(
    recorder: Recorder,
) -> None:
    await recorder.batch([("NL", recorder.seal(_report())), ("NL", recorder.seal(_report()))])
    [altered, gone] = list(recorder.submissions)
    value = recorder.submissions[altered].value or b""
    assert value is not None
    submissions = dict(recorder.submissions)
    submissions[altered] = dataclasses.replace(
        recorder.submissions[altered], value=value[:-1] + bytes([value[-1] ^ 1])
    )
    del submissions[gone]

    result = recorder.replayer().replay(recorder.entries, submissions)

    by_offset: dict[int, set[str | None]] = {}
    for r in result.replayed:
        entry = recorder.entries[r.offset].entry.event
        assert entry.submission is not None
        by_offset.setdefault(entry.submission.offset, set()).add(r.finding)
    assert by_offset == {0: {"submission_digest_mismatch"}, 1: {"submission_missing"}}
    assert not result.ok


async def test_refusals_replay_to_the_same_reason_and_those_depending_on_history_are_counted(
    recorder: Recorder, catalog: SchemaCatalog
) -> None:
    good = recorder.seal(_report())
    stale = recorder.seal(_report(issued_at=T - dt.timedelta(hours=2)))
    tampered = reseal_value(
        recorder.settings,
        catalog,
        good,
        topic=recorder.topics.submit("NL"),
        change=lambda signed: tamper_signed_payload(catalog, signed),
    )
    await recorder.batch([("NL", good), ("NL", tampered), ("NL", stale)])
    await recorder.batch([("NL", good)])  # the same report again, from another offset

    result = recorder.replayer().replay(recorder.entries, recorder.submissions)

    refused = [r for r in result.replayed if r.recorded.outcome == Outcome.REFUSED]
    assert result.ok, result.findings
    assert sorted(r.recorded.reasons[0] for r in refused) == ["bad_signature", "stale_report"]
    assert all(r.replayed == r.recorded for r in refused)
    assert result.skipped == {"refused:replayed_report": 1}


async def test_a_refusal_of_a_submission_intake_accepts_is_reported(recorder: Recorder) -> None:
    await recorder.batch([("NL", recorder.seal(_report()))])
    delivered = recorder.entries[0]
    event = delivered.entry.event
    forged = dataclasses.replace(
        delivered,
        entry=dataclasses.replace(
            delivered.entry,
            event=dataclasses.replace(
                event, outcome=Outcome.REFUSED, recipient=None, reasons=("bad_signature",)
            ),
        ),
    )

    [replayed] = recorder.replayer().replay([forged], recorder.submissions).replayed

    assert replayed.finding == "differs"
    assert replayed.replayed is not None
    assert replayed.replayed.outcome == ACCEPTED


async def test_only_entries_in_the_window_for_the_origin_and_recipient_asked_are_replayed(
    recorder: Recorder,
) -> None:
    await recorder.batch([("NL", recorder.seal(_report()))])
    recorder.now = T + dt.timedelta(minutes=1)
    await recorder.batch([("NL", recorder.seal(_report()))])
    replayer = recorder.replayer()

    def replayed(admit: ReplayFilter) -> list[tuple[dt.datetime, str | None]]:
        admitted = [e for e in recorder.entries if admit.admits(e.entry.event)]  # as the CLI does
        result = replayer.replay(admitted, recorder.submissions)
        return sorted((r.at, r.recipient) for r in result.replayed)

    later = T + dt.timedelta(minutes=1)
    assert replayed(ReplayFilter(since=later)) == [(later, "BE"), (later, "DE")]
    assert replayed(ReplayFilter(until=later, recipient="BE")) == [(T, "BE")]
    assert replayed(ReplayFilter(origin="BE")) == []


async def test_the_enforcer_archives_each_bundle_with_the_first_batch_decided_under_it(
    recorder: Recorder, catalog: SchemaCatalog
) -> None:
    """Archives travel apart from the outputs: the runner has them acknowledged first."""
    bundles = recorder.topics.bundles

    first = await recorder.batch([("NL", recorder.seal(_report()))])
    again = await recorder.batch([("NL", recorder.seal(_report()))])
    write_agreement(recorder.settings.policies_dir, version=2, more=STRICTER)
    assert recorder.policy.check()
    reloaded = await recorder.batch([("NL", recorder.seal(_report()))])

    # The registry version the batch checks signatures against is archived with it too.
    assert [a.topic for a in first.archives] == [bundles, recorder.topics.registry]
    assert again.archives == ()
    assert [a.topic for a in reloaded.archives] == [bundles]
    assert all(o.topic != bundles for p in (first, again, reloaded) for o in p.outputs)
    hashes = [load_archived_bundle(catalog, a).content_hash for a in recorder.archives]
    assert hashes == [decode_archive(catalog, a).content_hash for a in recorder.archives]
    assert hashes[1] == _bundle_hash(recorder) != hashes[0]
    recorded = {e.entry.event.policy_bundle_hash for e in recorder.entries}
    assert recorded == set(hashes)


def test_a_bundle_without_an_archive_cannot_be_decided_under_by_an_archiving_enforcer() -> None:
    archiver = BundleArchiver("ixb.bundles")

    with pytest.raises(ConfigurationError):
        archiver.records("sha256:" + "00" * 32, None)
    [record] = archiver.records("sha256:" + "11" * 32, b"archive")
    assert archiver.records("sha256:" + "11" * 32, b"archive") == [record], "not yet acknowledged"
    archiver.acknowledged([record])
    assert archiver.records("sha256:" + "11" * 32, b"archive") == []


def _sealing_keys_of(recorder: Recorder, role: KeyRole, nation: str | None) -> Keyring:
    """The private sealing keys of one party, as only that party holds them."""
    keystore = Keystore(recorder.settings.keystore_dir)
    registry = RegistryFile(recorder.settings.registry_path).current()
    keys = [
        keystore.decryption_key(k.key_id)
        for k in registry.records()
        if k.role is role and k.nation == nation and k.use is KeyUse.SEALING
    ]
    return Keyring(k for k in keys if k is not None)


async def test_a_nations_authority_replays_its_own_reports_and_no_other_nations(
    recorder: Recorder,
) -> None:
    from_be = make_report("BE", issued_at=T - dt.timedelta(seconds=10), observed_at=T)
    await recorder.batch(
        [
            ("NL", recorder.seal(_report())),
            ("BE", recorder.seal(from_be)),
            ("NL", recorder.seal(_report())),
        ]
    )
    by_origin = Counter(e.entry.event.origin for e in recorder.entries)

    for nation, other in (("NL", "BE"), ("BE", "NL")):
        keys = _sealing_keys_of(recorder, KeyRole.AUDITOR, nation)
        result = recorder.replayer(keys=keys).replay(recorder.entries, recorder.submissions)
        assert result.ok, result.findings
        assert {r.origin for r in result.replayed} == {nation}
        assert len(result.replayed) == by_origin[nation]
        assert result.skipped == {"sealed_for_another_authority": by_origin[other]}


async def test_the_broker_and_the_oversight_body_hold_no_key_to_replay_reports_with(
    recorder: Recorder,
) -> None:
    """The broker's own sealing key is no authority's; the oversight body has none."""
    await recorder.batch([("NL", recorder.seal(_report()))])

    for keys in (_sealing_keys_of(recorder, KeyRole.BROKER, None), Keyring([])):
        result = recorder.replayer(keys=keys).replay(recorder.entries, recorder.submissions)
        assert result.replayed == ()
        assert result.skipped == {"sealed_for_another_authority": len(recorder.entries)}
