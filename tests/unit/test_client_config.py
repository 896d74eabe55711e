"""Client configuration files: the standard property names, both flavours, failing closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import ConfigurationError
from broker.kafka import security
from broker.kafka.security import (
    ClientConfig,
    Flavour,
    client_options,
    load_client_config,
    parse_properties,
    render_properties,
)
from broker.trust.identities import Identity, Role
from broker.trust.pki import Pki


def test_librdkafka_properties_name_the_ca_the_certificate_and_the_key(tmp_path: Path) -> None:
    config = ClientConfig(
        "k:9093", ca=tmp_path / "ca", certificate=tmp_path / "c", key=tmp_path / "k"
    )
    properties = config.properties()
    assert properties["security.protocol"] == "SSL"
    assert properties["ssl.key.location"] == str((tmp_path / "k").resolve())
    path = tmp_path / "be.properties"
    path.write_text(render_properties(properties, comment="x"))
    assert load_client_config(path) == config


def test_java_properties_read_back_as_the_same_party(tmp_path: Path) -> None:
    config = ClientConfig("k:9093", ca=tmp_path / "ca", certificate=tmp_path / "ks")
    properties = config.properties(Flavour.JAVA)
    assert properties["ssl.keystore.type"] == "PEM"
    assert load_client_config(_written(tmp_path, properties)) == config


def test_a_bootstrap_given_at_the_edge_wins_over_the_files(tmp_path: Path) -> None:
    path = _written(tmp_path, {"bootstrap.servers": "a:1"})
    assert load_client_config(path, bootstrap="b:2").bootstrap == "b:2"


@pytest.mark.parametrize(
    ("properties", "match"),
    [
        ({"security.protocol": "SSL"}, "bootstrap.servers"),
        ({"bootstrap.servers": "a:1", "security.protocol": "SASL_SSL"}, "not supported"),
        ({"bootstrap.servers": "a:1", "security.protocol": "SSL"}, "CA"),
        (
            {
                "bootstrap.servers": "a:1",
                "security.protocol": "SSL",
                "ssl.keystore.type": "JKS",
                "ssl.keystore.location": "x.jks",
            },
            "PEM",
        ),
    ],
)
def test_an_incomplete_or_unsupported_configuration_is_refused(
    tmp_path: Path, properties: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        load_client_config(_written(tmp_path, properties))


def test_a_line_without_a_value_is_refused_with_its_number() -> None:
    with pytest.raises(ConfigurationError, match="line 2"):
        parse_properties("# comment\nnonsense\n")


def test_an_address_bound_to_a_party_connects_with_its_certificate(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.init()
    files = pki.issue(Identity(Role.ANALYST, "BE"))
    config = ClientConfig(
        "127.0.0.1:1", ca=pki.ca_certificate, certificate=files.certificate, key=files.key
    )
    assert client_options("127.0.0.1:1") == {}
    security.use(config)
    try:
        options = client_options("127.0.0.1:1")
        assert options["security_protocol"] == "SSL"
        assert options["ssl_context"].check_hostname
    finally:
        security.forget("127.0.0.1:1")


def test_a_missing_key_file_fails_at_the_edge_without_its_contents(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.init()
    config = ClientConfig(
        "h:1", ca=pki.ca_certificate, certificate=tmp_path / "no.pem", key=tmp_path / "no.key"
    )
    with pytest.raises(ConfigurationError, match="cannot load TLS files"):
        security.use(config)


def _written(tmp_path: Path, properties: dict[str, str]) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(render_properties(properties))
    return path
