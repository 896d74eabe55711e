"""The embedded engines: answer on loopback, stop with their owner, never outlive it.

Apache Kafka (the default) and Tansu (the no-JVM fallback) run under the
same watchdog rule, and are held to the same tests.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from broker.kafka.admin import wait_until_ready
from broker.kafka.embedded import EmbeddedBroker, Engine, embedded_broker
from tests.support.kafka import SUITE_SETTINGS

pytestmark = pytest.mark.integration

IXB = Path(sys.executable).parent / "ixb"
ENGINES: list[Engine] = ["kafka", "tansu"]

CHILD = """
import sys, time
from pathlib import Path
from broker.kafka.embedded import embedded_broker

broker = embedded_broker(sys.argv[1], cache=Path(sys.argv[2])).start()
print(*broker.pids, broker.bootstrap.rpartition(":")[2], flush=True)
time.sleep(300)
"""


def _broker(engine: Engine) -> EmbeddedBroker:
    return embedded_broker(engine, cache=SUITE_SETTINGS.engine_cache)


def _refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def _is_gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for whoever adopted it to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # it vanished between the two looks
        return True
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return state.split()[1:2] == ["Z"]


def _eventually_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _is_gone(pid):
            return True
        time.sleep(0.05)
    return _is_gone(pid)


class _Lines:
    """A process's stdout lines, read in a thread so that waiting can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._stdout = process.stdout
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self._stdout:
            self._queue.put(line)

    def next(self, timeout_s: float) -> str:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout_s} s") from None


@pytest.mark.parametrize("engine", ENGINES)
def test_the_embedded_broker_answers_on_loopback_and_is_gone_when_its_context_exits(
    engine: Engine,
) -> None:
    with _broker(engine) as broker:
        host, _, port = broker.bootstrap.rpartition(":")
        assert host == "127.0.0.1"
        asyncio.run(wait_until_ready(broker.bootstrap, timeout_s=10))
        [pid] = broker.pids
        assert not _is_gone(pid)
        assert broker.running

    assert _eventually_gone(pid, timeout_s=10)
    assert not broker.running
    assert _refuses_connections(int(port))


@pytest.mark.parametrize("engine", ENGINES)
def test_the_embedded_broker_dies_with_its_parent_even_when_the_parent_is_killed(
    engine: Engine,
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, engine, str(SUITE_SETTINGS.engine_cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as parent:
        pid = None
        try:
            pid, port = (int(word) for word in _Lines(parent).next(60).split())
            assert not _is_gone(pid)

            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=5)

            assert _eventually_gone(pid, timeout_s=10), f"{engine} {pid} outlived its parent"
            assert _refuses_connections(port)
        finally:
            if parent.poll() is None:
                parent.kill()
            if pid is not None and not _is_gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_embedded_broker_keeps_running_after_the_thread_that_started_it_ends(
    engine: Engine,
) -> None:
    broker = _broker(engine)
    starter = threading.Thread(target=broker.start)
    starter.start()
    starter.join(timeout=60)
    try:
        assert broker.running
        time.sleep(0.5)
        assert broker.running, f"{engine} stopped when its starting thread ended"
    finally:
        broker.stop()


@pytest.mark.parametrize(
    ("engine", "stop_with"),
    [("kafka", signal.SIGINT), ("kafka", signal.SIGTERM), ("tansu", signal.SIGTERM)],
)
def test_ixb_kafka_up_publishes_its_address_and_engine_and_removes_them_when_stopped(
    tmp_path: Path, engine: Engine, stop_with: signal.Signals
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IXB_")}
    env.update(IXB_HOME=str(home), IXB_ENGINE_CACHE=str(SUITE_SETTINGS.engine_cache))
    address_file, engine_file = home / "kafka-bootstrap", home / "kafka-engine"
    with subprocess.Popen(
        [str(IXB), "kafka", "up", "--engine", engine],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as up:
        try:
            # The address file is written first, then the announcement is printed.
            lines = _Lines(up)
            announced = lines.next(60)
            assert "listening on" in announced
            while str(address_file) not in announced.replace("\n", ""):  # rich wraps at 80
                announced += lines.next(10)
            bootstrap = address_file.read_text().strip()
            host, _, port = bootstrap.rpartition(":")
            assert host == "127.0.0.1"
            assert engine_file.read_text().strip() == engine
            asyncio.run(wait_until_ready(bootstrap, timeout_s=10))

            up.send_signal(stop_with)
            assert up.wait(timeout=20) == 0
        finally:
            if up.poll() is None:
                up.kill()

    assert not address_file.exists()
    assert not engine_file.exists()
    assert _refuses_connections(int(port))
