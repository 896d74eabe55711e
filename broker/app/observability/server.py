"""``/metrics``, ``/healthz`` and ``/readyz`` over a small asyncio HTTP server.

Three read-only GET endpoints do not justify a web framework: the server
reads one request line and its headers (bounded in size and time), answers,
and closes the connection.

- ``/healthz``: 200 whenever the event loop runs, i.e. the process is alive
  and not stuck in CPU work longer than the prober's timeout;
- ``/readyz``: 200 once the enforcer is doing its job (see
  :class:`Readiness`), else 503 with the first unmet condition; either way
  a second line ``partitions: N`` says how many submission partitions it
  owns (``ready`` / ``not ready: <condition>`` first);
- ``/metrics``: Prometheus text exposition of the enforcer's registry.

Bodies hold fixed phrases and numbers only: no report value, no exception
text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from broker.app.observability.metrics import EnforcerMetrics

log = structlog.get_logger("ixb.observability")

_READ_TIMEOUT_S = 5.0
_MAX_LINE_BYTES = 8192
_MAX_HEADERS = 100
_TEXT = "text/plain; charset=utf-8"


@dataclass
class Readiness:
    """What ``/readyz`` checks, set by whoever runs the enforcer as it starts and stops.

    Ready means: the policy bundle is loaded (the enforcer is not built
    without one, so this object exists only after it), the Kafka clients
    started, the submission consumer joined its group, and no stop was
    requested. Owning partitions is not a condition: a member of a group
    with more members than partitions is a ready standby, and the group may
    be joined before anyone published. How many it owns is reported beside
    (:meth:`owned`), so a script waits for ``ready`` and an operator reads
    both.
    """

    stop: asyncio.Event | None = None  # the enforcer's stop signal
    joined: Callable[[], bool] | None = None  # set once the consumer has started
    partitions: Callable[[], int] | None = None  # set once the consumer has started

    def unmet(self) -> str | None:
        """The first condition not met, in a few words; None when ready."""
        if self.stop is not None and self.stop.is_set():
            return "stopping"
        if self.joined is None or self.partitions is None:
            return "kafka clients not started"
        if not self.joined():
            return "joining the submission group"
        return None

    def owned(self) -> int:
        """Submission partitions owned right now (0 before the clients started)."""
        return 0 if self.partitions is None else self.partitions()


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: bytes
    content_type: str = _TEXT


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ProbeServer:
    """Serves the three endpoints on ``host:port`` (port 0: any free port, see :attr:`address`)."""

    __slots__ = ("_host", "_metrics", "_port", "_readiness", "_server")

    def __init__(
        self, host: str, port: int, *, metrics: EnforcerMetrics | None, readiness: Readiness
    ) -> None:
        self._host = host
        self._port = port
        self._metrics = metrics
        self._readiness = readiness
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens, with the port the system chose when asked for 0."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the probe server is not listening")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        """Listen; OSError when the address cannot be bound."""
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=_MAX_LINE_BYTES
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(_read_head(reader), _READ_TIMEOUT_S)
            response = (
                _Response(400, b"bad request\n") if head is None else await self._answer(*head)
            )
            writer.write(_encode(response, head_only=head is not None and head[0] == "HEAD"))
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass  # a slow, vanished or oversized client gets nothing more
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, method: str, path: str) -> _Response:
        if path not in ("/metrics", "/healthz", "/readyz"):
            return _Response(404, b"not found\n")
        if method not in ("GET", "HEAD"):
            return _Response(405, b"method not allowed\n")
        if path == "/metrics":
            return await self._scrape()
        if path == "/readyz":
            unmet = self._readiness.unmet()
            owned = f"partitions: {self._readiness.owned()}\n"
            if unmet is not None:
                return _Response(503, f"not ready: {unmet}\n{owned}".encode())
            return _Response(200, f"ready\n{owned}".encode())
        return _Response(200, b"ok\n")

    async def _scrape(self) -> _Response:
        if self._metrics is None:
            return _Response(404, b"no metrics\n")
        try:
            body = await self._metrics.exposition()
        except Exception as exc:  # noqa: BLE001 - a failed scrape must not end the server
            log.error("metrics_scrape_failed", error_kind=type(exc).__name__)
            return _Response(500, b"metrics unavailable\n")
        return _Response(200, body, CONTENT_TYPE_LATEST)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """The method and path (query string dropped) of one request; None if malformed."""
    request_line = (await reader.readline()).decode("latin-1").strip()
    for _ in range(_MAX_HEADERS):
        if (await reader.readline()) in (b"\r\n", b"\n", b""):
            break
    else:
        return None
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    method, target, _ = parts
    return method, target.split("?", 1)[0]


def _encode(response: _Response, *, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.1 {response.status} {_REASONS[response.status]}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (b"" if head_only else response.body)


@contextlib.asynccontextmanager
async def serving(
    host: str, port: int, *, metrics: EnforcerMetrics | None, readiness: Readiness
) -> AsyncIterator[tuple[str, int] | None]:
    """A :class:`ProbeServer` for the duration of the block; yields where it listens.

    An address that cannot be bound is logged as an error and yields None:
    the enforcer's work, moving reports, goes on without metrics (a health
    check against the address then fails, which is how operators notice).
    """
    server = ProbeServer(host, port, metrics=metrics, readiness=readiness)
    try:
        await server.start()
    except OSError as exc:
        log.error("probe_server_failed", host=host, port=port, errno=exc.errno)
        yield None
        return
    address = server.address
    log.info("probe_server_listening", host=address[0], port=address[1])
    try:
        yield address
    finally:
        await server.close()
