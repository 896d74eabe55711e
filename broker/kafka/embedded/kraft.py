"""The configuration an embedded Apache Kafka node is started with: KRaft, loopback, for tests.

Every node is a combined broker and controller. One node is the shape for
most tests, the demo and the bench (replication factor 1); three nodes are
the shape for fault tests (replication factor 3, ``min.insync.replicas`` 2:
a write is acknowledged by two copies, so one node may die with nothing
acknowledged lost). The quorum is static (``controller.quorum.voters``), and
storage is formatted without ``--standalone`` to match.

The settings marked "test" are here and nowhere else: ixb's production
defaults, and the deployment in ``docker-compose.yml``, keep Kafka's own
(a group of consumers that forms at once instead of after three seconds, a
session timeout of a second or two, no topic created by a typo).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from broker.trust.identities import PRINCIPAL_MAPPING_RULE

# The shortest consumer-group session the embedded nodes accept; tests and
# the bench use 2 s (broker/kafka/embedded/__init__.py, group_session_timeout_ms).
MIN_SESSION_TIMEOUT_MS = 1000


@dataclass(frozen=True, slots=True)
class NodePorts:
    """One node's loopback ports: clients (and other brokers), the quorum, and the advertised."""

    client: int
    controller: int
    advertised: int  # what clients are told; a proxy's port in front of ``client`` in tests


def cluster_id() -> str:
    """A random cluster id as ``kafka-storage random-uuid`` prints it (no JVM needed)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's Uuid.randomUuid avoids these too
            return text


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """The files a secured node needs: the CA to trust, and its own key and chain in one PEM.

    With it, every listener (clients, other brokers, the quorum) is TLS with
    client certificates required, principals are the certificates' CNs, and
    the StandardAuthorizer allows only what an ACL grants (``super_users``
    excepted: the brokers' own principal and the bootstrap operator).
    """

    truststore: Path
    keystore: Path  # private key (PKCS #8) followed by the certificate chain
    super_users: tuple[str, ...]


def server_properties(
    node_id: int, ports: Mapping[int, NodePorts], data_dir: Path, tls: BrokerTls | None = None
) -> dict[str, str]:
    """The ``server.properties`` of node ``node_id`` in a cluster of ``ports`` (id -> ports)."""
    own = ports[node_id]
    size = len(ports)
    replication = min(size, 3)
    min_isr = min(replication, 2)
    voters = ",".join(f"{i}@127.0.0.1:{p.controller}" for i, p in sorted(ports.items()))
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{own.client},CONTROLLER://127.0.0.1:{own.controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{own.advertised}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        # Replication: every internal topic as durable as the cluster allows.
        "default.replication.factor": str(replication),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(replication),
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": str(min_isr),
        "share.coordinator.state.topic.replication.factor": str(replication),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        "unclean.leader.election.enable": "false",
        **(_secured(own, tls) if tls is not None else {}),
        # Test: small internal topics (made on first use, inside some test's time).
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.num.partitions": "3",
        # Test: a group forms as soon as its first member joins ...
        "group.initial.rebalance.delay.ms": "0",
        # Test: ... and a member that dies is noticed within a second or two.
        "group.min.session.timeout.ms": str(MIN_SESSION_TIMEOUT_MS),
        # Test: ixb creates its topics with their settings; a typo must not make one.
        "auto.create.topics.enable": "false",
        # Test: a killed node's partitions move within 6 s, not 9 (still far above
        # the pauses a loaded 2-core machine makes).
        "broker.session.timeout.ms": "6000",
        "broker.heartbeat.interval.ms": "1000",
    }


def _secured(own: NodePorts, tls: BrokerTls) -> dict[str, str]:
    """TLS on every listener, mTLS principals, the authorizer, no plaintext port at all."""
    return {
        "listeners": f"SSL://127.0.0.1:{own.client},CONTROLLER://127.0.0.1:{own.controller}",
        "advertised.listeners": f"SSL://127.0.0.1:{own.advertised}",
        "listener.security.protocol.map": "SSL:SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls.truststore),
        "ssl.client.auth": "required",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.principal.mapping.rules": PRINCIPAL_MAPPING_RULE,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": ";".join(tls.super_users),
    }


def render(properties: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def log4j2_properties() -> str:
    """Warnings and errors to stdout (the watchdog puts them in the node's log file).

    Also at INFO: the lines that say a node started or stopped and which
    controller leads, for whoever reads a fault test's logs.
    """
    return "\n".join(
        [
            "status = warn",
            "appender.out.type = Console",
            "appender.out.name = OUT",
            "appender.out.layout.type = PatternLayout",
            "appender.out.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = WARN",
            "rootLogger.appenderRef.out.ref = OUT",
            "logger.server.name = kafka.server.KafkaRaftServer",
            "logger.server.level = INFO",
            "logger.raft.name = org.apache.kafka.raft.QuorumState",
            "logger.raft.level = INFO",
            "",
        ]
    )
