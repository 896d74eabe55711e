"""Batch processing: from submissions to every output, with no I/O.

:class:`BatchProcessor` is the enforcer's work on one batch (docs/ARCHITECTURE.md,
decision 2): build the batch context (registry, policy, partners, clock),
then for each submission its delivery statements, intake-ledger line and
decision-log entries, or one rejection. The stages say what they made of a
submission as a value (broker/enforcer/stages/outcome.py): accepted and
routed, refused (an unexpected exception inside one submission becomes its
rejection, never the end of the loop), or undecided. Then one signature
attests all the batch's statements, and each is sealed to its recipient
(broker/enforcer/stages/sealing.py). A submission the policy could not
decide is not refused (docs/ARCHITECTURE.md, decision 2): its partition
stops there, and neither it nor a later record of that partition is
processed in this batch, so no output, ledger line, replay memory or audit
entry of theirs exists.

It is a plain synchronous loop (:class:`BatchRun`, fed one submission at a
time) and needs no Kafka client, so the runner
(broker/enforcer/runtime/runner.py, which decides when to yield to the event
loop), the bench's ceiling and the audit replay's recordings all run this
same code.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from broker.auditlog.bundles import BundleArchiver
from broker.auditlog.entries import AuditEvent, AuditWriter
from broker.auditlog.registry_archive import RegistryArchiveWriter
from broker.enforcer.stages.audit_events import decision_events, refusal_event, submission_ref
from broker.enforcer.stages.context import BatchContext, batch_context
from broker.enforcer.stages.fanout import FanOut, Pending, Routed
from broker.enforcer.stages.intake import Accepted, Intake
from broker.enforcer.stages.outcome import Refused, Undecided
from broker.enforcer.stages.rejections import rejection, undecodable_rejection
from broker.enforcer.stages.replay_guard import ledger_record
from broker.enforcer.stages.sealing import BatchSeals
from broker.errors import RejectedInput
from broker.policy.source import PolicySource
from broker.trust.attestation import BatchAttester
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord, Partition, UndecodableBatch
from broker.wire.topics import TopicNames

log = structlog.get_logger("ixb.enforcer")

Clock = Callable[[], dt.datetime]


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
        self._unstamped: set[str] = set()  # submit topics seen without Kafka's append time
        # Shared with the embargo releaser, which may be the first to decide under a bundle.
        self.archiver = archiver or BundleArchiver(topics.bundles)
        self._registry_archive = RegistryArchiveWriter(catalog, topics.registry)

    def process(self, batch: Iterable[InboundRecord]) -> Processed:
        """Every output for ``batch``, in one go (the bench's ceiling, replay, tests)."""
        run = self.start()
        for inbound in batch:
            run.feed(inbound)
        return run.close()

    def start(self) -> BatchRun:
        """A new batch: fed one submission at a time, then closed for its outputs.

        The runtime feeds it and decides when to yield to the event loop in
        between (broker/enforcer/runtime/runner.py); nothing here waits.
        A reloaded bundle or registry takes effect here, between batches.
        """
        context = batch_context(self._registry, self.policy, self.clock())
        self.intake.replay.forget_older_than(context.now)
        archives = self.archiver.records(context.policy.bundle_hash, context.bundle_archive)
        document, digest = context.registry_document, context.registry_hash
        if document is not None and digest is not None:  # signatures are checked against it
            archives += self.archiver.once(self._registry_archive.record(document, digest))
        return BatchRun(self, context, archives)

    def outputs_of(
        self, inbound: InboundRecord, context: BatchContext, pending: list[Pending]
    ) -> list[OutboundRecord] | Undecided:
        """The outputs of one submission, its statements to ``pending``; or Undecided.

        Undecided leaves nothing recorded (replay memory, ledger line, audit
        entry, counters): the submission is tried again later.
        """
        if isinstance(inbound, UndecodableBatch):
            # Nothing of it can be read, so nothing is decided: refused, and not
            # in the decision log, which records decisions on submissions.
            self.stats.rejected[inbound.reason] += 1
            return [undecodable_rejection(self.catalog, self.topics, inbound, context.now)]
        bound = log.bind(topic=inbound.topic, partition=inbound.partition, offset=inbound.offset)
        if not inbound.log_append_time and inbound.topic not in self._unstamped:
            self._unstamped.add(inbound.topic)  # said once per topic and process
            bound.warning(
                "submit_topic_not_stamped_by_kafka",
                hint="set message.timestamp.type=LogAppendTime on it; until then keys are "
                "judged at the enforcer's clock when it reads a record, which is stricter",
            )
        checked = self.intake.check(inbound, context)
        outcome = self._fanout.route(checked, context) if isinstance(checked, Accepted) else checked
        if isinstance(outcome, Undecided):
            return outcome
        self.stats.submissions += 1
        if isinstance(outcome, Refused):
            if outcome.unexpected is not None:
                bound.error("submission_failed", error_kind=outcome.unexpected)
            origin = self.topics.nation_of_submit_topic(inbound.topic) or ""
            return [
                self._refuse(inbound, outcome.error, context, bound),
                *self._audited(
                    [
                        refusal_event(
                            inbound,
                            outcome.error,
                            origin,
                            context.now,
                            registry_hash=context.registry_hash,
                        )
                    ]
                ),
            ]
        assert isinstance(checked, Accepted)  # only an accepted submission is routed
        return self._routed(
            inbound, context=context, accepted=checked, routed=outcome, pending=pending, bound=bound
        )

    def attested(self, pending: list[Pending], context: BatchContext) -> list[OutboundRecord]:
        """One signature over the batch's statements, then each sealed for where it goes.

        Each record carries its own proof and its own sealed content key; the
        batch shares one content key per recipient (broker/enforcer/stages/sealing.py).
        """
        attested = self._attester.attest([p.statement for p in pending])
        seals = BatchSeals(context.registry, held_topic=self.topics.held, at=context.now)
        return [p.record(self.catalog, a, seals) for p, a in zip(pending, attested, strict=True)]

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
        submission = submission_ref(inbound)
        pending.extend(p.from_submission(submission) for p in routed.pending)
        self.intake.remember(accepted)
        ledger = ledger_record(
            self.catalog,
            self.topics.accepted,
            report_id=str(report.report_id),
            origin=report.origin,
            issued_at=report.issued_at,
            payload_sha256=accepted.payload_sha256,
            source=inbound,
            now=context.now,
        )
        events = decision_events(
            accepted,
            routed,
            submission,
            context.now,
            registry_hash=context.registry_hash,  # what intake checked the signature against
        )
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


class BatchRun:
    """One batch being processed: :meth:`feed` each submission in order, then :meth:`close`.

    A plain synchronous loop body. Records of one partition are processed in
    order or not at all: after an undecided submission, the rest of its
    partition in this batch is skipped (and fetched again later).
    """

    __slots__ = ("_archives", "_context", "_outputs", "_pending", "_processor", "_stalled")

    def __init__(
        self, processor: BatchProcessor, context: BatchContext, archives: list[OutboundRecord]
    ) -> None:
        self._processor = processor
        self._context = context
        self._archives = archives
        self._outputs: list[OutboundRecord] = []
        self._pending: list[Pending] = []
        self._stalled: dict[Partition, int] = {}

    def feed(self, inbound: InboundRecord) -> None:
        partition = (inbound.topic, inbound.partition)
        if partition in self._stalled:
            return
        outputs = self._processor.outputs_of(inbound, self._context, self._pending)
        if isinstance(outputs, Undecided):
            self._stalled[partition] = inbound.offset
            log.warning(
                "policy_undecided",
                topic=inbound.topic,
                partition=inbound.partition,
                offset=inbound.offset,
                error=str(outputs.error),
            )
            return
        self._outputs.extend(outputs)

    def close(self) -> Processed:
        """The batch's outputs, its statements attested with one signature."""
        self._outputs.extend(self._processor.attested(self._pending, self._context))
        return Processed(tuple(self._archives), tuple(self._outputs), self._stalled)
