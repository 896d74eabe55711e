"""Shared fixtures: one real Kafka for the whole session.

Apache Kafka 4 (one KRaft node, from its Maven Central jars, fetched into
the engine cache the first time) is started once on free loopback ports,
unless IXB_KAFKA_BOOTSTRAP names a cluster to use instead. Every test gets
its own topic namespace, home directory and keys.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.kafka.embedded import ApacheKafka
from broker.kafka.embedded.engine import KAFKA_VERSION, ensure_kafka, kafka_home
from broker.wire.codec import SchemaCatalog
from tests.support.kafka import EXTERNAL, SESSION_TIMEOUT_MS, SUITE_SETTINGS
from tests.support.opa_server import OpaServer

REPO = Path(__file__).resolve().parent.parent


def pytest_report_header(config: pytest.Config) -> str:
    if EXTERNAL:
        where = f"the cluster at {EXTERNAL} (IXB_KAFKA_BOOTSTRAP)"
    else:
        home = kafka_home(SUITE_SETTINGS.engine_cache)
        where = f"Apache Kafka {KAFKA_VERSION}, one KRaft node started for the session ({home})"
    return f"kafka: {where}; consumer-group sessions of {SESSION_TIMEOUT_MS} ms"


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    if EXTERNAL:
        yield EXTERNAL
        return
    plugins = request.config.pluginmanager
    terminal, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")

    def say(line: str) -> None:
        """On the terminal, past the output capture that a fixture's setup runs under."""
        if terminal is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line(f"\n{line}")

    libs = ensure_kafka(SUITE_SETTINGS.engine_cache, say=say)
    started = time.monotonic()
    with ApacheKafka(libs) as kafka:
        say(
            f"kafka: {kafka.description} on {kafka.bootstrap}, "
            f"started in {time.monotonic() - started:.1f} s"
        )
        yield kafka.bootstrap


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[ApacheKafka]:
    """Three Apache Kafka nodes (replication 3, min.insync.replicas 2), for fault tests.

    Started once, by the first test that asks for it. A test that kills,
    freezes or restarts nodes leaves every node running again when it ends.
    Its nodes start on the quick JIT tier: they restart under load, where
    start-up CPU is what a fault costs.
    """
    libs = ensure_kafka(SUITE_SETTINGS.engine_cache)
    with ApacheKafka(libs, nodes=3, heap_mb=512, quick_start=True) as cluster:
        yield cluster


@pytest.fixture
def policies_dir(tmp_path: Path) -> Path:
    """A policy directory with the real Rego modules and no agreements yet."""
    target = tmp_path / "policies"
    shutil.copytree(REPO / "policies" / "ixb", target / "ixb")
    (target / "agreements").mkdir()
    return target


@pytest.fixture(scope="session")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load()


@pytest.fixture(scope="session")
def opa_server() -> Iterator[OpaServer]:
    """One real OPA server (`make opa-engine` builds it), started when a test first needs it."""
    with OpaServer() as server:
        yield server


@pytest.fixture
def opa(opa_server: OpaServer) -> OpaServer:
    """The session's OPA server, running and holding no policy or data."""
    opa_server.start()  # started again if a test stopped it
    opa_server.reset()
    return opa_server
