"""The checks every verifier makes of a signing key, each written once.

Envelopes, batch attestations, decision-log checkpoints and registry
documents are all signed by keys the partner registry vouches for, and each
verifier asks the registry the same five questions before it checks a
signature (:func:`check_key`), in this order:

=================  ===========================================================
reason             the key ...
=================  ===========================================================
unknown_key        is not in the registry
wrong_key_role     is registered for another role (agency, broker, governance)
wrong_key_use      is a sealing key, which signs nothing
algorithm_mismatch is registered with another algorithm than the signature names
key_not_valid      is not yet valid, expired or revoked at the instant asked
=================  ===========================================================

A report adds one more question, asked by the broker at intake and by every
recipient (:func:`check_originator`): does the key that signed it speak for
the nation the report claims as its origin, and was it valid when the report
reached the broker, a time the signer cannot choose, and at the time the
report says it was issued? Both checks are pure and raise
:class:`~broker.errors.VerificationError`; the detail names key ids and
roles, never a claimed value.

Why the time of receipt: a key revoked at T vouches for what it signed
before T, but when it signed is only the signer's own claim. A thief with
the key could claim an issued-at just before T for as long as the freshness
window lets the intake believe it. The time the record was appended to its
submission topic, which Kafka stamps (``LogAppendTime``, broker/wire/topics.py),
is no claim of the signer's: nothing that reached Kafka at or after T is
accepted from a key revoked at T. Where Kafka did not stamp the record (a
topic made otherwise, a broker that ignores the setting) the intake uses its
own clock when it reads the record, which is later still, so stricter. The
broker puts the time it judged by in every delivery statement
(``received_at``), and recipients judge at it too: a revocation published
later with an earlier effective time makes them refuse what the broker
received from then on.
"""

from __future__ import annotations

import datetime as dt

from broker.errors import VerificationError
from broker.trust.records import KeyRecord, KeyRole, KeyUse, PartnerRegistry


def check_key(
    registry: PartnerRegistry,
    key_id: str,
    *,
    role: KeyRole,
    algorithm: str | None,
    at: dt.datetime | None,
) -> KeyRecord:
    """The registered key ``key_id``, if the registry vouches for it in this use; else refuse.

    ``algorithm`` is the registry's name of the algorithm the signed object
    says it was signed with; None where its format names none (a checkpoint,
    a registry signature), and the key's registered algorithm alone decides.
    ``at`` is the instant the signature is relied on; None only where the
    caller judges validity itself at a time found inside the signed payload
    (a report's issued-at, :func:`check_originator`). Both are required, so
    every verifier says what it leaves out.
    """
    key = registry.key(key_id)
    if key.role is not role:
        raise VerificationError(
            "wrong_key_role", f"key {key.key_id} is a {key.role.value} key, not {role.value}"
        )
    if key.use is not KeyUse.SIGNING:
        raise VerificationError("wrong_key_use", f"key {key.key_id} is a sealing key")
    if algorithm is not None and algorithm != key.algorithm:
        raise VerificationError("algorithm_mismatch", f"key {key.key_id} is {key.algorithm}")
    if at is not None and not key.valid_at(at):
        raise VerificationError(
            "key_not_valid",
            f"key {key.key_id} is revoked or outside its validity at {at.isoformat()}",
        )
    return key


def check_originator(
    key: KeyRecord, *, origin: str, issued_at: dt.datetime, received_at: dt.datetime | None
) -> None:
    """Refuse unless ``key`` speaks for ``origin`` and was valid at receipt and at issue.

    ``origin`` and ``issued_at`` come from the signed header, verified but
    not yet validated, so a refusal does not repeat the claimed origin. Only
    an agency key names a nation, so no broker or governance key passes.
    ``received_at`` is when the report reached the broker (see the module
    docstring); None only for a statement that does not say, which is then
    judged at its issued-at alone.
    """
    if key.nation is None:
        raise VerificationError(
            "origin_mismatch",
            f"key {key.key_id} is a {key.role.value} key: it speaks for no nation",
            stage="identity",
        )
    if origin != key.nation:
        raise VerificationError(
            "origin_mismatch",
            f"report claims another origin than {key.nation}, whose key signed it",
            stage="identity",
        )
    if received_at is not None and not key.valid_at(received_at):
        raise VerificationError(
            "key_not_valid_at_receipt",
            f"key {key.key_id} was revoked or outside its window when the broker received it",
            stage="identity",
        )
    if not key.valid_at(issued_at):
        raise VerificationError(
            "key_not_valid_at_issue",
            f"key {key.key_id} was not valid (revoked or outside its window) at issued_at",
            stage="identity",
        )
