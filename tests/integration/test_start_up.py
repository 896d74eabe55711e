"""A start-up that waits names what it waits on, and a stop meanwhile is not ignored.

The Kafka here accepts connections and never answers, as a hung broker host
or a firewall that swallows replies would: the enforcer's first step can
neither succeed nor fail for the client's whole request timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from broker.app import enforcer_process
from broker.app.assembly import provision_keys
from broker.app.enforcer_process import run_enforcer
from tests.integration.conftest import make_settings

pytestmark = pytest.mark.integration


@asynccontextmanager
async def silent_kafka() -> AsyncIterator[str]:
    """A listener that takes every connection and every request, and answers none."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()
        for writer in held:
            writer.transport.abort()


async def test_a_stop_during_a_start_up_that_waits_ends_the_enforcer_and_names_the_step(
    tmp_path: Path, policies_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enforcer_process, "START_UP_WARN_S", 0.2)
    async with silent_kafka() as bootstrap:
        settings = make_settings(tmp_path, bootstrap, policies_dir)
        provision_keys(settings, ["NL", "BE"])
        stop, started = asyncio.Event(), asyncio.Event()
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
            running = asyncio.create_task(run_enforcer(settings, bootstrap, stop, started=started))
            await asyncio.sleep(1.0)  # the admin client's request waits 40 s for an answer
            assert not running.done()
            stop.set()
            # Well inside the 40 s the request would otherwise wait.
            await asyncio.wait_for(running, timeout=10)

    assert not started.is_set()
    slow = [e for e in captured if e["event"] == "start_up_slow"]
    assert slow, [e["event"] for e in captured]
    assert {e["step"] for e in slow} == {"reaching Kafka"}
    assert all(e["waited_s"] >= 0.2 for e in slow)
    [stopped] = [e for e in captured if e["event"] == "stopped_during_start_up"]
    assert stopped["step"] == "reaching Kafka"
