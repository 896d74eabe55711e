"""Where the console reads from: typed values built once at its edge (``ixb console``).

The console never reads settings or the environment: the command line builds
a :class:`ConsoleSources` from them (broker/cli/console_command.py), as the
auditor's library is handed an :class:`~broker.auditor.source.AuditSource`.
The policy bundle is loaded afresh when its files change, so the console
shows what a hot-reloading enforcer decides with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from broker.auditor.source import AuditSource
from broker.auditor.use_cases import IntakeWindow, Witnessing
from broker.policy.bundle import PolicyBundle, load_bundle
from broker.policy.rego import RegoDecisionPoint
from broker.trust.records import PartnerRegistry
from broker.trust.sealing.keys import DecryptionKeys
from broker.wire.codec import SchemaCatalog
from broker.wire.topics import TopicNames

__all__ = ["ConsoleSources", "PolicyShelf"]


class PolicyShelf:
    """The bundle in ``directory`` and its compiled decision point, rebuilt when files change."""

    __slots__ = ("_catalog", "_directory", "_loaded", "_stamp")

    def __init__(self, directory: Path, catalog: SchemaCatalog) -> None:
        self._directory = directory
        self._catalog = catalog
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._loaded: tuple[PolicyBundle, RegoDecisionPoint] | None = None

    @property
    def directory(self) -> Path:
        return self._directory

    def current(self) -> tuple[PolicyBundle, RegoDecisionPoint]:
        """The bundle as its files are now; BundleRefused if they do not load."""
        stamp = self._files_stamp()
        if self._loaded is None or stamp != self._stamp:
            bundle = load_bundle(self._directory, self._catalog)
            self._loaded = (bundle, RegoDecisionPoint(bundle))
            self._stamp = stamp
        return self._loaded

    def _files_stamp(self) -> tuple[tuple[str, int, int], ...]:
        if not self._directory.is_dir():
            return ()
        return tuple(
            (str(p), p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(self._directory.rglob("*"))
            if p.suffix in (".rego", ".yaml", ".yml")
        )


@dataclass(frozen=True, slots=True)
class ConsoleSources:
    """The cluster, topics, schemas, registry, policies and enforcers the console shows."""

    bootstrap: str
    topics: TopicNames
    catalog: SchemaCatalog
    registry: Callable[[], PartnerRegistry]  # the registry as accepted now
    # The private sealing keys of the nations whose analysts log in: every
    # delivery is sealed to its recipient, so a console serving a nation's
    # feed holds that nation's keys (one console per nation in a real
    # deployment; the demo's one console holds every nation's).
    keys: DecryptionKeys
    policies: PolicyShelf
    intake_window: IntakeWindow
    probes: tuple[str, ...] = ()  # host:port of each enforcer's /metrics and /readyz
    witnessing: Witnessing = field(default_factory=Witnessing)  # weighed besides the topics
    read_idle_s: float = 1.0  # a topic read to its end: how long nothing new means the end
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    def audit_source(self) -> AuditSource:
        return AuditSource(self.bootstrap, self.topics, self.catalog, self.registry())

    def nations(self) -> list[str]:
        """Every nation with an agency key in the registry, in order."""
        return sorted(self.registry().nations())
