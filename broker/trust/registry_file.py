"""The partner registry on disk: the signed, versioned document every party shares.

The registry says, for each public key, whose it is (a nation's agency, the
broker, or the registry's governance), its role, and when it may be used. It
is a signed, versioned JSON document (``broker.trust.governance``) written
atomically; readers reload it when it changes, so a key generated while the
enforcer runs is picked up at the next batch, and refuse a version that is
not newer than the last one they accepted. That last accepted version is
persisted beside the registry (``<registry>.state.json``) so a rollback is
refused after a restart too. The private keys are the keystore's
(broker/trust/keystore.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
from collections.abc import Iterator
from pathlib import Path

import structlog
from pydantic import ValidationError

from broker.errors import ConfigurationError, RegistryRefused
from broker.trust.files import atomic_write
from broker.trust.governance import (
    UNDER_SIGNED,
    AcceptedState,
    RegistryDocument,
    TrustedGovernance,
    accept,
    content_hash,
    document_bytes,
    parse_document,
    sign_document,
)
from broker.trust.keystore import Keystore
from broker.trust.records import GovernanceRule, KeyRole, PartnerRegistry

log = structlog.get_logger("ixb.trust")


class RegistryFile:
    """The registry on disk; ``current()`` reloads it only when the file changed.

    ``keystore`` is needed only to write (its governance keys sign);
    ``anchor`` is the pinned governance for the first version ever accepted
    (default ``<registry>.anchor.json``, used if present).
    """

    __slots__ = (
        "_document",
        "_document_hash",
        "_keystore",
        "_last",
        "_refusal",
        "_registry",
        "_stamp",
        "anchor_path",
        "path",
    )

    def __init__(
        self, path: Path, *, keystore: Keystore | None = None, anchor: Path | None = None
    ) -> None:
        self.path = path
        self.anchor_path = anchor or path.with_name(path.name + ".anchor.json")
        self._keystore = keystore
        self._stamp: tuple[int, int, int] | None = None
        self._document: RegistryDocument | None = None
        self._document_hash: str | None = None
        self._registry = PartnerRegistry([])  # the view of _document, built once per version
        self._last: AcceptedState | None = None
        self._refusal: RegistryRefused | None = None

    @property
    def state_path(self) -> Path:
        return self.path.with_name(self.path.name + ".state.json")

    @property
    def proposal_path(self) -> Path:
        return self.path.with_name(self.path.name + ".proposal.json")

    def current(self) -> PartnerRegistry:
        """The last good registry; RegistryRefused if none was ever accepted and the file is bad."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return self._registry
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # installing makes a new inode
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._refusal = None
                self._read()
            except RegistryRefused as exc:
                self._refusal = exc
                if self._document is not None:
                    log.warning("registry_refused", reason=exc.reason, path=str(self.path))
        if self._document is None and self._refusal is not None:
            # a fresh error each time: re-raising the stored one would grow its traceback
            raise RegistryRefused(self._refusal.reason, self._refusal.detail)
        return self._registry

    def document(self) -> RegistryDocument | None:
        """The last accepted document as a whole (to export), if any."""
        self.current()
        return self._document

    def current_and_document(self) -> tuple[PartnerRegistry, RegistryDocument | None, str | None]:
        """:meth:`current`, the document it is the view of and its content hash (one version)."""
        registry = self.current()
        return registry, self._document, self._document_hash

    def save(self, registry: PartnerRegistry) -> None:
        """Install ``registry`` as the next version, signed by the keystore's governance keys.

        A registry without a governance rule keeps the one on disk; with none
        anywhere, a 1-of-1 governance key is created in the keystore.
        """
        document = self.sign(self.propose(registry))
        try:
            self.install(document)
        except RegistryRefused as exc:
            if exc.reason != UNDER_SIGNED:
                raise
            raise ConfigurationError(
                f"{exc.detail}: this keystore does not hold enough governance keys; write a "
                f"proposal and collect signatures with `ixb keys sign`"
            ) from exc

    def propose(
        self, registry: PartnerRegistry, *, now: dt.datetime | None = None
    ) -> RegistryDocument:
        """The next version holding ``registry``, not yet signed."""
        with contextlib.suppress(RegistryRefused):
            self.current()
        previous = self._document
        rule = registry.governance or (previous.governance if previous else None)
        keys = {k.key_id: k for k in registry.records()}
        if rule is not None and previous is not None:
            for kept in previous.keys:  # governance keys a caller's registry may leave out
                if kept.key_id in rule.key_ids:
                    keys.setdefault(kept.key_id, kept)
        if rule is None:
            if self._keystore is None:
                raise ConfigurationError(
                    "the registry has no governance key yet: give RegistryFile a keystore "
                    "so one can be created"
                )
            governance, _ = self._keystore.generate(role=KeyRole.GOVERNANCE, nation=None, now=now)
            keys[governance.key_id] = governance
            rule = GovernanceRule(threshold=1, key_ids=(governance.key_id,))
        last = self._last_accepted()
        try:
            return RegistryDocument(
                version=(last.version if last else 0) + 1,
                issued_at=now or dt.datetime.now(dt.UTC),
                governance=rule,
                keys=tuple(PartnerRegistry(keys.values()).records()),
            )
        except ValidationError as exc:
            raise ConfigurationError(f"the registry cannot be written: {exc}") from exc

    def sign(self, document: RegistryDocument) -> RegistryDocument:
        """``document`` with signatures by every governance key this keystore holds.

        Both the governance that must approve ``document`` (the last accepted
        version's) and its own are asked: a changed set signs with both.
        """
        if self._keystore is None:
            raise ConfigurationError("signing the registry needs a keystore")
        last = self._last_accepted()
        wanted = set(document.governance.key_ids)
        if last is not None:
            wanted |= {k.key_id for k in last.governance.keys}
        held = [self._keystore.private_key(k) for k in sorted(wanted) if self._keystore.holds(k)]
        return sign_document(document, held)

    def install(self, document: RegistryDocument) -> PartnerRegistry:
        """Write ``document`` as the registry if a reader would accept it, else RegistryRefused."""
        with self._locked():
            last = self._last_accepted()
            anchor = self._anchor() if last is None else None
            state = accept(document, last=last, anchor=anchor, now=dt.datetime.now(dt.UTC))
            atomic_write(self.path, document_bytes(document), mode=0o644)
            self._remember(state, previous=last)
        stat = self.path.stat()
        self._stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        self._keep(document)
        return self._registry

    def write_proposal(self, document: RegistryDocument, path: Path | None = None) -> Path:
        """Keep a not yet fully signed version where other governance holders can sign it."""
        target = path or self.proposal_path
        atomic_write(target, document_bytes(document), mode=0o644)
        return target

    def _read(self) -> None:
        document = parse_document(self.path.read_bytes())
        with self._locked():
            last = self._last_accepted()
            anchor = self._anchor() if last is None else None
            state = accept(document, last=last, anchor=anchor, now=dt.datetime.now(dt.UTC))
            if last is None and anchor is None:
                log.warning(
                    "registry_trust_on_first_use", path=str(self.path), version=state.version
                )
            self._remember(state, previous=last)
        self._keep(document)

    def _keep(self, document: RegistryDocument) -> None:
        self._document, self._registry, self._refusal = document, document.registry(), None
        self._document_hash = content_hash(document)  # once per version: entries name it

    def _remember(self, state: AcceptedState, *, previous: AcceptedState | None) -> None:
        if state != previous:
            atomic_write(self.state_path, state.model_dump_json(indent=2).encode(), mode=0o644)
        self._last = state

    def _last_accepted(self) -> AcceptedState | None:
        """The newer of what this object and the state file (other processes) accepted."""
        try:
            on_disk = AcceptedState.model_validate_json(self.state_path.read_bytes())
        except FileNotFoundError:
            on_disk = None
        except ValidationError as exc:
            raise RegistryRefused(
                "registry_state_invalid", f"{self.state_path} is not a registry state file"
            ) from exc
        if on_disk is None or (self._last is not None and self._last.version > on_disk.version):
            return self._last
        return on_disk

    def _anchor(self) -> TrustedGovernance | None:
        try:
            return TrustedGovernance.model_validate_json(self.anchor_path.read_bytes())
        except FileNotFoundError:
            return None
        except ValidationError as exc:
            raise RegistryRefused(
                "registry_anchor_invalid", f"{self.anchor_path} is not a trust anchor"
            ) from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time compares with, and advances, the accepted state."""
        lock = self.path.with_name(f".{self.path.name}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
