"""The intake ledger is read back by time: the replay window, not all that Kafka still keeps.

Kafka deletes a topic's records a whole segment at a time, so the ledger
holds lines older than its retention until their segment goes. An enforcer
reads it back from the start of the window (ListOffsets by timestamp), so
such a line is never read: a report whose ledger line is stamped before the
window is accepted, one stamped inside it is refused as a replay.
"""

# ruff: noqa: TID251 - the ledger lines need explicit timestamps, which OutputProducer does not set

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from broker.app.settings import Settings
from broker.enforcer.stages.replay_guard import ledger_record
from broker.kafka.admin import TopicAdmin
from broker.kafka.security import client_options
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord
from broker.wire.topics import TopicNames, ledger_retention
from tests.factories import make_report
from tests.integration.conftest import enforcer
from tests.integration.rules_support import feed_until, rules_settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def settings(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> Settings:
    return await rules_settings(tmp_path, kafka_bootstrap, policies_dir)


async def test_an_enforcer_reads_back_only_the_ledger_lines_stamped_inside_the_replay_window(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    assert settings.kafka_bootstrap is not None
    topics = TopicNames(settings.topic_namespace)
    window = ledger_retention(
        dt.timedelta(seconds=settings.max_report_age_s),
        dt.timedelta(seconds=settings.max_clock_skew_s),
    )
    now = dt.datetime.now(dt.UTC)
    before_window, inside_window = make_report("NL"), make_report("NL")  # both issued just now
    stamped = {
        before_window: now - window - dt.timedelta(minutes=10),
        inside_window: now - window + dt.timedelta(minutes=10),
    }
    admin = TopicAdmin(settings.kafka_bootstrap, ledger_retention=window)
    await admin.start()
    await admin.ensure([topics.accepted])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, **client_options(settings.kafka_bootstrap)
    )
    await producer.start()
    try:
        for partition, (report, stamp) in enumerate(stamped.items()):
            # as if accepted before, at a position no submission of this test takes
            source = InboundRecord(
                topic=topics.submit("NL"),
                partition=0,
                offset=1000 + partition,
                key=None,
                value=b"",
                headers=(),
                timestamp_ms=0,
            )
            line = ledger_record(
                catalog,
                topics.accepted,
                report_id=str(report.report_id),
                origin="NL",
                issued_at=report.issued_at,
                payload_sha256=bytes(32),
                source=source,
                now=stamp,
            )
            await producer.send_and_wait(  # each alone in its partition: nothing else to skip
                line.topic,
                line.value,
                key=line.key,
                partition=partition,
                timestamp_ms=int(stamp.timestamp() * 1000),
            )
    finally:
        await producer.stop()

    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(r) for r in stamped])
        await exchange.wait_completed(2)
        rejections = await exchange.rejections("NL")
        delivered = await feed_until(exchange, "BE", 1, timeout_s=10)

    assert [r["reason"] for r in rejections] == ["replayed_report"]
    assert str(inside_window.report_id) in str(rejections[0]["detail"])
    assert [d.report.report_id for d in delivered] == [before_window.report_id]
