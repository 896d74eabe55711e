"""``ixb.bundles``: every policy bundle the enforcer decided with, written before it decides.

A decision names its bundle by content hash; an auditor re-running it needs
exactly that bundle, so no output decided under a bundle may exist while the
bundle is not archived. The enforcer therefore writes the archive of its
bundle at start-up, and :class:`BundleArchiver` puts the archive of a bundle
it has not written yet first among the outputs of the batch that is the
first to be decided under it (a reload takes effect between batches); the
batch's outputs are all acknowledged before its offsets are committed, so a
batch redone after a failure writes it again.

:class:`BundleShelf` is the auditor's side: the archives read back from the
topic, indexed by the hash they claim, each loaded (and its hash checked)
only when a decision asks for it, and turned into a decision point once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from broker.errors import ConfigurationError, DecodeError, IxbError, VerificationError
from broker.policy import PolicyDecisionPoint
from broker.policy.archive import decode_archive, load_archived_bundle
from broker.policy.bundle import PolicyBundle
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord

__all__ = ["BundleArchiver", "BundleShelf"]


class BundleArchiver:
    """Which bundles (and registry versions) this process has archived; the records for the rest.

    Not thread-safe: shared by the enforcer and the embargo releaser on one
    event loop. A bundle counts as written only once Kafka acknowledged its
    record (:meth:`acknowledged`): until then every caller gets the record
    and sends it before what it decided under the bundle, so neither can
    name a bundle that is not archived while the other is still retrying.
    A bundle written twice is harmless (readers keep one per hash). The
    registry's archive records (broker/auditlog/registry_archive.py) go the
    same way (:meth:`once`), so the commit path acknowledges both alike.
    """

    __slots__ = ("_topic", "_written")

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._written: set[tuple[str, bytes]] = set()

    def records(self, bundle_hash: str, archive: bytes | None) -> list[OutboundRecord]:
        """The archive's record if ``bundle_hash`` was not written yet, else nothing.

        A bundle without an archive cannot be written, so nothing may be
        decided under it: ConfigurationError (a policy built in memory was
        given to an enforcer that archives).
        """
        if (self._topic, bundle_hash.encode()) in self._written:
            return []
        if archive is None:
            raise ConfigurationError(f"policy bundle {bundle_hash} has no archive to write")
        return [OutboundRecord(topic=self._topic, key=bundle_hash.encode(), value=archive)]

    def once(self, record: OutboundRecord) -> list[OutboundRecord]:
        """``record`` (an archive keyed by what it archives) unless it was acknowledged."""
        return [] if (record.topic, record.key) in self._written else [record]

    def acknowledged(self, records: Iterable[OutboundRecord]) -> None:
        """Kafka acknowledged these records from :meth:`records`: their bundles are written."""
        self._written.update((r.topic, r.key) for r in records if r.key is not None)


BuildPoint = Callable[[PolicyBundle], PolicyDecisionPoint]


class BundleShelf:
    """Archived bundles by content hash, loaded and made decision points on first use.

    ``point`` raises VerificationError for a hash no archive claims
    (``bundle_not_archived``) or whose archive does not load as that hash
    (``bundle_hash_mismatch``, ``bundle_unloadable``, or a decode reason);
    the failure is remembered, so a bad archive costs one attempt.
    """

    __slots__ = ("_build", "_catalog", "_failed", "_points", "_raw", "undecodable")

    def __init__(
        self, archives: Iterable[bytes], catalog: SchemaCatalog, build: BuildPoint
    ) -> None:
        self._catalog = catalog
        self._build = build
        self._raw: dict[str, list[bytes]] = {}
        self._points: dict[str, PolicyDecisionPoint] = {}
        self._failed: dict[str, VerificationError] = {}
        self.undecodable = 0  # archive records that are not archives at all
        for data in archives:
            try:
                claimed = decode_archive(catalog, data).content_hash
            except DecodeError:
                self.undecodable += 1
                continue
            copies = self._raw.setdefault(claimed, [])
            if data not in copies:  # every restart writes its bundle again
                copies.append(data)

    def point(self, bundle_hash: str) -> PolicyDecisionPoint:
        point = self._points.get(bundle_hash)
        if point is not None:
            return point
        failed = self._failed.get(bundle_hash)
        if failed is not None:
            raise failed
        try:
            point = self._points[bundle_hash] = self._load(bundle_hash)
        except VerificationError as exc:
            self._failed[bundle_hash] = exc
            raise
        return point

    def _load(self, bundle_hash: str) -> PolicyDecisionPoint:
        copies = self._raw.get(bundle_hash)
        if not copies:
            raise VerificationError(
                "bundle_not_archived", f"no archive of bundle {bundle_hash}", stage="archive"
            )
        first: IxbError | None = None
        for data in copies:  # a forged copy must not hide the genuine one
            try:
                return self._build(load_archived_bundle(self._catalog, data))
            except (DecodeError, VerificationError, ConfigurationError) as exc:
                first = first or exc
        assert first is not None
        if isinstance(first, VerificationError):
            raise first
        raise VerificationError(
            "bundle_unloadable",
            f"the archive of {bundle_hash} does not make a decision point",
            stage="archive",
        ) from first
