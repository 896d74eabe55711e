"""What the partner registry says: keys, their roles and windows, and who governs it.

These are plain values with no I/O; ``broker.trust.registry_file`` keeps them on disk
and ``broker.trust.governance`` decides whether a registry document may be
believed.

A key either signs or seals, and its algorithm says which
(:attr:`KeyRecord.use`): Ed25519 or the Ed25519 + ML-DSA-65 hybrid sign
(broker/trust/signatures.py); X25519 or the ML-KEM-768 + X25519 hybrid seal
(broker/trust/sealing/keys.py). A party's sealing keys sit beside its signing
keys, under the same governance signatures, rotation and revocation.

A key is usable from ``not_before`` until ``not_after`` (rotation sets it on
the old key, leaving an overlap in which both verify, or both may be sealed
to) and until ``revoked_at``. A revocation is an effective time, not a
deletion: what a signing key signed before it stays valid, what reached the
broker at or after it does not (broker/trust/key_checks.py); nothing is
sealed to a sealing key from then on, and the broker refuses what arrives
sealed to it. Revoking again can only move that time earlier.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from broker.domain.report import NATION_PATTERN
from broker.errors import ConfigurationError, VerificationError
from broker.trust.sealing.keys import SEAL_ALGORITHMS, SealAlgorithm, seal_public_key_problem
from broker.trust.signatures import ED25519, Algorithm, public_key_problem

KeyId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{3,64}$")]


class KeyRole(StrEnum):
    AGENCY = "agency"  # signs threat reports for its nation; opens what is delivered to it
    BROKER = "broker"  # signs delivery statements; opens submissions and held deliveries
    GOVERNANCE = "governance"  # signs the registry itself
    WITNESS = "witness"  # cosigns decision-log checkpoints for its nation (C2SP tlog-cosignature)
    AUDITOR = "auditor"  # a nation's data-protection authority: opens its nation's submissions

    @property
    def names_a_nation(self) -> bool:
        """Agency, witness and auditor keys speak for a nation; broker and governance ones not."""
        return self in NATIONAL_ROLES


class KeyUse(StrEnum):
    """What a key does; its algorithm decides (:attr:`KeyRecord.use`)."""

    SIGNING = "signing"
    SEALING = "sealing"


# Roles that name the nation they act for; the others act for the federation.
NATIONAL_ROLES = frozenset({KeyRole.AGENCY, KeyRole.WITNESS, KeyRole.AUDITOR})


class RevocationReason(StrEnum):
    """Why a key was revoked (the RFC 5280 reasons that apply to a signing key)."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key_compromise"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation_of_operation"
    AFFILIATION_CHANGED = "affiliation_changed"


