"""Broker faults of a resilience run: Kafka nodes SIGKILLed, restarted and frozen under load.

On a three-node cluster (replication factor 3, ``min.insync.replicas`` 2)
one node may be gone with nothing acknowledged lost, so faults come one at a
time. A node is SIGKILLed and, a moment later, started again on its own
data while the cluster is still electing leaders away from it: a broker
cannot register again before the controller has fenced its old session
(which moves its partitions' leadership) and answers clients only once it
is unfenced, so the fault lasts as long as the slower of the two, not their
sum. Which node: with one kill, the active controller (which also leads about
a third of the submission partitions); with more, the first aims at the
leader of a busy submission partition other than the controller, the second
at the active controller, any further one at a random node. One node may be
frozen with SIGSTOP for a few seconds and thawed. Each fault waits until
every watched partition has a leader and all its replicas in sync again
before the next, so two nodes are never down together (that would stall
every ``acks=all`` write by design, which tests Kafka, not ixb).

What changed is counted from the cluster's own answers: the partitions of
the submission topics whose leader moved across each fault, and the active
controller before and after each.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bench.embedded import Kafka, kafka_for
from broker.app.settings import Settings
from broker.errors import ConfigurationError, TransportError
from broker.kafka.embedded import ApacheKafka
from broker.kafka.embedded.apache import Replicas
from broker.kafka.embedded.engine import ensure_kafka

Say = Callable[[str], None]
States = dict[tuple[str, int], Replicas]
Leaders = dict[tuple[str, int], int]
ELECTION_TIMEOUT_S = 45.0  # a dead node's partitions get other leaders within this
IN_SYNC_TIMEOUT_S = 60.0  # a node back from a fault has caught up within this


@dataclass
class BrokerCounts:
    kills: int = 0
    controller_kills: int = 0  # kills of the node that led the metadata quorum
    restarts: int = 0
    freezes: int = 0
    leader_changes: int = 0  # submission partitions whose leader moved across a fault
    controller_changes: int = 0  # faults across which another node took the metadata quorum
    victims: list[str] = field(default_factory=list)  # "active controller: 2", ...


class BrokerChaos:
    """The fault schedule for ``cluster``, drawn from ``rng``; run it with :meth:`run`."""

    def __init__(
        self,
        cluster: ApacheKafka,
        topics: Sequence[str],
        busiest: str,
        rng: random.Random,
        say: Say,
    ) -> None:
        """``topics``: the submission topics to watch; ``busiest``: the one to aim at."""
        self.cluster = cluster
        self.topics = list(topics)
        self.busiest = busiest
        self.rng = rng
        self.say = say
        self.counts = BrokerCounts()

    async def run(self, *, kills: int, freezes: int, window_s: float) -> None:
        """``kills`` kills and ``freezes`` freezes, one after another, from within the window."""
        actions = ["kill"] * kills + ["freeze"] * freezes
        # The aimed kills come first (while the load is on); freezes fall in among the rest.
        head, tail = actions[: min(kills, 2)], actions[min(kills, 2) :]
        self.rng.shuffle(tail)
        await asyncio.sleep(self.rng.uniform(2.0, max(2.0, 0.15 * window_s)))
        for number, action in enumerate(head + tail):
            if action == "freeze":
                await self._freeze(self.rng.uniform(2.0, 4.0))
            else:
                await self._kill(self._aim(number, kills, await self._leaders()))
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))

    def _aim(self, number: int, kills: int, leaders: Leaders) -> tuple[int, str]:
        """Which node the ``number``-th fault kills, and why."""
        controller = self.cluster.active_controller()
        busy = sorted({leader for (t, _), leader in leaders.items() if t == self.busiest} - {-1})
        if controller is not None and ((kills == 1 and number == 0) or number == 1):
            led = sum(1 for leader in leaders.values() if leader == controller)
            return controller, f"active controller, leading {led} submission partitions"
        if number == 0 and busy:
            others = [n for n in busy if n != controller] or busy
            return self.rng.choice(others), "leader of a busy submission partition"
        return self.rng.choice(sorted(self.cluster.nodes)), "random node"

    async def _kill(self, aimed: tuple[int, str]) -> None:
        victim, why = aimed
        before = await self._leaders()
        controller = self.cluster.active_controller()
        self.say(f"SIGKILL broker {victim} ({why})")
        killed = time.monotonic()
        await asyncio.to_thread(self.cluster.kill, victim)  # about a second until it is gone
        self.counts.kills += 1
        self.counts.controller_kills += victim == controller
        self.counts.victims.append(f"{why}: {victim}")
        await asyncio.sleep(self.rng.uniform(0.5, 1.5))  # down a moment before its restart
        # The JVM starts while the cluster fences the dead node and elects other leaders.
        restart = asyncio.create_task(asyncio.to_thread(self.cluster.restart, victim))
        try:
            await self._until_led_without(victim)
            self.say(f"partitions led without broker {victim} {time.monotonic() - killed:.1f} s on")
            if victim == controller:
                await self._until_controller_not(victim)
        finally:
            await restart
        self.counts.restarts += 1
        self.say(f"broker {victim} back with its data {time.monotonic() - killed:.1f} s on")
        await self._until_in_sync()
        self._count_moves(before, await self._leaders(), controller)

    async def _freeze(self, seconds: float) -> None:
        before = await self._leaders()
        controller = self.cluster.active_controller()
        victim = self.rng.choice(sorted(self.cluster.nodes))
        self.say(f"SIGSTOP broker {victim} for {seconds:.1f} s")
        self.cluster.freeze(victim)
        self.counts.freezes += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self.cluster.thaw(victim)
        self.say(f"SIGCONT broker {victim}")
        await self._until_in_sync()
        self._count_moves(before, await self._leaders(), controller)

    def _count_moves(self, before: Leaders, after: Leaders, controller: int | None) -> None:
        self.counts.leader_changes += sum(
            1 for key, leader in after.items() if before.get(key, leader) != leader
        )
        now = self.cluster.active_controller()
        if controller is not None and now is not None and now != controller:
            self.counts.controller_changes += 1

    async def _states(self) -> States:
        """Every watched partition's leader and replicas, retried while a node is away."""
        deadline = time.monotonic() + ELECTION_TIMEOUT_S
        while True:
            try:
                return await self.cluster.partition_states(self.topics)
            except TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _leaders(self) -> Leaders:
        return {key: state.leader for key, state in (await self._states()).items()}

    async def _until_led_without(self, victim: int) -> None:
        """Every watched partition has a leader again, and none is ``victim``."""
        await self._until(
            lambda states: all(s.leader not in (-1, victim) for s in states.values()),
            ELECTION_TIMEOUT_S,
            "the cluster did not elect new partition leaders in time",
        )

    async def _until_in_sync(self) -> None:
        """Every watched partition led, with every node in sync: the cluster is whole."""
        nodes = frozenset(self.cluster.nodes)
        await self._until(
            lambda states: all(s.leader != -1 and s.isr == nodes for s in states.values()),
            IN_SYNC_TIMEOUT_S,
            "the cluster did not bring every replica back in sync in time",
        )

    async def _until(self, done: Callable[[States], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done(await self._states()):
            if time.monotonic() > deadline:
                raise TransportError(what)
            await asyncio.sleep(0.3)

    async def _until_controller_not(self, victim: int) -> None:
        deadline = time.monotonic() + ELECTION_TIMEOUT_S
        while self.cluster.active_controller() in (None, victim):
            if time.monotonic() > deadline:
                raise TransportError("no other node took over the metadata quorum in time")
            await asyncio.sleep(0.2)


@asynccontextmanager
async def cluster_for(
    base: Settings, nodes: int, given: ApacheKafka | None, say: Say
) -> AsyncIterator[ApacheKafka]:
    """``given``, or a fresh ``nodes``-node Apache Kafka until the block ends.

    Broker faults need the nodes' processes, so an external cluster
    (``IXB_KAFKA_BOOTSTRAP``) cannot host them.
    """
    if given is not None:
        yield given
        return
    if base.kafka_bootstrap:
        raise ConfigurationError("broker faults need the embedded cluster, not IXB_KAFKA_BOOTSTRAP")
    libs = await asyncio.to_thread(ensure_kafka, base.engine_cache, say=say)
    cluster = ApacheKafka(libs, nodes=nodes, heap_mb=512, quick_start=True)
    started = time.monotonic()
    await asyncio.to_thread(cluster.start)  # it waits for the nodes on its own event loop
    say(f"{cluster.description} up in {time.monotonic() - started:.1f} s")
    try:
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


@asynccontextmanager
async def kafka_of(
    base: Settings, brokers: int, given: ApacheKafka | None, say: Say
) -> AsyncIterator[tuple[Kafka, ApacheKafka | None]]:
    """The run's Kafka, and its nodes when it has several (to fault); see :func:`cluster_for`."""
    if brokers == 1:
        async with kafka_for(base, say) as kafka:
            yield kafka, None
        return
    async with cluster_for(base, brokers, given, say) as nodes:
        yield Kafka(nodes.bootstrap, nodes.description, tuple(nodes.pids), True), nodes
