"""The signed registry document, and when a reader may believe a new version of it.

Whoever can write the registry decides which keys verify, so the registry is
itself signed: by governance keys (role ``governance``, listed in the
document), at least ``threshold`` of them (k of n). The document (format 2)::

    {format, version, issued_at, governance: {threshold, key_ids}, keys: [...],
     signatures: [{key_id, signature}]}

Each signature is over :func:`signing_input`: a context string and the
canonical encoding of everything but ``signatures``, which lets signatures
be collected one by one on the same bytes.

A reader accepts a document (:func:`accept`) only if

1. it is not older than what the reader accepted last: a lower version is a
   rollback, the same version with other content a fork, and an
   ``issued_at`` before the last accepted one a rollback too (so a governance
   key revoked at T cannot sign a version dated before T);
2. ``threshold`` distinct governance keys of the LAST ACCEPTED version
   signed it, valid at its ``issued_at``: whoever changes the governance set
   needs the old set's consent (for the first version ever seen, a pinned
   trust anchor's set, or trust on first use if there is none);
3. its own governance rule is met too, so a new governance set is proven
   held before it is trusted with the next version (as TUF does for root);
4. it is not dated in the future (beyond a small clock skew).

Signatures count once per distinct Ed25519 public key, so one key listed
under two ids does not make two signatures. Everything here is pure; the
file, the persisted state and the logging are ``broker.trust.registry_file``'s.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Annotated, Final, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from broker.errors import RegistryRefused, VerificationError
from broker.trust.key_checks import check_key
from broker.trust.records import GovernanceRule, KeyId, KeyRecord, KeyRole, PartnerRegistry
from broker.trust.signatures import ED25519_PUBLIC_BYTES, SigningKey, verify_signature

REGISTRY_FORMAT: Final = 2
MAX_FUTURE_SKEW: Final = dt.timedelta(minutes=5)
_CONTEXT: Final = b"ixb-registry-v2\x00"

ROLLBACK: Final = "registry_rollback"
FORK: Final = "registry_fork"
UNDER_SIGNED: Final = "registry_under_signed"
INVALID: Final = "registry_invalid"
UNSIGNED: Final = "registry_unsigned"
FROM_THE_FUTURE: Final = "registry_from_the_future"


class RegistrySignature(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: KeyId
    signature: str = Field(description="base64")


class RegistryDocument(BaseModel):
    """One version of the registry as written to disk and handed to partners."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[2] = REGISTRY_FORMAT
    version: Annotated[int, Field(ge=1)]
    issued_at: AwareDatetime
    governance: GovernanceRule
    keys: tuple[KeyRecord, ...]
    signatures: tuple[RegistrySignature, ...] = ()

    @model_validator(mode="after")
    def _governed_by_its_own_keys(self) -> Self:
        by_id: dict[str, KeyRecord] = {}
        for key in self.keys:
            if by_id.setdefault(key.key_id, key) is not key:
                raise ValueError(f"key {key.key_id} is listed twice")
        for key_id in self.governance.key_ids:
            governor = by_id.get(key_id)
            if governor is None or governor.role is not KeyRole.GOVERNANCE:
                raise ValueError(f"governance key {key_id} is not a governance key in the registry")
        return self

    def registry(self) -> PartnerRegistry:
        return PartnerRegistry(self.keys, governance=self.governance, version=self.version)

    def trust(self) -> TrustedGovernance:
        """The governance this document declares: who must sign its successor."""
        wanted = set(self.governance.key_ids)
        return TrustedGovernance(
            threshold=self.governance.threshold,
            keys=tuple(k for k in self.keys if k.key_id in wanted),
        )


class TrustedGovernance(BaseModel):
    """Governance keys (with their public keys) a reader trusts, and the threshold.

    Written as a trust anchor by ``ixb keys export --anchor``: a partner who
    pins it believes a first registry only if these keys signed it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: Annotated[int, Field(ge=1)]
    keys: Annotated[tuple[KeyRecord, ...], Field(min_length=1)]


class AcceptedState(BaseModel):
    """What a reader last accepted; persisted so a refusal survives restarts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    content_hash: str
    issued_at: AwareDatetime
    governance: TrustedGovernance


def canonical_content(document: RegistryDocument) -> bytes:
    """The one encoding signed and hashed: sorted-key compact JSON without signatures."""
    content = document.model_dump(mode="json", exclude={"signatures"})
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def signing_input(document: RegistryDocument) -> bytes:
    return _CONTEXT + canonical_content(document)


