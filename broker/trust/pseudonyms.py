"""Keyed pseudonyms: partners can link reports about the same person or vehicle,
without learning who or what it is.

A pseudonym is HMAC-SHA256 under a secret that belongs to one agreement, over
the field path and the normalised value. The same passport number therefore
gets the same pseudonym in every report shared under that agreement (so a
recipient can link them), a different one under any other agreement (so two
partners cannot join their data through ixb), and nothing about the value can
be recovered without the secret, which never leaves the broker.

Normalisation (Unicode NFKC, case folded, runs of white space collapsed) makes
``"DOE  John"`` and ``"doe john"`` the same pseudonym: they are the same
identifier written twice, not two people.

The secrets are files under ``<IXB_HOME>/secrets/pseudonyms`` readable by the
owner only, created on first use with an exclusive create so that several
enforcer processes sharing the home agree on one secret. A deployment keeps
them in a secret store mounted there; losing one breaks linkability across
the loss, never confidentiality.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from pathlib import Path

from broker.errors import ConfigurationError

SECRET_BYTES = 32
PREFIX = "ps1-"  # versioned, so a future scheme cannot be mistaken for this one
_DIGEST_CHARS = 26  # 130 bits of base32: fits every text field a rule may name
_AGREEMENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
_SPACE = re.compile(r"\s+")


def normalise(value: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", value).casefold()).strip()


class Pseudonymiser:
    """Pseudonyms under one agreement's secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ConfigurationError("a pseudonym secret must be at least 128 bits")
        self._secret = secret

    def pseudonym(self, field: str, value: str) -> str:
        message = b"ixb-pseudonym-v1\x00" + field.encode() + b"\x00" + normalise(value).encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return PREFIX + base64.b32encode(digest).decode().lower()[:_DIGEST_CHARS]


class PseudonymSecrets:
    """One secret per agreement id, stable across versions of the agreement."""

    __slots__ = ("_cache", "_directory")

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._cache: dict[str, Pseudonymiser] = {}

    def for_agreement(self, agreement_id: str) -> Pseudonymiser:
        cached = self._cache.get(agreement_id)
        if cached is None:
            cached = self._cache[agreement_id] = Pseudonymiser(self._secret(agreement_id))
        return cached

    def _secret(self, agreement_id: str) -> bytes:
        if not _AGREEMENT_ID.match(agreement_id):
            raise ConfigurationError(f"not an agreement id: {agreement_id!r}")
        path = self._directory / f"{agreement_id}.key"
        if not path.exists():
            self._create(path)
        secret = path.read_bytes()
        if len(secret) != SECRET_BYTES:
            raise ConfigurationError(f"pseudonym secret {path} is damaged (wrong length)")
        return secret

    def _create(self, path: Path) -> None:
        """Write a fresh secret and link it into place: whole or not at all.

        ``os.link`` fails if the name exists, so when processes race the
        first secret wins and every process reads that one.
        """
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(SECRET_BYTES))
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: use theirs
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
