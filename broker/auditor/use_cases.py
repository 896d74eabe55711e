"""The auditor's use cases over a live decision log: verify it, sign checkpoints, receipts, replay.

The decision log is ``ixb.audit``: one Merkle tree (RFC 6962) per partition,
its leaves the entries in offset order (broker/auditlog/). Each use case
reads what it needs from Kafka, then hands it to the pure checks beside it:

- :func:`verify_audit` recomputes every tree from the log, checks every
  checkpoint's signature and every consistency step and names the first bad
  entry (broker/auditor/verify.py); it weighs checkpoints held outside the
  broker (files, the partners' witnesses) and can require a quorum of
  witnesses' cosignatures (broker/auditor/views.py);
- :func:`sign_checkpoints` signs the current size and root of every
  partition with the broker's newest usable key and writes them to
  ``ixb.audit.checkpoints`` (the running broker also does so periodically),
  never a size whose root contradicts a checkpoint signed before;
- :func:`issue_receipt` makes a self-contained receipt for one delivery's
  entry, which its holder checks offline against the registry alone;
- :func:`replay_audit` re-runs the logged decisions with the archived
  bundles (``ixb.bundles``) and submissions, and names every one that comes
  out otherwise (broker/auditor/replay.py); :func:`replayer_for` builds the
  replayer it uses, for callers that hold entries in memory (the bench).

Arguments are typed values (:class:`~broker.auditor.source.AuditSource`, a
keystore, an :class:`IntakeWindow`), never settings: ``ixb audit`` builds them
at its edge and renders what comes back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from broker.auditlog.bundles import BundleShelf
from broker.auditlog.checkpoints import (
    Checkpoint,
    Checkpointer,
    checkpoint_verifier,
    decode_checkpoint,
    encode_checkpoint,
    signed_checkpoints,
)
from broker.auditlog.entries import FirstWritten, Outcome, decode_entry
from broker.auditlog.receipt_registry import with_registry
from broker.auditlog.receipts import Receipt, receipt_for_delivery
from broker.auditlog.registry_archive import RegistryHistory
from broker.auditlog.witness_client import WitnessClient
from broker.auditlog.witnessed import WitnessKeys
from broker.auditor.held import fetch_latest, open_held
from broker.auditor.received import ReceivedViews
from broker.auditor.replay import LoggedEntry, Replayer, ReplayFilter, ReplayReport
from broker.auditor.source import IDLE_TIMEOUT_S, AuditSource, Logs, read_logs, read_values
from broker.auditor.verify import VerificationReport, verify_log
from broker.enforcer.stages.intake import Intake
from broker.enforcer.stages.replay_guard import Position, ReplayGuard
from broker.errors import DecodeError
from broker.kafka.admin import TopicAdmin
from broker.kafka.producer import OutputProducer
from broker.kafka.reader import read_topic
from broker.policy import PolicyDecisionPoint
from broker.policy.bundle import PolicyBundle
from broker.policy.cache import CachedDecisionPoint
from broker.policy.rego import RegoDecisionPoint
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole, PartnerRegistry
from broker.trust.sd.layout import ReportLayout
from broker.trust.sealing.envelope import Opener
from broker.trust.sealing.keys import DecryptionKeys
from broker.trust.sealing.parties import auditor_party
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord
from broker.wire.topics import TopicNames

__all__ = [
    "IntakeWindow",
    "Witnessing",
    "issue_receipt",
    "replay_audit",
    "replayer_for",
    "sign_checkpoints",
    "verify_audit",
]


@dataclass(frozen=True, slots=True)
class IntakeWindow:
    """The enforcer's time limits a replay judges intake by, as the enforcer was configured."""

    max_clock_skew: dt.timedelta
    max_report_age: dt.timedelta


async def _checkpoint_records(source: AuditSource) -> list[tuple[int, bytes]]:
    """Every record of the checkpoint topic, partition by partition, in offset order."""
    logs = await read_logs(source.bootstrap, source.topics.audit_checkpoints)
    return [record for records in logs.values() for record in records]


@dataclass(frozen=True, slots=True)
class Witnessing:
    """What ``verify`` weighs besides the broker's topics, and the quorum it requires."""

    held: Sequence[tuple[str, bytes]] = ()  # (where from, C2SP checkpoint note)
    witnesses: Sequence[WitnessClient] = ()  # asked for their latest cosigned checkpoints
    quorum: int = 0  # partners' witnesses that must have cosigned a checkpoint the log matches


async def verify_audit(
    source: AuditSource, witnessing: Witnessing = Witnessing()
) -> tuple[list[VerificationReport], Logs]:
    """Verify every log of the decision log; the reports, and the logs as read.

    A log the held checkpoints or the checkpoint topic name but the audit
    topic no longer has (a partition emptied) is verified as an empty log,
    so its checkpoints show it was cut back.
    """
    logs = await read_logs(source.bootstrap, source.topics.audit)
    checkpoint_records = await _checkpoint_records(source)
    checkpoints = [value for _, value in checkpoint_records]
    named = {*logs, *_logs_named(source.catalog, checkpoints)}
    notes = [*witnessing.held]
    notes += await fetch_latest(source, witnessing.witnesses, named)
    held = open_held(source, notes)
    registry = (await registry_history(source)).union(source.registry)
    verify = checkpoint_verifier(registry)  # a broker key rotated away still verifies its past
    witnesses = WitnessKeys(registry)
    reports = [
        verify_log(
            log_id,
            logs.get(log_id, []),
            checkpoints,
            verify,
            catalog=source.catalog,
            held=held.get(log_id, ()),
            witnesses=witnesses,
            quorum=witnessing.quorum,
        )
        for log_id in sorted({*named, *held})
    ]
    return reports, logs


def _logs_named(catalog: SchemaCatalog, checkpoints: Sequence[bytes]) -> set[str]:
    named = set()
    for value in checkpoints:
        try:
            named.add(decode_checkpoint(catalog, value).log_id)
        except DecodeError:
            continue  # verify names it
    return named


async def sign_checkpoints(source: AuditSource, keystore: Keystore) -> list[Checkpoint]:
    """Sign and publish every log's current size and root with the newest usable broker key."""
    record = keystore.newest_usable(source.registry, role=KeyRole.BROKER, nation=None)
    signer = keystore.private_key(record.key_id)
    now = dt.datetime.now(dt.UTC)
    catalog, topics = source.catalog, source.topics
    earlier, _ = signed_checkpoints(
        catalog, await _checkpoint_records(source), checkpoint_verifier(source.registry)
    )
    signed = []
    for log_id, records in (await read_logs(source.bootstrap, topics.audit)).items():
        checkpointer = Checkpointer(log_id, signer, lambda: now, origin_prefix=source.origin_prefix)
        checkpointer.extend(records)
        for before in earlier.get(log_id, []):  # still what was signed: never sign a fork
            checkpointer.resume(before)
        signed.append(checkpointer.checkpoint())
    admin = TopicAdmin(source.bootstrap)
    producer = OutputProducer(
        source.bootstrap, admin, client_id="ixb-audit-checkpoint", idempotent=source.idempotent
    )
    await admin.start()
    await producer.start()
    try:
        await producer.send_all(
            [
                OutboundRecord(
                    topics.audit_checkpoints, c.log_id.encode(), encode_checkpoint(catalog, c)
                )
                for c in signed
            ]
        )
    finally:
        await producer.stop()
        await admin.close()
    return signed


async def issue_receipt(
    source: AuditSource, delivery_id: str, outcome: Outcome | None = None, *, quorum: int = 0
) -> Receipt:
    """A self-contained receipt for a delivery's latest entry, under its latest checkpoint.

    With a ``quorum``, the latest checkpoint that many partners' witnesses cosigned.
    """
    logs = await read_logs(source.bootstrap, source.topics.audit)
    checkpoints = []
    for _, value in await _checkpoint_records(source):
        try:
            checkpoints.append(decode_checkpoint(source.catalog, value))
        except DecodeError:
            continue  # ``ixb audit verify`` names it
    history = await registry_history(source)
    registry = history.union(source.registry)  # keys rotated away since still verify
    issued = receipt_for_delivery(
        logs,
        checkpoints,
        delivery_id,
        checkpoint_verifier(registry),
        catalog=source.catalog,
        outcome=outcome,
        witnesses=WitnessKeys(registry),
        quorum=quorum,
    )
    named = decode_entry(source.catalog, issued.entry or b"").event.registry_hash
    return with_registry(issued, None if named is None else history.document(named))


