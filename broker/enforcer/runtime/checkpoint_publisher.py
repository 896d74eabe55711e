"""Signed checkpoints of the decision log, made inside the running broker.

``ixb audit checkpoint`` signs on demand; this task signs as the log grows,
so that every entry is under a signed root soon after it is written. It
tails every partition of ``ixb.audit`` from offset 0 with a reader of its
own (no consumer group: it must see all of every log, whatever partitions
the enforcer owns), keeps one :class:`Checkpointer` per partition and
produces a checkpoint to ``ixb.audit.checkpoints`` every ``every_entries``
entries, or every ``every_s`` seconds when the tree grew.

**Several enforcer processes.** Each runs this task and checkpoints every
partition; nobody is elected. Electing one (say, the owner of partition 0
of the submission group) would tie checkpoints to rebalances: while the
group settles, nobody or two processes would sign. Every process instead
reads the same log, in the same offset order, so their trees agree: two
checkpoints of one size have the same root, and any two sizes are
consistent. ``ixb audit verify`` accepts such repeats (a consistency step
between equal sizes is the empty proof). The cost is one checkpoint per
process per period, a few hundred bytes each.

**Restarts.** A log's tree is every record from offset 0, so the tail
replays the log. Before it signs anything for a log it reaches the size of
that log's latest checkpoint (one whose signature a broker key of the
registry verifies) without signing, and checks the root there: the same
root means it carries on from that checkpoint, and the next one it signs
extends it. Another root means the log is not what was signed: signing on
would sign a fork, so that log gets no more checkpoints and an error is
logged (``ixb audit verify`` names the fault). What the previous process
wrote after its last checkpoint is signed within ``every_s`` of catching up.
A log that stays shorter than its latest checkpoint (the topic was made
anew, or lost entries) cannot be signed either, and would wait in silence:
once the tail has had nothing new for ``_CAUGHT_UP_S``, such a log is named
(``checkpoint_beyond_log``).

**Witnesses.** With a :class:`~broker.enforcer.runtime.cosigning.Cosigner`,
every checkpoint acknowledged is offered to it with its log's tree; it runs
as a task beside the tail, pushes the newest checkpoint of each log to the
partners' witnesses and publishes it again with their cosignatures. At stop
it gets one last round, bounded by ``_LAST_COSIGN_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import structlog

from broker.auditlog.checkpoints import (
    Checkpoint,
    Checkpointer,
    CheckpointSigner,
    VerifySignature,
    encode_checkpoint,
    log_id_of,
    signed_checkpoints,
)
from broker.auditlog.log_notes import DEFAULT_ORIGIN_PREFIX
from broker.enforcer.runtime.commit import CommitPath, Outputs
from broker.enforcer.runtime.cosigning import Cosigner
from broker.errors import RejectedInput, TransportError
from broker.kafka.base import BatchProducer
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord
from broker.wire.topics import TopicNames

log = structlog.get_logger("ixb.checkpoints")

Clock = Callable[[], dt.datetime]
TopicReader = Callable[[], AsyncIterator[InboundRecord]]
LogReader = Callable[[Mapping[int, int]], AsyncIterator[InboundRecord]]
"""Follows the decision log; the mapping gives partitions an offset to begin at."""
_QUEUE_RECORDS = 10_000  # between the tail and the trees: bounds memory if hashing falls behind
_DRAIN_RECORDS = 1_000  # hashed between two yields to the loop: about 6 ms
_POLL_S = 0.2  # how long to wait for audit records before looking at the clock
_CAUGHT_UP_S = 10.0  # a tail with nothing new this long has read the whole log
_LAST_COSIGN_S = 10.0  # at stop, how long the last checkpoints may wait for witnesses


@dataclass
class CheckpointStats:
    entries: int = 0  # audit records added to a tree
    signed: int = 0  # checkpoints produced and acknowledged
    resumed: int = 0  # logs that carried on from a checkpoint signed before the start
    beyond_log: int = 0  # logs found shorter than their latest checkpoint, so unsigned
    stopped_logs: int = 0  # logs that no longer get checkpoints (diverged or unreadable)


class _Log:
    """One partition's tree, and where it stands before checkpoints may be signed."""

    __slots__ = ("checkpointer", "partition", "resume_at", "stopped")

    def __init__(
        self, partition: int, checkpointer: Checkpointer, resume_at: Checkpoint | None
    ) -> None:
        self.partition = partition
        self.checkpointer = checkpointer
        self.resume_at = resume_at  # the latest earlier checkpoint, until the tree reaches it
        self.stopped = False

    @property
    def live(self) -> bool:
        return self.resume_at is None and not self.stopped


