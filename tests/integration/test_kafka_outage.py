"""Kafka unreachable for a while: the enforcer waits, resumes, and loses nothing.

Each outage has a one-node Apache Kafka of its own, which advertises a TCP
proxy's port to every client. Three kinds:

- unreachable: the proxy refuses new connections and drops the open ones
  for a few seconds (tests/support/tcp_proxy.py), then lets them through;
- hung: the broker is frozen (SIGSTOP, then SIGCONT): connections stay open
  and nothing answers, and the group's sessions expire meanwhile;
- restarted: the broker is SIGKILLed, then started again on its data.

To every client, the enforcer included, that is Kafka gone, then back at
the same address with its data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.app.settings import Settings
from broker.kafka.embedded import ApacheKafka
from broker.kafka.embedded.engine import ensure_kafka
from broker.kafka.embedded.ports import free_loopback_port
from broker.kafka.embedded.secure import SecureCluster
from tests.factories import make_report
from tests.integration.conftest import enforcer
from tests.integration.rules_support import feed_until, rules_settings
from tests.support.kafka import SECURED, SUITE_SETTINGS
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

NODE = 1  # the only one
OUTAGE_S = 5.0
BURST = 100


@dataclass
class _Outage:
    kafka: ApacheKafka
    proxy: TcpProxy

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    async def begin(self, kind: str) -> None:
        if kind == "unreachable":
            await self.proxy.cut()
        elif kind == "hung":
            self.kafka.freeze(NODE)
        else:
            self.kafka.kill(NODE)

    async def end(self, kind: str) -> None:
        if kind == "unreachable":
            await self.proxy.restore()
        elif kind == "hung":
            self.kafka.thaw(NODE)
        else:
            await asyncio.to_thread(self.kafka.restart, NODE)  # it waits on its own loop


@pytest.fixture
async def outage(suite_pki: SecureCluster) -> AsyncIterator[_Outage]:
    """A broker of its own, reached only through a proxy that can cut it off.

    Secured as the session's is (TLS passes through the proxy untouched).
    """
    proxy_port = free_loopback_port()
    kafka = ApacheKafka(
        ensure_kafka(SUITE_SETTINGS.engine_cache),
        advertised_port=proxy_port,
        secure=suite_pki if SECURED else None,
    )
    proxy = TcpProxy(("127.0.0.1", kafka.ports[NODE].client), proxy_port)
    await proxy.start()
    try:
        await asyncio.to_thread(kafka.start)  # it waits on its own event loop
        yield _Outage(kafka, proxy)
    finally:
        await proxy.close()
        await asyncio.to_thread(kafka.stop)  # thaws a frozen node first


@pytest.mark.parametrize("kind", ["unreachable", "hung", "restarted"])
async def test_the_enforcer_waits_out_a_kafka_outage_and_then_delivers_every_report(
    tmp_path: Path, policies_dir: Path, outage: _Outage, kind: str
) -> None:
    settings: Settings = await rules_settings(tmp_path, outage.bootstrap, policies_dir)
    first = [make_report("NL") for _ in range(BURST)]
    second = [make_report("NL") for _ in range(BURST)]
    third = [make_report("NL") for _ in range(BURST)]
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(r) for r in first])
        await exchange.wait_completed(BURST, timeout_s=30)
        await exchange.publish("NL", [exchange.seal(r) for r in second])
        deadline = time.monotonic() + 30
        while exchange.stats.submissions <= BURST:  # until the second burst is being processed
            assert time.monotonic() < deadline, "the second burst was never fetched"
            await asyncio.sleep(0.002)
        await outage.begin(kind)
        await asyncio.sleep(1.0)  # what was acknowledged as the cut came is counted by now
        completed_at_cut = exchange.stats.completed
        await asyncio.sleep(OUTAGE_S - 1.0)
        completed_in_outage = exchange.stats.completed - completed_at_cut
        await outage.end(kind)
        await exchange.publish("NL", [exchange.seal(r) for r in third])
        be = await feed_until(exchange, "BE", 3 * BURST, timeout_s=60)
        de = await feed_until(exchange, "DE", 3 * BURST, timeout_s=30)
        refused = await exchange.rejections("NL")

    expected = sorted(str(r.report_id) for r in first + second + third)
    assert completed_in_outage == 0, "nothing is acknowledged while Kafka is cut off"
    assert sorted(str(d.report.report_id) for d in be) == expected, "a report was lost"
    assert sorted(str(d.report.report_id) for d in de) == expected, "a report was lost"
    assert refused == []
    assert exchange.stats.rejected == {}
