"""Embargo: deliveries held in Kafka until they are due, then released.

Fan-out writes an embargoed delivery, already derived and attested, to the
held topic (``ixb.held``) instead of the recipient's topic, sealed whole to
the broker (broker/enforcer/stages/sealing.py). The releaser reads that
topic as its own consumer group, opens each record with the broker's key,
keeps what is not yet due in memory (a delivery held by ixb 0.2, before
sealing, is read as it lies), and when an item falls due asks the current
policy again:

* still allowed under the same agreement with the same field rules: the
  stored statement, unchanged, is sealed to the recipient's sealing key of
  the day (one content key per recipient per release) and produced to the
  recipient's topic; a recipient with no valid sealing key by then is
  refused like a changed agreement (reason ``no_sealing_key``);
* allowed, but with a later not-before (the embargo was lengthened): held on;
* refused, or allowed under other rules or another agreement (the agreement
  changed during the embargo): not delivered, and a refusal with the reasons
  goes to the origin's rejected topic, where the originator can see it;
* the policy cannot decide: held on and asked again later (fail closed).

Offsets of the held topic are committed only up to the first item of each
partition that is still pending, so after a restart (or a rebalance) every
item not yet released is read again: a held delivery survives restarts and
is released at least once. Deliveries keep their delivery id, so a repeated
release is de-duplicated by the recipient like any other repeat.

Each release or refusal is also an entry of the decision log (``released`` /
``release_refused``), produced in the same ``send_all`` as the delivery or
the refusal, so both are acknowledged together. The releaser chains its
entries with its own :class:`AuditWriter`, not the enforcer's: the enforcer
computes a whole batch of entries before it sends them and re-sends them on
failure, so a second task taking numbers from the same chain in between
would land out of sequence in the partition. For the same reason a release
that was not acknowledged is sent again exactly as it was (same records,
same entries) before anything else is decided: deciding it afresh would
leave the first attempt's chain numbers as a gap, or a different entry
under a number already written.

When the group takes partitions of the held topic away, :meth:`EmbargoReleaser.forget`
drops what was read from them: their next owner reads those items again from
the committed offset and releases them; keeping them here would release them
twice and hold their memory for nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from broker.auditlog.bundles import BundleArchiver
from broker.auditlog.entries import AuditWriter
from broker.domain.decisions import DecisionInput
from broker.enforcer.runtime.commit import CommitPath, Outputs
from broker.enforcer.stages.audit_events import release_event
from broker.enforcer.stages.derive import effective_rules
from broker.enforcer.stages.fanout import HELD_SCHEMA, delivery_record, rules_digest
from broker.enforcer.stages.rejections import rejection
from broker.enforcer.stages.sealing import BatchSeals, sealable
from broker.errors import PolicyUndecided, RejectedInput, TransportError
from broker.kafka.base import BatchConsumer, BatchProducer
from broker.policy.source import PolicySource
from broker.trust.attestation import open_attested
from broker.trust.records import PartnerRegistry
from broker.trust.sd.statement import DELIVERY_SCHEMA
from broker.trust.sealing.envelope import Opener, read_sealed
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord, Partition
from broker.wire.topics import TopicNames

log = structlog.get_logger("ixb.embargo")

Clock = Callable[[], dt.datetime]


@dataclass(order=True, slots=True)
class _Pending:
    due_s: float
    partition: int
    offset: int
    inbound: InboundRecord = field(compare=False)
    held: dict[str, Any] = field(compare=False)
    decision_input: DecisionInput = field(compare=False)  # parsed once, at admission
    statement_sha256: bytes = field(compare=False)  # of the attested payload, for the audit


@dataclass(frozen=True, slots=True)
class _Release:
    """Outputs decided for some due items, to be sent (again) until acknowledged."""

    archives: list[OutboundRecord]  # bundles first archived here: acknowledged first
    outputs: list[OutboundRecord]
    done: list[_Pending]


@dataclass
class EmbargoStats:
    released: int = 0
    refused: int = 0
    malformed: int = 0


class EmbargoReleaser:
    def __init__(
        self,
        *,
        consumer: BatchConsumer,
        producer: BatchProducer,
        catalog: SchemaCatalog,
        topics: TopicNames,
        policy: PolicySource,
        clock: Clock,
        audit: AuditWriter,
        archiver: BundleArchiver,
        opener: Opener,
        registry: Callable[[], PartnerRegistry],
        retry_after_s: float = 5.0,
    ) -> None:
        self._consumer = consumer
        self._opener = opener  # the broker's: held deliveries are sealed to it
        self._registry = registry
        # The archiver is shared with the enforcer: one loop, one set of bundles written.
        self._commits = CommitPath(producer, archiver=archiver, consumer=consumer)
        self._catalog = catalog
        self._topics = topics
        self._policy = policy
        self._clock = clock
        self._retry_after_s = retry_after_s
        self._audit = audit
        self._archiver = archiver
        self._unacknowledged: _Release | None = None
        self._queue: list[_Pending] = []
        self._pending: dict[int, set[int]] = {}  # partition -> offsets not yet done
        self._seen: dict[int, int] = {}  # partition -> next offset after the last record read
        self._committed: dict[int, int] = {}
        self.stats = EmbargoStats()

    @property
    def waiting(self) -> int:
        """Held deliveries read and not yet released or refused."""
        return len(self._queue)

    async def forget(self, revoked: Iterable[Partition]) -> None:
        """Drop everything read from partitions of the held topic that are no longer ours.

        The held consumer's ``on_revoke`` hook: it runs before the group
        rejoins, so the partitions' next owner reads from the offsets
        committed here, which never pass an item still pending.
        """
        gone = {partition for topic, partition in revoked if topic == self._topics.held}
        if not gone:
            return
        self._queue = [item for item in self._queue if item.partition not in gone]
        heapq.heapify(self._queue)
        for partition in gone:
            self._pending.pop(partition, None)
            self._seen.pop(partition, None)
            self._committed.pop(partition, None)
        log.info("held_partitions_forgotten", partitions=sorted(gone), waiting=len(self._queue))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                batch = await self._consumer.fetch(timeout_ms=200, max_records=500)
            except TransportError as exc:
                log.warning("held_fetch_failed", error=str(exc))
                await asyncio.sleep(self._retry_after_s)
                continue
            for inbound in batch:
                self._admit(inbound)
            await self.release_due()
            await self._commit()

    def _admit(self, inbound: InboundRecord) -> None:
        self._seen[inbound.partition] = max(
            self._seen.get(inbound.partition, 0), inbound.offset + 1
        )
        try:
            held = self._catalog.decode(self._opened(inbound), HELD_SCHEMA)
            statement = open_attested(self._catalog, held["value"]).payload
            decision_input = DecisionInput.model_validate_json(held["decision_input"])
            self._check_addressed(held, statement, decision_input)
        except (RejectedInput, ValidationError) as exc:
            # Only the enforcer writes this topic; a bad record is a bug, kept visible here.
            reason = exc.reason if isinstance(exc, RejectedInput) else "invalid_decision_input"
            self.stats.malformed += 1
            log.error("held_record_malformed", reason=reason, offset=inbound.offset)
            return
        self._pending.setdefault(inbound.partition, set()).add(inbound.offset)
        if self._awaiting_resend(inbound.partition, inbound.offset):
            return  # read again after a rebalance: decided once, its release is being resent
        due = held["not_before"].timestamp()
        item = _Pending(
            due,
            inbound.partition,
            inbound.offset,
            inbound,
            held,
            decision_input,
            hashlib.sha256(statement).digest(),
        )
        heapq.heappush(self._queue, item)

    def _opened(self, inbound: InboundRecord) -> bytes:
        """The held record inside ``inbound``: sealed to the broker, or held before sealing.

        A delivery held by ixb 0.2 lies on this topic unsealed, as 0.2 wrote
        it; it is released like any other (sealed to its recipient then), not
        lost on the upgrade. Accepting it opens nothing new: it was readable
        there already, and a sealed record proves no more about its writer
        (anyone may seal to the broker) than an unsealed one: what is
        released is the broker's attested statement, checked for whom it names.
        """
        value = inbound.value or b""
        if self._catalog.schema_of(value).name == HELD_SCHEMA:
            log.warning("held_record_unsealed", partition=inbound.partition, offset=inbound.offset)
            return value
        return self._opener.open(read_sealed(self._catalog, value), topic=inbound.topic)

    def _check_addressed(
        self, held: dict[str, Any], statement: bytes, decision_input: DecisionInput
    ) -> None:
        """The statement, the decision input and the topic name one recipient and delivery.

        Anyone may seal a record to the broker's public key; the attested
        statement inside is the broker's own, and what it names is what the
        release may be sealed to, so a statement cannot be re-addressed to
        another recipient (who would open it before refusing it).
        """
        named = self._catalog.decode(statement, DELIVERY_SCHEMA)
        recipient = named["recipient"]
        if (
            recipient != decision_input.recipient
            or held["topic"] != self._topics.deliver(recipient)
            or named["delivery_id"] != held["delivery_id"]
        ):
            raise RejectedInput(
                "held_record_inconsistent",
                "the held record and its statement name other recipients or deliveries",
                stage="embargo",
            )

    def _awaiting_resend(self, partition: int, offset: int) -> bool:
        release = self._unacknowledged
        return release is not None and any(
            (item.partition, item.offset) == (partition, offset) for item in release.done
        )

    async def release_due(self) -> None:
        """Decide again for every item that is due; produce what may be released.

        A release not yet acknowledged is sent again first, unchanged; nothing
        new is decided until it is.
        """
        if self._unacknowledged is not None and not await self._send(self._unacknowledged):
            return
        now = self._clock()
        due: list[_Pending] = []
        while self._queue and self._queue[0].due_s <= now.timestamp():
            due.append(heapq.heappop(self._queue))
        if not due:
            return
        policy = self._policy.current()
        registry = self._registry()
        seals = BatchSeals(registry, held_topic=self._topics.held, at=now)
        outputs: list[OutboundRecord] = []
        # A reload seen here first: archive it before anything decided under it.
        archives = self._archiver.records(policy.bundle.content_hash, policy.archive)
        done: list[_Pending] = []
        for item in due:
            held, decision_input = item.held, item.decision_input
            try:
                decision = policy.point.decide(
                    decision_input.model_copy(update={"now_s": int(now.timestamp())})
                )
                decision = sealable(decision, registry, decision_input.recipient, now)
            except PolicyUndecided:
                item.due_s = now.timestamp() + self._retry_after_s
                heapq.heappush(self._queue, item)
                continue
            if decision.allow and decision.not_before_s and decision.not_before_s > now.timestamp():
                item.due_s = float(decision.not_before_s)  # the embargo was lengthened
                heapq.heappush(self._queue, item)
                continue
            same_terms = (
                decision.allow
                and decision.agreement is not None
                and decision.agreement.id == held["agreement_id"]
                and rules_digest(effective_rules(decision.field_rules)) == held["rules_digest"]
            )
            refusal_reasons: tuple[str, ...] = ()
            if same_terms:
                topic = held["topic"]
                sealed = seals.delivery(topic, decision_input.recipient).seal(
                    self._catalog, held["value"]
                )
                outputs.append(
                    delivery_record(topic, held["delivery_id"], sealed, decision_input.origin)
                )
                self.stats.released += 1
                log.info("embargo_released", delivery_id=held["delivery_id"])
            else:
                refusal_reasons = decision.reasons or ("agreement_or_rules_changed",)
                why = ",".join(refusal_reasons)
                refusal = RejectedInput(
                    "embargo_release_refused",
                    f"delivery {held['delivery_id']} not released: {why}",
                    stage="embargo",
                )
                outputs.append(
                    rejection(
                        self._catalog,
                        self._topics,
                        item.inbound,
                        refusal,
                        now,
                        origin=decision_input.origin,
                    )
                )
                self.stats.refused += 1
                log.warning("embargo_release_refused", delivery_id=held["delivery_id"], why=why)
            event = release_event(
                held,
                decision_input,
                item.statement_sha256,
                now,
                policy_bundle_hash=decision.bundle_hash or None,
                refusal_reasons=refusal_reasons,
            )
            outputs.append(self._audit.record(self._topics.audit, event))
            done.append(item)
        await self._send(_Release(archives, outputs, done))

    async def _send(self, release: _Release) -> bool:
        """Send ``release``; True once acknowledged, else it is kept to be sent again."""
        try:
            await self._commits.send(Outputs(release.archives, release.outputs))
        except TransportError as exc:
            log.warning("embargo_release_not_acknowledged", error=str(exc))
            self._unacknowledged = release  # sent again as it is, even if its partition went
            return False
        self._unacknowledged = None
        for item in release.done:
            pending = self._pending.get(item.partition)  # None: the partition went meanwhile
            if pending is not None:
                pending.discard(item.offset)
        return True

    async def _commit(self) -> None:
        """Per partition, up to the first item still pending (or everything read)."""
        offsets: dict[tuple[str, int], int] = {}
        for partition, seen in self._seen.items():
            pending = self._pending.get(partition)
            upto = min(pending) if pending else seen
            if self._committed.get(partition) != upto:
                offsets[self._topics.held, partition] = upto
        if not offsets:
            return
        try:
            await self._commits.commit(offsets)
        except TransportError as exc:
            log.warning("held_commit_failed", error=str(exc))
            return
        for (_, partition), upto in offsets.items():
            self._committed[partition] = upto
