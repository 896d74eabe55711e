"""The three-node Apache Kafka cluster that fault tests run on, and its handles for them.

Three combined broker-and-controller nodes, replication factor 3 and
``min.insync.replicas`` 2: one node may die with nothing acknowledged lost.
The test kills the active controller and then a partition leader, checks
that the cluster elects others, restarts each on its own data, and reads
back every record acknowledged along the way.
"""

# ruff: noqa: TID251 - the test reads the topic's settings and replicas as an operator would

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from broker.kafka.admin import TopicAdmin
from broker.kafka.embedded import ApacheKafka
from broker.kafka.producer import OutputProducer
from broker.kafka.reader import read_topic
from broker.kafka.security import client_options
from broker.wire.records import OutboundRecord

pytestmark = pytest.mark.integration


async def _send(bootstrap: str, topic: str, values: range) -> None:
    admin = TopicAdmin(bootstrap)  # the cluster's default replication: 3
    producer = OutputProducer(bootstrap, admin, client_id="test-cluster")
    await admin.start()
    await producer.start()
    try:
        await producer.send_all(
            [OutboundRecord(topic, f"k{i}".encode(), str(i).encode()) for i in values]
        )
    finally:
        await producer.stop()
        await admin.close()


async def _until(condition: object, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):  # type: ignore[arg-type]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def test_three_nodes_elect_anew_when_the_controller_or_a_leader_dies_and_lose_nothing(
    kafka_cluster: ApacheKafka,
) -> None:
    cluster = kafka_cluster
    topic = f"t{uuid.uuid4().hex[:12]}.cluster"
    assert sorted(cluster.nodes) == [1, 2, 3]
    assert len(cluster.pids) == 3
    await _send(cluster.bootstrap, topic, range(0, 100))
    raw = AIOKafkaAdminClient(
        bootstrap_servers=cluster.bootstrap, **client_options(cluster.bootstrap)
    )
    await raw.start()
    try:
        [described] = await raw.describe_topics([topic])
        [configs] = await raw.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await raw.close()
    assert {len(p["replicas"]) for p in described["partitions"]} == {3}
    held = {entry[0]: entry[1] for *_, entries in configs.resources for entry in entries}
    assert held["min.insync.replicas"] == "2"

    controller = cluster.active_controller()
    assert controller in cluster.nodes
    cluster.kill(controller)
    assert not cluster.nodes[controller].running
    await _until(
        lambda: cluster.active_controller() not in (None, controller),
        "no other node took over the metadata quorum",
    )
    await _send(cluster.bootstrap, topic, range(100, 200))  # two nodes: still two in sync
    await asyncio.to_thread(cluster.restart, controller)
    assert cluster.running

    leader = (await cluster.partition_leaders(topic))[0]
    cluster.kill(leader)
    deadline = time.monotonic() + 30
    while (await cluster.partition_leaders(topic))[0] in (leader, -1):
        assert time.monotonic() < deadline, "partition 0 kept its dead leader"
        await asyncio.sleep(0.2)
    await _send(cluster.bootstrap, topic, range(200, 300))
    await asyncio.to_thread(cluster.restart, leader)

    read = [r.value async for r in read_topic(cluster.bootstrap, topic, idle_timeout_s=10)]
    assert sorted(int(v or b"-1") for v in read) == list(range(300))