def content_hash(document: RegistryDocument) -> str:
    return hashlib.sha256(canonical_content(document)).hexdigest()


def parse_document(data: bytes) -> RegistryDocument:
    """The document in ``data``; a refusal names the fields at fault, never their values."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise RegistryRefused(INVALID, "invalid partner registry: not JSON") from exc
    if isinstance(raw, dict) and raw.get("format") == 1:
        raise RegistryRefused(
            UNSIGNED,
            "invalid partner registry: format 1 is unsigned; regenerate the keys "
            "(`ixb keys generate`) in a fresh IXB_HOME to get a signed registry",
        )
    try:
        return RegistryDocument.model_validate(raw)
    except ValidationError as exc:
        raise RegistryRefused(INVALID, f"invalid partner registry: {_describe(exc)}") from exc


def document_bytes(document: RegistryDocument) -> bytes:
    return document.model_dump_json(indent=2).encode() + b"\n"


def sign_document(document: RegistryDocument, signers: Iterable[SigningKey]) -> RegistryDocument:
    """``document`` with a signature by each of ``signers`` added (or replaced)."""
    message = signing_input(document)
    signatures = {s.key_id: s for s in document.signatures}
    for signer in signers:
        signature = base64.b64encode(signer.sign(message)).decode()
        signatures[signer.key_id] = RegistrySignature(key_id=signer.key_id, signature=signature)
    return document.model_copy(update={"signatures": tuple(signatures.values())})


def accept(
    document: RegistryDocument,
    *,
    last: AcceptedState | None,
    anchor: TrustedGovernance | None,
    now: dt.datetime,
) -> AcceptedState:
    """The state after accepting ``document``; RegistryRefused if it may not be believed.

    ``last`` is what was accepted before (None: never anything); ``anchor``
    counts only for a first acceptance. With neither, the document is
    trusted on first use, on its own governance alone.
    """
    digest = content_hash(document)
    signers = anchor
    if last is not None:
        if document.version < last.version:
            raise RegistryRefused(
                ROLLBACK, f"version {document.version} is older than accepted {last.version}"
            )
        if document.version == last.version:
            if digest == last.content_hash:
                return last
            raise RegistryRefused(
                FORK, f"version {document.version} differs from the one accepted before"
            )
        if document.issued_at < last.issued_at:
            raise RegistryRefused(
                ROLLBACK, f"version {document.version} is dated before the accepted version"
            )
        signers = last.governance
    if document.issued_at > now + MAX_FUTURE_SKEW:
        raise RegistryRefused(FROM_THE_FUTURE, f"version {document.version} is dated ahead")
    own = document.trust()
    if signers is not None:
        _require_threshold(document, signers, "the trusted governance")
    _require_threshold(document, own, "its own governance")
    return AcceptedState(
        version=document.version, content_hash=digest, issued_at=document.issued_at, governance=own
    )


def _require_threshold(document: RegistryDocument, trusted: TrustedGovernance, whose: str) -> None:
    valid = len(_valid_signers(document, trusted))
    if valid < trusted.threshold:
        raise RegistryRefused(
            UNDER_SIGNED,
            f"version {document.version} has {valid} of the {trusted.threshold} "
            f"signature(s) {whose} requires",
        )


def _valid_signers(document: RegistryDocument, trusted: TrustedGovernance) -> set[bytes]:
    """The distinct Ed25519 public keys among ``trusted`` that validly signed ``document``."""
    keys = PartnerRegistry(trusted.keys)
    message = signing_input(document)
    valid: set[bytes] = set()
    for entry in document.signatures:
        try:
            # A registry signature names no algorithm: the key's registered one decides.
            key = check_key(
                keys, entry.key_id, role=KeyRole.GOVERNANCE, algorithm=None, at=document.issued_at
            )
        except VerificationError:
            continue  # not a trusted governance key valid then: it does not count
        identity = base64.b64decode(key.public_key)[:ED25519_PUBLIC_BYTES]
        if identity in valid:
            continue
        try:
            verify_signature(key, base64.b64decode(entry.signature, validate=True), message)
        except (binascii.Error, VerificationError):
            continue
        valid.add(identity)
    return valid


def _describe(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    ]
    return "; ".join(problems[:5]) + (
        f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    )
