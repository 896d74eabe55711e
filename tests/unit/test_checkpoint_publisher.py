"""The running checkpoint publisher names a log that stays short of its latest checkpoint.

Such a log (the audit topic made anew, or entries lost) can never be signed
on from that checkpoint; before, the publisher waited for it without a word.
What it signs goes to the in-memory test transport (broker/kafka/memory.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import pytest
import structlog
from structlog.testing import capture_logs

from broker.enforcer.runtime import checkpoint_publisher
from broker.enforcer.runtime.checkpoint_publisher import CheckpointPublisher, LogReader, TopicReader
from broker.errors import TransportError
from broker.kafka.memory import MemoryCluster
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord
from broker.wire.topics import TopicNames
from tests.support.audit import LOG_ID, Ed25519CheckpointSigner, SteppingClock, build_log, verifier


@pytest.mark.parametrize(("in_log", "named_short"), [(7, True), (10, False), (12, False)])
async def test_a_log_shorter_than_its_latest_checkpoint_is_named_once_the_tail_is_idle(
    catalog: SchemaCatalog,
    monkeypatch: pytest.MonkeyPatch,
    in_log: int,
    named_short: bool,
) -> None:
    monkeypatch.setattr(checkpoint_publisher, "_CAUGHT_UP_S", 0.3)
    signer = Ed25519CheckpointSigner()
    built = build_log(catalog, signer, 12, writers=2, every=5)
    assert [c.tree_size for c in built.checkpoints] == [5, 10]  # signed before this start
    encoded = built.encoded_checkpoints(catalog)

    async def checkpoints() -> AsyncIterator[InboundRecord]:
        for offset, value in enumerate(encoded):
            yield InboundRecord("ixb.audit.checkpoints", 0, offset, LOG_ID.encode(), value, (), 0)

    async def audit_log(read_from: Mapping[int, int]) -> AsyncIterator[InboundRecord]:
        for offset, value in built.records[read_from.get(0, 0) : in_log]:  # then nothing more
            yield InboundRecord("ixb.audit", 0, offset, b"writer", value, (), 0)
        await asyncio.Event().wait()

    cluster = MemoryCluster()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        publisher = await _run_for(
            1.2, cluster, catalog, signer, read_log=audit_log, read_checkpoints=checkpoints
        )

    named = [e for e in captured if e["event"] == "checkpoint_beyond_log"]
    stats = publisher.stats
    if named_short:
        assert [(e["log_id"], e["log_size"], e["checkpoint_size"]) for e in named] == [
            (LOG_ID, in_log, 10)
        ]
        assert (stats.beyond_log, stats.resumed, stats.entries) == (1, 0, in_log)
    else:  # it reached the checkpoint, checked the root there and carried on
        assert named == []
        assert (stats.beyond_log, stats.resumed, stats.entries) == (0, 1, in_log)
        assert stats.signed == (1 if in_log > 10 else 0)  # what grew after it, at stop
    assert len(cluster.records(TopicNames().audit_checkpoints)) == stats.signed


async def test_after_a_failed_read_the_tail_reads_on_from_where_each_tree_ends(
    catalog: SchemaCatalog,
) -> None:
    """The log is kept forever: a broker hiccup must not mean reading it all again."""
    signer = Ed25519CheckpointSigner()
    built = build_log(catalog, signer, 8, writers=2, every=100)
    asked: list[dict[int, int]] = []

    async def no_checkpoints() -> AsyncIterator[InboundRecord]:
        return
        yield  # an async generator with nothing in it

    async def failing_once(read_from: Mapping[int, int]) -> AsyncIterator[InboundRecord]:
        asked.append(dict(read_from))
        end = 5 if len(asked) == 1 else len(built.values)
        for offset, value in built.records[read_from.get(0, 0) : end]:
            yield InboundRecord("ixb.audit", 0, offset, b"writer", value, (), 0)
        if len(asked) == 1:
            raise TransportError("the broker went away (injected)")
        await asyncio.Event().wait()

    publisher = await _run_for(
        0.8,
        MemoryCluster(),
        catalog,
        signer,
        read_log=failing_once,
        read_checkpoints=no_checkpoints,
        retry_after_s=0.1,
    )

    assert asked == [{}, {0: 5}]
    assert publisher.stats.entries == 8  # every entry once


async def _run_for(
    seconds: float,
    cluster: MemoryCluster,
    catalog: SchemaCatalog,
    signer: Ed25519CheckpointSigner,
    *,
    read_log: LogReader,
    read_checkpoints: TopicReader,
    retry_after_s: float = 1.0,
) -> CheckpointPublisher:
    """A publisher run for ``seconds``; what it signs goes to ``cluster``."""
    publisher = CheckpointPublisher(
        read_log=read_log,
        read_checkpoints=read_checkpoints,
        producer=cluster.producer(),
        catalog=catalog,
        topics=TopicNames(),
        signer=signer,
        verify=verifier(signer),
        clock=SteppingClock(),
        every_entries=5,
        every_s=3600,
        retry_after_s=retry_after_s,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(publisher.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(running, timeout=5)
    return publisher
