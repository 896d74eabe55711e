"""Every record ixb writes names its schema in a header a partner's tool can read."""

from __future__ import annotations

import pytest

from broker.kafka.reader import read_topic
from broker.wire.codec import FINGERPRINT_HEADER, SCHEMA_HEADER, SchemaCatalog
from tests.factories import make_report
from tests.integration.conftest import Exchange

pytestmark = pytest.mark.integration


async def test_every_record_on_every_topic_names_its_schema_and_fingerprint(
    exchange: Exchange, catalog: SchemaCatalog
) -> None:
    good = make_report("NL")
    impostor = make_report("DE")  # signed by NL's key: refused, to ixb.rejected.NL
    sealed = exchange.seal(impostor, key_nation="NL", topic_nation="NL")
    await exchange.publish("NL", [exchange.seal(good), sealed])
    await exchange.wait_completed(2)
    topics = exchange.topics
    seen: dict[str, int] = {}
    for topic in (
        topics.submit("NL"),
        topics.deliver("BE"),
        topics.rejected("NL"),
        topics.audit,
        topics.accepted,
    ):
        async for record in read_topic(exchange.bootstrap, topic, idle_timeout_s=1.5):
            headers = dict(record.headers)
            value = record.value or b""
            schema = catalog.schema_of(value)
            assert headers[SCHEMA_HEADER] == schema.name.encode(), topic
            assert headers[FINGERPRINT_HEADER] == f"crc-64-avro:{value[2:10].hex()}".encode()
            seen[topic] = seen.get(topic, 0) + 1
    assert set(seen) == {
        topics.submit("NL"),
        topics.deliver("BE"),
        topics.rejected("NL"),
        topics.audit,
        topics.accepted,
    }