class CheckpointPublisher:
    """Tails the decision log and produces its signed checkpoints; one task, one loop.

    ``read_log`` follows ``ixb.audit`` from the beginning of every partition
    (after a failure, from where each partition's tree ends);
    ``read_checkpoints`` reads ``ixb.audit.checkpoints`` to its current end
    (at start, to resume). Checkpoints that Kafka does not acknowledge are
    sent again with the next ones; at stop, every live log that grew since
    its last checkpoint is signed once more.
    """

    def __init__(
        self,
        *,
        read_log: LogReader,
        read_checkpoints: TopicReader,
        producer: BatchProducer,
        catalog: SchemaCatalog,
        topics: TopicNames,
        signer: CheckpointSigner,
        verify: VerifySignature,
        clock: Clock,
        every_entries: int,
        every_s: float,
        retry_after_s: float = 1.0,
        origin_prefix: str = DEFAULT_ORIGIN_PREFIX,
        cosigner: Cosigner | None = None,
    ) -> None:
        self._origin_prefix = origin_prefix
        self._read_log = read_log
        self._cosigner = cosigner
        self._read_checkpoints = read_checkpoints
        self._commits = CommitPath(producer)  # a reader, not a group member: nothing to commit
        self._catalog = catalog
        self._topics = topics
        self._signer = signer
        self._verify = verify
        self._clock = clock
        self._every_entries = every_entries
        self._every_s = every_s
        self._retry_after_s = retry_after_s
        self._logs: dict[str, _Log] = {}
        self._resume_points: dict[str, Checkpoint] = {}
        self._named_short: set[str] = set()  # logs named shorter than their checkpoint
        self._unsent: list[Checkpoint] = []
        self.stats = CheckpointStats()

    async def run(self, stop: asyncio.Event) -> None:
        self._resume_points = await self._latest_checkpoints()
        queue: asyncio.Queue[InboundRecord] = asyncio.Queue(maxsize=_QUEUE_RECORDS)
        tail = asyncio.create_task(self._tail(queue, stop))
        cosigning = (
            None if self._cosigner is None else asyncio.create_task(self._cosigner.run(stop))
        )
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                records = await _drain(queue, _POLL_S)
                if records:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= _CAUGHT_UP_S:
                    self._name_logs_short_of_their_checkpoint()
                signed = [c for r in records if (c := self._add(r))]
                signed.extend(
                    c for s in self._logs.values() if s.live and (c := s.checkpointer.tick())
                )
                await self._publish(signed)
            await self._publish(
                [s.checkpointer.checkpoint() for s in self._logs.values() if _grew(s)]
            )
            if self._cosigner is not None and cosigning is not None:
                with contextlib.suppress(TimeoutError):  # its round in progress ends first
                    await asyncio.wait_for(self._last_round(cosigning), _LAST_COSIGN_S)
        finally:
            for task in (tail, cosigning):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        log.info("checkpoints_stopped", logs=len(self._logs), unsent=len(self._unsent))

    async def _last_round(self, cosigning: asyncio.Task[None]) -> None:
        assert self._cosigner is not None
        await cosigning  # stop is set: it returns after the round it is in
        await self._cosigner.flush()

    async def _latest_checkpoints(self) -> dict[str, Checkpoint]:
        """Per log, the largest checkpoint a broker key signed, from before this start."""
        try:
            records = [(r.offset, r.value or b"") async for r in self._read_checkpoints()]
        except TransportError as exc:
            # Without them the trees are rebuilt all the same; only the root check is lost.
            log.warning("checkpoints_unread", error=str(exc))
            return {}
        signed, ignored = signed_checkpoints(self._catalog, records, self._verify)
        for offset, reason in ignored:  # not ours to sign on from; verify names them
            log.warning("checkpoint_ignored", reason=reason, offset=offset)
        return {log_id: checkpoints[-1] for log_id, checkpoints in signed.items()}

    def _name_logs_short_of_their_checkpoint(self) -> None:
        """Once caught up: every log still short of its latest checkpoint, named once."""
        for log_id, checkpoint in self._resume_points.items():
            state = self._logs.get(log_id)
            waiting = state is None or (state.resume_at is not None and not state.stopped)
            if not waiting or log_id in self._named_short:
                continue
            self._named_short.add(log_id)
            self.stats.beyond_log += 1
            log.error(
                "checkpoint_beyond_log",
                log_id=log_id,
                log_size=0 if state is None else state.checkpointer.log.size,
                checkpoint_size=checkpoint.tree_size,
            )

    async def _tail(self, queue: asyncio.Queue[InboundRecord], stop: asyncio.Event) -> None:
        """Feed every audit record to ``queue``; if the reader fails, read on from each tree.

        The log is kept forever: reading it again from offset 0 after every
        broker hiccup would hold back new entries' checkpoints until the
        re-read caught up. Records queued meanwhile and read again are
        skipped by :meth:`_add`.
        """
        while not stop.is_set():
            read_from = {s.partition: s.checkpointer.log.size for s in self._logs.values()}
            try:
                async for record in self._read_log(read_from):
                    await queue.put(record)
            except TransportError as exc:
                log.warning("audit_tail_failed", error=str(exc))
            await asyncio.sleep(self._retry_after_s)

    def _add(self, record: InboundRecord) -> Checkpoint | None:
        """Add one audit record to its log's tree; a checkpoint if one is due."""
        log_id = log_id_of(record.topic, record.partition)
        state = self._logs.get(log_id)
        if state is None:
            checkpointer = Checkpointer(
                log_id,
                self._signer,
                self._clock,
                every_entries=self._every_entries,
                every_s=self._every_s,
                origin_prefix=self._origin_prefix,
            )
            state = self._logs[log_id] = _Log(
                record.partition, checkpointer, self._resume_points.get(log_id)
            )
        tree = state.checkpointer
        if state.stopped or record.offset < tree.log.size:
            return None  # a log given up on, or a record read again after the tail restarted
        value = record.value or b""
        try:
            if state.resume_at is None:
                checkpoint = tree.append(record.offset, value)
                self.stats.entries += 1
                return checkpoint
            tree.extend([(record.offset, value)])
            self.stats.entries += 1
            if tree.log.size == state.resume_at.tree_size:
                tree.resume(state.resume_at)
                state.resume_at = None
                self.stats.resumed += 1
                log.info("checkpoints_resumed", log_id=log_id, tree_size=tree.log.size)
        except RejectedInput as exc:
            state.stopped = True
            self.stats.stopped_logs += 1
            log.error("checkpoints_stopped_for_log", log_id=log_id, reason=exc.reason)
        return None

    async def _publish(self, signed: list[Checkpoint]) -> None:
        batch = [*self._unsent, *signed]
        if not batch:
            return
        records = [
            OutboundRecord(
                self._topics.audit_checkpoints,
                c.log_id.encode(),
                encode_checkpoint(self._catalog, c),
            )
            for c in batch
        ]
        try:
            await self._commits.send(Outputs(records=records))
        except TransportError as exc:
            log.warning("checkpoints_not_acknowledged", error=str(exc), checkpoints=len(batch))
            self._unsent = batch
            return
        self._unsent = []
        self.stats.signed += len(batch)
        for c in batch:
            log.debug("checkpoint_signed", log_id=c.log_id, tree_size=c.tree_size)
            state = self._logs.get(c.log_id)
            if self._cosigner is not None and state is not None:
                self._cosigner.offer(c, state.checkpointer.log)


def _grew(state: _Log) -> bool:
    return state.live and state.checkpointer.unsigned > 0


async def _drain(queue: asyncio.Queue[InboundRecord], timeout_s: float) -> list[InboundRecord]:
    """What is queued, waiting up to ``timeout_s`` for the first record."""
    try:
        first = await asyncio.wait_for(queue.get(), timeout_s)
    except TimeoutError:
        return []
    records = [first]
    while not queue.empty() and len(records) < _DRAIN_RECORDS:
        records.append(queue.get_nowait())
    return records