class KeyRecord(BaseModel):
    """One public key and what it may be used for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: KeyId
    role: KeyRole
    nation: Annotated[str, Field(pattern=NATION_PATTERN)] | None = None
    algorithm: Algorithm | SealAlgorithm = ED25519
    public_key: str = Field(
        description="base64 of the raw public key: 32 bytes of Ed25519, followed for a "
        "hybrid signing key by the 1952 bytes of ML-DSA-65; 32 bytes of X25519, preceded "
        "for a hybrid sealing key by the 1184 bytes of ML-KEM-768"
    )
    not_before: AwareDatetime
    not_after: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = Field(
        default=None, description="effective time: signatures from then on are refused"
    )
    revocation_reason: RevocationReason | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check = seal_public_key_problem if self.algorithm in SEAL_ALGORITHMS else public_key_problem
        problem = check(self.algorithm, self.public_key)
        if problem is not None:
            raise ValueError(problem)
        problem = role_problem(self.role, self.nation, self.use)
        if problem is not None:
            raise ValueError(problem)
        if self.role is KeyRole.WITNESS and self.algorithm != ED25519:
            raise ValueError("a witness key is ed25519: C2SP cosignature/v1 is Ed25519 only")
        return self

    @property
    def use(self) -> KeyUse:
        return KeyUse.SEALING if self.algorithm in SEAL_ALGORITHMS else KeyUse.SIGNING

    def valid_at(self, when: dt.datetime) -> bool:
        if when < self.not_before:
            return False
        if self.not_after is not None and when >= self.not_after:
            return False
        return self.revoked_at is None or when < self.revoked_at


def role_problem(role: KeyRole, nation: str | None, use: KeyUse) -> str | None:
    """Why a key of ``role`` for ``nation`` cannot be a ``use`` key, or None if it can."""
    if (role in NATIONAL_ROLES) != (nation is not None):
        return "agency, witness and auditor keys name a nation; broker and governance keys do not"
    if role is KeyRole.WITNESS and use is KeyUse.SEALING:
        return "witness keys cosign checkpoints: they cannot be sealing keys"
    if role is KeyRole.GOVERNANCE and use is KeyUse.SEALING:
        return "governance keys sign the registry: they cannot be sealing keys"
    if role is KeyRole.AUDITOR and use is KeyUse.SIGNING:
        return "auditor keys open submissions to replay them: they are sealing keys"
    return None


def newness(key: KeyRecord) -> tuple[dt.datetime, dt.datetime, str]:
    """How keys of one party are ordered for use: later ``not_before`` wins; on a tie,
    the key valid longer (a rotation's new key)."""
    return (key.not_before, key.not_after or dt.datetime.max.replace(tzinfo=dt.UTC), key.key_id)


class GovernanceRule(BaseModel):
    """Which governance keys sign the registry, and how many of them must (k of n)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: Annotated[int, Field(ge=1)]
    key_ids: Annotated[tuple[KeyId, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _satisfiable(self) -> Self:
        if len(set(self.key_ids)) != len(self.key_ids):
            raise ValueError("governance key ids repeat")
        if self.threshold > len(self.key_ids):
            raise ValueError(
                f"a threshold of {self.threshold} cannot be met by {len(self.key_ids)} key(s)"
            )
        return self


class PartnerRegistry:
    """An immutable view of the registry: look keys up, list partner nations.

    ``governance`` and ``version`` are those of the document it was read
    from (None and 0 for a registry built in memory); saving a registry
    without a governance rule keeps the one already on disk.
    """

    __slots__ = ("_keys", "_of_party", "governance", "version")

    def __init__(
        self,
        keys: Iterable[KeyRecord],
        *,
        governance: GovernanceRule | None = None,
        version: int = 0,
    ) -> None:
        self._keys = {k.key_id: k for k in keys}
        self.governance = governance
        self.version = version
        self._of_party: dict[tuple[KeyRole, str | None, KeyUse], tuple[KeyRecord, ...]] | None
        self._of_party = None  # built on first use: the hot path asks per report

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def key(self, key_id: str) -> KeyRecord:
        try:
            return self._keys[key_id]
        except KeyError:
            raise VerificationError("unknown_key", "signer key id is not in the registry") from None

    def records(self) -> list[KeyRecord]:
        return sorted(self._keys.values(), key=lambda k: (k.role, k.nation or "", k.key_id))

    def of_party(self, role: KeyRole, nation: str | None, use: KeyUse) -> tuple[KeyRecord, ...]:
        """Every key of one party for one use, valid or not, newest first (:func:`newness`)."""
        if self._of_party is None:
            index: dict[tuple[KeyRole, str | None, KeyUse], list[KeyRecord]] = {}
            for key in self._keys.values():
                index.setdefault((key.role, key.nation, key.use), []).append(key)
            self._of_party = {
                party: tuple(sorted(keys, key=newness, reverse=True))
                for party, keys in index.items()
            }
        return self._of_party.get((role, nation, use), ())

    def nations(self) -> frozenset[str]:
        """Nations with an agency key: the partners a report may be delivered to.

        (A witness's or an auditor's key makes no partner.)
        """
        return frozenset(
            k.nation
            for k in self._keys.values()
            if k.nation is not None and k.role is KeyRole.AGENCY
        )

    def with_key(self, record: KeyRecord) -> PartnerRegistry:
        if record.key_id in self._keys:
            raise ConfigurationError(f"key {record.key_id} is already registered")
        return self._with([*self._keys.values(), record], self.governance)

    def replacing(self, record: KeyRecord) -> PartnerRegistry:
        """The registry with the record of the same key id replaced by ``record``."""
        self._known(record.key_id)
        return self._with([*self._keys.values(), record], self.governance)

    def with_governance(self, rule: GovernanceRule) -> PartnerRegistry:
        return self._with(self._keys.values(), rule)

    def revoking(
        self, key_id: str, at: dt.datetime, reason: RevocationReason | None = None
    ) -> PartnerRegistry:
        """The registry with ``key_id`` revoked from ``at`` (or earlier, if it already was).

        A revoked governance key also leaves the governance rule, which must
        still be satisfiable by the keys that remain.
        """
        record = self._known(key_id)
        effective = at if record.revoked_at is None else min(at, record.revoked_at)
        revoked = self.replacing(
            record.model_copy(
                update={
                    "revoked_at": effective,
                    "revocation_reason": reason or record.revocation_reason,
                }
            )
        )
        rule = self.governance
        if rule is None or key_id not in rule.key_ids:
            return revoked
        remaining = tuple(k for k in rule.key_ids if k != key_id)
        if len(remaining) < rule.threshold:
            raise ConfigurationError(
                f"revoking {key_id} would leave {len(remaining)} governance key(s) "
                f"for a threshold of {rule.threshold}: add a governance key first"
            )
        return revoked.with_governance(GovernanceRule(threshold=rule.threshold, key_ids=remaining))

    def _known(self, key_id: str) -> KeyRecord:
        try:
            return self._keys[key_id]
        except KeyError:
            raise ConfigurationError(f"key {key_id} is not in the registry") from None

    def _with(self, keys: Iterable[KeyRecord], rule: GovernanceRule | None) -> PartnerRegistry:
        return PartnerRegistry(keys, governance=rule, version=self.version)
