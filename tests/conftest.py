"""Shared fixtures: one real Kafka for the whole session, secured as a deployment is.

Apache Kafka 4 (one KRaft node, from its Maven Central jars, fetched into
the engine cache the first time) is started once on free loopback ports,
unless IXB_KAFKA_BOOTSTRAP names a cluster to use instead (with
IXB_CLIENT_CONFIG, the identity to use there). Every test gets its own
topic namespace, home directory and keys.

The session's cluster has TLS on every listener, client certificates
required and the authorizer on (broker/kafka/embedded/secure.py), from a
PKI made for the session (:func:`suite_pki`). The suite itself speaks as
the bootstrap operator, a super user: in this process through the address
binding of broker/kafka/security.py, in ``ixb`` subprocesses through
``IXB_CLIENT_CONFIG``, which the session sets for every Settings() built
after it starts. Tests of what each party may do issue their own
credentials and apply the ACL plan (tests/integration/test_access_matrix.py).
``IXB_TEST_KAFKA_SECURITY=off`` runs the session's cluster in plaintext
(to measure what TLS costs).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.kafka import security
from broker.kafka.embedded import ApacheKafka
from broker.kafka.embedded.engine import KAFKA_VERSION, ensure_kafka, kafka_home
from broker.kafka.embedded.secure import SecureCluster
from broker.kafka.security import load_client_config
from broker.trust.identities import Identity, Role
from broker.wire.codec import SchemaCatalog
from tests.support.kafka import EXTERNAL, SECURED, SESSION_TIMEOUT_MS, SUITE_SETTINGS
from tests.support.opa_server import OpaServer

REPO = Path(__file__).resolve().parent.parent


def pytest_report_header(config: pytest.Config) -> str:
    if EXTERNAL:
        where = f"the cluster at {EXTERNAL} (IXB_KAFKA_BOOTSTRAP)"
    else:
        home = kafka_home(SUITE_SETTINGS.engine_cache)
        where = f"Apache Kafka {KAFKA_VERSION}, one KRaft node started for the session ({home})"
    secured = "TLS, mTLS, ACLs" if SECURED else "PLAINTEXT (IXB_TEST_KAFKA_SECURITY=off)"
    return f"kafka: {where} ({secured}); consumer-group sessions of {SESSION_TIMEOUT_MS} ms"


@pytest.fixture(scope="session")
def suite_pki(tmp_path_factory: pytest.TempPathFactory) -> SecureCluster:
    """The session's federation CA, the brokers' and the operator's certificates."""
    return SecureCluster.prepare(tmp_path_factory.mktemp("pki"))


def _speak_as_operator(secure: SecureCluster, bootstrap: str) -> None:
    """``ixb`` subprocesses (and Settings built from here on) use the operator's identity."""
    path = secure.write_client_config(Identity(Role.OPERATOR), bootstrap)
    os.environ["IXB_CLIENT_CONFIG"] = str(path)


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest, suite_pki: SecureCluster) -> Iterator[str]:
    if EXTERNAL:
        if SUITE_SETTINGS.client_config is not None:
            security.use(load_client_config(SUITE_SETTINGS.client_config, bootstrap=EXTERNAL))
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
    with ApacheKafka(libs, secure=suite_pki if SECURED else None) as kafka:
        say(
            f"kafka: {kafka.description} on {kafka.bootstrap}, "
            f"started in {time.monotonic() - started:.1f} s"
        )
        if SECURED:
            _speak_as_operator(suite_pki, kafka.bootstrap)
        yield kafka.bootstrap


@pytest.fixture(scope="session")
def kafka_cluster(suite_pki: SecureCluster) -> Iterator[ApacheKafka]:
    """Three Apache Kafka nodes (replication 3, min.insync.replicas 2), for fault tests.

    Started once, by the first test that asks for it. A test that kills,
    freezes or restarts nodes leaves every node running again when it ends.
    Its nodes start on the quick JIT tier: they restart under load, where
    start-up CPU is what a fault costs. Secured like the session's node, under the same CA.
    """
    libs = ensure_kafka(SUITE_SETTINGS.engine_cache)
    secure = suite_pki if SECURED else None
    with ApacheKafka(libs, nodes=3, heap_mb=512, quick_start=True, secure=secure) as cluster:
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
