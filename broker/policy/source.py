"""Where the enforcer gets its policy from, batch by batch: hot reload.

The enforcer asks for the active policy when it starts a batch, never in the
middle of one, so a batch is decided by exactly one bundle and every decision
records that bundle's hash. A :class:`ReloadingPolicy` notices that the
policy directory changed (any ``*.rego`` or agreement file added, removed or
modified) or that ``ixb agreements reload`` asked for a reload, loads and
checks the new bundle, and swaps it in whole. A bundle that does not load is
refused: the enforcer keeps deciding with the last good one and says so in
its log, until the files change again. A new bundle brings a new decision
point and therefore a new, empty decision cache.

Every bundle is also archived as it is loaded (broker/policy/archive.py): the
archive holds the very files the bundle was loaded from, checked to give the
same content hash, so the enforcer can write it to ``ixb.bundles`` before
anything is decided under it. If the files change between the two reads the
load is refused like any bad bundle, and retried at the next change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from broker.errors import ConfigurationError
from broker.policy import PolicyDecisionPoint
from broker.policy.archive import archive_bundle
from broker.policy.bundle import PolicyBundle, agreement_files, load_bundle
from broker.wire.codec import SchemaCatalog

log = structlog.get_logger("ixb.policy")

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    """A decision point, the bundle it evaluates and that bundle's archive.

    ``archive`` is the encoded ``ixb.v1.PolicyBundleArchive`` of the files the
    bundle was loaded from; None for a policy built in memory (tests).
    """

    point: PolicyDecisionPoint
    bundle: PolicyBundle
    archive: bytes | None = None

    @property
    def parties(self) -> frozenset[str]:
        return frozenset(p for a in self.bundle.agreements for p in a.parties)


class PolicySource(Protocol):
    def current(self) -> ActivePolicy:
        """The policy for the next batch."""
        ...


class FixedPolicy:
    """One policy for the whole run, e.g. a test's."""

    __slots__ = ("_active",)

    def __init__(self, active: ActivePolicy) -> None:
        self._active = active

    def current(self) -> ActivePolicy:
        return self._active


class ReloadingPolicy:
    """The policy directory's current bundle, reloaded between batches when it changes."""

    __slots__ = (
        "_active",
        "_build",
        "_catalog",
        "_check_every_s",
        "_directory",
        "_fingerprint",
        "_last_check",
        "_request_file",
        "reloads",
    )

    def __init__(
        self,
        directory: Path,
        catalog: SchemaCatalog,
        build: Callable[[PolicyBundle], PolicyDecisionPoint],
        *,
        request_file: Path,
        check_every_s: float = 1.0,
    ) -> None:
        self._directory = directory
        self._catalog = catalog
        self._build = build
        self._request_file = request_file
        self._check_every_s = check_every_s
        self._fingerprint = self._scan()
        bundle, archive = self._load()  # at start-up a bad bundle is fatal
        self._active = ActivePolicy(build(bundle), bundle, archive)
        self._last_check = time.monotonic()
        self.reloads = 0

    def current(self) -> ActivePolicy:
        now = time.monotonic()
        if now - self._last_check >= self._check_every_s:
            self._last_check = now
            self.check()
        return self._active

    @property
    def active(self) -> ActivePolicy:
        """The policy in use, without looking for changes (for metrics and probes)."""
        return self._active

    def check(self) -> bool:
        """Reload if anything changed; True when a new bundle was swapped in."""
        fingerprint = self._scan()
        if fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        old = self._active.bundle.content_hash
        try:
            bundle, archive = self._load()
            if bundle.content_hash == old:
                return False
            active = ActivePolicy(self._build(bundle), bundle, archive)
        except ConfigurationError as exc:
            log.error("policy_reload_refused", error=str(exc), kept_bundle_hash=old)
            return False
        self._active = active
        self.reloads += 1
        log.info("policy_reloaded", old_bundle_hash=old, bundle_hash=bundle.content_hash)
        return True

    def _load(self) -> tuple[PolicyBundle, bytes]:
        """The bundle (errors name the real files) and the archive of exactly its files."""
        bundle = load_bundle(self._directory, self._catalog)
        _, archive = archive_bundle(
            self._directory, self._catalog, expected_hash=bundle.content_hash
        )
        return bundle, archive

    def _scan(self) -> Fingerprint:
        """Name, modification time and size of every file that makes the bundle."""
        files = [
            *self._directory.rglob("*.rego"),
            *agreement_files(self._directory / "agreements"),
            self._request_file,
        ]
        entries = []
        for path in sorted(files):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(entries)


def request_reload(request_file: Path, bundle_hash: str) -> None:
    """Ask running enforcers sharing this home to reload (``ixb agreements reload``)."""
    request_file.parent.mkdir(parents=True, exist_ok=True)
    request_file.write_text(f"{time.time_ns()} {bundle_hash}\n")
