"""Free loopback ports for the embedded engines and the test proxies in front of them."""

from __future__ import annotations

import contextlib
import socket


def free_loopback_port() -> int:
    """A port nothing listens on now (another process may still take it before we do)."""
    return free_loopback_ports(1)[0]


def free_loopback_ports(count: int) -> list[int]:
    """``count`` distinct such ports: each socket stays bound until all are chosen."""
    with contextlib.ExitStack() as sockets:
        ports = []
        for _ in range(count):
            sock = sockets.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports
