"""A witness over HTTP: c2sp.org/tlog-witness, so any log client can push to it.

``POST /add-checkpoint`` answers with :meth:`Witness.add_checkpoint`;
``GET /<hex sha256(origin)>/checkpoint`` serves the last checkpoint cosigned
for that log (the monitor retrieval endpoint), which auditors keep outside
the broker's reach. Nothing else is served. Like the enforcer's probe
server, it is a small asyncio server rather than a framework: one request
per connection, its head and body bounded in size and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import structlog

from broker.parties.witness import Answer, Witness

__all__ = ["WitnessServer"]

log = structlog.get_logger("ixb.witness")

_READ_TIMEOUT_S = 10.0
_MAX_LINE_BYTES = 8192
_MAX_HEADERS = 100
_MAX_BODY_BYTES = 128 * 1024  # 63 proof lines and a note with 100 signatures fit many times
_MONITOR = re.compile(r"^/([0-9a-f]{64})/checkpoint$")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    422: "Unprocessable Content",
}


class WitnessServer:
    """Serves one :class:`Witness` on ``host:port`` (port 0: a free port, see :attr:`address`)."""

    __slots__ = ("_host", "_port", "_server", "_witness")

    def __init__(self, witness: Witness, host: str, port: int) -> None:
        self._witness = witness
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the witness is not listening")
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
            answer = await asyncio.wait_for(self._answer(reader), _READ_TIMEOUT_S)
            writer.write(_encode(answer))
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass  # a slow, vanished or oversized client gets nothing more
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> Answer:
        head = await _read_head(reader)
        if head is None:
            return Answer(400, "bad_request", b"bad request\n")
        method, path, length = head
        if path == "/add-checkpoint":
            refused = _refuse_submission(method, length)
            if refused is not None or length is None:
                return refused or Answer(411, "length_required", b"Content-Length required\n")
            answer = self._witness.add_checkpoint(await reader.readexactly(length))
            log.debug("add_checkpoint", status=answer.status, reason=answer.reason)
            return answer
        monitored = _MONITOR.match(path)
        if monitored is None or method != "GET":
            return Answer(404, "not_found", b"not found\n")
        note = self._witness.latest(monitored.group(1))
        if note is None:
            return Answer(404, "not_cosigned", b"never cosigned for this log\n")
        return Answer(200, "latest", note)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, int | None] | None:
    """Method, path (query dropped) and Content-Length of one request; None if malformed."""
    request_line = (await reader.readline()).decode("latin-1").strip().split(" ")
    length: int | None = None
    for _ in range(_MAX_HEADERS):
        line = (await reader.readline()).decode("latin-1")
        if line in ("\r\n", "\n", ""):
            break
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())  # ValueError: the connection is dropped
    else:
        return None
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/"):
        return None
    return request_line[0], request_line[1].split("?", 1)[0], length


def _refuse_submission(method: str, length: int | None) -> Answer | None:
    if method != "POST":
        return Answer(405, "method_not_allowed", b"POST only\n")
    if length is not None and length > _MAX_BODY_BYTES:
        return Answer(413, "too_large", b"request too large\n")
    return None


def _encode(answer: Answer) -> bytes:
    head = (
        f"HTTP/1.1 {answer.status} {_REASONS.get(answer.status, 'Error')}\r\n"
        f"Content-Type: {answer.content_type}\r\n"
        f"Content-Length: {len(answer.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + answer.body
