"""The submission consumer: batches from a consumer group, explicit commits, drained revokes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from broker.errors import TransportError
from broker.kafka.base import RevokeHook
from broker.kafka.closing import close_consumer
from broker.kafka.security import client_options
from broker.kafka.undecodable import RecordTaker
from broker.wire.records import InboundRecord, Partition, offsets_after

log = structlog.get_logger("ixb.transport")

_GRACE_S = 0.1  # beyond a fetch's own timeout, before it stops waiting for the group
# What one fetch response may hold. A response stays in memory until every
# partition's share of it is consumed, so these bound the fetch buffer: at
# 8 MiB a 40,000-report backlog peaked 27 MB above a 20,000 one, at 2 MiB
# 2 MB, at the same throughput (bench/backlog_memory.py, 12 partitions). A
# record up to the codec's 1 MB limit still comes through (a partition's share
# is 1 MiB, and Kafka returns at least one batch).
FETCH_MAX_BYTES = 2 * 1024 * 1024
PARTITION_FETCH_MAX_BYTES = 1024 * 1024


def rebalance_timeout_ms(session_timeout_ms: int, revoke_wait_s: float) -> int:
    """How long the group may wait for this member to rejoin: its revoke wait, and a session.

    Kafka drops a member that has not rejoined within the rebalance timeout
    it gave (aiokafka's default: the session timeout), and its commit of the
    batch in flight is then refused as from an unknown member. The listener
    waits up to ``revoke_wait_s`` for that batch before the member rejoins,
    so the timeout covers that wait, with a session timeout to spare. A
    member that died is still noticed after one session timeout: it stops
    heartbeating, rebalance or not.
    """
    return int(revoke_wait_s * 1000) + session_timeout_ms


class SubmissionConsumer:
    """Consumes every topic matching a pattern as a member of a consumer group.

    Auto-commit is off: the caller commits explicit offsets after the batch's
    outputs are acknowledged.

    The group is subscribed to an explicit list of topics, not to the
    pattern. With a pattern, aiokafka changes the subscription the moment its
    metadata shows a new matching topic: the partitions owned are dropped at
    once, and the batch in flight can no longer be committed ("No partitions
    assigned"), so it is redone after the rebalance, every output written
    twice (issue 18: 220-250 decision-log entries per run as each nation's
    submit topic appeared). Here the topics matching the pattern are listed
    at start and again every ``metadata_max_age_ms``; a topic found later is
    subscribed only once no batch is in flight and no take is waiting (a
    :meth:`fetch` meanwhile starts none, and returns nothing until the
    batch is committed), so the rebalance it causes moves no uncommitted
    work. A topic deleted later stays in the list until the process restarts.

    The batch in flight is the records the last :meth:`fetch` returned, from
    that return until :meth:`commit` covers them or the caller fetches again
    (it has finished with them, committed or not). A caller that commits
    one batch while it processes the next fetches with ``overlapping``: both
    are then in flight until committed. When the group takes
    partitions away, aiokafka has already stopped fetching and waits for our
    listener before it rejoins; the listener waits, at most ``revoke_wait_s``,
    for a batch in flight on those partitions to be committed, so their next
    owner starts after it instead of delivering it again. The consumer never
    commits anything itself: a batch the caller did not finish in time is
    simply not committed, and the next owner redoes all of it (at least once,
    never a half-processed batch). ``on_revoke`` then runs with the revoked
    partitions, for callers that keep per-partition state.

    Memory does not grow with the backlog: a fetch hands the caller at most
    ``max_poll_records`` records, and aiokafka fetches again for a partition
    only once everything it buffered for it was handed over. A response
    (at most :data:`PARTITION_FETCH_MAX_BYTES` per partition and
    :data:`FETCH_MAX_BYTES` in all) stays in memory until the last of its
    partitions is handed over, so the buffer is bounded by the number of
    partitions owned times a response, whatever waits in Kafka
    (bench/backlog_memory.py measures it).
    """

    __slots__ = (
        "_commit_failed",
        "_consumer",
        "_discover_every_s",
        "_discovering",
        "_fetching",
        "_in_flight",
        "_joined",
        "_last_committed",
        "_listener",
        "_next_discovery",
        "_on_revoke",
        "_pattern",
        "_paused",
        "_revoke_wait_s",
        "_settled",
        "_subscribed",
        "_taker",
        "_wanted",
        "revocations",
    )

    def __init__(
        self,
        bootstrap: str,
        *,
        group_id: str,
        pattern: str,
        max_poll_records: int,
        session_timeout_ms: int = 10_000,
        metadata_max_age_ms: int = 5000,
        revoke_wait_s: float = 10.0,
        on_revoke: RevokeHook | None = None,
    ) -> None:
        self._pattern = re.compile(pattern)
        self._subscribed: frozenset[str] = frozenset()  # the topics the group was told
        self._wanted: frozenset[str] | None = None  # found since, subscribed once settled
        self._discover_every_s = metadata_max_age_ms / 1000
        self._next_discovery = 0.0
        self._discovering: asyncio.Task[None] | None = None
        self._joined = False
        self._listener = _Listener(self._revoked, self._assigned)
        self._revoke_wait_s = revoke_wait_s
        self._on_revoke = on_revoke
        self._in_flight: dict[Partition, int] = {}  # next offset, per partition of the batch
        self._settled = asyncio.Event()  # no batch in flight
        self._settled.set()
        self._last_committed = False  # whether the last batch ended committed
        self._commit_failed = False  # a commit failed since the consumer last settled
        self._fetching: asyncio.Future[list[InboundRecord]] | None = None  # a take still waiting
        self._paused: dict[Partition, float] = {}  # monotonic time each pause ends
        self.revocations = RevocationStats()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            **client_options(bootstrap),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            fetch_max_wait_ms=100,
            fetch_max_bytes=FETCH_MAX_BYTES,
            max_partition_fetch_bytes=PARTITION_FETCH_MAX_BYTES,
            metadata_max_age_ms=metadata_max_age_ms,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(100, session_timeout_ms // 5),
            rebalance_timeout_ms=rebalance_timeout_ms(session_timeout_ms, revoke_wait_s),
        )
        self._taker = RecordTaker(self._consumer)

    async def start(self) -> None:
        """Start the client and subscribe to the matching topics there are (the join follows).

        With none yet, the member joins once :meth:`fetch` finds the first.
        """
        try:
            await self._consumer.start()
            found = await self._matching()
        except KafkaError as exc:
            raise TransportError(f"cannot start consumer: {exc}") from exc
        self._next_discovery = time.monotonic() + self._discover_every_s
        if found:
            self._subscribe(found)

    @property
    def joined(self) -> bool:
        """Whether this member has joined its group once (owning partitions or not)."""
        return self._joined

    @property
    def subscribed(self) -> frozenset[str]:
        """The topics the group was told this member consumes."""
        return self._subscribed

    async def stop(self) -> None:
        if self._discovering is not None:
            self._discovering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._discovering
        self._settle()
        if self._fetching is not None:
            self._fetching.cancel()  # nobody is there to process what it would return
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await self._fetching
            self._fetching = None
        await close_consumer(self._consumer)

    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member owns right now."""
        return frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())

    async def lag(self, *, timeout_s: float = 0.5) -> dict[Partition, int]:
        """Per partition owned, records not fetched yet: the highwater minus the position.

        For operators (the ``ixb_consumer_lag`` metric). A partition is left
        out while either number is unknown (no fetch response for it yet, or no
        position within ``timeout_s``), so asking never waits on the group.
        """
        lags: dict[Partition, int] = {}
        for tp in self._consumer.assignment():
            # Synchronous checks right before the call: the assignment cannot move in between.
            if tp not in self._consumer.assignment():
                continue
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await asyncio.wait_for(self._consumer.position(tp), timeout_s)
            except (TimeoutError, KafkaError):  # not positioned yet, or no longer ours
                continue
            lags[tp.topic, tp.partition] = max(0, highwater - position)
        return lags

    async def fetch(
        self, *, timeout_ms: int, max_records: int, overlapping: bool = False
    ) -> list[InboundRecord]:
        """The next batch, or none after ``timeout_ms``, even while the group rebalances.

        Calling it again means the caller has finished the last batch, unless
        ``overlapping``: the last batch is still being committed, and stays in
        flight with this one (see the class docstring).

        aiokafka's ``getmany`` waits out a rebalance in progress whatever its
        timeout, which would keep the caller from seeing its stop signal for
        as long as the group keeps rebalancing. So the wait goes on in a task
        that the next call picks up: no record is taken from the fetcher's
        buffer before the caller is there to receive it.
        """
        if not overlapping:
            self._settle()
        self._resume_due()
        self._discover_when_due()
        if self._wanted is not None and self._fetching is None:
            if not self._settled.is_set():  # a new topic waits for the batch in flight
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), timeout_ms / 1000)
            if not self._settled.is_set() or self._fetching is not None:
                return []
            self._subscribe(self._wanted)
        if not self._subscribed:  # no matching topic yet: a take would wait for good
            await asyncio.sleep(timeout_ms / 1000)
            return []
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._taker.take(timeout_ms, max_records))
        done, _ = await asyncio.wait({self._fetching}, timeout=timeout_ms / 1000 + _GRACE_S)
        if not done:
            return []
        fetching, self._fetching = self._fetching, None
        try:
            records = fetching.result()
        except KafkaError as exc:
            raise TransportError(f"fetch failed: {exc}") from exc
        except Exception as exc:  # a decoder's own error that bad_batch could not place
            # Its text may quote the bytes it choked on: only its kind goes on.
            raise TransportError(f"fetch failed: {type(exc).__name__}") from exc
        if records:
            for partition, offset in offsets_after(records).items():
                self._in_flight[partition] = max(self._in_flight.get(partition, 0), offset)
            self._last_committed = False
            self._settled.clear()
        return records

    async def commit(self, next_offsets: Mapping[Partition, int]) -> None:
        """Commit, per partition, the offset of the next record to process."""
        if not next_offsets:
            return
        offsets = {TopicPartition(t, p): o for (t, p), o in next_offsets.items()}
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # Those records stay uncommitted (their next owner redoes them); a later
            # batch fetched meanwhile is still in flight, and still waited for.
            self._commit_failed = True
            self._no_longer_in_flight(next_offsets)
            raise TransportError(f"commit failed: {exc}") from exc
        self._no_longer_in_flight(next_offsets)

    def _no_longer_in_flight(self, next_offsets: Mapping[Partition, int]) -> None:
        for partition, offset in next_offsets.items():
            if self._in_flight.get(partition, offset + 1) <= offset:
                del self._in_flight[partition]
        if not self._in_flight:
            self._settle(committed=True)

    def pause_at(self, offsets: Mapping[Partition, int], *, for_s: float) -> None:
        """Rewind each partition to its offset and fetch nothing from it for ``for_s`` seconds.

        For a record the caller cannot process yet: it commits what it
        processed before that record, then gives the rest of the batch in
        flight on that partition back with this call. Those records are
        fetched again when the pause ends (by :meth:`fetch`), or by the
        partition's next owner from the committed offset, which is the same
        place. Partitions no longer ours are skipped for that reason.
        """
        owned = self._consumer.assignment()
        resume_at = time.monotonic() + for_s
        for partition, offset in offsets.items():
            self._in_flight.pop(partition, None)  # given back: not waited for on revoke
            tp = TopicPartition(*partition)
            if tp not in owned:
                continue
            self._consumer.seek(tp, offset)  # also drops what aiokafka buffered beyond it
            self._consumer.pause(tp)
            self._paused[partition] = resume_at
        if not self._in_flight:
            self._settle(committed=True)

    def _resume_due(self) -> None:
        if not self._paused:
            return
        now = time.monotonic()
        owned = self._consumer.assignment()
        for partition in [p for p, at in self._paused.items() if at <= now]:
            del self._paused[partition]
            tp = TopicPartition(*partition)
            if tp in owned:
                self._consumer.resume(tp)

    def _settle(self, *, committed: bool = False) -> None:
        """No batch is in flight any more; ``committed`` says how the last one ended."""
        if not self._settled.is_set():
            self._last_committed = committed and not self._commit_failed
        self._commit_failed = False
        self._in_flight = {}
        self._settled.set()

    async def _matching(self) -> frozenset[str]:
        """The cluster's topics that match the pattern, asked afresh."""
        return frozenset(t for t in await self._consumer.topics() if self._pattern.match(t))

    def _subscribe(self, topics: frozenset[str]) -> None:
        added = sorted(topics - self._subscribed)
        self._consumer.subscribe(topics=sorted(topics), listener=self._listener)
        self._subscribed, self._wanted = topics, None
        log.info("topics_subscribed", added=added, topics=len(topics))

    def _discover_when_due(self) -> None:
        if self._discovering is None and time.monotonic() >= self._next_discovery:
            self._discovering = asyncio.ensure_future(self._discover())

    async def _discover(self) -> None:
        """Note matching topics not subscribed yet; :meth:`fetch` subscribes them when safe."""
        try:
            found = await self._matching()
        except (KafkaError, OSError, TimeoutError) as exc:  # asked again at the next interval
            log.warning("topic_discovery_failed", error_kind=type(exc).__name__)
            found = frozenset()
        finally:
            self._discovering = None
            self._next_discovery = time.monotonic() + self._discover_every_s
        if not found <= self._subscribed:
            self._wanted = self._subscribed | found

    async def _assigned(self) -> None:
        self._joined = True

    async def _revoked(self, revoked: frozenset[Partition]) -> None:
        """Called by aiokafka before the group rejoins; see the class docstring."""
        if not revoked:
            return  # the first join: nothing was ours yet
        self.revocations.revoked += 1
        for partition in revoked:
            self._paused.pop(partition, None)  # a partition comes back unpaused
        self._taker.forget(revoked)
        waiting_on = revoked & self._in_flight.keys()
        if waiting_on:
            await self._wait_for_batch(len(waiting_on))
        if self._on_revoke is not None:
            await self._on_revoke(revoked)

    async def _wait_for_batch(self, partitions: int) -> None:
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), self._revoke_wait_s)
        waited_s = round(time.monotonic() - started, 3)
        if self._settled.is_set() and self._last_committed:
            self.revocations.drained += 1
            log.info("revoke_waited_for_batch", partitions=partitions, waited_s=waited_s)
        else:
            self.revocations.abandoned += 1
            log.warning("revoked_with_batch_in_flight", partitions=partitions, waited_s=waited_s)


@dataclass(slots=True)
class RevocationStats:
    """What became of the batch in flight when the group took partitions away."""

    revoked: int = 0  # rebalances that took partitions from this consumer
    drained: int = 0  # ... with a batch in flight that then committed in time
    abandoned: int = 0  # ... with a batch in flight that did not (its next owner redoes it)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's rebalance callbacks, as plain partition sets for the consumer."""

    def __init__(self, revoked: RevokeHook, assigned: Callable[[], Awaitable[None]]) -> None:
        self._revoked = revoked
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._revoked(frozenset((tp.topic, tp.partition) for tp in revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """A join completed, with or without partitions (owners start at committed offsets)."""
        await self._assigned()
