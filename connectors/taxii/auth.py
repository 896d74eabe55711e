"""Who is asking: the TAXII server's one authentication interface, and its first implementation.

The server asks an :class:`Authenticator` to turn a request's credentials
(the ``Authorization`` header, the TLS peer certificate) into a
:class:`Principal`, and serves that principal only the collections of the
nations it stands for. Today's implementation, :class:`UserFile`, holds one
configured user per nation, with a random secret used as an HTTP Basic
password or a bearer token. When ixb's own identities land (mTLS or SCRAM
principals shared with Kafka), an authenticator mapping the same principal
names plugs in here and nothing else changes.

Secrets are 256-bit random tokens, so the file keeps their SHA-256 (a slow
password hash guards low-entropy secrets, which these are not) and compares
digests in constant time. A secret is shown once, when it is created.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from broker import ConfigurationError

_NATION = re.compile(r"^[A-Z]{2}$")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated party: its name (as Kafka will know it) and the nations it reads for."""

    name: str
    nations: frozenset[str]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request offers: its ``Authorization`` header and its TLS peer certificate."""

    authorization: str | None
    peer_certificate: dict[str, Any] | None = None


class Authenticator(Protocol):
    """Maps credentials to a principal, or ``None`` when they prove nothing."""

    def authenticate(self, credentials: Credentials) -> Principal | None: ...


@dataclass(frozen=True, slots=True)
class _User:
    name: str
    nation: str
    secret_sha256: bytes


class UserFile:
    """One user per nation, from a JSON file written by :func:`add_user`.

    The file maps a user name to ``{"nation": "NL", "secret_sha256": hex}``.
    """

    __slots__ = ("_users",)

    def __init__(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigurationError(
                f"{path}: cannot read TAXII users: {type(exc).__name__}"
            ) from exc
        self._users = {
            name: _User(name, entry["nation"], bytes.fromhex(entry["secret_sha256"]))
            for name, entry in _checked(path, raw).items()
        }

    def nations(self) -> set[str]:
        """The nations some user reads for: the collections worth serving."""
        return {user.nation for user in self._users.values()}

    def authenticate(self, credentials: Credentials) -> Principal | None:
        offered = _offered(credentials.authorization)
        if offered is None:
            return None
        name, secret = offered
        digest = hashlib.sha256(secret.encode()).digest()
        candidates = [self._users[name]] if name is not None and name in self._users else []
        if name is None:  # a bearer token names no user: try each, in constant time each
            candidates = list(self._users.values())
        for user in candidates:
            if hmac.compare_digest(user.secret_sha256, digest):
                return Principal(user.name, frozenset({user.nation}))
        return None


def _offered(authorization: str | None) -> tuple[str | None, str] | None:
    """``(user, secret)`` from Basic, ``(None, token)`` from Bearer, else ``None``."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value:
        return None, value.strip()
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, secret = decoded.partition(":")
        return (user, secret) if sep else None
    return None


def _checked(path: Path, raw: Any) -> dict[str, dict[str, str]]:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: TAXII users must be an object of user names")
    for name, entry in raw.items():
        if not _USERNAME.match(str(name)) or not isinstance(entry, dict):
            raise ConfigurationError(f"{path}: user {name!r} is malformed")
        if not _NATION.match(str(entry.get("nation", ""))):
            raise ConfigurationError(f"{path}: user {name!r} has no ISO 3166-1 nation")
        if not re.fullmatch(r"[0-9a-f]{64}", str(entry.get("secret_sha256", ""))):
            raise ConfigurationError(f"{path}: user {name!r} has no secret digest")
    return raw


def add_user(path: Path, name: str, nation: str) -> str:
    """Create or replace ``name`` reading ``nation``'s feed; returns the new secret, once."""
    if not _USERNAME.match(name) or not _NATION.match(nation):
        raise ConfigurationError("a user name is lower-case [a-z0-9._-]; a nation is ISO alpha-2")
    users: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for other, entry in users.items():
        if entry.get("nation") == nation and other != name:
            raise ConfigurationError(f"{nation} already has the TAXII user {other}")
    secret = secrets.token_urlsafe(32)
    users[name] = {"nation": nation, "secret_sha256": hashlib.sha256(secret.encode()).hexdigest()}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(users, handle, indent=2, sort_keys=True)
    temporary.replace(path)
    return secret
