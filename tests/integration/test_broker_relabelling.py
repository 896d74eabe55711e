"""A recipient reading its feed refuses a value the broker relabelled as derived.

The broker's operator holds the broker's key: here it takes BE's genuine
delivery, swaps the originator's signed title for its own text labelled
"pseudonymised", re-attests it with the broker key and puts it on BE's
feed, sealed to BE as the enforcer seals (the broker made the statement, so
it knows what it sealed; the test opens it with BE's key only to get at it).
The feed, judged by the bundle archived for the statement, refuses it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from broker.app.assembly import attester_for
from broker.kafka.reader import read_topic
from broker.parties.recipient import FeedProblem
from broker.trust.attestation import open_attested
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.trust.sd.layout import encode_value
from broker.trust.sd.statement import DELIVERY_SCHEMA
from broker.trust.sealing.envelope import Opener, read_sealed
from broker.trust.sealing.routes import delivery_content_key
from broker.wire.records import OutboundRecord
from tests.factories import make_report
from tests.integration.conftest import Exchange

pytestmark = pytest.mark.integration


async def test_a_title_relabelled_as_derived_by_the_broker_is_a_feed_problem(
    exchange: Exchange,
) -> None:
    await exchange.publish("NL", [exchange.seal(make_report("NL"))])
    await exchange.wait_completed(1)
    [genuine] = [
        r
        async for r in read_topic(
            exchange.bootstrap, exchange.topics.deliver("BE"), idle_timeout_s=1.5
        )
    ]
    catalog = exchange.catalog
    topic = exchange.topics.deliver("BE")
    attested = Opener(Keystore(exchange.settings.keystore_dir), "BE").open(
        read_sealed(catalog, genuine.value or b""), topic=topic
    )
    statement = catalog.decode(open_attested(catalog, attested).payload, DELIVERY_SCHEMA)
    statement["disclosures"] = [d for d in statement["disclosures"] if d["path"] != "title"]
    statement["derived_fields"] = [
        *statement["derived_fields"],
        {"field": "title", "action": "pseudonymise", "to": None},
    ]
    statement["derived_values"] = [
        *statement["derived_values"],
        {
            "path": "title",
            "value": encode_value("string", "Routine check", "title"),
            "original_digest": None,
        },
    ]
    statement["delivery_id"] = "f" * 32  # not de-duplicated away as a repeat
    [forged] = attester_for(exchange.settings, catalog).attest(
        [catalog.encode(DELIVERY_SCHEMA, statement)]
    )
    content = delivery_content_key(
        RegistryFile(exchange.settings.registry_path).current(),
        topic=topic,
        recipient="BE",
        at=dt.datetime.now(dt.UTC),
    )
    sealed = content.seal(catalog, forged)
    await exchange.publish("BE", [OutboundRecord(topic, b"forged", sealed)])

    deadline = time.monotonic() + 20.0
    items = await exchange.feed("BE")
    while len(items) < 2 and time.monotonic() < deadline:  # a slow fetch ends a read early
        await asyncio.sleep(0.5)
        items = await exchange.feed("BE")

    assert sorted(type(i).__name__ for i in items) == ["FeedProblem", "VerifiedDelivery"]
    [problem] = [i for i in items if isinstance(i, FeedProblem)]
    assert problem.reason == "derivation_not_allowed"
    assert "test-nl-be v4" in problem.detail
