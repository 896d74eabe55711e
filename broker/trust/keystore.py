"""The keystore: this host's private keys, one PKCS#8 PEM file per key, readable by the owner only.

It is the simplest thing that works on one machine; a deployment keeps
agency keys with the agencies, governance keys with their holders and the
broker's key in an HSM, and only the registry (broker/trust/registry_file.py)
is shared. The keystore also knows which registered key a signer should use
now (:meth:`Keystore.newest_usable`) and how to rotate one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from broker.errors import ConfigurationError
from broker.trust.files import atomic_write
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.signatures import ED25519, SigningKey

DEFAULT_OVERLAP = dt.timedelta(hours=24)


class Keystore:
    """Private keys on disk, one PEM file per key id."""

    __slots__ = ("directory",)

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def generate(
        self,
        *,
        role: KeyRole,
        nation: str | None,
        algorithm: str = ED25519,
        now: dt.datetime | None = None,
    ) -> tuple[KeyRecord, SigningKey]:
        """A fresh key pair, stored here; the caller registers the returned record."""
        if role.names_a_nation != (nation is not None):
            raise ConfigurationError(
                "agency and witness keys name a nation; broker and governance keys do not"
            )
        if role is KeyRole.WITNESS and algorithm != ED25519:
            raise ConfigurationError(
                "a witness key is ed25519: C2SP cosignature/v1 is Ed25519 only"
            )
        # A witness's key id is its name in cosignature lines: say whose it is.
        prefix = f"witness-{nation}" if role is KeyRole.WITNESS else nation or role.value
        private = SigningKey.generate(algorithm, prefix=prefix)
        atomic_write(self._file(private.key_id), private.to_pem(), mode=0o600)
        record = KeyRecord(
            key_id=private.key_id,
            role=role,
            nation=nation,
            algorithm=private.algorithm,
            public_key=private.public_key_b64(),
            not_before=(now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5),
        )
        return record, private

    def holds(self, key_id: str) -> bool:
        return self._file(key_id).exists()

    def private_key(self, key_id: str) -> SigningKey:
        try:
            data = self._file(key_id).read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(f"no private key for {key_id} in {self.directory}") from None
        return SigningKey.from_pem(key_id, data)

    def rotate(
        self,
        registry: PartnerRegistry,
        *,
        role: KeyRole,
        nation: str | None,
        overlap: dt.timedelta = DEFAULT_OVERLAP,
        algorithm: str | None = None,
        now: dt.datetime | None = None,
    ) -> tuple[PartnerRegistry, KeyRecord]:
        """A new key for ``role``/``nation``; the keys valid now expire after ``overlap``.

        During the overlap both verify (what was signed and is still in
        flight keeps verifying) and signers pick the new one
        (:meth:`newest_usable`). The new key keeps the newest old key's
        algorithm unless ``algorithm`` says otherwise.
        """
        if role is KeyRole.GOVERNANCE:
            raise ConfigurationError(
                "governance keys are not rotated: generate one, then revoke the old one"
            )
        now = now or dt.datetime.now(dt.UTC)
        current = [
            k
            for k in registry.records()
            if k.role is role and k.nation == nation and k.valid_at(now)
        ]
        if not current:
            raise ConfigurationError(f"no valid {role.value} key to rotate: generate one instead")
        newest = max(current, key=_newness)
        record, _ = self.generate(
            role=role, nation=nation, algorithm=algorithm or newest.algorithm, now=now
        )
        ends = now + overlap
        for old in current:
            if old.not_after is None or old.not_after > ends:
                registry = registry.replacing(old.model_copy(update={"not_after": ends}))
        return registry.with_key(record), record

    def newest_usable(
        self,
        registry: PartnerRegistry,
        *,
        role: KeyRole,
        nation: str | None,
        now: dt.datetime | None = None,
    ) -> KeyRecord:
        """The most recently valid registered key of ``role``/``nation`` we hold privately."""
        when = now or dt.datetime.now(dt.UTC)
        held = [
            k
            for k in registry.records()
            if k.role is role and k.nation == nation and k.valid_at(when) and self.holds(k.key_id)
        ]
        if not held:
            who = f"nation {nation}" if nation else f"the {role.value}"
            raise ConfigurationError(
                f"no usable {role.value} key for {who}: run `ixb keys generate"
                f"{' --nation ' + nation if nation else ' --' + role.value}`"
            )
        return max(held, key=_newness)

    def _file(self, key_id: str) -> Path:
        return self.directory / f"{key_id}.pem"


def _newness(key: KeyRecord) -> tuple[dt.datetime, dt.datetime, str]:
    """Later ``not_before`` wins; on a tie, the key valid longer (a rotation's new key)."""
    return (key.not_before, key.not_after or dt.datetime.max.replace(tzinfo=dt.UTC), key.key_id)
