"""The one registry key check and the one originator check: each refusal, by reason.

Envelopes, attestations, checkpoints and registry documents all ask
:func:`check_key`; the intake and every recipient ask :func:`check_originator`.
Their own tests show each caller refusing; these pin the rule itself.
"""

from __future__ import annotations

import datetime as dt

import pytest

from broker.errors import VerificationError
from broker.trust.key_checks import check_key, check_originator
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.signatures import ED25519, HYBRID, SigningKey

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def record(
    role: KeyRole = KeyRole.AGENCY, nation: str | None = "NL", algorithm: str = ED25519
) -> KeyRecord:
    """A registered key, valid from an hour before NOW on."""
    private = SigningKey.generate(algorithm, prefix=nation or role.value)
    return KeyRecord(
        key_id=private.key_id,
        role=role,
        nation=nation,
        algorithm=private.algorithm,
        public_key=private.public_key_b64(),
        not_before=NOW - HOUR,
    )


def windowed(window: dict[str, dt.datetime]) -> KeyRecord:
    """An NL agency key whose ``not_before``, ``not_after`` or ``revoked_at`` is ``window``'s."""
    return KeyRecord.model_validate(record().model_dump() | window)


def refusal(
    key: KeyRecord,
    *,
    role: KeyRole = KeyRole.AGENCY,
    algorithm: str | None = ED25519,
    at: dt.datetime | None = NOW,
) -> tuple[str, str]:
    """The reason and stage of check_key's refusal of ``key`` for what is asked."""
    with pytest.raises(VerificationError) as refused:
        check_key(PartnerRegistry([key]), key.key_id, role=role, algorithm=algorithm, at=at)
    return refused.value.reason, refused.value.stage


def test_a_registered_key_in_its_role_algorithm_and_window_is_returned() -> None:
    key = record()

    assert (
        check_key(
            PartnerRegistry([key]), key.key_id, role=KeyRole.AGENCY, algorithm=ED25519, at=NOW
        )
        == key
    )


def test_a_key_id_the_registry_does_not_hold_is_refused_as_unknown_key() -> None:
    with pytest.raises(VerificationError) as refused:
        check_key(
            PartnerRegistry([record()]), "NL-unknown", role=KeyRole.AGENCY, algorithm=None, at=NOW
        )

    assert refused.value.reason == "unknown_key"


@pytest.mark.parametrize(
    ("registered", "nation", "asked"),
    [
        (KeyRole.AGENCY, "NL", KeyRole.BROKER),
        (KeyRole.BROKER, None, KeyRole.AGENCY),
        (KeyRole.BROKER, None, KeyRole.GOVERNANCE),
        (KeyRole.GOVERNANCE, None, KeyRole.BROKER),
    ],
)
def test_a_key_registered_for_another_role_is_refused_as_wrong_key_role(
    registered: KeyRole, nation: str | None, asked: KeyRole
) -> None:
    assert refusal(record(registered, nation), role=asked) == ("wrong_key_role", "signature")


@pytest.mark.parametrize(
    ("registered", "claimed"),
    [(ED25519, HYBRID), (HYBRID, ED25519), (ED25519, "rsa")],
)
def test_a_signature_naming_another_algorithm_than_the_key_is_refused_as_algorithm_mismatch(
    registered: str, claimed: str
) -> None:
    key = record(algorithm=registered)

    assert refusal(key, algorithm=claimed) == ("algorithm_mismatch", "signature")


def test_a_format_that_names_no_algorithm_leaves_it_to_the_registered_key() -> None:
    key = record(algorithm=HYBRID)

    assert (
        check_key(PartnerRegistry([key]), key.key_id, role=KeyRole.AGENCY, algorithm=None, at=NOW)
        == key
    )


@pytest.mark.parametrize(
    "window",
    [
        {"not_before": NOW + dt.timedelta(seconds=1)},
        {"not_after": NOW},
        {"not_after": NOW - dt.timedelta(seconds=1)},
        {"revoked_at": NOW},
        {"revoked_at": NOW - HOUR / 2},
    ],
    ids=["not_yet_valid", "expired_at_the_instant", "expired", "revoked_at_the_instant", "revoked"],
)
def test_a_key_outside_its_window_at_the_instant_is_refused_as_key_not_valid(
    window: dict[str, dt.datetime],
) -> None:
    assert refusal(windowed(window)) == ("key_not_valid", "signature")


def test_a_key_revoked_after_the_instant_still_passes() -> None:
    key = windowed({"revoked_at": NOW + dt.timedelta(seconds=1)})

    assert (
        check_key(
            PartnerRegistry([key]), key.key_id, role=KeyRole.AGENCY, algorithm=ED25519, at=NOW
        )
        == key
    )


