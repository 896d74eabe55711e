"""The keystore: this host's private keys, one PKCS#8 PEM file per key, readable by the owner only.

It is the simplest thing that works on one machine; a deployment keeps
agency keys with the agencies, governance keys with their holders and the
broker's key in an HSM, and only the registry (broker/trust/registry_file.py)
is shared. The keystore also knows which registered key a signer should use
now (:meth:`Keystore.newest_usable`) and how to rotate one.

Signing keys and sealing keys (broker/trust/sealing/keys.py) share the
directory; a key's registered algorithm says which it is, and every lookup
here names the use it wants, so a signer is never handed a sealing key.
Old sealing keys stay here after rotation: what was sealed to them (a feed
read from its start, a delivery held for weeks) still opens.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from broker.errors import ConfigurationError
from broker.trust.files import atomic_write
from broker.trust.records import (
    KeyRecord,
    KeyRole,
    KeyUse,
    PartnerRegistry,
    newness,
    role_problem,
)
from broker.trust.sealing.keys import SEAL_ALGORITHMS, X25519, DecryptionKey
from broker.trust.signatures import ED25519, SigningKey

DEFAULT_OVERLAP = dt.timedelta(hours=24)


class Keystore:
    """Private keys on disk, one PEM file per key id."""

    __slots__ = ("_opened", "directory")

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._opened: dict[str, DecryptionKey] = {}  # read once: opening is on the hot path

    def generate(
        self,
        *,
        role: KeyRole,
        nation: str | None,
        algorithm: str = ED25519,
        now: dt.datetime | None = None,
    ) -> tuple[KeyRecord, SigningKey]:
        """A fresh signing key pair, stored here; the caller registers the returned record."""
        _check_role(role, nation, KeyUse.SIGNING)
        if role is KeyRole.WITNESS and algorithm != ED25519:
            raise ConfigurationError(
                "a witness key is ed25519: C2SP cosignature/v1 is Ed25519 only"
            )
        # A witness's key id is its name in cosignature lines: say whose it is.
        prefix = f"witness-{nation}" if role is KeyRole.WITNESS else nation or role.value
        private = SigningKey.generate(algorithm, prefix=prefix)
        atomic_write(self._file(private.key_id), private.to_pem(), mode=0o600)
        return _record(private, role, nation, now), private

    def generate_sealing(
        self,
        *,
        role: KeyRole,
        nation: str | None,
        algorithm: str = X25519,
        now: dt.datetime | None = None,
    ) -> tuple[KeyRecord, DecryptionKey]:
        """A fresh sealing key pair, stored here; the caller registers the returned record."""
        _check_role(role, nation, KeyUse.SEALING)
        who = f"{role.value}-{nation}" if role is KeyRole.AUDITOR else nation or role.value
        private = DecryptionKey.generate(algorithm, prefix=f"{who}-seal")
        atomic_write(self._file(private.key_id), private.to_pem(), mode=0o600)
        self._opened[private.key_id] = private
        return _record(private, role, nation, now), private

    def holds(self, key_id: str) -> bool:
        return self._file(key_id).exists()

    def private_key(self, key_id: str) -> SigningKey:
        """The private signing key ``key_id``; ConfigurationError if it is not here."""
        return SigningKey.from_pem(key_id, self._read(key_id))

    def decryption_key(self, key_id: str) -> DecryptionKey | None:
        """The private sealing key ``key_id``, or None if this keystore does not hold it.

        Read from disk once, then kept (:class:`~broker.trust.sealing.keys.DecryptionKeys`).
        """
        known = self._opened.get(key_id)
        if known is not None:
            return known
        if not self.holds(key_id):
            return None
        key = DecryptionKey.from_pem(key_id, self._read(key_id))
        self._opened[key_id] = key
        return key

    def rotate(
        self,
        registry: PartnerRegistry,
        *,
        role: KeyRole,
        nation: str | None,
        overlap: dt.timedelta = DEFAULT_OVERLAP,
        algorithm: str | None = None,
        use: KeyUse = KeyUse.SIGNING,
        now: dt.datetime | None = None,
    ) -> tuple[PartnerRegistry, KeyRecord]:
        """A new ``use`` key for ``role``/``nation``; the keys valid now expire after ``overlap``.

        During the overlap both verify (what was signed and is still in
        flight keeps verifying), or both may be sealed to, and signers and
        senders pick the new one (:meth:`newest_usable`,
        ``broker.trust.sealing.parties``). The new key keeps the newest old
        key's algorithm unless ``algorithm`` says otherwise.
        """
        if role is KeyRole.GOVERNANCE:
            raise ConfigurationError(
                "governance keys are not rotated: generate one, then revoke the old one"
            )
        now = now or dt.datetime.now(dt.UTC)
        current = [
            k
            for k in registry.records()
            if k.role is role and k.nation == nation and k.use is use and k.valid_at(now)
        ]
        if not current:
            kind = f"{role.value} sealing" if use is KeyUse.SEALING else role.value
            raise ConfigurationError(f"no valid {kind} key to rotate: generate one instead")
        newest = max(current, key=newness)
        chosen = algorithm or newest.algorithm
        if (chosen in SEAL_ALGORITHMS) != (use is KeyUse.SEALING):
            raise ConfigurationError(f"{chosen} is not a {use.value} algorithm")
        record: KeyRecord
        if use is KeyUse.SEALING:
            record, _ = self.generate_sealing(role=role, nation=nation, algorithm=chosen, now=now)
        else:
            record, _ = self.generate(role=role, nation=nation, algorithm=chosen, now=now)
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
        """The newest valid registered signing key of ``role``/``nation`` we hold privately."""
        when = now or dt.datetime.now(dt.UTC)
        held = [
            k
            for k in registry.records()
            if k.role is role
            and k.nation == nation
            and k.use is KeyUse.SIGNING
            and k.valid_at(when)
            and self.holds(k.key_id)
        ]
        if not held:
            who = f"nation {nation}" if nation else f"the {role.value}"
            raise ConfigurationError(
                f"no usable {role.value} key for {who}: run `ixb keys generate"
                f"{' --nation ' + nation if nation else ' --' + role.value}`"
            )
        return max(held, key=newness)

    def _read(self, key_id: str) -> bytes:
        try:
            return self._file(key_id).read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(f"no private key for {key_id} in {self.directory}") from None

    def _file(self, key_id: str) -> Path:
        return self.directory / f"{key_id}.pem"


def _check_role(role: KeyRole, nation: str | None, use: KeyUse) -> None:
    problem = role_problem(role, nation, use)
    if problem is not None:
        raise ConfigurationError(problem)


def _record(
    private: SigningKey | DecryptionKey, role: KeyRole, nation: str | None, now: dt.datetime | None
) -> KeyRecord:
    """The registry record of a generated key, valid from a little before ``now``.

    (A few minutes early, so a key registered on a host whose clock runs
    ahead of the verifier's is valid at once.)
    """
    return KeyRecord(
        key_id=private.key_id,
        role=role,
        nation=nation,
        algorithm=private.algorithm,
        public_key=private.public_key_b64(),
        not_before=(now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5),
    )
