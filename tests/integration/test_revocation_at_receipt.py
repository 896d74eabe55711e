"""Revocation bites at receipt, on the session's broker: judged when Kafka appended the record.

Issue 17 item 8. Before, a report signed with a key revoked at T but claiming
an issued-at just before T was delivered for as long as the freshness
window. Now nothing that reached Kafka at or after T is accepted from that
key, whatever it claims, and what reached Kafka before T is accepted however
late the enforcer reads it. The second half needs a broker that stamps the
append time (``message.timestamp.type=LogAppendTime``, which ixb sets on
the submit topics): Apache Kafka does; Tansu 0.6 keeps the producer's
timestamp and says so in the record (CreateTime), and the test is skipped
exactly then. Without the stamp the enforcer judges at its own clock, so
the first half holds on every broker.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from broker.app.settings import Settings
from broker.enforcer.processor import EnforcerStats
from broker.kafka.reader import read_topic
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRecord, KeyRole, KeyUse
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from tests.factories import make_report
from tests.integration.conftest import Exchange, enforcer
from tests.integration.rules_support import feed_until, rules_settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def settings(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> Settings:
    return await rules_settings(tmp_path, kafka_bootstrap, policies_dir)


def _registry_file(settings: Settings) -> RegistryFile:
    return RegistryFile(settings.registry_path, keystore=Keystore(settings.keystore_dir))


def _nl_signing_key(registry_file: RegistryFile) -> KeyRecord:
    [key] = [
        k
        for k in registry_file.current().records()
        if k.role is KeyRole.AGENCY and k.nation == "NL" and k.use is KeyUse.SIGNING
    ]
    return key


def _publisher(settings: Settings) -> Exchange:
    """Sealing and publishing as NL's adapter does, with no enforcer running yet."""
    assert settings.kafka_bootstrap is not None
    return Exchange(settings, settings.kafka_bootstrap, EnforcerStats(), SchemaCatalog.load())


async def test_a_report_backdated_before_its_keys_revocation_is_refused_when_it_reaches_kafka_after(
    settings: Settings,
) -> None:
    registry_file = _registry_file(settings)
    stolen = _nl_signing_key(registry_file)
    revoked_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    backdated = make_report("NL", issued_at=revoked_at - dt.timedelta(minutes=1))
    honest_late = make_report("NL", issued_at=revoked_at + dt.timedelta(seconds=30))
    async with enforcer(settings) as exchange:
        sealed = [exchange.seal(backdated), exchange.seal(honest_late)]  # while the key was good
        registry_file.save(registry_file.current().revoking(stolen.key_id, revoked_at))
        await exchange.publish("NL", sealed)  # the thief's, reaching Kafka after T
        await exchange.wait_completed(2)
        rejections = await exchange.rejections("NL")
        delivered = await feed_until(exchange, "BE", 1, timeout_s=3)

    assert [r["reason"] for r in rejections] == ["key_not_valid_at_receipt"] * 2
    assert delivered == []


async def test_a_report_that_reached_kafka_before_its_keys_revocation_is_delivered_when_read_after(
    settings: Settings,
) -> None:
    registry_file = _registry_file(settings)
    key = _nl_signing_key(registry_file)
    adapter = _publisher(settings)
    report = make_report("NL")
    await adapter.publish("NL", [adapter.seal(report)])  # no enforcer yet: it waits on the topic
    [stored] = [
        r
        async for r in read_topic(
            adapter.bootstrap, adapter.topics.submit("NL"), idle_timeout_s=2.0
        )
    ]
    if not stored.log_append_time:
        pytest.skip(
            "the session's broker kept the producer's timestamp (CreateTime) on a topic created "
            "with message.timestamp.type=LogAppendTime: it does not stamp append times "
            "(Tansu 0.6 does not; Apache Kafka does)"
        )
    assert stored.appended_at is not None
    revoked_at = max(dt.datetime.now(dt.UTC), stored.appended_at + dt.timedelta(milliseconds=1))
    registry_file.save(registry_file.current().revoking(key.key_id, revoked_at))

    async with enforcer(settings) as exchange:  # reads the record after the revocation
        await exchange.wait_completed(1)
        rejections = await exchange.rejections("NL")
        [delivery] = await feed_until(exchange, "BE", 1, timeout_s=10)

    assert rejections == []
    assert delivery.report.report_id == report.report_id
    assert delivery.received_at == stored.appended_at.replace(
        microsecond=stored.appended_at.microsecond // 1000 * 1000
    )
    assert delivery.received_at < revoked_at <= delivery.decided_at
