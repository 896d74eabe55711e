"""What every stage may consult while processing one batch.

Built by the runner once per batch, so a registry or policy change takes
effect between batches, never in the middle of one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from broker.policy import PolicyDecisionPoint
from broker.policy.source import PolicySource
from broker.trust.governance import RegistryDocument
from broker.trust.records import PartnerRegistry
from broker.trust.registry_file import RegistryFile


@dataclass(frozen=True, slots=True)
class BatchContext:
    registry: PartnerRegistry
    policy: PolicyDecisionPoint
    partners: frozenset[str]  # every nation a report could be delivered to
    now: dt.datetime
    bundle_archive: bytes | None = None  # of ``policy``'s bundle, for ixb.bundles
    registry_document: RegistryDocument | None = None  # the signed version, for ixb.registry
    registry_hash: str | None = None  # its content hash: decision-log entries name it


def batch_context(registry: RegistryFile, policy: PolicySource, now: dt.datetime) -> BatchContext:
    """The context for the next batch: a changed registry or policy takes effect here."""
    current_registry, document, document_hash = registry.current_and_document()
    current_policy = policy.current()
    return BatchContext(
        registry=current_registry,
        policy=current_policy.point,
        partners=current_policy.parties | current_registry.nations(),
        now=now,
        bundle_archive=current_policy.archive,
        registry_document=document,
        registry_hash=document_hash,
    )
