"""Broker faults of a resilience run: Kafka nodes SIGKILLed, restarted and frozen under load.

On a three-node cluster (replication factor 3, ``min.insync.replicas`` 2)
one node may be gone with nothing acknowledged lost, so faults come one at a
time: a node is SIGKILLed (the first kill aims at the leader of a busy
submission partition, the second at the active controller, any further one
at a random node), stays dead until the cluster has elected leaders away
from it and a little longer, and is restarted on its own data; one node is
frozen with SIGSTOP for a few seconds and thawed. Each fault waits until the
cluster is whole again before the next, so two nodes are never down together
(that would stall every ``acks=all`` write by design, not test ixb).

What changed is counted from the cluster's own answers: the partitions of
the submission topics whose leader moved across each fault, and the
controller changes seen after a controller kill.
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
from broker.kafka.embedded.engine import ensure_kafka

Say = Callable[[str], None]
Leaders = dict[tuple[str, int], int]
ELECTION_TIMEOUT_S = 45.0  # a dead node's partitions get other leaders within this


@dataclass
class BrokerCounts:
    kills: int = 0
    restarts: int = 0
    freezes: int = 0
    leader_changes: int = 0  # submission partitions whose leader moved across a fault
    controller_changes: int = 0
    victims: list[str] = field(default_factory=list)  # "leader 2", "controller 1", ...


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
                await self._kill(number)
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))

    async def _kill(self, number: int) -> None:
        before = await self._leaders()
        controller = self.cluster.active_controller()
        if number == 0:
            victim, why = await self._busy_leader(before), "leader of a busy submission partition"
        elif number == 1 and controller is not None:
            victim, why = controller, "active controller"
        else:
            victim, why = self.rng.choice(sorted(self.cluster.nodes)), "random node"
        self.say(f"SIGKILL broker {victim} ({why})")
        self.cluster.kill(victim)
        self.counts.kills += 1
        self.counts.victims.append(f"{why}: {victim}")
        await self._until_led_without(victim)
        if victim == controller:
            await self._until_controller_not(victim)
            self.counts.controller_changes += 1
        await asyncio.sleep(self.rng.uniform(1.0, 3.0))  # down a while longer, under load
        started = time.monotonic()
        await asyncio.to_thread(self.cluster.restart, victim)
        self.counts.restarts += 1
        self.say(f"broker {victim} back with its data in {time.monotonic() - started:.1f} s")
        self._count_moves(before, await self._leaders())

    async def _freeze(self, seconds: float) -> None:
        before = await self._leaders()
        victim = self.rng.choice(sorted(self.cluster.nodes))
        self.say(f"SIGSTOP broker {victim} for {seconds:.1f} s")
        self.cluster.freeze(victim)
        self.counts.freezes += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self.cluster.thaw(victim)
        self.say(f"SIGCONT broker {victim}")
        await self._until_all_led()
        self._count_moves(before, await self._leaders())

    async def _busy_leader(self, leaders: Leaders) -> int:
        partitions = sorted(p for (t, p) in leaders if t == self.busiest)
        return leaders[self.busiest, self.rng.choice(partitions)]

    def _count_moves(self, before: Leaders, after: Leaders) -> None:
        self.counts.leader_changes += sum(
            1 for key, leader in after.items() if before.get(key, leader) != leader
        )

    async def _leaders(self) -> Leaders:
        """Every watched partition's leader, retried while a node is away or just back."""
        deadline = time.monotonic() + ELECTION_TIMEOUT_S
        while True:
            try:
                found: Leaders = {}
                for topic in self.topics:
                    for partition, leader in (await self.cluster.partition_leaders(topic)).items():
                        found[topic, partition] = leader
                return found
            except TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _until_led_without(self, victim: int) -> None:
        """Every watched partition has a leader again, and none is ``victim``."""
        await self._until(lambda led: all(v not in (-1, victim) for v in led.values()))

    async def _until_all_led(self) -> None:
        await self._until(lambda led: all(v != -1 for v in led.values()))

    async def _until(self, done: Callable[[Leaders], bool]) -> None:
        deadline = time.monotonic() + ELECTION_TIMEOUT_S
        while not done(await self._leaders()):
            if time.monotonic() > deadline:
                raise TransportError("the cluster did not elect new partition leaders in time")
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
    cluster = ApacheKafka(libs, nodes=nodes, heap_mb=512)
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
