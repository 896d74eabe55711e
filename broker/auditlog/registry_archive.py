"""``ixb.registry``: every partner-registry version the enforcer checked signatures against.

A decision's signatures were checked against the registry of that moment; a
key rotated away or revoked later (backdated, after a compromise) would make
a replay against today's registry differ where nothing was wrong. So the
enforcer archives each registry version it uses, by its content hash
(broker/trust/governance.py), before anything is decided under it, as it
does for policy bundles (broker/auditlog/bundles.py), and every decision-log
entry names the hash (``registry_hash``).

Each record (``ixb.v1.RegistryArchive``) holds the signed document exactly
as it was on disk and ``previous_hash``: the version the same process used
before (null for the first after a start). Keyed by
``<content hash>/<previous hash or root>``, so compaction keeps every link.

:class:`RegistryHistory` is the auditor's side. A version is believed only if

1. its document parses and hashes to the content hash the record claims;
2. it is accepted under the governance of the archived version just before
   it by version number (``accept`` of broker/trust/governance.py: the
   predecessor's threshold of governance keys signed it, it is not dated
   before it, the same version is not archived with other content, ...);
   the oldest archived version under the trust anchor the auditor pins
   (``trusted``), else on its own governance alone. A version the enforcer
   never used is not archived: a governance change made in one breaks the
   chain there, and the versions after it are refused rather than guessed.

Anything else is named in :attr:`RegistryHistory.refused` and gives no
registry: what was decided under it cannot be replayed as trusted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from broker.errors import DecodeError, RegistryRefused
from broker.trust.governance import (
    AcceptedState,
    RegistryDocument,
    TrustedGovernance,
    accept,
    content_hash,
    document_bytes,
    parse_document,
)
from broker.trust.records import KeyRecord, PartnerRegistry
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord

__all__ = [
    "REGISTRY_ARCHIVE_SCHEMA",
    "ArchivedRegistry",
    "RegistryArchiveWriter",
    "RegistryHistory",
    "decode_registry_archive",
    "encode_registry_archive",
]

REGISTRY_ARCHIVE_SCHEMA = "ixb.v1.RegistryArchive"
_CHUNK_BYTES = 32 * 1024
_ROOT = "root"


@dataclass(frozen=True, slots=True)
class ArchivedRegistry:
    """One archived version: its hash (checked), its predecessor link, the document."""

    content_hash: str
    previous_hash: str | None
    document: RegistryDocument

    @property
    def version(self) -> int:
        return self.document.version


def encode_registry_archive(
    catalog: SchemaCatalog, document: RegistryDocument, previous_hash: str | None
) -> bytes:
    data = document_bytes(document)
    return catalog.encode(
        REGISTRY_ARCHIVE_SCHEMA,
        {
            "content_hash": content_hash(document),
            "version": document.version,
            "previous_hash": previous_hash,
            "chunks": [data[i : i + _CHUNK_BYTES] for i in range(0, len(data), _CHUNK_BYTES)],
        },
    )


def decode_registry_archive(catalog: SchemaCatalog, data: bytes) -> ArchivedRegistry:
    """The archived version; DecodeError when it does not decode or its hash does not hold."""
    record = catalog.decode(data, REGISTRY_ARCHIVE_SCHEMA)
    try:
        document = parse_document(b"".join(record["chunks"]))
    except RegistryRefused as exc:
        raise DecodeError("registry_archive_invalid", exc.detail) from exc
    claimed = record["content_hash"]
    if content_hash(document) != claimed or document.version != record["version"]:
        raise DecodeError(
            "registry_hash_mismatch",
            f"the archived registry does not hash to {claimed} (or is another version)",
        )
    return ArchivedRegistry(claimed, record["previous_hash"], document)


class RegistryArchiveWriter:
    """The enforcer's side: the archive record of the registry version it is about to use.

    Remembers the version this process used last, to link the next one to
    it; the encoding is made once per version. Not thread-safe: one per
    processor, on one event loop (like the bundle archiver it feeds).
    """

    __slots__ = ("_catalog", "_current", "_encoded", "_previous", "_topic")

    def __init__(self, catalog: SchemaCatalog, topic: str) -> None:
        self._catalog = catalog
        self._topic = topic
        self._current: str | None = None
        self._previous: str | None = None
        self._encoded: dict[str, OutboundRecord] = {}

    def record(self, document: RegistryDocument, digest: str) -> OutboundRecord:
        """The archive record of ``document`` (of content hash ``digest``), linked to the
        version used before it."""
        if digest != self._current:
            self._previous, self._current = self._current, digest
        known = self._encoded.get(digest)
        if known is None:
            value = encode_registry_archive(self._catalog, document, self._previous)
            key = f"{digest}/{self._previous or _ROOT}".encode()
            known = self._encoded[digest] = OutboundRecord(self._topic, key, value)
        return known


class RegistryHistory:
    """Archived registry versions by content hash, each believed only as the module says."""

    __slots__ = ("_by_hash", "refused", "undecodable")

    def __init__(
        self,
        archives: Iterable[bytes],
        catalog: SchemaCatalog,
        *,
        trusted: TrustedGovernance | None = None,
    ) -> None:
        self.undecodable = 0
        self.refused: dict[str, str] = {}  # content hash -> why it is not believed
        versions: dict[str, ArchivedRegistry] = {}
        for data in archives:
            try:
                archived = decode_registry_archive(catalog, data)
            except DecodeError:
                self.undecodable += 1
                continue
            versions.setdefault(archived.content_hash, archived)
        self._by_hash = self._believed(sorted(versions.values(), key=_order), trusted)

    def _believed(
        self, ordered: list[ArchivedRegistry], trusted: TrustedGovernance | None
    ) -> dict[str, ArchivedRegistry]:
        believed: dict[str, ArchivedRegistry] = {}
        last: AcceptedState | None = None
        for archived in ordered:
            document = archived.document
            try:
                # Judged as of its own date: validity windows are the signers' at issue time.
                state = accept(
                    document,
                    last=last,
                    anchor=trusted if last is None else None,
                    now=document.issued_at,
                )
            except RegistryRefused as exc:
                self.refused[archived.content_hash] = exc.reason
                continue
            believed[archived.content_hash] = archived
            last = state
        return believed

    def __len__(self) -> int:
        return len(self._by_hash)

    def registry(self, content_hash: str) -> PartnerRegistry | None:
        """The registry of that version, if it is archived and believed."""
        document = self.document(content_hash)
        return None if document is None else document.registry()

    def document(self, content_hash: str) -> RegistryDocument | None:
        """The signed document of that version, if it is archived and believed."""
        archived = self._by_hash.get(content_hash)
        return None if archived is None else archived.document

    def union(self, current: PartnerRegistry) -> PartnerRegistry:
        """``current`` plus every key only older versions still list, as they listed it last.

        For checking what a key rotated away since signed (a checkpoint,
        batch attestations): a key in ``current`` keeps its current record,
        so a revocation known today still applies.
        """
        keys: dict[str, KeyRecord] = {}
        for archived in sorted(self._by_hash.values(), key=_order):
            for key in archived.document.keys:
                keys[key.key_id] = key
        keys.update({k.key_id: k for k in current.records()})
        return PartnerRegistry(
            keys.values(), governance=current.governance, version=current.version
        )


def _order(archived: ArchivedRegistry) -> tuple[int, dt.datetime, str]:
    return (archived.version, archived.document.issued_at, archived.content_hash)
