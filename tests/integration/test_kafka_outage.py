"""Kafka unreachable for a while: the enforcer waits, resumes, and loses nothing.

The embedded broker (Tansu) keeps its data in memory only, so it cannot be
stopped and restarted with its topics. The outage is made in front of it
instead: a dedicated broker advertises a TCP proxy's port to every client,
and the proxy refuses new connections and drops the open ones for a few
seconds (tests/support/tcp_proxy.py). To every client, the enforcer
included, that is Kafka gone, then back at the same address with its data.
The other outage is a broker that hangs (SIGSTOP, then SIGCONT): connections
stay open and nothing answers, and the group's sessions expire meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.app.settings import Settings
from broker.kafka.embedded.tansu import EmbeddedKafka, free_loopback_port
from tests.factories import make_report
from tests.integration.conftest import enforcer
from tests.integration.rules_support import feed_until, rules_settings
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

OUTAGE_S = 5.0
BURST = 100


@dataclass
class _Outage:
    kafka: EmbeddedKafka
    proxy: TcpProxy

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    async def begin(self, kind: str) -> None:
        if kind == "unreachable":
            await self.proxy.cut()
        else:
            assert self.kafka.tansu_pid is not None
            os.kill(self.kafka.tansu_pid, signal.SIGSTOP)

    async def end(self, kind: str) -> None:
        if kind == "unreachable":
            await self.proxy.restore()
        else:
            assert self.kafka.tansu_pid is not None
            os.kill(self.kafka.tansu_pid, signal.SIGCONT)


@pytest.fixture
async def outage() -> AsyncIterator[_Outage]:
    """A broker of its own, reached only through a proxy that can cut it off."""
    proxy_port = free_loopback_port()
    kafka = EmbeddedKafka(advertised_port=proxy_port)
    proxy = TcpProxy(("127.0.0.1", kafka.port), proxy_port)
    await proxy.start()
    try:
        await asyncio.to_thread(kafka.start)  # it waits on its own event loop
        yield _Outage(kafka, proxy)
    finally:
        if kafka.tansu_pid is not None:
            os.kill(kafka.tansu_pid, signal.SIGCONT)  # harmless when it is not stopped
        await proxy.close()
        await asyncio.to_thread(kafka.stop)


@pytest.mark.parametrize("kind", ["unreachable", "hung"])
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
