"""The secured embedded node's configuration: no plaintext anywhere, the authorizer on."""

from __future__ import annotations

from pathlib import Path

from broker.kafka.embedded import kraft
from broker.kafka.embedded.kraft import BrokerTls, NodePorts


def _secured(nodes: int) -> list[dict[str, str]]:
    ports = {i: NodePorts(9000 + i, 9100 + i, 9000 + i) for i in range(1, nodes + 1)}
    tls = BrokerTls(Path("/ca.pem"), Path("/ks.pem"), ("User:kafka", "User:operator"))
    return [kraft.server_properties(i, ports, Path("/d"), tls) for i in ports]


def test_no_listener_of_a_secured_node_is_plaintext() -> None:
    for properties in _secured(3):
        assert "PLAINTEXT" not in properties["listeners"]
        assert "PLAINTEXT" not in properties["advertised.listeners"]
        mapped = dict(p.split(":") for p in properties["listener.security.protocol.map"].split(","))
        assert set(mapped.values()) == {"SSL"}
        assert properties["inter.broker.listener.name"] == "SSL"
        assert properties["ssl.client.auth"] == "required"


def test_a_secured_node_denies_what_no_acl_grants() -> None:
    (properties,) = _secured(1)
    assert properties["authorizer.class.name"].endswith("StandardAuthorizer")
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert properties["super.users"] == "User:kafka;User:operator"
    assert properties["ssl.keystore.type"] == "PEM"


def test_an_unsecured_node_keeps_its_plaintext_listener() -> None:
    ports = {1: NodePorts(9001, 9101, 9001)}
    properties = kraft.server_properties(1, ports, Path("/d"))
    assert properties["listeners"].startswith("PLAINTEXT://")
    assert "authorizer.class.name" not in properties
