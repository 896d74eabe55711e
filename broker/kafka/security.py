"""How ixb's Kafka clients authenticate: a client configuration file, bound to its cluster.

A client configuration (``--client-config FILE`` / ``IXB_CLIENT_CONFIG``) is
a Java-properties file with Kafka's standard names, the one ``ixb
credentials issue`` writes and librdkafka (``ssl.ca.location``,
``ssl.certificate.location``, ``ssl.key.location``) or the Java client
(``ssl.truststore.*``, ``ssl.keystore.*`` of type PEM) read as they are.
:func:`load_client_config` takes either flavour.

Every layer above hands the transport a bootstrap address, nothing more;
the identity a process speaks with is chosen once, at the edge (the CLI
from the file, the test session for its cluster, the embedded cluster for
its own administration), and bound here to that address with :func:`use`.
Every aiokafka client this package builds asks :func:`client_options` for
the address it connects to. An address bound to nothing connects in
plaintext, which a secured cluster refuses: the failure is closed.

The key's *contents* are never read here; only its path is passed to the
TLS library, and nothing in this module logs or formats a path's content.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from broker.errors import ConfigurationError


class Flavour(StrEnum):
    """Which client's property names a configuration file uses."""

    LIBRDKAFKA = "librdkafka"  # also what confluent-kafka, kcat and ixb read
    JAVA = "java"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A cluster's address and, for TLS, the CA to trust and the party's certificate and key.

    ``certificate`` is a PEM chain file; ``key`` a PEM private key, or None
    when the key is in the certificate file (the Java client's PEM keystore).
    """

    bootstrap: str
    ca: Path | None = None
    certificate: Path | None = None
    key: Path | None = None
    _context: list[ssl.SSLContext] = field(default_factory=list, compare=False, repr=False)

    @property
    def tls(self) -> bool:
        return self.ca is not None

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the brokers against the CA and their names; presents the party's cert."""
        if not self._context:
            if self.ca is None:
                raise ConfigurationError("a plaintext client configuration has no TLS context")
            try:
                context = ssl.create_default_context(cafile=str(self.ca))
                if self.certificate is not None:
                    context.load_cert_chain(
                        str(self.certificate), str(self.key) if self.key else None
                    )
            except (OSError, ssl.SSLError) as exc:
                # The path and the library's reason; never the files' contents.
                raise ConfigurationError(
                    f"cannot load TLS files for {self.bootstrap}: {exc}"
                ) from exc
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._context.append(context)
        return self._context[0]

    def properties(self, flavour: Flavour = Flavour.LIBRDKAFKA) -> dict[str, str]:
        """The standard property names of ``flavour``, paths absolute."""
        if not self.tls:
            return {"bootstrap.servers": self.bootstrap, "security.protocol": "PLAINTEXT"}
        assert self.ca is not None
        assert self.certificate is not None
        common = {"bootstrap.servers": self.bootstrap, "security.protocol": "SSL"}
        if flavour is Flavour.JAVA:
            if self.key is not None:
                raise ConfigurationError("the Java client's PEM keystore holds key and chain")
            return common | {
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self.ca.resolve()),
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self.certificate.resolve()),
                "ssl.endpoint.identification.algorithm": "https",
            }
        assert self.key is not None
        return common | {
            "ssl.ca.location": str(self.ca.resolve()),
            "ssl.certificate.location": str(self.certificate.resolve()),
            "ssl.key.location": str(self.key.resolve()),
            "ssl.endpoint.identification.algorithm": "https",
        }


def render_properties(properties: Mapping[str, str], *, comment: str = "") -> str:
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return head + "".join(f"{key}={value}\n" for key, value in properties.items())


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` (or ``key: value``) lines; ``#`` and ``!`` comments; no continuations."""
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            raise ConfigurationError(f"line {number}: expected key=value")
        found[line[:cut].strip()] = line[cut + 1 :].strip()
    return found


def load_client_config(path: Path, *, bootstrap: str | None = None) -> ClientConfig:
    """The configuration in ``path``; ``bootstrap`` overrides its ``bootstrap.servers``."""
    try:
        properties = parse_properties(path.read_text())
    except OSError as exc:
        raise ConfigurationError(f"cannot read the client configuration {path}: {exc}") from exc
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    return client_config(properties, bootstrap=bootstrap, base=path.parent, source=str(path))


def client_config(
    properties: Mapping[str, str],
    *,
    bootstrap: str | None = None,
    base: Path = Path(),
    source: str = "client configuration",
) -> ClientConfig:
    """The :class:`ClientConfig` of standard properties (relative paths from ``base``)."""
    address = bootstrap or properties.get("bootstrap.servers", "")
    if not address:
        raise ConfigurationError(f"{source}: no bootstrap.servers")
    protocol = properties.get("security.protocol", "PLAINTEXT").upper()
    if protocol == "PLAINTEXT":
        return ClientConfig(address)
    if protocol != "SSL":
        raise ConfigurationError(f"{source}: security.protocol {protocol} is not supported (SSL)")
    for name in ("ssl.truststore.type", "ssl.keystore.type"):
        if properties.get(name, "PEM").upper() != "PEM":
            raise ConfigurationError(f"{source}: {name} must be PEM")

    def path(*names: str) -> Path | None:
        value = next((properties[n] for n in names if properties.get(n)), None)
        return None if value is None else base / value

    ca = path("ssl.ca.location", "ssl.truststore.location")
    certificate = path("ssl.certificate.location", "ssl.keystore.location")
    if ca is None or certificate is None:
        raise ConfigurationError(f"{source}: SSL needs a CA and the party's certificate")
    key = path("ssl.key.location")
    return ClientConfig(address, ca=ca, certificate=certificate, key=key)


_bound: dict[str, ClientConfig] = {}


def use(config: ClientConfig) -> None:
    """Connect to ``config.bootstrap`` with ``config``'s identity from now on (this process)."""
    if config.tls:
        config.ssl_context()  # a missing or unreadable file fails here, at the edge
    _bound[config.bootstrap] = config


def forget(bootstrap: str) -> None:
    _bound.pop(bootstrap, None)


def bound(bootstrap: str) -> ClientConfig | None:
    return _bound.get(bootstrap)


def client_options(bootstrap: str) -> dict[str, Any]:
    """The keyword arguments an aiokafka client connecting to ``bootstrap`` needs."""
    config = _bound.get(bootstrap)
    if config is None or not config.tls:
        return {}
    return {"security_protocol": "SSL", "ssl_context": config.ssl_context()}
