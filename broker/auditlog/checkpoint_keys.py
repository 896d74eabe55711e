"""The keys a checkpoint is checked against: the registry's broker keys, in both forms.

A checkpoint carries two signatures by the same broker key (ixb's over its
fixed framing, and the C2SP note's Ed25519 signature; see
broker/auditlog/checkpoints.py), so a verifier needs the key both as the
registry vouches for it (:class:`VerifySignature`) and as raw Ed25519 bytes.
Bare notes (a witness's request, a checkpoint an auditor keeps) name no key
id: :func:`broker_note_keys` lists every broker key to try.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from broker.auditlog.log_notes import LogKey
from broker.trust.key_checks import check_key
from broker.trust.records import KeyRecord, KeyRole, KeyUse, PartnerRegistry
from broker.trust.signatures import ed25519_public_key, verify_signature

__all__ = ["VerifySignature", "broker_note_keys", "checkpoint_verifier"]


class VerifySignature(Protocol):
    """The keys checkpoints are checked against (the registry's: :func:`checkpoint_verifier`).

    ``verify(key_id, signature, message, signed_at)`` returns, or raises
    VerificationError; ``signed_at`` is the time the checkpoint states: the
    key must have been valid then (not yet revoked, within its validity), as
    for every other signature the registry vouches for. ``ed25519_key`` is
    the same key's raw Ed25519 public key, under the same checks, for the
    checkpoint's C2SP note.
    """

    def __call__(
        self, key_id: str, signature: bytes, message: bytes, signed_at: dt.datetime
    ) -> None: ...

    def ed25519_key(self, key_id: str, signed_at: dt.datetime) -> bytes: ...


class _RegistryKeys:
    """A broker key of the registry, valid when it signed."""

    __slots__ = ("_registry",)

    def __init__(self, registry: PartnerRegistry) -> None:
        self._registry = registry

    def _key(self, key_id: str, signed_at: dt.datetime) -> KeyRecord:
        # A checkpoint names no algorithm: the key's registered one decides.
        return check_key(self._registry, key_id, role=KeyRole.BROKER, algorithm=None, at=signed_at)

    def __call__(
        self, key_id: str, signature: bytes, message: bytes, signed_at: dt.datetime
    ) -> None:
        verify_signature(self._key(key_id, signed_at), signature, message)

    def ed25519_key(self, key_id: str, signed_at: dt.datetime) -> bytes:
        return ed25519_public_key(self._key(key_id, signed_at))


def checkpoint_verifier(registry: PartnerRegistry) -> VerifySignature:
    """Checks checkpoint signatures against ``registry``: a broker key, valid when it signed."""
    return _RegistryKeys(registry)


def broker_note_keys(registry: PartnerRegistry) -> list[LogKey]:
    """Every broker key of ``registry`` as a note key, for bare C2SP checkpoints.

    A bare note states no time, so validity windows cannot be judged from it;
    whoever holds one (a witness, an auditor) judges freshness otherwise.
    """
    return [
        LogKey(k.key_id, ed25519_public_key(k))
        for k in registry.records()
        if k.role is KeyRole.BROKER and k.use is KeyUse.SIGNING  # its sealing keys sign nothing
    ]
