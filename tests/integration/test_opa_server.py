"""The tests' OPA server: answers on loopback, restarts empty on its port, never outlives us."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.opa_server import OpaServer

CHILD = """
import time
from tests.support.opa_server import OpaServer

server = OpaServer().start()
print(server.pid, server.port, flush=True)
time.sleep(300)
"""
REPO = Path(__file__).resolve().parents[2]


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def is_gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for whoever adopted it to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return state.split()[1:2] == ["Z"]


def eventually_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_gone(pid):
            return True
        time.sleep(0.05)
    return is_gone(pid)


def test_the_opa_server_answers_on_loopback_and_is_gone_when_its_context_exits() -> None:
    with OpaServer() as server:
        pid = server.pid
        assert pid is not None
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.policies() == {}
        assert server.running

    assert eventually_gone(pid, timeout_s=5)
    assert not server.running
    assert refuses_connections(server.port)


def test_a_restarted_opa_server_answers_on_the_same_port_holding_nothing() -> None:
    with OpaServer() as server:
        server.put_policy("x.rego", "package x\n\ny := 1\n")
        server.put_data("agreements", {"a": 1})
        first_pid = server.pid

        server.restart()

        assert server.pid != first_pid
        assert server.policies() == {}
        assert server.document("agreements") is None
        assert server.starts == 2


def test_the_opa_server_dies_with_its_parent_even_when_the_parent_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    ) as parent:
        pid = None
        try:
            assert parent.stdout is not None
            pid, port = (int(word) for word in parent.stdout.readline().split())
            assert not is_gone(pid)

            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=5)

            assert eventually_gone(pid, timeout_s=5), f"OPA {pid} outlived its parent"
            assert refuses_connections(port)
        finally:
            if parent.poll() is None:
                parent.kill()
            if pid is not None and not is_gone(pid):
                os.kill(pid, signal.SIGKILL)