async def registry_history(source: AuditSource) -> RegistryHistory:
    """The registry versions archived on ``ixb.registry``, each believed as it holds."""
    return RegistryHistory(
        await read_values(source.bootstrap, source.topics.registry), source.catalog
    )


def replayer_for(
    catalog: SchemaCatalog,
    registry: PartnerRegistry,
    archives: list[bytes],
    *,
    topics: TopicNames,
    window: IntakeWindow,
    keys: DecryptionKeys,
    cached: bool = True,
    registry_archives: Sequence[bytes] = (),
) -> Replayer:
    """A replayer judging intake as the enforcer does and deciding with regopy in-process.

    ``keys`` are the auditor's own: a submission from XX is opened with XX's
    data-protection authority's key, which the agency sealed it to beside
    the broker's (broker/trust/sealing/routes.py); entries of reports from
    nations whose authority's key is not among them are counted, not
    replayed (broker/auditor/replay.py, "Who replays what").

    The archived Rego and data are what decided, whichever engine evaluated
    them (regopy or an OPA server): both go through one decision contract.
    ``cached`` puts each bundle behind the enforcer's own decision cache
    (broker/policy/cache.py); without it every decision is evaluated in Rego
    (about 10 ms each here), independently of the cache's reasoning.
    """

    def build(bundle: PolicyBundle) -> PolicyDecisionPoint:
        point = RegoDecisionPoint(bundle)
        return CachedDecisionPoint(point, bundle.time_boundaries_s()) if cached else point

    layout = ReportLayout.from_catalog(catalog)
    openers: dict[str, Opener] = {}

    def opener_for(origin: str) -> Opener:
        return openers.setdefault(origin, Opener(keys, auditor_party(origin)))

    intake = Intake(
        catalog,
        topics,
        max_clock_skew=window.max_clock_skew,
        replay=ReplayGuard(window.max_report_age),
        openers=opener_for,
        layout=layout,
    )
    shelf = BundleShelf(archives, catalog, build)
    history = RegistryHistory(registry_archives, catalog)
    authorities = frozenset(
        k.nation
        for k in registry.records()
        if k.role is KeyRole.AUDITOR
        and k.nation is not None
        and keys.decryption_key(k.key_id) is not None
    )
    return Replayer(
        intake, registry, shelf, ReceivedViews(layout), authorities=authorities, registries=history
    )


async def replay_audit(
    source: AuditSource,
    admit: ReplayFilter,
    window: IntakeWindow,
    *,
    keys: DecryptionKeys,
    cached: bool = True,
) -> ReplayReport:
    """Read the log, the bundle archives and the submissions it names; replay what ``admit`` asks.

    Entries are replayed in the order of their time (then log and offset).
    """
    bootstrap, topics, catalog = source.bootstrap, source.topics, source.catalog
    entries, undecodable, first = [], 0, FirstWritten()
    for log_id, records in (await read_logs(bootstrap, topics.audit)).items():
        for offset, value in records:
            try:
                entry = decode_entry(catalog, value)
            except DecodeError:
                undecodable += 1  # named by `ixb audit verify`
                continue
            if admit.admits(entry.event) and first.first(entry, value):
                entries.append(LoggedEntry(log_id, offset, entry))
    entries.sort(key=lambda e: (e.entry.event.at, e.log_id, e.offset))
    archives = await read_values(bootstrap, topics.bundles)
    registry_archives = await read_values(bootstrap, topics.registry)
    wanted = {
        (ref.topic, ref.partition, ref.offset)
        for e in entries
        if (ref := e.entry.event.submission) is not None
    }
    submissions: dict[Position, InboundRecord] = {}
    for topic in sorted({topic for topic, _, _ in wanted}):
        async for record in read_topic(bootstrap, topic, idle_timeout_s=IDLE_TIMEOUT_S):
            position = (record.topic, record.partition, record.offset)
            if position in wanted:
                submissions[position] = record
    replayer = replayer_for(
        catalog,
        source.registry,
        archives,
        topics=topics,
        window=window,
        keys=keys,
        cached=cached,
        registry_archives=registry_archives,
    )
    report = replayer.replay(entries, submissions)
    unread = {"undecodable_entry": undecodable, "repeated_entry": first.repeats}
    if any(unread.values()):
        skipped = {**report.skipped, **{k: n for k, n in unread.items() if n}}
        report = dataclasses.replace(report, skipped=skipped)
    return report
