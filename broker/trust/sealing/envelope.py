"""Sealed envelopes: a payload encrypted once, its key sealed to each reader with HPKE.

The record (``schemas/sealed_envelope.avsc``) holds a list of readers, each
a registered sealing key id, its suite and the HPKE (RFC 9180) single-shot
seal of a fresh 32-byte content key; then a nonce and the payload under
AES-256-GCM with that content key. One payload, several readers: a
submission is read by the broker and by its origin's data-protection
authority without being encrypted twice.

What binds it where it belongs (so a sealed delivery cannot be re-targeted
or replayed onto another topic):

* each reader's HPKE ``info`` is ``"ixb-seal-v1" 0x00 topic 0x00 party 0x00
  key_id``: the topic it travels on, the reader's party label
  (broker/trust/sealing/parties.py) and the key id;
* the payload's associated data is ``"ixb-seal-v1" 0x00 topic 0x00`` and,
  for each reader in order, ``key_id 0x00 suite 0x00 SHA-256(sealed_key)``:
  dropping, adding or corrupting any reader's copy breaks it for everyone,
  so a submission whose data-protection authority's copy was damaged on the
  way does not open for the broker either.

The opener rebuilds both from what it knows (the topic it read, its own
party), never from the envelope, so an envelope moved to another topic,
renamed to another key or stripped of a reader fails to open. Sign inside,
seal outside: the payload is already a signed message; a sealed envelope
proves nothing about who wrote it, only who can read it.

Refusals are :class:`~broker.errors.VerificationError` at stage ``unseal``:

==================  =========================================================
reason              the envelope ...
==================  =========================================================
bad_seal            has no reader, too many, one twice, or a sealed key of
                    the wrong length for its suite
not_sealed_to_us    names none of the opener's keys
suite_mismatch      names one of them with another suite than it has
seal_unopenable     does not open: another topic, party or key, or altered
==================  =========================================================

A :class:`ContentKey` may seal several payloads for the same readers and
topic with fresh nonces (one encapsulation per reader for many records);
:class:`Opener` keeps the content keys it unsealed, so such records cost
one HPKE open for the lot.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.errors import DecodeError, VerificationError
from broker.trust.records import KeyRecord
from broker.trust.sealing.keys import (
    ENC_BYTES,
    SEAL_ALGORITHMS,
    X25519,
    XWING,
    DecryptionKeys,
    public_key,
    suite_of,
)
from broker.trust.sealing.parties import label_of
from broker.wire.codec import SchemaCatalog

SEALED_SCHEMA = "ixb.v1.SealedEnvelope"
MAX_READERS: Final = 8
CONTENT_KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_CONTEXT: Final = b"ixb-seal-v1\x00"

# Registry algorithm -> the envelope's Avro enum symbol (no '+' or '-' allowed there).
SUITE_SYMBOLS: Final[dict[str, str]] = {X25519: "x25519", XWING: "mlkem768_x25519"}
_ALGORITHMS: Final[dict[str, str]] = {v: k for k, v in SUITE_SYMBOLS.items()}
_SEALED_KEY_BYTES: Final[dict[str, int]] = {
    algorithm: enc + CONTENT_KEY_BYTES + _TAG_BYTES for algorithm, enc in ENC_BYTES.items()
}


def key_info(topic: str, party: str, key_id: str) -> bytes:
    """HPKE ``info`` for one reader: binds the topic, the reader's party and its key id."""
    return _CONTEXT + topic.encode() + b"\x00" + party.encode() + b"\x00" + key_id.encode()


def payload_aad(topic: str, readers: Sequence[tuple[str, str, bytes]]) -> bytes:
    """The payload's associated data: the topic and every (key id, suite, sealed key), in order."""
    parts = [_CONTEXT, topic.encode(), b"\x00"]
    for key_id, suite, sealed_key in readers:
        parts += [key_id.encode(), b"\x00", suite.encode(), b"\x00"]
        parts.append(hashlib.sha256(sealed_key).digest())
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class SealedKey:
    key_id: str
    suite: str  # the Avro symbol
    sealed_key: bytes


@dataclass(frozen=True, slots=True)
class Sealed:
    """A parsed, not yet opened, sealed envelope."""

    readers: tuple[SealedKey, ...]
    nonce: bytes
    ciphertext: bytes

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(r.key_id for r in self.readers)


