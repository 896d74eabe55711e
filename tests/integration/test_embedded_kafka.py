"""The embedded Tansu broker: answers on loopback, stops with its owner, never outlives it."""

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
from broker.kafka.embedded.tansu import EmbeddedKafka

pytestmark = pytest.mark.integration

IXB = Path(sys.executable).parent / "ixb"

CHILD = """
import time
from broker.kafka.embedded.tansu import EmbeddedKafka

kafka = EmbeddedKafka().start()
assert kafka.tansu_pid is not None
print(kafka.tansu_pid, kafka.port, flush=True)
time.sleep(300)
"""


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


def test_the_embedded_broker_answers_on_loopback_and_is_gone_when_its_context_exits() -> None:
    with EmbeddedKafka() as kafka:
        host, _, port = kafka.bootstrap.rpartition(":")
        assert host == "127.0.0.1"
        assert int(port) == kafka.port
        asyncio.run(wait_until_ready(kafka.bootstrap, timeout_s=10))
        tansu_pid = kafka.tansu_pid
        assert tansu_pid is not None
        assert not _is_gone(tansu_pid)
        assert kafka.running

    assert _eventually_gone(tansu_pid, timeout_s=5)
    assert not kafka.running
    assert _refuses_connections(kafka.port)


def test_the_embedded_broker_dies_with_its_parent_even_when_the_parent_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as parent:
        tansu_pid = None
        try:
            tansu_pid, port = (int(word) for word in _Lines(parent).next(30).split())
            assert not _is_gone(tansu_pid)

            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=5)

            assert _eventually_gone(tansu_pid, timeout_s=5), (
                f"Tansu {tansu_pid} outlived its parent"
            )
            assert _refuses_connections(port)
        finally:
            if parent.poll() is None:
                parent.kill()
            if tansu_pid is not None and not _is_gone(tansu_pid):
                os.kill(tansu_pid, signal.SIGKILL)


def test_the_embedded_broker_keeps_running_after_the_thread_that_started_it_ends() -> None:
    kafka = EmbeddedKafka()
    starter = threading.Thread(target=kafka.start)
    starter.start()
    starter.join(timeout=30)
    try:
        assert kafka.running
        time.sleep(0.5)
        assert kafka.running, "Tansu stopped when its starting thread ended"
    finally:
        kafka.stop()


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM])
def test_ixb_kafka_up_publishes_its_address_and_removes_it_when_stopped(
    tmp_path: Path, stop_with: signal.Signals
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IXB_")}
    env["IXB_HOME"] = str(home)
    address_file = home / "kafka-bootstrap"
    with subprocess.Popen(
        [str(IXB), "kafka", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as up:
        try:
            # The address file is written first, then the announcement is printed.
            lines = _Lines(up)
            announced = lines.next(30)
            assert "listening on" in announced
            while str(address_file) not in announced.replace("\n", ""):  # rich wraps at 80
                announced += lines.next(10)
            bootstrap = address_file.read_text().strip()
            host, _, port = bootstrap.rpartition(":")
            assert host == "127.0.0.1"
            asyncio.run(wait_until_ready(bootstrap, timeout_s=10))

            up.send_signal(stop_with)
            assert up.wait(timeout=15) == 0
        finally:
            if up.poll() is None:
                up.kill()

    assert not address_file.exists()
    assert _refuses_connections(int(port))
