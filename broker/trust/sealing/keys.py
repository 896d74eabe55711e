"""The sealing algorithms a registry key may use, and the private keys that open what they seal.

A sealing key is an HPKE (RFC 9180) recipient key, chosen per partner in the
registry beside its signing keys:

=====================  ==========================================================
algorithm              HPKE suite
=====================  ==========================================================
``x25519``             DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM
``ml-kem-768+x25519``  ML-KEM-768 + X25519 hybrid KEM (X-Wing), HKDF-SHA256,
                       AES-256-GCM
=====================  ==========================================================

The hybrid is for reports whose secrecy must outlive today's cryptography: a
recording of the ciphertext stays closed unless both ML-KEM-768 (FIPS 203)
and X25519 fall. Its public key is stored as X-Wing encodes it, the 1184
bytes of ML-KEM-768 followed by the 32 of X25519; its private key file holds
the two PKCS#8 PEM blocks in the same order (cryptography writes ML-KEM's as
its 64-byte seed).

Nothing here says what a key is for or whose it is: that is the registry's
(broker/trust/records.py), and what is sealed how is
``broker.trust.sealing.envelope``'s.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from broker.errors import ConfigurationError, VerificationError
from broker.trust.signatures import fingerprint

SealAlgorithm = Literal["x25519", "ml-kem-768+x25519"]
X25519: Final = "x25519"
XWING: Final = "ml-kem-768+x25519"
SEAL_ALGORITHMS: Final[tuple[SealAlgorithm, ...]] = (X25519, XWING)

X25519_PUBLIC_BYTES: Final = 32
MLKEM768_PUBLIC_BYTES: Final = 1184
SEAL_PUBLIC_KEY_BYTES: Final[dict[str, int]] = {
    X25519: X25519_PUBLIC_BYTES,
    XWING: MLKEM768_PUBLIC_BYTES + X25519_PUBLIC_BYTES,
}

_SUITES_KEMS: Final[dict[str, hpke.KEM]] = {
    X25519: hpke.KEM.X25519,
    XWING: hpke.KEM.MLKEM768_X25519,
}
_SUITES: Final[dict[str, hpke.Suite]] = {
    algorithm: hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    for algorithm, kem in _SUITES_KEMS.items()
}
# The KEM's encapsulation at the head of every HPKE single-shot output.
ENC_BYTES: Final[dict[str, int]] = {a: _SUITES_KEMS[a].enc_length() for a in SEAL_ALGORITHMS}
_PEM_END = b"-----END PRIVATE KEY-----"

PublicKey = X25519PublicKey | hpke.MLKEM768X25519PublicKey
PrivateKey = X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


def seal_algorithm_named(name: str) -> SealAlgorithm:
    """``name`` as a sealing algorithm, or a ConfigurationError listing the ones there are."""
    if name not in SEAL_ALGORITHMS:
        raise ConfigurationError(
            f"unknown sealing algorithm {name!r}: use {' or '.join(SEAL_ALGORITHMS)}"
        )
    return name


def suite_of(algorithm: str) -> hpke.Suite:
    """The HPKE suite of a sealing algorithm (the table in the module docstring)."""
    try:
        return _SUITES[algorithm]
    except KeyError:
        raise VerificationError(
            "unknown_suite", f"no sealing suite {algorithm!r}", stage="unseal"
        ) from None


def seal_public_key_problem(algorithm: str, public_key_b64: str) -> str | None:
    """Why ``public_key_b64`` cannot be a sealing key of ``algorithm``, or None if it can."""
    expected = SEAL_PUBLIC_KEY_BYTES.get(algorithm)
    if expected is None:
        return f"unknown algorithm {algorithm!r}"
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
    except binascii.Error:
        return "the public key is not base64"
    if len(raw) != expected:
        return f"a {algorithm} public key has {expected} bytes, not {len(raw)}"
    return None


@functools.lru_cache(maxsize=4096)
def public_key(algorithm: str, public_key_b64: str) -> PublicKey:
    """The parsed public key, cached: senders seal to few keys, many times."""
    problem = seal_public_key_problem(algorithm, public_key_b64)
    if problem is not None:
        raise ConfigurationError(f"a registered sealing key is unusable: {problem}")
    raw = base64.b64decode(public_key_b64)
    try:
        if algorithm == X25519:
            return X25519PublicKey.from_public_bytes(raw)
        return hpke.MLKEM768X25519PublicKey(
            MLKEM768PublicKey.from_public_bytes(raw[:MLKEM768_PUBLIC_BYTES]),
            X25519PublicKey.from_public_bytes(raw[MLKEM768_PUBLIC_BYTES:]),
        )
    except ValueError:
        raise ConfigurationError("a registered sealing key does not parse") from None


@dataclass(frozen=True, slots=True)
class DecryptionKey:
    """A private sealing key and the id it is registered under; ``repr`` shows no key material."""

    key_id: str
    algorithm: SealAlgorithm
    _x25519: X25519PrivateKey = field(repr=False, compare=False)
    _mlkem768: MLKEM768PrivateKey | None = field(default=None, repr=False, compare=False)
    _hpke: PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.algorithm == XWING) != (self._mlkem768 is not None):
            raise ConfigurationError(f"a {self.algorithm} key needs exactly its own key parts")
        private: PrivateKey = (
            self._x25519
            if self._mlkem768 is None
            else hpke.MLKEM768X25519PrivateKey(self._mlkem768, self._x25519)
        )
        object.__setattr__(self, "_hpke", private)

    @classmethod
    def generate(cls, algorithm: str, *, prefix: str) -> DecryptionKey:
        """A fresh key whose id is ``prefix`` and a fingerprint of its public key."""
        chosen = seal_algorithm_named(algorithm)
        x25519 = X25519PrivateKey.generate()
        mlkem768 = MLKEM768PrivateKey.generate() if chosen == XWING else None
        public = _public_b64(x25519, mlkem768)
        return cls(f"{prefix}-{fingerprint(public)}", chosen, x25519, mlkem768)

    def public_key_b64(self) -> str:
        """The public key as the registry stores it."""
        return _public_b64(self._x25519, self._mlkem768)

    def open(self, sealed: bytes, info: bytes) -> bytes:
        """HPKE single-shot open; InvalidTag (cryptography's) when it was not sealed so."""
        return suite_of(self.algorithm).decrypt(sealed, self._hpke, info)

    def to_pem(self) -> bytes:
        """The private key file's contents: one PKCS#8 PEM block per part, ML-KEM first."""
        parts: list[MLKEM768PrivateKey | X25519PrivateKey] = [self._x25519]
        if self._mlkem768 is not None:
            parts.insert(0, self._mlkem768)
        return b"".join(
            part.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            for part in parts
        )

    @classmethod
    def from_pem(cls, key_id: str, data: bytes) -> DecryptionKey:
        """Read what :meth:`to_pem` wrote; the parts present decide the algorithm."""
        blocks = [block + _PEM_END for block in data.split(_PEM_END) if block.strip()]
        try:
            parts = [serialization.load_pem_private_key(block, password=None) for block in blocks]
        except ValueError as exc:
            raise ConfigurationError(f"private key {key_id} is not readable PKCS#8 PEM") from exc
        match parts:
            case [X25519PrivateKey() as x25519]:
                return cls(key_id, X25519, x25519)
            case [MLKEM768PrivateKey() as mlkem768, X25519PrivateKey() as x25519]:
                return cls(key_id, XWING, x25519, mlkem768)
        raise ConfigurationError(
            f"private key {key_id} is neither X25519 nor ML-KEM-768 followed by X25519"
        )


class DecryptionKeys(Protocol):
    """Where an opener finds its private sealing keys by id (a keystore, or a keyring)."""

    def decryption_key(self, key_id: str) -> DecryptionKey | None:
        """The private key registered as ``key_id``, or None if not held here."""
        ...


class Keyring:
    """Private sealing keys held in memory, e.g. a recipient's, handed over by its own code."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[DecryptionKey]) -> None:
        self._keys = {k.key_id: k for k in keys}

    def __len__(self) -> int:
        return len(self._keys)

    def decryption_key(self, key_id: str) -> DecryptionKey | None:
        return self._keys.get(key_id)


def _public_b64(x25519: X25519PrivateKey, mlkem768: MLKEM768PrivateKey | None) -> str:
    raw = x25519.public_key().public_bytes_raw()
    if mlkem768 is not None:
        raw = mlkem768.public_key().public_bytes_raw() + raw
    return base64.b64encode(raw).decode()
