"""Batch processing: from submissions to every output, with no I/O.

:class:`BatchProcessor` is the enforcer's work on one batch (DESIGN.md
decision 2): build the batch context (registry, policy, partners, clock),
then for each submission its delivery statements, intake-ledger line and
decision-log entries, or one rejection; an exception inside one submission
becomes that submission's rejection, never the end of the loop. Then one
signature attests all the batch's statements. A submission the policy could
not decide is not refused (STYLE.md 3): its partition stops there, and
neither it nor a later record of that partition is processed in this batch,
so no output, ledger line, replay memory or audit entry of theirs exists.

It needs no Kafka client, so the runner (broker/enforcer/runtime/runner.py), the
bench's ceiling and the audit replay's recordings all run this same code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from broker.auditlog.bundles import BundleArchiver
from broker.auditlog.entries import AuditEvent, AuditWriter
from broker.enforcer.stages.audit_events import decision_events, refusal_event, submission_ref
from broker.enforcer.stages.context import BatchContext, batch_context
from broker.enforcer.stages.fanout import FanOut, Pending, Routed
from broker.enforcer.stages.intake import Accepted, Intake
from broker.enforcer.stages.rejections import rejection, undecodable_rejection
from broker.enforcer.stages.replay_guard import ledger_record
from broker.errors import PolicyUndecided, RejectedInput
from broker.policy.source import PolicySource
from broker.trust.attestation import BatchAttester
from broker.trust.keys import RegistryFile
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord, Partition, UndecodableBatch
from broker.wire.topics import TopicNames

log = structlog.get_logger("ixb.enforcer")

Clock = Callable[[], dt.datetime]
# Longest stretch of CPU work between two yields to the event loop: a cold
# decision cache made 32 submissions take 2 s, long enough to miss heartbeats.
_YIELD_AFTER_S = 0.002


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class EnforcerStats:
    """Counters for operators, the demo and tests (exported by broker/observability).

    The processor counts what it decided; the runner what Kafka acknowledged.
    """

    submissions: int = 0  # processed (outputs computed)
    completed: int = 0  # processed, outputs acknowledged
    deliveries: int = 0
    held: int = 0  # deliveries put under embargo
    batches: int = 0
    retries: int = 0
    undecided_holds: int = 0  # partitions paused at a submission the policy could not decide
    withheld: Counter[str] = field(default_factory=Counter)  # by reason
    rejected: Counter[str] = field(default_factory=Counter)  # by reason


@dataclass(frozen=True, slots=True)
class Processed:
    """What :meth:`BatchProcessor.process` made of a batch."""

    # Policy bundles not archived before: acknowledged before anything that names them.
    archives: tuple[OutboundRecord, ...]
    outputs: tuple[OutboundRecord, ...]
    # Per partition stopped by an undecided submission, that submission's offset:
    # it and the partition's later records in the batch were not processed.
    stalled: Mapping[Partition, int]

    def done(self, batch: list[InboundRecord]) -> list[InboundRecord]:
        """The records of ``batch`` that were processed: all but the stalled tails."""
        stalled = self.stalled
        return [r for r in batch if r.offset < stalled.get((r.topic, r.partition), r.offset + 1)]


class BatchProcessor:
    """Intake, fan-out, attestation, ledger and decision log for one batch at a time."""

    def __init__(
        self,
        *,
        intake: Intake,
        fanout: FanOut,
        attester: BatchAttester,
        catalog: SchemaCatalog,
        topics: TopicNames,
        registry: RegistryFile,
        policy: PolicySource,
        clock: Clock = utc_now,
        stats: EnforcerStats | None = None,
        archiver: BundleArchiver | None = None,
    ) -> None:
        self.intake = intake
        self.catalog = catalog
        self.topics = topics
        self.policy = policy
        self.clock = clock
        self.stats = stats if stats is not None else EnforcerStats()
        self._fanout = fanout
        self._attester = attester
        self._registry = registry
        self.audit = AuditWriter(catalog)  # this process's chain in the decision log
        # Shared with the embargo releaser, which may be the first to decide under a bundle.
        self.archiver = archiver or BundleArchiver(topics.bundles)

    async def process(self, batch: list[InboundRecord]) -> Processed:
        """Every output for ``batch``; no I/O apart from logging and counters.

        A submission the policy cannot decide stops its partition; the other
        partitions go on. Verification and policy evaluation are
        synchronous CPU work. Yielding to the event loop every
        ``_YIELD_AFTER_S`` keeps the consumer's heartbeats flowing during a
        large batch, and lets the previous batch's acknowledgements and commit
        go through meanwhile (broker/enforcer/runtime/runner.py overlaps the two).
        """
        # a reloaded bundle or registry takes effect here, between batches
        context = batch_context(self._registry, self.policy, self.clock())
        self.intake.replay.forget_older_than(context.now)
        outputs: list[OutboundRecord] = []
        archives = self.archiver.records(context.policy.bundle_hash, context.bundle_archive)
        pending: list[Pending] = []
        stalled: dict[Partition, int] = {}
        since = time.monotonic()
        for inbound in batch:
            partition = (inbound.topic, inbound.partition)
            if partition in stalled:
                continue  # records of a partition are processed in order, or not at all
            if isinstance(inbound, UndecodableBatch):
                # Nothing of it can be read, so nothing is decided: refused, and not
                # in the decision log, which records decisions on submissions.
                self.stats.rejected[inbound.reason] += 1
                outputs.append(
                    undecodable_rejection(self.catalog, self.topics, inbound, context.now)
                )
                continue
            try:
                outputs.extend(self._one(inbound, context, pending))
            except PolicyUndecided as exc:
                stalled[partition] = inbound.offset
                log.warning(
                    "policy_undecided",
                    topic=inbound.topic,
                    partition=inbound.partition,
                    offset=inbound.offset,
                    error=str(exc),
                )
            if time.monotonic() - since >= _YIELD_AFTER_S:
                await asyncio.sleep(0)
                since = time.monotonic()
        # one signature over the batch's statements; each carries its own proof
        attested = self._attester.attest([p.statement for p in pending])
        held_topic = self.topics.held
        outputs.extend(
            p.record(self.catalog, sealed, held_topic)
            for p, sealed in zip(pending, attested, strict=True)
        )
        return Processed(tuple(archives), tuple(outputs), stalled)

    def _one(
        self, inbound: InboundRecord, context: BatchContext, pending: list[Pending]
    ) -> list[OutboundRecord]:
        """The outputs of one submission; its statements go to ``pending`` for attestation.

        PolicyUndecided propagates before anything is recorded (replay memory,
        ledger line, audit entry, counters): the submission is tried again later.
        """
        bound = log.bind(topic=inbound.topic, partition=inbound.partition, offset=inbound.offset)
        try:
            accepted = self.intake.check(inbound, context)
            routed = self._fanout.route(accepted, context)
        except RejectedInput as exc:
            refusal = exc
        except PolicyUndecided:
            raise  # not a deny: process() stops the partition, the runner holds it
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the enforcer
            # The exception text may carry payload values: record only its kind.
            refusal = RejectedInput(
                "internal_error", f"unexpected {type(exc).__name__}", stage="internal"
            )
            bound.error("submission_failed", error_kind=type(exc).__name__)
        else:
            self.stats.submissions += 1
            return self._routed(
                inbound,
                context=context,
                accepted=accepted,
                routed=routed,
                pending=pending,
                bound=bound,
            )
        self.stats.submissions += 1
        origin = self.topics.nation_of_submit_topic(inbound.topic) or ""
        return [
            self._refuse(inbound, refusal, context, bound),
            *self._audited([refusal_event(inbound, refusal, origin, context.now)]),
        ]

    def _routed(
        self,
        inbound: InboundRecord,
        *,
        context: BatchContext,
        accepted: Accepted,
        routed: Routed,
        pending: list[Pending],
        bound: structlog.typing.FilteringBoundLogger,
    ) -> list[OutboundRecord]:
        """Logs, counters, the ledger line and the audit entries of an accepted submission."""
        report = accepted.report
        for recipient, decision in routed.decisions:
            if decision.allow:
                assert decision.agreement is not None
                bound.debug(
                    "delivered",
                    report_id=str(report.report_id),
                    origin=report.origin,
                    recipient=recipient,
                    agreement=decision.agreement.id,
                    agreement_version=decision.agreement.version,
                )
            else:
                self.stats.withheld.update(decision.reasons)
                bound.info(
                    "withheld",
                    report_id=str(report.report_id),
                    origin=report.origin,
                    recipient=recipient,
                    reasons=list(decision.reasons),
                )
        self.stats.held += routed.held
        self.stats.deliveries += len(routed.pending) - routed.held
        pending.extend(routed.pending)
        report_id = str(report.report_id)
        self.intake.replay.remember(report_id, report.issued_at, accepted.position)
        ledger = ledger_record(
            self.catalog,
            self.topics.accepted,
            report_id=report_id,
            origin=report.origin,
            issued_at=report.issued_at,
            payload_sha256=accepted.payload_sha256,
            source=inbound,
            now=context.now,
        )
        events = decision_events(accepted, routed, submission_ref(inbound), context.now)
        return [ledger, *self._audited(events)]

    def _refuse(
        self,
        inbound: InboundRecord,
        refusal: RejectedInput,
        context: BatchContext,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> OutboundRecord:
        self.stats.rejected[refusal.reason] += 1
        bound.warning("rejected", reason=refusal.reason, retriable=refusal.retriable)
        return rejection(self.catalog, self.topics, inbound, refusal, context.now)

    def _audited(self, events: list[AuditEvent]) -> list[OutboundRecord]:
        """The decision-log entries for ``events``, in order, all under this writer's key."""
        return [self.audit.record(self.topics.audit, e) for e in events]