class ContentKey:
    """A fresh content key sealed to ``readers`` for ``topic``; seals payloads with it.

    Each :meth:`seal` draws a fresh random nonce, so one content key may seal
    many payloads (far fewer than the 2**32 a random 96-bit nonce allows).
    """

    __slots__ = ("_aad", "_aead", "_readers", "topic")

    def __init__(self, topic: str, readers: Sequence[KeyRecord]) -> None:
        if not 1 <= len(readers) <= MAX_READERS:
            raise ValueError(f"a sealed envelope has 1 to {MAX_READERS} readers")
        content_key = AESGCM.generate_key(bit_length=8 * CONTENT_KEY_BYTES)
        self.topic = topic
        self._aead = AESGCM(content_key)
        self._readers: list[dict[str, Any]] = [
            {
                "key_id": reader.key_id,
                "suite": SUITE_SYMBOLS[reader.algorithm],
                "sealed_key": suite_of(reader.algorithm).encrypt(
                    content_key,
                    public_key(reader.algorithm, reader.public_key),
                    key_info(topic, label_of(reader), reader.key_id),
                ),
            }
            for reader in readers
        ]
        self._aad = payload_aad(
            topic, [(r["key_id"], r["suite"], r["sealed_key"]) for r in self._readers]
        )

    def seal(self, catalog: SchemaCatalog, payload: bytes) -> bytes:
        """The encoded sealed envelope of ``payload``."""
        nonce = os.urandom(NONCE_BYTES)
        return catalog.encode(
            SEALED_SCHEMA,
            {
                "readers": self._readers,
                "nonce": nonce,
                "ciphertext": self._aead.encrypt(nonce, payload, self._aad),
            },
        )


def seal(catalog: SchemaCatalog, payload: bytes, *, topic: str, to: Sequence[KeyRecord]) -> bytes:
    """``payload`` sealed to the keys ``to``, for ``topic``: one record, one content key."""
    return ContentKey(topic, to).seal(catalog, payload)


def read_sealed(catalog: SchemaCatalog, data: bytes) -> Sealed:
    """Parse the envelope only (its one canonical encoding); refuse a malformed reader list."""
    try:
        record = catalog.decode_canonical(data, SEALED_SCHEMA, stage="unseal")
    except DecodeError as exc:
        raise DecodeError(exc.reason, exc.detail, stage="unseal") from exc
    readers = tuple(SealedKey(r["key_id"], r["suite"], r["sealed_key"]) for r in record["readers"])
    if not 1 <= len(readers) <= MAX_READERS:
        raise _refusal("bad_seal", f"sealed to {len(readers)} readers, not 1 to {MAX_READERS}")
    if len({r.key_id for r in readers}) != len(readers):
        raise _refusal("bad_seal", "a reader is named twice")
    for reader in readers:
        if len(reader.sealed_key) != _SEALED_KEY_BYTES[_ALGORITHMS[reader.suite]]:
            raise _refusal("bad_seal", f"the key sealed to {reader.key_id} has the wrong length")
    return Sealed(readers, record["nonce"], record["ciphertext"])


class Opener:
    """Opens envelopes sealed to one party's keys; built once, used for a whole stream.

    ``keys`` finds the party's private keys by id (a keystore, a keyring).
    Content keys already unsealed are kept (up to ``capacity``), keyed by
    everything their HPKE open was bound to, so a repeat is only a shortcut
    for an identical open.
    """

    __slots__ = ("_capacity", "_content_keys", "_keys", "party")

    def __init__(self, keys: DecryptionKeys, party: str, *, capacity: int = 1024) -> None:
        self._keys = keys
        self.party = party
        self._capacity = capacity
        self._content_keys: OrderedDict[tuple[str, str, bytes], AESGCM] = OrderedDict()

    def open(self, sealed: Sealed, *, topic: str) -> bytes:
        """The payload of ``sealed`` as read from ``topic``; VerificationError if not."""
        aead = self._content_key(sealed, topic)
        aad = payload_aad(topic, [(r.key_id, r.suite, r.sealed_key) for r in sealed.readers])
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext, aad)
        except InvalidTag:
            raise _unopenable() from None

    def _content_key(self, sealed: Sealed, topic: str) -> AESGCM:
        """The content key unsealed by the first reader key held here that opens for this party.

        Every held key is tried (one keystore may hold several parties' keys,
        as a test's or the demo's does): a key of another party fails, since
        its party is bound into what was sealed to it.
        """
        refusals: list[VerificationError] = []
        for reader in sealed.readers:
            private = self._keys.decryption_key(reader.key_id)
            if private is None:
                continue
            if SUITE_SYMBOLS[private.algorithm] != reader.suite:
                refusals.append(
                    _refusal("suite_mismatch", f"{reader.key_id} is {private.algorithm}")
                )
                continue
            cache_key = (topic, reader.key_id, reader.sealed_key)
            known = self._content_keys.get(cache_key)
            if known is not None:
                self._content_keys.move_to_end(cache_key)
                return known
            try:
                content_key = private.open(
                    reader.sealed_key, key_info(topic, self.party, reader.key_id)
                )
            except InvalidTag:
                refusals.append(_unopenable())
                continue
            aead = AESGCM(content_key)  # 32 bytes: read_sealed checked the sealed length
            self._content_keys[cache_key] = aead
            if len(self._content_keys) > self._capacity:
                self._content_keys.popitem(last=False)
            return aead
        if refusals:
            raise refusals[0]
        raise _refusal("not_sealed_to_us", f"sealed to none of {self.party}'s keys")


def _refusal(reason: str, detail: str) -> VerificationError:
    return VerificationError(reason, detail, stage="unseal")


def _unopenable() -> VerificationError:
    return _refusal(
        "seal_unopenable", "does not open: sealed for another topic, party or key, or altered"
    )


assert set(SUITE_SYMBOLS) == set(SEAL_ALGORITHMS), "every sealing algorithm has a symbol"
