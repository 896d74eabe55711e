"""A TEST DOUBLE that injects faults in front of a real OPA server.

Some failures cannot be had from OPA itself on demand: an HTTP 503 from a
load balancer whose backend is gone, an HTTP 500 for one evaluation, a body
that is not JSON, an answer slower than the client's timeout. This double is
an HTTP proxy on 127.0.0.1 that forwards every request to a real OPA server
(tests/support/opa_server.py) and answers for it only when told to fail: it
evaluates nothing itself, so every decision that reaches the client is
OPA's own.

Controls: :meth:`answer_unavailable` (every request a 503 until
:meth:`resume`), :meth:`fail_next_evaluations` (HTTP 500),
:meth:`garble_next_evaluations` (200 with a body that is not JSON) and
:meth:`delay_next_evaluations` (forwarded only after a delay). An
evaluation is a ``POST /v1/data/...``, the Data API call that decides.
"""

from __future__ import annotations

import http.client
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast
from urllib.parse import urlsplit

_POLL_INTERVAL_S = 0.05
_UPSTREAM_TIMEOUT_S = 10.0
_FORWARDED_HEADERS = ("Content-Type", "Location")


class OpaFaultDouble:
    """Forwards to the OPA server at ``upstream`` except where a fault is injected."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname is not None
        assert parts.port is not None
        self._upstream = (parts.hostname, parts.port)
        self._lock = threading.Lock()
        self._failures = 0
        self._garbled = 0
        self._delays: list[float] = []
        self._unavailable = False
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.forwarded_evaluations = 0  # evaluations OPA answered through this double
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.double = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name="opa-fault-double",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the double first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- controls ----------------------------------------------------------

    def answer_unavailable(self) -> None:
        """Answer every request 503, as a proxy in front of a dead OPA does."""
        with self._lock:
            self._unavailable = True

    def resume(self) -> None:
        with self._lock:
            self._unavailable = False

    def fail_next_evaluations(self, count: int) -> None:
        """The next ``count`` evaluations answer HTTP 500, as OPA does on an internal error."""
        with self._lock:
            self._failures += count

    def garble_next_evaluations(self, count: int) -> None:
        """The next ``count`` evaluations answer 200 with a body that is not JSON."""
        with self._lock:
            self._garbled += count

    def delay_next_evaluations(self, count: int, seconds: float) -> None:
        """The next ``count`` evaluations are forwarded only after ``seconds``."""
        with self._lock:
            self._delays.extend([seconds] * count)

    # -- what the handler calls --------------------------------------------

    def _fault_for(self, method: str, path: str) -> tuple[str, float]:
        """("unavailable" | "fail" | "garble" | "", delay) for this request."""
        with self._lock:
            self.requests.append((method, path))
            if self._unavailable:
                return "unavailable", 0.0
            if method != "POST" or not path.startswith("/v1/data"):
                return "", 0.0
            delay = self._delays.pop(0) if self._delays else 0.0
            if self._failures:
                self._failures -= 1
                return "fail", delay
            if self._garbled:
                self._garbled -= 1
                return "garble", delay
            return "", delay

    def _forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=_UPSTREAM_TIMEOUT_S)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
            kept = {h: v for h in _FORWARDED_HEADERS if (v := answer.getheader(h)) is not None}
            if method == "POST" and path.startswith("/v1/data") and answer.status == 200:
                with self._lock:
                    self.forwarded_evaluations += 1
            return answer.status, kept, payload
        finally:
            connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a delayed answer must not hold up close()
    double: OpaFaultDouble


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.0: one request per connection, so each request meets the current faults."""

    @property
    def double(self) -> OpaFaultDouble:
        return cast(_Server, self.server).double

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the tests read outcomes, not access logs."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault, delay = self.double._fault_for(method, self.path)
        if delay:
            self.double._closing.wait(delay)
        if fault == "unavailable":
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {}, b"no healthy upstream")
        elif fault == "fail":
            error = b'{"code": "internal_error", "message": "injected by the fault double"}'
            self._send(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"Content-Type": "application/json"}, error
            )
        elif fault == "garble":
            self._send(HTTPStatus.OK, {"Content-Type": "application/json"}, b"<html>not json")
        else:
            headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
            try:
                status, kept, payload = self.double._forward(method, self.path, body, headers)
            except OSError:
                self._send(HTTPStatus.BAD_GATEWAY, {}, b"the OPA server did not answer")
            else:
                self._send(status, kept, payload)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status != HTTPStatus.NO_CONTENT:
            self.wfile.write(body)
