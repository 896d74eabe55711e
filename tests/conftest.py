"""Shared fixtures: one real Kafka-protocol broker for the whole session.

The embedded Tansu broker is started once on a free loopback port (or
IXB_KAFKA_BOOTSTRAP is used when set, to run the suite against a real
Kafka); every test gets its own topic namespace, home directory and keys.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.kafka.embedded.tansu import EmbeddedKafka
from broker.wire.codec import SchemaCatalog
from tests.support.opa_server import OpaServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("IXB_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with EmbeddedKafka() as kafka:
        yield kafka.bootstrap


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
