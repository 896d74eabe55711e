"""The signature algorithms a registry key may use: Ed25519, or Ed25519 + ML-DSA-65.

The algorithm is chosen per key in the partner registry. The hybrid is for
partners who want their reports to stay unforgeable should Ed25519 fall to a
quantum computer, without betting everything on a young post-quantum scheme:
a hybrid signature is the Ed25519 signature followed by the ML-DSA-65
(FIPS 204) signature of the same message, and it verifies only if BOTH do,
so forging it means breaking both. Its public key is likewise the raw
Ed25519 key followed by the raw ML-DSA-65 key.

Lengths are checked before any cryptography runs. What a message means
(domain separation) is the caller's job: envelopes and the registry each
prefix their own context, and both bind the key id, so the Ed25519 half of a
hybrid signature cannot pass for a signature by some Ed25519-only key.

Private keys are stored as PKCS#8 PEM, the form cryptography writes for both
algorithms (for ML-DSA, the 32-byte seed the key is derived from); a hybrid
key's file holds two PEM blocks, Ed25519 first.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey

from broker.errors import ConfigurationError, VerificationError

if TYPE_CHECKING:
    from broker.trust.records import KeyRecord

Algorithm = Literal["ed25519", "ed25519+ml-dsa-65"]
ED25519: Final = "ed25519"
HYBRID: Final = "ed25519+ml-dsa-65"
ALGORITHMS: Final[tuple[Algorithm, ...]] = (ED25519, HYBRID)

ED25519_PUBLIC_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64
MLDSA65_PUBLIC_BYTES: Final = 1952
MLDSA65_SIGNATURE_BYTES: Final = 3309

PUBLIC_KEY_BYTES: Final[dict[str, int]] = {
    ED25519: ED25519_PUBLIC_BYTES,
    HYBRID: ED25519_PUBLIC_BYTES + MLDSA65_PUBLIC_BYTES,
}
SIGNATURE_BYTES: Final[dict[str, int]] = {
    ED25519: ED25519_SIGNATURE_BYTES,
    HYBRID: ED25519_SIGNATURE_BYTES + MLDSA65_SIGNATURE_BYTES,
}

_PEM_END = b"-----END PRIVATE KEY-----"


def algorithm_named(name: str) -> Algorithm:
    """``name`` as an algorithm, or a ConfigurationError listing the ones there are."""
    if name not in ALGORITHMS:
        raise ConfigurationError(
            f"unknown signature algorithm {name!r}: use {' or '.join(ALGORITHMS)}"
        )
    return name


def public_key_problem(algorithm: str, public_key_b64: str) -> str | None:
    """Why ``public_key_b64`` cannot be a public key of ``algorithm``, or None if it can."""
    expected = PUBLIC_KEY_BYTES.get(algorithm)
    if expected is None:
        return f"unknown algorithm {algorithm!r}"
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
    except binascii.Error:
        return "the public key is not base64"
    if len(raw) != expected:
        return f"a {algorithm} public key has {expected} bytes, not {len(raw)}"
    return None


def fingerprint(public_key_b64: str) -> str:
    """The first 12 hex digits of the public key's SHA-256, what key ids are made of."""
    return hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key and the id it is registered under; ``repr`` shows no key material."""

    key_id: str
    algorithm: Algorithm
    _ed25519: Ed25519PrivateKey = field(repr=False, compare=False)
    _mldsa65: MLDSA65PrivateKey | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.algorithm == HYBRID) != (self._mldsa65 is not None):
            raise ConfigurationError(f"a {self.algorithm} key needs exactly its own key parts")

    @classmethod
    def generate(cls, algorithm: str, *, prefix: str) -> SigningKey:
        """A fresh key whose id is ``prefix`` and a fingerprint of its public key."""
        chosen = algorithm_named(algorithm)
        ed25519 = Ed25519PrivateKey.generate()
        mldsa65 = MLDSA65PrivateKey.generate() if chosen == HYBRID else None
        public = _public_b64(ed25519, mldsa65)
        return cls(f"{prefix}-{fingerprint(public)}", chosen, ed25519, mldsa65)

    def sign(self, message: bytes) -> bytes:
        signature = self._ed25519.sign(message)
        if self._mldsa65 is not None:
            signature += self._mldsa65.sign(message)
        return signature

    def public_key_b64(self) -> str:
        """The public key as the registry stores it."""
        return _public_b64(self._ed25519, self._mldsa65)

    def sign_ed25519(self, message: bytes) -> bytes:
        """The Ed25519 signature alone, for formats that carry nothing else (C2SP notes).

        Those formats are domain-separated from ixb's own signed inputs: a
        note text holds no NUL byte, every ixb context string ends in one.
        """
        return self._ed25519.sign(message)

    def ed25519_public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key (of a hybrid key, its Ed25519 half)."""
        return self._ed25519.public_key().public_bytes_raw()

    def with_key_id(self, key_id: str) -> SigningKey:
        return SigningKey(key_id, self.algorithm, self._ed25519, self._mldsa65)

    def to_pem(self) -> bytes:
        """The private key file's contents: one PKCS#8 PEM block per part."""
        parts: list[Ed25519PrivateKey | MLDSA65PrivateKey] = [self._ed25519]
        if self._mldsa65 is not None:
            parts.append(self._mldsa65)
        return b"".join(
            part.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            for part in parts
        )

    @classmethod
    def from_pem(cls, key_id: str, data: bytes) -> SigningKey:
        """Read what :meth:`to_pem` wrote; the parts present decide the algorithm."""
        blocks = [block + _PEM_END for block in data.split(_PEM_END) if block.strip()]
        try:
            parts = [serialization.load_pem_private_key(block, password=None) for block in blocks]
        except ValueError as exc:
            raise ConfigurationError(f"private key {key_id} is not readable PKCS#8 PEM") from exc
        match parts:
            case [Ed25519PrivateKey() as ed25519]:
                return cls(key_id, ED25519, ed25519)
            case [Ed25519PrivateKey() as ed25519, MLDSA65PrivateKey() as mldsa65]:
                return cls(key_id, HYBRID, ed25519, mldsa65)
        raise ConfigurationError(
            f"private key {key_id} is neither Ed25519 nor Ed25519 followed by ML-DSA-65"
        )


