"""Signed envelopes: sign exact bytes, verify before anything inside is parsed.

The envelope (``schemas/signed_envelope.avsc``) carries a single-object
encoded payload, the signer's key id, the algorithm and the signature: Ed25519,
or the Ed25519 + ML-DSA-65 hybrid (``broker.trust.signatures``), whichever
the key is registered with. The signed input is domain-separated and binds
the key id, so a signature made for one purpose or by one key cannot be
presented as another's::

    "ixb-envelope-v1" 0x00 key_id 0x00 payload

Revocation has an effective time T. When a report was signed is only its
signer's claim (the issued-at inside the signed payload), and a thief holding
a revoked key can claim any time before T; so a report is judged at a time
the signer cannot choose: when it reached the broker, which Kafka stamps on
the submission topics (``LogAppendTime``). Nothing that reached Kafka at or
after T is accepted from a key revoked at T, whatever issued-at it claims;
what reached it before T stays valid however late it is read.
``verify_envelope`` checks the key at ``at`` (the caller's clock, or None to
defer); the intake defers, and once the payload is verified and decoded
checks the key both at the time of receipt and at the report's issued-at
(:func:`broker.trust.key_checks.check_originator`); recipients make the same
check at the receipt time the broker states in each delivery.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from broker.trust.key_checks import check_key
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.signatures import ED25519, HYBRID, SigningKey, verify_signature
from broker.wire.codec import SchemaCatalog

ENVELOPE_SCHEMA = "ixb.v1.SignedEnvelope"
_CONTEXT = b"ixb-envelope-v1\x00"

# Registry algorithm name -> the envelope's Avro enum symbol (no '+' or '-' allowed there).
ENVELOPE_ALGORITHMS: Final[dict[str, str]] = {ED25519: "ed25519", HYBRID: "ed25519_mldsa65"}
_REGISTRY_ALGORITHMS: Final[dict[str, str]] = {v: k for k, v in ENVELOPE_ALGORITHMS.items()}


def signing_input(key_id: str, payload: bytes) -> bytes:
    return _CONTEXT + key_id.encode() + b"\x00" + payload


@dataclass(frozen=True, slots=True)
class Envelope:
    signer_key_id: str
    algorithm: str
    payload: bytes
    signature: bytes


class Signer:
    """Signs payloads with one private key; configuration in, envelopes out."""

    __slots__ = ("_algorithm", "_catalog", "_signing_key", "key_id")

    def __init__(self, key_id: str, signing_key: SigningKey, catalog: SchemaCatalog) -> None:
        self.key_id = key_id
        self._signing_key = signing_key
        self._algorithm = ENVELOPE_ALGORITHMS[signing_key.algorithm]
        self._catalog = catalog

    def seal(self, payload: bytes) -> bytes:
        """The encoded envelope carrying ``payload`` and this key's signature over it."""
        signature = self._signing_key.sign(signing_input(self.key_id, payload))
        return self._catalog.encode(
            ENVELOPE_SCHEMA,
            {
                "signer_key_id": self.key_id,
                "algorithm": self._algorithm,
                "payload": payload,
                "signature": signature,
            },
        )


def open_envelope(catalog: SchemaCatalog, data: bytes) -> Envelope:
    """Parse the envelope only (never the payload); refuse anything malformed."""
    record = catalog.decode_canonical(data, ENVELOPE_SCHEMA, stage="envelope")
    return Envelope(
        signer_key_id=record["signer_key_id"],
        algorithm=record["algorithm"],
        payload=record["payload"],
        signature=record["signature"],
    )


def verify_envelope(
    envelope: Envelope, registry: PartnerRegistry, *, role: KeyRole, at: dt.datetime | None
) -> KeyRecord:
    """Check the signature over the exact payload bytes; return the signing key.

    ``at`` is when the signature is being relied on; a key outside its
    validity window or revoked by then is refused. ``None`` leaves the
    validity to the caller, who judges it once it knows the times that
    matter (the intake: when Kafka received the report, and the report's
    issued-at; see the module docstring).
    """
    # A symbol that names no registry algorithm is passed on as it is: it matches no key.
    algorithm = _REGISTRY_ALGORITHMS.get(envelope.algorithm, envelope.algorithm)
    key = check_key(registry, envelope.signer_key_id, role=role, algorithm=algorithm, at=at)
    verify_signature(key, envelope.signature, signing_input(key.key_id, envelope.payload))
    return key
