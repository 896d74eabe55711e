"""The partner registry (public keys) and the keystore (private keys).

The registry is what every party shares: for each key, whose it is (a
nation's agency, or the broker), its role, and when it may be used. It is a
JSON file written atomically; readers reload it when it changes, so a key
generated while the enforcer runs is picked up at the next batch.

The keystore holds private keys as PKCS#8 PEM files, one per key, readable
by the owner only. It is the simplest thing that works on one machine; a
deployment keeps agency keys with the agencies and the broker's key in an
HSM, and only the registry is shared.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.domain.report import NATION_PATTERN
from broker.errors import ConfigurationError, VerificationError

REGISTRY_FORMAT = 1


class KeyRole(StrEnum):
    AGENCY = "agency"  # signs threat reports for its nation
    BROKER = "broker"  # signs delivery statements


class KeyRecord(BaseModel):
    """One public key and what it may be used for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{3,64}$")]
    role: KeyRole
    nation: Annotated[str, Field(pattern=NATION_PATTERN)] | None = None
    algorithm: str = "ed25519"
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    not_before: dt.datetime
    not_after: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    def valid_at(self, when: dt.datetime) -> bool:
        if when < self.not_before:
            return False
        if self.not_after is not None and when >= self.not_after:
            return False
        return self.revoked_at is None or when < self.revoked_at

    def public(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))


class _RegistryDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = REGISTRY_FORMAT
    keys: list[KeyRecord] = []


class PartnerRegistry:
    """An immutable view of the registry: look keys up, list partner nations."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[KeyRecord]) -> None:
        self._keys = {k.key_id: k for k in keys}

    def __len__(self) -> int:
        return len(self._keys)

    def key(self, key_id: str) -> KeyRecord:
        try:
            return self._keys[key_id]
        except KeyError:
            raise VerificationError("unknown_key", "signer key id is not in the registry") from None

    def records(self) -> list[KeyRecord]:
        return sorted(self._keys.values(), key=lambda k: (k.role, k.nation or "", k.key_id))

    def nations(self) -> frozenset[str]:
        return frozenset(k.nation for k in self._keys.values() if k.nation is not None)

    def with_key(self, record: KeyRecord) -> PartnerRegistry:
        if record.key_id in self._keys:
            raise ConfigurationError(f"key {record.key_id} is already registered")
        return PartnerRegistry([*self._keys.values(), record])


class RegistryFile:
    """The registry on disk; ``current()`` reloads it only when the file changed."""

    __slots__ = ("_cached", "_stamp", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._cached = PartnerRegistry([])

    def current(self) -> PartnerRegistry:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return PartnerRegistry([])
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # save() makes a new inode
        if stamp != self._stamp:
            self._cached = self._read()
            self._stamp = stamp
        return self._cached

    def _read(self) -> PartnerRegistry:
        try:
            document = _RegistryDocument.model_validate_json(self.path.read_bytes())
        except ValidationError as exc:
            raise ConfigurationError(f"{self.path}: invalid partner registry: {exc}") from exc
        return PartnerRegistry(document.keys)

    def save(self, registry: PartnerRegistry) -> None:
        document = _RegistryDocument(keys=registry.records())
        _atomic_write(self.path, document.model_dump_json(indent=2).encode(), mode=0o644)


class Keystore:
    """Private keys on disk, one PEM file per key id."""

    __slots__ = ("directory",)

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def generate(
        self, *, role: KeyRole, nation: str | None, now: dt.datetime | None = None
    ) -> tuple[KeyRecord, Ed25519PrivateKey]:
        """A fresh key pair, stored here; the caller registers the returned record."""
        if (role is KeyRole.AGENCY) != (nation is not None):
            raise ConfigurationError("agency keys name a nation; broker keys do not")
        private = Ed25519PrivateKey.generate()
        raw_public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        prefix = nation if nation is not None else "broker"
        key_id = f"{prefix}-{hashlib.sha256(raw_public).hexdigest()[:12]}"
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _atomic_write(self.directory / f"{key_id}.pem", pem, mode=0o600)
        record = KeyRecord(
            key_id=key_id,
            role=role,
            nation=nation,
            public_key=base64.b64encode(raw_public).decode(),
            not_before=(now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5),
        )
        return record, private

    def private_key(self, key_id: str) -> Ed25519PrivateKey:
        path = self.directory / f"{key_id}.pem"
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise ConfigurationError(f"no private key for {key_id} in {self.directory}") from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ConfigurationError(f"{path} is not an Ed25519 private key")
        return loaded

    def newest_usable(
        self, registry: PartnerRegistry, *, role: KeyRole, nation: str | None
    ) -> KeyRecord:
        """The most recently valid registered key of ``role``/``nation`` we hold privately."""
        now = dt.datetime.now(dt.UTC)
        held = [
            k
            for k in registry.records()
            if k.role is role
            and k.nation == nation
            and k.valid_at(now)
            and (self.directory / f"{k.key_id}.pem").exists()
        ]
        if not held:
            who = f"nation {nation}" if nation else "the broker"
            raise ConfigurationError(
                f"no usable {role.value} key for {who}: run `ixb keys generate"
                f"{' --nation ' + nation if nation else ' --broker'}`"
            )
        return max(held, key=lambda k: k.not_before)


def _atomic_write(path: Path, data: bytes, *, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
