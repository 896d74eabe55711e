"""Revocation bites at receipt: judged at Kafka's append time, never at the signer's claim.

A thief holding NL's key after it was revoked at T signs reports claiming an
issued-at just before T. The enforcer's own batch processing (no Kafka;
records as the consumer hands them over, stamped as Kafka stamps a
``LogAppendTime`` topic) must refuse everything that reached Kafka at or
after T, accept what reached it before T however late it is processed, and
never believe a producer's timestamp.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from broker.app.assembly import build_stages, provision_keys
from broker.app.auditing import intake_window
from broker.app.settings import Settings
from broker.auditlog.checkpoints import log_id_of
from broker.auditlog.entries import Outcome, decode_entry
from broker.auditor.replay import LoggedEntry, ReplayReport
from broker.auditor.use_cases import replayer_for
from broker.enforcer.stages.rejections import REJECTION_SCHEMA
from broker.errors import RejectedInput
from broker.parties.derivations import PartyAgreements
from broker.parties.recipient import DeliveryVerifier
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRecord, KeyRole, KeyUse
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord
from broker.wire.report import report_to_record
from tests.factories import make_report
from tests.integration.conftest import NL_BE_AGREEMENT
from tests.support.submissions import seal_record

T = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=10)
"""The revocation's effective time: after the keys were made (a few minutes before now).

