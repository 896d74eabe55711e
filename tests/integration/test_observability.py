"""A running enforcer serves its probes and Prometheus metrics, counting what it did."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.app.assembly import provision_keys
from broker.kafka.admin import TopicAdmin
from broker.parties.recipient import VerifiedDelivery
from broker.wire.topics import TopicNames
from tests.factories import make_report
from tests.integration.conftest import (
    NL_BE_AGREEMENT,
    Exchange,
    enforcer,
    make_settings,
    nl_be_settings,
)
from tests.support.probes import http_get, samples
from tests.support.submissions import tamper_signed_payload

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class Observed:
    exchange: Exchange
    port: int
    readyz_at_listening: tuple[int, str]  # asked as soon as the server listened


@pytest.fixture
async def observed(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> AsyncIterator[Observed]:
    settings = await nl_be_settings(tmp_path, kafka_bootstrap, policies_dir)
    assert settings.metrics_addr == "127.0.0.1:0"
    # Asked as soon as the server listens: the Kafka clients are starting then, and
    # joining the group takes a while longer.
    listened: list[tuple[int, asyncio.Task[tuple[int, str]]]] = []

    def ask_readyz(address: tuple[str, int]) -> None:
        listened.append((address[1], asyncio.ensure_future(http_get(address[1], "/readyz"))))

    async with enforcer(settings, on_listening=ask_readyz) as exchange:
        [(port, asked)] = listened
        yield Observed(exchange, port, await asked)


async def ready(port: int, timeout_s: float = 20.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await http_get(port, "/readyz")
        if answer[0] == 200 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.1)


async def test_readyz_is_503_until_the_group_is_joined_then_200_with_its_partitions(
    observed: Observed,
) -> None:
    status, body = observed.readyz_at_listening
    assert status == 503
    assert body.startswith("not ready: ")
    assert body.endswith("\npartitions: 0\n")
    # NL, BE and DE's submit topics, three partitions each, all this member's.
    assert await ready(observed.port) == (200, "ready\npartitions: 9\n")
    assert await http_get(observed.port, "/healthz") == (200, "ok\n")


async def test_readyz_is_200_before_anyone_published_and_the_first_publish_is_delivered(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> None:
    # What a deployment script does: start the enforcer, wait for /readyz, then publish.
    # No submit topic exists yet: the enforcer creates those of the registry's agencies.
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = make_settings(tmp_path, kafka_bootstrap, policies_dir)
    provision_keys(settings, ["NL", "BE"])
    topics = TopicNames(settings.topic_namespace)
    ports: list[int] = []
    async with enforcer(settings, on_listening=lambda at: ports.append(at[1])) as exchange:
        answer = await ready(ports[0])
        report = make_report("NL")
        await exchange.publish("NL", [exchange.seal(report)])
        await exchange.wait_completed(1)
        feed = await exchange.feed("BE")

    assert answer == (200, "ready\npartitions: 6\n")  # NL's and BE's, three each
    assert {topics.submit("NL"), topics.submit("BE")} <= await _topics(kafka_bootstrap)
    assert [item.report.report_id for item in feed if isinstance(item, VerifiedDelivery)] == [
        report.report_id
    ]


async def test_a_standby_beyond_the_partition_count_is_ready_and_owns_none(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> None:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = make_settings(tmp_path, kafka_bootstrap, policies_dir)
    provision_keys(settings, ["NL"])  # one submitting agency ...
    admin = TopicAdmin(kafka_bootstrap, partitions=1)  # ... with one partition
    await admin.start()
    try:
        await admin.ensure([TopicNames(settings.topic_namespace).submit("NL")])
    finally:
        await admin.close()
    ports: list[int] = []
    async with (
        enforcer(settings, on_listening=lambda at: ports.append(at[1])),
        enforcer(settings, on_listening=lambda at: ports.append(at[1])),
    ):
        answers = [await ready(port) for port in ports]
        deadline = time.monotonic() + 20  # the second join moves the partition, or not
        while sorted(answers) != [(200, "ready\npartitions: 0\n"), (200, "ready\npartitions: 1\n")]:
            assert time.monotonic() < deadline, answers
            await asyncio.sleep(0.2)
            answers = [await http_get(port, "/readyz") for port in ports]


async def _topics(bootstrap: str) -> frozenset[str]:
    admin = TopicAdmin(bootstrap)
    await admin.start()
    try:
        return await admin.topics()
    finally:
        await admin.close()


async def test_metrics_count_a_delivered_a_withheld_and_a_rejected_report(
    observed: Observed,
) -> None:
    exchange = observed.exchange
    assert (await ready(observed.port))[0] == 200
    shared = make_report("NL")  # BE gets it; DE has no agreement
    kept = make_report("NL", report_type="terrorism")  # the agreement does not cover it
    forged = exchange.seal(make_report("NL"))
    tampered = exchange.resealed(forged, lambda s: tamper_signed_payload(exchange.catalog, s))
    records = [exchange.seal(shared), exchange.seal(kept), tampered]
    await exchange.publish("NL", records)
    await exchange.wait_completed(len(records))

    status, text = await http_get(observed.port, "/metrics")

    assert status == 200
    got = samples(text)
    assert got["ixb_submissions_total", ()] == 3
    assert got["ixb_submissions_completed_total", ()] == 3
    assert got["ixb_deliveries_total", ()] == 1
    decisions = {labels: v for (name, labels), v in got.items() if name == "ixb_decisions_total"}
    assert decisions == {
        (("outcome", "delivered"), ("reason", "allowed")): 1,
        (("outcome", "held"), ("reason", "embargo")): 0,
        (("outcome", "withheld"), ("reason", "no_agreement")): 2,  # DE, for both reports
        (("outcome", "withheld"), ("reason", "test-nl-be:report_type_not_covered")): 1,
    }
    rejected = {labels: v for (name, labels), v in got.items() if name == "ixb_rejected_total"}
    assert rejected == {
        (("reason", "bad_signature"),): 1,
        (("reason", "embargo_release_refused"),): 0,
    }
    assert got["ixb_held", ()] == 0
    assert got["ixb_end_to_end_seconds_count", ()] == 3
    assert got["ixb_batch_seconds_count", ()] >= 1
    # Four decision inputs (two reports, BE and DE), none seen before: all misses.
    # The ratio's wiring with hits is in tests/unit/test_probe_server.py.
    assert got["ixb_decision_cache_hit_ratio", ()] == 0.0
    lag = {labels: v for (name, labels), v in got.items() if name == "ixb_consumer_lag"}
    submit_nl = exchange.topics.submit("NL")
    assert any(dict(labels)["topic"] == submit_nl for labels in lag), lag
    assert set(lag.values()) == {0}, "everything published was fetched"