def test_no_instant_defers_the_window_to_the_caller_but_not_the_role_or_algorithm() -> None:
    revoked = windowed({"revoked_at": NOW - HOUR / 2})

    assert (
        check_key(
            PartnerRegistry([revoked]),
            revoked.key_id,
            role=KeyRole.AGENCY,
            algorithm=ED25519,
            at=None,
        )
        == revoked
    )
    assert refusal(revoked, at=None, role=KeyRole.BROKER)[0] == "wrong_key_role"
    assert refusal(revoked, at=None, algorithm=HYBRID)[0] == "algorithm_mismatch"


def test_the_role_is_judged_before_the_algorithm_and_the_algorithm_before_the_window() -> None:
    key = windowed({"revoked_at": NOW - HOUR / 2})

    assert refusal(key, role=KeyRole.BROKER, algorithm=HYBRID)[0] == "wrong_key_role"
    assert refusal(key, algorithm=HYBRID)[0] == "algorithm_mismatch"


# --- the originator -------------------------------------------------------------------


def test_an_agency_key_vouches_for_its_own_nation_at_a_time_it_was_valid() -> None:
    before = NOW - dt.timedelta(seconds=1)
    check_originator(
        windowed({"revoked_at": NOW}), origin="NL", issued_at=before, received_at=before
    )


def test_a_report_claiming_another_origin_than_its_key_is_refused_as_origin_mismatch() -> None:
    with pytest.raises(VerificationError) as refused:
        check_originator(record(nation="NL"), origin="BE", issued_at=NOW, received_at=NOW)

    assert (refused.value.reason, refused.value.stage) == ("origin_mismatch", "identity")
    assert "BE" not in refused.value.detail  # the claimed origin is not validated yet


@pytest.mark.parametrize("role", [KeyRole.BROKER, KeyRole.GOVERNANCE])
def test_a_key_that_names_no_nation_vouches_for_no_origin(role: KeyRole) -> None:
    with pytest.raises(VerificationError) as refused:
        check_originator(record(role, None), origin="NL", issued_at=NOW, received_at=NOW)

    assert refused.value.reason == "origin_mismatch"
    assert f"a {role.value} key: it speaks for no nation" in refused.value.detail


@pytest.mark.parametrize(
    ("window", "issued_at"),
    [
        ({"revoked_at": NOW}, NOW),
        ({"revoked_at": NOW}, NOW + dt.timedelta(seconds=1)),
        ({"not_before": NOW}, NOW - dt.timedelta(seconds=1)),
        ({"not_after": NOW}, NOW),
    ],
    ids=["revoked_at_issue", "revoked_before_issue", "issued_before_the_key", "expired_at_issue"],
)
def test_a_report_issued_outside_its_keys_window_is_refused_as_key_not_valid_at_issue(
    window: dict[str, dt.datetime], issued_at: dt.datetime
) -> None:
    with pytest.raises(VerificationError) as refused:
        check_originator(windowed(window), origin="NL", issued_at=issued_at, received_at=None)

    assert (refused.value.reason, refused.value.stage) == ("key_not_valid_at_issue", "identity")


def test_a_backdated_report_from_a_revoked_key_is_refused_when_received_after_it() -> None:
    """The thief's backdating: the claimed issued-at is before T, the receipt is not."""
    revoked = windowed({"revoked_at": NOW})
    with pytest.raises(VerificationError) as refused:
        check_originator(
            revoked, origin="NL", issued_at=NOW - dt.timedelta(minutes=5), received_at=NOW
        )

    assert (refused.value.reason, refused.value.stage) == ("key_not_valid_at_receipt", "identity")


def test_a_report_received_before_its_keys_revocation_stays_valid_after_it() -> None:
    revoked = windowed({"revoked_at": NOW})
    just_before = NOW - dt.timedelta(milliseconds=1)
    check_originator(revoked, origin="NL", issued_at=just_before, received_at=just_before)


def test_a_report_must_also_have_been_issued_while_its_key_was_valid() -> None:
    """Received inside the window, but claiming to be signed before the key existed."""
    young = windowed({"not_before": NOW})
    with pytest.raises(VerificationError) as refused:
        check_originator(
            young, origin="NL", issued_at=NOW - HOUR, received_at=NOW + dt.timedelta(seconds=1)
        )

    assert refused.value.reason == "key_not_valid_at_issue"


def test_the_origin_is_judged_before_the_keys_window() -> None:
    with pytest.raises(VerificationError) as refused:
        check_originator(
            windowed({"revoked_at": NOW - HOUR / 2}), origin="BE", issued_at=NOW, received_at=NOW
        )

    assert refused.value.reason == "origin_mismatch"
