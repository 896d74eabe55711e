"""Audit logs for tests: real Ed25519 checkpoint keys and real, checkpointed logs.

The signer and the verify function are thin real implementations over
cryptography's Ed25519 (the lead plugs the key registry in instead); the
logs are written with :class:`AuditWriter` and checkpointed with
:class:`Checkpointer`, exactly as the enforcer will.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.auditlog.checkpoints import (
    Checkpoint,
    Checkpointer,
    CheckpointSigner,
    VerifySignature,
    encode_checkpoint,
    log_id_of,
)
from broker.auditlog.entries import (
    AUDIT_ENTRY_SCHEMA,
    AuditEvent,
    AuditWriter,
    Outcome,
    SubmissionRef,
)
from broker.errors import VerificationError
from broker.wire.codec import SchemaCatalog

LOG_ID = log_id_of("ixb.audit", 0)
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
NATIONS = ("NL", "BE", "DE", "FR")


class Ed25519CheckpointSigner:
    """A CheckpointSigner over a fresh Ed25519 key."""

    def __init__(self, key_id: str = "broker-audit-1") -> None:
        self.key_id = key_id
        self._private = Ed25519PrivateKey.generate()

    @property
    def public(self) -> Ed25519PublicKey:
        return self._private.public_key()

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def sign_ed25519(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def ed25519_public_key(self) -> bytes:
        return self.public.public_bytes_raw()


class _KnownKeys:
    """Checkpoint keys knowing exactly some signers' public keys, valid at any time."""

    def __init__(self, signers: tuple[Ed25519CheckpointSigner, ...]) -> None:
        self._keys = {s.key_id: s.public for s in signers}

    def _key(self, key_id: str) -> Ed25519PublicKey:
        key = self._keys.get(key_id)
        if key is None:
            raise VerificationError("unknown_key", f"no key {key_id!r}")
        return key

    def __call__(
        self, key_id: str, signature: bytes, message: bytes, signed_at: dt.datetime
    ) -> None:
        try:
            self._key(key_id).verify(signature, message)
        except InvalidSignature:
            raise VerificationError("bad_signature", f"signature by {key_id!r}") from None

    def ed25519_key(self, key_id: str, signed_at: dt.datetime) -> bytes:
        return self._key(key_id).public_bytes_raw()


def verifier(*signers: Ed25519CheckpointSigner) -> VerifySignature:
    """Checkpoint keys knowing exactly these signers' public keys."""
    return _KnownKeys(signers)


class SteppingClock:
    """A clock that moves only when told: the checkpointer's time, under test control."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def event(number: int, at: dt.datetime = START) -> AuditEvent:
    """The number-th of a varied stream of events, cycling through every outcome."""
    origin = NATIONS[number % len(NATIONS)]
    recipient = NATIONS[(number + 1) % len(NATIONS)]
    outcome = list(Outcome)[number % len(Outcome)]
    digest = hashlib.sha256(number.to_bytes(8, "big")).digest()
    if outcome is Outcome.REFUSED:
        return AuditEvent(
            outcome,
            at=at,
            origin=origin,
            submission=SubmissionRef(f"ixb.submit.{origin}", 0, number, digest),
            reasons=("bad_signature",),
        )
    return AuditEvent(
        outcome,
        at=at,
        origin=origin,
        recipient=recipient,
        report_id=f"00000000-0000-4000-8000-{number:012d}",
        submission=None
        if outcome in (Outcome.RELEASED, Outcome.RELEASE_REFUSED)
        else SubmissionRef(f"ixb.submit.{origin}", 0, number, digest),
        delivery_id=None if outcome is Outcome.WITHHELD else digest.hex()[:32],
        delivery_sha256=None if outcome is Outcome.WITHHELD else digest,
        agreement_id=None if outcome is Outcome.WITHHELD else "schengen-frontier-cooperation",
        agreement_version=None if outcome is Outcome.WITHHELD else 2,
        policy_bundle_hash="sha256:" + "ab" * 32,
        reasons=("no_agreement",) if outcome is Outcome.WITHHELD else (),
        withheld_fields=() if outcome is Outcome.WITHHELD else ("subjects[].full_name",),
        derived_fields=() if outcome is Outcome.WITHHELD else ("location",),
    )


@dataclass
class BuiltLog:
    values: list[bytes]  # the record values, offset = position
    checkpoints: list[Checkpoint]
    checkpointer: Checkpointer

    @property
    def records(self) -> list[tuple[int, bytes]]:
        return list(enumerate(self.values))

    def encoded_checkpoints(self, catalog: SchemaCatalog) -> list[bytes]:
        return [encode_checkpoint(catalog, c) for c in self.checkpoints]


def build_log(
    catalog: SchemaCatalog,
    signer: CheckpointSigner,
    entries: int,
    *,
    writers: int = 3,
    every: int = 10,
) -> BuiltLog:
    """``entries`` entries from ``writers`` writers taking turns, a checkpoint every ``every``."""
    clock = SteppingClock()
    chains = [AuditWriter(catalog, f"writer-{w}") for w in range(writers)]
    checkpointer = Checkpointer(LOG_ID, signer, clock, every_entries=every, every_s=3600)
    values, checkpoints = [], []
    for number in range(entries):
        clock.advance(0.25)
        value = chains[number % writers].entry(event(number, clock.now))
        values.append(value)
        checkpoint = checkpointer.append(number, value)
        if checkpoint is not None:
            checkpoints.append(checkpoint)
    return BuiltLog(values, checkpoints, checkpointer)


def edited(
    catalog: SchemaCatalog, value: bytes, change: Callable[[dict[str, object]], None]
) -> bytes:
    """The entry re-encoded after ``change``: valid Avro, other bytes."""
    record = catalog.decode(value, AUDIT_ENTRY_SCHEMA)
    change(record)
    return catalog.encode(AUDIT_ENTRY_SCHEMA, record)