Set again as each test starts (below): the thief signs with the key before T
arrives, which a T fixed when the module was imported stops being once a
long session reaches this file ten minutes later.
"""
SECOND = dt.timedelta(seconds=1)


@pytest.fixture(autouse=True)
def _revocation_ten_minutes_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    ahead = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=10)
    monkeypatch.setitem(globals(), "T", ahead)


@pytest.fixture
def settings(tmp_path: Path, policies_dir: Path) -> Settings:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = Settings(home=tmp_path / "home", policies_dir=policies_dir)
    provision_keys(settings, ["NL", "BE"])
    return settings


def _nl_signing_key(settings: Settings) -> KeyRecord:
    [key] = [
        k
        for k in RegistryFile(settings.registry_path).current().records()
        if k.role is KeyRole.AGENCY and k.nation == "NL" and k.use is KeyUse.SIGNING
    ]
    return key


def _revoke_nl_at(settings: Settings, at: dt.datetime) -> None:
    registry_file = RegistryFile(settings.registry_path, keystore=Keystore(settings.keystore_dir))
    registry_file.save(registry_file.current().revoking(_nl_signing_key(settings).key_id, at))


def _submission(
    settings: Settings,
    catalog: SchemaCatalog,
    *,
    issued_at: dt.datetime,
    stamped_at: dt.datetime,
    by_kafka: bool = True,
    offset: int = 0,
) -> InboundRecord:
    """A report signed with NL's key, as read from NL's topic with that timestamp."""
    record = report_to_record(make_report("NL", issued_at=issued_at))
    return InboundRecord(
        topic=build_stages(settings).topics.submit("NL"),
        partition=0,
        offset=offset,
        key=b"k",
        value=seal_record(settings, catalog, record, key_nation="NL"),
        headers=(),
        timestamp_ms=int(stamped_at.timestamp() * 1000),
        log_append_time=by_kafka,
    )


def _processed(
    settings: Settings, records: list[InboundRecord], now: dt.datetime
) -> list[OutboundRecord]:
    return list(build_stages(settings).processor(clock=lambda: now).process(records).outputs)


def _reasons(catalog: SchemaCatalog, outputs: list[OutboundRecord]) -> list[str]:
    return [
        catalog.decode(o.value, REJECTION_SCHEMA)["reason"]
        for o in outputs
        if ".rejected." in o.topic
    ]


def _verifier(settings: Settings, catalog: SchemaCatalog) -> DeliveryVerifier:
    """BE's verifier, judging derivations by BE's own copies of the agreements."""
    return DeliveryVerifier(
        catalog,
        "BE",
        agreements=PartyAgreements.from_directory(settings.policies_dir / "agreements"),
        keys=Keystore(settings.keystore_dir),
    )


def _processed_and_replayed(
    settings: Settings, catalog: SchemaCatalog, records: list[InboundRecord], now: dt.datetime
) -> tuple[list[OutboundRecord], ReplayReport]:
    """``records`` processed at ``now``, and the audit replay of the entries that wrote."""
    stages = build_stages(settings)
    processed = stages.processor(clock=lambda: now).process(records)
    log_id = log_id_of(stages.topics.audit, 0)
    entries = [
        LoggedEntry(log_id, i, decode_entry(catalog, o.value))
        for i, o in enumerate(o for o in processed.outputs if o.topic == stages.topics.audit)
    ]
    replayer = replayer_for(
        catalog,
        RegistryFile(settings.registry_path).current(),
        [a.value for a in processed.archives if a.topic == stages.topics.bundles],
        topics=stages.topics,
        window=intake_window(settings),
        keys=Keystore(settings.keystore_dir),
        cached=False,
        registry_archives=[
            a.value for a in processed.archives if a.topic == stages.topics.registry
        ],
    )
    report = replayer.replay(entries, {(r.topic, r.partition, r.offset): r for r in records})
    return list(processed.outputs), report


def _delivered(outputs: list[OutboundRecord]) -> list[OutboundRecord]:
    return [o for o in outputs if o.topic.endswith(".deliver.BE")]


def test_a_report_backdated_before_its_keys_revocation_is_refused_when_it_reached_kafka_after(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    _revoke_nl_at(settings, T)
    thief = _submission(settings, catalog, issued_at=T - 5 * SECOND, stamped_at=T + SECOND)

    outputs = _processed(settings, [thief], now=T + 2 * SECOND)

    assert _reasons(catalog, outputs) == ["key_not_valid_at_receipt"]
    assert _delivered(outputs) == []


def test_a_report_that_reached_kafka_before_the_revocation_is_accepted_however_late_it_is_read(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    honest = _submission(settings, catalog, issued_at=T - 2 * SECOND, stamped_at=T - SECOND)
    _revoke_nl_at(settings, T)

    outputs = _processed(settings, [honest], now=T + dt.timedelta(minutes=15))

    assert _reasons(catalog, outputs) == []
    [delivery] = _delivered(outputs)
    verifier = _verifier(settings, catalog)
    verified = verifier.verify(RegistryFile(settings.registry_path).current(), delivery.value)
    assert verified.received_at == T - SECOND, "the statement says when it was judged"


def test_a_producers_timestamp_is_not_believed_the_enforcers_clock_judges_instead(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    """On a topic Kafka does not stamp, the thief writes the time: it is ignored."""
    _revoke_nl_at(settings, T)
    claimed = _submission(
        settings, catalog, issued_at=T - 5 * SECOND, stamped_at=T - SECOND, by_kafka=False
    )

    outputs = _processed(settings, [claimed], now=T + SECOND)

    assert _reasons(catalog, outputs) == ["key_not_valid_at_receipt"]


def test_a_recipient_refuses_what_the_broker_received_after_a_revocation_published_later(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    """The key was compromised at T, found out later: deliveries received after T stop verifying."""
    delivered = _processed(
        settings,
        [_submission(settings, catalog, issued_at=T - SECOND, stamped_at=T + SECOND)],
        now=T + 2 * SECOND,
    )
    [delivery] = _delivered(delivered)
    verifier = _verifier(settings, catalog)
    verifier.verify(RegistryFile(settings.registry_path).current(), delivery.value)

    _revoke_nl_at(settings, T)  # published now, effective from T

    with pytest.raises(RejectedInput) as refused:
        verifier.verify(RegistryFile(settings.registry_path).current(), delivery.value)
    assert refused.value.reason == "key_not_valid_at_receipt"


def test_an_audit_replay_judges_the_key_at_the_append_time_as_the_enforcer_did(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    early = _submission(settings, catalog, issued_at=T - 2 * SECOND, stamped_at=T - SECOND)
    late = _submission(settings, catalog, issued_at=T - 2 * SECOND, stamped_at=T + SECOND, offset=1)
    _revoke_nl_at(settings, T)
    _, report = _processed_and_replayed(
        settings, catalog, [early, late], now=T + dt.timedelta(minutes=5)
    )

    assert report.ok, report.findings
    outcomes = sorted((r.recorded.outcome, r.recorded.reasons) for r in report.replayed)
    assert outcomes == sorted(
        [
            (str(Outcome.DELIVERED), ()),
            (str(Outcome.REFUSED), ("key_not_valid_at_receipt",)),
        ]
    )


def test_a_recipient_left_without_a_sealing_key_is_withheld_and_the_replay_agrees(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    """Nothing can be sealed to BE once its sealing key is revoked; replay must say so too."""
    registry_file = RegistryFile(settings.registry_path, keystore=Keystore(settings.keystore_dir))
    [be_sealing] = [
        k
        for k in registry_file.current().records()
        if k.role is KeyRole.AGENCY and k.nation == "BE" and k.use is KeyUse.SEALING
    ]
    registry_file.save(registry_file.current().revoking(be_sealing.key_id, T))
    honest = _submission(settings, catalog, issued_at=T, stamped_at=T + SECOND)
    outputs, report = _processed_and_replayed(settings, catalog, [honest], now=T + 2 * SECOND)

    assert _delivered(outputs) == []
    assert [(r.recorded.outcome, r.recorded.reasons) for r in report.replayed] == [
        (str(Outcome.WITHHELD), ("no_sealing_key",))
    ]
    assert report.ok, report.findings
