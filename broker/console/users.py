"""Who may log in to the console, as what, and how a password is checked.

Login is an interface (:class:`Authenticator`), because the identities of
the security issue (mTLS client certificates per party) will replace it:
the console only ever asks "who is this, and in which role", and gets a
:class:`Principal` or nothing. Until then :class:`PasswordFile` answers:
one configured user per nation and role, on loopback only.

The user file is JSON, written and read only with mode 0600 (a file that
anyone else may read or write is refused: it holds password hashes). Each
password is stored as scrypt (RFC 7914, from ``hashlib``) with a fresh
16-byte salt and parameters n=2**14, r=8, p=1, and compared in constant time.
A wrong password and an unknown user take the same work and give the same
answer, so the login form does not tell which names exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from broker.errors import ConfigurationError

__all__ = [
    "Authenticator",
    "PasswordFile",
    "Principal",
    "Role",
    "hash_password",
    "verify_password",
]

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_NATION = re.compile(r"[A-Z]{2}")
_FILE_MODE = 0o600
_MIN_PASSWORD = 12


class Role(StrEnum):
    """What a person does with the console; each role sees one part of it."""

    ANALYST = "analyst"  # one nation's inbound feed
    LIAISON = "liaison"  # the agreements one nation is party to, and its flows
    AUDITOR = "auditor"  # the decision log's evidence, every nation
    OPERATOR = "operator"  # the enforcers' health, no report contents

    @property
    def has_nation(self) -> bool:
        """Analysts and liaison officers act for one nation; auditors and operators for none."""
        return self in (Role.ANALYST, Role.LIAISON)


@dataclass(frozen=True, slots=True)
class Principal:
    """A logged-in person: a name, a role and, for analysts and liaison officers, a nation."""

    name: str
    role: Role
    nation: str | None = None

    def describe(self) -> str:
        return f"{self.name} ({self.role.value}{', ' + self.nation if self.nation else ''})"


class Authenticator(Protocol):
    """Turns what a person presented into a principal, or None: the pluggable part of login."""

    def authenticate(self, name: str, password: str) -> Principal | None: ...


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64) of ``password`` under a fresh salt."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` hashes to ``stored`` (constant-time compare); False if malformed."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = base64.b64decode(parts[4]), base64.b64decode(parts[5])
    except ValueError:
        return False
    if not (2**10 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2**26, dklen=32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    password_hash: str


# Hashing a password nobody has, so that an unknown name costs what a known one does.
_DECOY_HASH = hash_password(secrets.token_urlsafe(16))


class PasswordFile:
    """Users and their scrypt hashes in one JSON file of mode 0600; the interim authenticator."""

    __slots__ = ("_entries", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries = _read(path) if path.exists() else {}

    @property
    def principals(self) -> list[Principal]:
        return [e.principal for e in sorted(self._entries.values(), key=lambda e: e.principal.name)]

    def authenticate(self, name: str, password: str) -> Principal | None:
        entry = self._entries.get(name)
        matches = verify_password(password, entry.password_hash if entry else _DECOY_HASH)
        return entry.principal if entry is not None and matches else None

    def add(self, principal: Principal, password: str) -> None:
        """Add or replace a user (written at once, mode 0600)."""
        _check_principal(principal)
        if len(password) < _MIN_PASSWORD:
            raise ConfigurationError(f"a console password has at least {_MIN_PASSWORD} characters")
        self._entries[principal.name] = _Entry(principal, hash_password(password))
        self._write()

    def remove(self, name: str) -> bool:
        if self._entries.pop(name, None) is None:
            return False
        self._write()
        return True

    def _write(self) -> None:
        document = {
            "users": [
                {
                    "name": e.principal.name,
                    "role": e.principal.role.value,
                    "nation": e.principal.nation,
                    "password": e.password_hash,
                }
                for e in sorted(self._entries.values(), key=lambda e: e.principal.name)
            ]
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
        os.replace(scratch, self.path)


def _read(path: Path) -> dict[str, _Entry]:
    """The users of ``path``; ConfigurationError if others may read it or it is malformed."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"{path} is mode {mode:04o}: the console's user file must be 0600 (chmod 600 {path})"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entries = {}
        for item in document["users"]:
            principal = Principal(
                name=str(item["name"]), role=Role(item["role"]), nation=item.get("nation")
            )
            _check_principal(principal)
            entries[principal.name] = _Entry(principal, str(item["password"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"{path} is not a console user file: {exc}") from exc
    return entries


def _check_principal(principal: Principal) -> None:
    if not _NAME.fullmatch(principal.name):
        raise ConfigurationError(
            f"user name {principal.name!r}: lower-case letters, digits, '.', '_' and '-'"
        )
    if principal.role.has_nation:
        if principal.nation is None or not _NATION.fullmatch(principal.nation):
            raise ConfigurationError(f"a {principal.role.value} acts for a nation (e.g. BE)")
    elif principal.nation is not None:
        raise ConfigurationError(f"an {principal.role.value} acts for no single nation")
