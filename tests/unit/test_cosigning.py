"""The broker gathers the partners' cosignatures for each checkpoint and publishes them.

The witnesses are real (broker/parties/witness.py), called in-process; what
the cosigner publishes goes to the in-memory transport (broker/kafka/memory.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.auditlog.checkpoints import decode_checkpoint
from broker.auditlog.witnessed import WitnessKeys
from broker.enforcer.runtime.cosigning import Cosigner, WitnessEndpoint
from broker.kafka.memory import MemoryCluster
from broker.trust.note import parse_note
from broker.wire.codec import SchemaCatalog
from broker.wire.topics import TopicNames
from tests.support.witnessing import (
    Federation,
    GarblingWitness,
    InProcessWitness,
    UnreachableWitness,
    values,
)


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    return Federation(tmp_path)


def endpoints(federation: Federation, *nations: str) -> list[WitnessEndpoint]:
    return [
        InProcessWitness(federation.witnesses[n], f"http://{n.lower()}.example") for n in nations
    ]


def cosigner(
    federation: Federation,
    cluster: MemoryCluster,
    catalog: SchemaCatalog,
    witnesses: list[WitnessEndpoint],
) -> Cosigner:
    return Cosigner(
        witnesses=witnesses,
        witness_keys=lambda: WitnessKeys(federation.registry),
        producer=cluster.producer(),
        catalog=catalog,
        topics=TopicNames(),
        retry_after_s=0.01,
    )


def published_cosigners(
    cluster: MemoryCluster, catalog: SchemaCatalog, federation: Federation
) -> list[set[str]]:
    keys = WitnessKeys(federation.registry)
    return [
        set(keys.cosigners(parse_note(decode_checkpoint(catalog, value or b"").note)))
        for value in cluster.values(TopicNames().audit_checkpoints)
    ]


async def test_a_checkpoint_is_published_again_with_every_witnesss_cosignature(
    federation: Federation, catalog: SchemaCatalog
) -> None:
    cluster = MemoryCluster()
    shown = federation.log(values(10))
    collecting = cosigner(federation, cluster, catalog, endpoints(federation, "NL", "BE", "DE"))

    collecting.offer(shown.checkpoint(), shown.tree)
    await collecting.flush()

    assert published_cosigners(cluster, catalog, federation) == [{"NL", "BE", "DE"}]
    assert (collecting.stats.asked, collecting.stats.cosignatures) == (3, 3)


async def test_the_next_checkpoint_is_proven_from_the_size_each_witness_cosigned(
    federation: Federation, catalog: SchemaCatalog
) -> None:
    cluster = MemoryCluster()
    shown = federation.log(values(30))
    collecting = cosigner(federation, cluster, catalog, endpoints(federation, "NL", "BE"))
    collecting.offer(shown.checkpoint(10), shown.tree)
    await collecting.flush()

    collecting.offer(shown.checkpoint(30), shown.tree)
    await collecting.flush()

    assert published_cosigners(cluster, catalog, federation) == [{"NL", "BE"}, {"NL", "BE"}]
    assert collecting.stats.asked == 4  # no conflict: each witness asked once per checkpoint


async def test_a_witness_that_cosigned_for_another_process_is_asked_again_from_its_size(
    federation: Federation, catalog: SchemaCatalog
) -> None:
    shown = federation.log(values(30))
    assert federation.witnesses["BE"].add_checkpoint(shown.request(0, 12)).status == 200
    cluster = MemoryCluster()
    collecting = cosigner(federation, cluster, catalog, endpoints(federation, "BE"))

    collecting.offer(shown.checkpoint(30), shown.tree)
    await collecting.flush()

    assert published_cosigners(cluster, catalog, federation) == [{"BE"}]
    assert collecting.stats.asked == 2  # a 409 naming size 12, then the proof from 12


async def test_an_unreachable_witness_costs_its_cosignature_not_the_checkpoint(
    federation: Federation, catalog: SchemaCatalog
) -> None:
    cluster = MemoryCluster()
    shown = federation.log(values(5))
    witnesses = [*endpoints(federation, "NL"), UnreachableWitness()]
    collecting = cosigner(federation, cluster, catalog, witnesses)

    with capture_logs() as captured:
        collecting.offer(shown.checkpoint(), shown.tree)
        await collecting.flush()

    assert published_cosigners(cluster, catalog, federation) == [{"NL"}]
    assert collecting.stats.unreachable == 1
    assert [e["event"] for e in captured if e["log_level"] == "warning"] == ["witness_unreachable"]


async def test_a_witness_holding_another_view_refuses_and_is_named_as_an_error(
    federation: Federation, catalog: SchemaCatalog
) -> None:
    other_view = federation.log([b"forged", *values(9)[1:]])
    assert federation.witnesses["BE"].add_checkpoint(other_view.request(0)).status == 200
    cluster = MemoryCluster()
    shown = federation.log(values(9))
    collecting = cosigner(federation, cluster, catalog, endpoints(federation, "NL", "BE"))

    with capture_logs() as captured:
        collecting.offer(shown.checkpoint(), shown.tree)
        await collecting.flush()

    assert published_cosigners(cluster, catalog, federation) == [{"NL"}]
    refused = [e for e in captured if e["event"] == "witness_refused_checkpoint"]
    assert [(e["witness"], e["status"]) for e in refused] == [("http://be.example", 422)]


async def test_a_cosignature_line_that_does_not_verify_is_left_out_of_the_note(
    federation: Federation, catalog: SchemaCatalog
) -> None:
    cluster = MemoryCluster()
    shown = federation.log(values(6))
    garbled = GarblingWitness(federation.witnesses["BE"], "http://be.example")
    collecting = cosigner(federation, cluster, catalog, [*endpoints(federation, "NL"), garbled])

    collecting.offer(shown.checkpoint(), shown.tree)
    await collecting.flush()

    [value] = cluster.values(TopicNames().audit_checkpoints)
    note = parse_note(decode_checkpoint(catalog, value or b"").note)
    names = [s.name for s in note.signatures]
    assert federation.witness_keys["BE"].key_id not in names
    assert federation.witness_keys["NL"].key_id in names


async def test_a_checkpoint_no_witness_cosigns_is_not_published_again(
    federation: Federation, catalog: SchemaCatalog
) -> None:
    cluster = MemoryCluster()
    shown = federation.log(values(6))
    collecting = cosigner(federation, cluster, catalog, [UnreachableWitness()])

    collecting.offer(shown.checkpoint(), shown.tree)
    await collecting.flush()

    assert cluster.values(TopicNames().audit_checkpoints) == []


async def test_cosigned_checkpoints_kafka_did_not_acknowledge_are_sent_again_not_recosigned(
    federation: Federation, catalog: SchemaCatalog
) -> None:
    cluster = MemoryCluster()
    producer = cluster.producer()
    shown = federation.log(values(6))
    collecting = Cosigner(
        witnesses=endpoints(federation, "NL"),
        witness_keys=lambda: WitnessKeys(federation.registry),
        producer=producer,
        catalog=catalog,
        topics=TopicNames(),
        retry_after_s=0.01,
    )
    producer.refuse(1)

    collecting.offer(shown.checkpoint(), shown.tree)
    await collecting.flush()
    await collecting.flush()

    assert published_cosigners(cluster, catalog, federation) == [{"NL"}]
    assert collecting.stats.asked == 1
