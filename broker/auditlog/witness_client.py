"""Talking to a witness over c2sp.org/tlog-witness: push a checkpoint, fetch its latest.

A witness is named by a URL prefix (``http://witness.be.example:7380`` or
``https://...``); its submission and monitoring prefixes are the same here,
as ixb's own witness serves them (broker/parties/witness_http.py) and
litewitness does. Two calls:

- :meth:`WitnessClient.add_checkpoint`: ``POST <prefix>/add-checkpoint``
  with the request body, returning the status and body as the witness
  answered (the caller reads 200, 409 and the rest);
- :meth:`WitnessClient.latest`: ``GET <prefix>/<hex sha256(origin)>/checkpoint``,
  the last checkpoint it cosigned for the log, or None if it never did.

One short HTTP/1.1 exchange per call on a fresh connection, bounded in time
and size; any failure to talk is a :class:`~broker.errors.TransportError`
(retriable) that names the witness, never the bytes exchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from broker.errors import ConfigurationError, TransportError

__all__ = ["MAX_ANSWER_BYTES", "WitnessClient", "WitnessReply"]

MAX_ANSWER_BYTES = 64 * 1024
_MAX_HEADERS = 100


@dataclass(frozen=True, slots=True)
class WitnessReply:
    status: int
    body: bytes


class WitnessClient:
    """One witness, by its URL prefix; each call opens and closes its own connection."""

    __slots__ = ("_host", "_path", "_port", "_tls", "timeout_s", "url")

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"a witness is an http:// or https:// URL, not {url!r}")
        self.url = url.rstrip("/")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._path = parts.path
        self.timeout_s = timeout_s

    async def add_checkpoint(self, body: bytes) -> WitnessReply:
        return await self._exchange("POST", f"{self._path}/add-checkpoint", body)

    async def latest(self, origin: str) -> bytes | None:
        """The witness's last cosigned checkpoint of ``origin``; None on 404."""
        digest = hashlib.sha256(origin.encode()).hexdigest()
        reply = await self._exchange("GET", f"{self._path}/{digest}/checkpoint", None)
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise TransportError(f"witness {self.url} answered {reply.status} for a checkpoint")
        return reply.body

    async def _exchange(self, method: str, path: str, body: bytes | None) -> WitnessReply:
        try:
            return await asyncio.wait_for(self._talk(method, path, body), self.timeout_s)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            raise TransportError(
                f"witness {self.url}: {method} {path.rsplit('/', 1)[-1]} failed "
                f"({type(exc).__name__})"
            ) from exc

    async def _talk(self, method: str, path: str, body: bytes | None) -> WitnessReply:
        context = ssl.create_default_context() if self._tls else None
        reader, writer = await asyncio.open_connection(self._host, self._port, ssl=context)
        try:
            payload = body or b""
            head = (
                f"{method} {path or '/'} HTTP/1.1\r\nHost: {self._host}\r\n"
                f"User-Agent: ixb\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + payload)
            await writer.drain()
            return await _read_reply(reader)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_reply(reader: asyncio.StreamReader) -> WitnessReply:
    status_line = (await reader.readline()).decode("latin-1").split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
        raise ValueError("not an HTTP response")
    status = int(status_line[1])
    length: int | None = None
    for _ in range(_MAX_HEADERS):
        line = (await reader.readline()).decode("latin-1")
        if line in ("\r\n", "\n", ""):
            break
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    else:
        raise ValueError("too many headers")
    if length is not None:
        if length > MAX_ANSWER_BYTES:
            raise ValueError("answer too large")
        return WitnessReply(status, await reader.readexactly(length))
    body = await reader.read(MAX_ANSWER_BYTES + 1)
    if len(body) > MAX_ANSWER_BYTES:
        raise ValueError("answer too large")
    return WitnessReply(status, body)