def verify_signature(record: KeyRecord, signature: bytes, message: bytes) -> None:
    """Return if ``signature`` is ``record``'s key's over ``message``; raise otherwise.

    For a hybrid key both halves must verify. Every refusal is a
    VerificationError; none says which half failed, or anything about the bytes.
    """
    expected = SIGNATURE_BYTES.get(record.algorithm)
    if expected is None:
        raise VerificationError(
            "algorithm_mismatch", f"key {record.key_id} names an unsupported algorithm"
        )
    if len(signature) != expected:
        raise VerificationError("bad_signature", "signature has the wrong length")
    ed25519, mldsa65 = _public_keys(record.algorithm, record.public_key)
    try:
        ed25519.verify(signature[:ED25519_SIGNATURE_BYTES], message)
        if mldsa65 is not None:
            mldsa65.verify(signature[ED25519_SIGNATURE_BYTES:], message)
    except InvalidSignature:
        raise VerificationError(
            "bad_signature", f"signature by {record.key_id} does not match the message"
        ) from None


@functools.lru_cache(maxsize=4096)
def _public_keys(
    algorithm: str, public_key_b64: str
) -> tuple[Ed25519PublicKey, MLDSA65PublicKey | None]:
    """The parsed public key(s), cached: the hot path verifies with few keys, many times."""
    problem = public_key_problem(algorithm, public_key_b64)
    if problem is not None:
        raise VerificationError("bad_public_key", problem)
    raw = base64.b64decode(public_key_b64)
    try:
        ed25519 = Ed25519PublicKey.from_public_bytes(raw[:ED25519_PUBLIC_BYTES])
        mldsa65 = (
            MLDSA65PublicKey.from_public_bytes(raw[ED25519_PUBLIC_BYTES:])
            if algorithm == HYBRID
            else None
        )
    except ValueError:
        raise VerificationError("bad_public_key", "the public key does not parse") from None
    return ed25519, mldsa65


def ed25519_public_key(record: KeyRecord) -> bytes:
    """The raw Ed25519 public key of a registered key (a hybrid key's first 32 bytes).

    For formats that carry an Ed25519 signature only (C2SP notes); the
    registry validated the key's encoding when it was loaded.
    """
    return base64.b64decode(record.public_key)[:ED25519_PUBLIC_BYTES]


def _public_b64(ed25519: Ed25519PrivateKey, mldsa65: MLDSA65PrivateKey | None) -> str:
    raw = ed25519.public_key().public_bytes_raw()
    if mldsa65 is not None:
        raw += mldsa65.public_key().public_bytes_raw()
    return base64.b64encode(raw).decode()
