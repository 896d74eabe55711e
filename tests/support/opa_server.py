"""A real OPA server for the tests: ``opa run --server`` on a free loopback port.

The binary is built from OPA's Go module by ``make opa-engine`` into the
engine cache, ``${IXB_ENGINE_CACHE:-~/.cache/ixb}/opa-<version>/opa``, outside
the clone so a fresh clone on the same machine reuses it; ``IXB_OPA_BIN``
points elsewhere. A missing binary is an error naming the make target, never
a skipped test: the OPA path must be tested against OPA.

The server starts empty and in memory (as docker-compose.yml runs it), so a
stopped server comes back holding nothing: :meth:`OpaServer.restart` is how
an outage looks in production. It dies with the process that started it,
however that process ends: it runs under the engines' own watchdog
(broker/kafka/embedded/watchdog.py), which holds the
read end of a pipe whose write end only we hold; when we stop, exit or are
SIGKILLed, the pipe closes and the watchdog stops OPA.

The server is started with ``--skip-version-check`` (no call to GitHub: the
tests run offline) and ``--log-level=error``, logging into a file beside it
whose tail is quoted when the server does not come up. OPA's decision log is
off unless configured, so no decision input is written anywhere.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from broker.errors import TransportError
from broker.kafka.embedded.watchdog import Watched

OPA_VERSION = "1.22.4"  # the Makefile's OPA_VERSION and docker-compose.yml's image say the same
# No call to GitHub (the tests run offline), errors only, and a quick stop.
SERVER_FLAGS = ("--skip-version-check", "--log-level=error", "--shutdown-grace-period=1")
MAKE_TARGET = "make opa-engine"
_STARTUP_TIMEOUT_S = 15.0
_HTTP_TIMEOUT_S = 5.0

# The Prometheus counter of Data API evaluations OPA answered.
_EVALUATIONS = re.compile(
    r'^http_request_duration_seconds_count\{code="200",handler="v1/data",method="post"\} (\d+)$',
    re.MULTILINE,
)


class OpaEngineMissing(RuntimeError):
    """No OPA binary where the tests look for one; the message says how to build it."""


def engine_cache() -> Path:
    """Where engines are built once per machine (shared with the Kafka engine)."""
    configured = os.environ.get("IXB_ENGINE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "ixb"


def opa_binary() -> Path:
    """``IXB_OPA_BIN``, or the pinned build in the engine cache; it must exist."""
    configured = os.environ.get("IXB_OPA_BIN")
    path = Path(configured) if configured else engine_cache() / f"opa-{OPA_VERSION}" / "opa"
    if not (path.is_file() and os.access(path, os.X_OK)):
        where = "IXB_OPA_BIN points to" if configured else "the engine cache has"
        raise OpaEngineMissing(
            f"no OPA binary: {where} nothing executable at {path}. "
            f"`{MAKE_TARGET}` builds OPA {OPA_VERSION} there with Go "
            "(about 1.5 minutes the first time); `make test` does it for you."
        )
    return path


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OpaServer:
    """An ``opa run --server`` process; use as a context manager or start()/stop().

    ``args`` are extra arguments for ``opa run``, e.g. policy and data files
    to load at start-up, as a centrally managed OPA would hold them;
    ``flags`` replace SERVER_FLAGS (the listening address is always ours).
    """

    def __init__(
        self,
        *args: str | Path,
        binary: Path | None = None,
        flags: Sequence[str] = SERVER_FLAGS,
    ) -> None:
        self.binary = binary or opa_binary()
        self.port = free_loopback_port()  # kept across restarts: clients keep their URL
        self._args = [*flags, *(str(a) for a in args)]
        self._workdir = tempfile.TemporaryDirectory(prefix="ixb-opa-")
        self.log_path = Path(self._workdir.name) / "opa.log"
        self._process: Watched | None = None
        self.pid: int | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Start OPA and block until ``/health`` answers 200."""
        if self.running:
            return self
        command = [
            str(self.binary),
            "run",
            "--server",
            f"--addr=127.0.0.1:{self.port}",
            *self._args,
        ]
        self._process = Watched(command, log=self.log_path, grace_s=2.0)
        try:
            self.pid = self._process.start()
            self._wait_until_healthy()
        except (TransportError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(
                f"OPA did not start on {self.url}: {exc}; {self._log_tail()}"
            ) from exc
        self.starts += 1
        return self

    def stop(self) -> None:
        """Stop OPA through its watchdog, and make sure of it."""
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    def restart(self) -> Self:
        """Stop and start again on the same port: the server comes back empty."""
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        self._workdir.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what the server holds, through OPA's own REST API ------------------

    def reset(self) -> None:
        """Delete every policy module and all data, so a test starts from an empty server."""
        for module_id in self.policies():
            self._request("DELETE", f"/v1/policies/{quote(module_id, safe='/')}")
        self._request("PUT", "/v1/data", {})

    def put_policy(self, module_id: str, raw: str) -> None:
        self._request("PUT", f"/v1/policies/{quote(module_id, safe='/')}", raw.encode())

    def put_data(self, path: str, value: object) -> None:
        """Write ``value`` at ``path`` ("agreements", "a/b"), as ``PUT /v1/data/<path>``."""
        self._request("PUT", f"/v1/data/{path}", value)

    def policies(self) -> dict[str, str]:
        """Module id to source, as ``GET /v1/policies`` lists them."""
        listed = self._request("GET", "/v1/policies")["result"]
        return {module["id"]: module["raw"] for module in listed}

    def data(self) -> Any:
        """The whole data document: every pushed document, and the policies' rules."""
        return self._request("GET", "/v1/data").get("result")

    def document(self, path: str) -> Any:
        """``data.<path>`` as a plain data document (policies' rules are not in it)."""
        return self._request("GET", f"/v1/data/{path}").get("result")

    def evaluations(self) -> int:
        """How many Data API evaluations (``POST /v1/data/...``) OPA has answered."""
        request = urllib.request.Request(f"{self.url}/metrics")
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as answer:
            text = answer.read().decode()
        found = _EVALUATIONS.search(text)
        return int(found.group(1)) if found else 0

    def query(self, path: str, input_document: object) -> dict[str, Any]:
        """The Data API's whole answer to ``POST /v1/data/<path>`` with ``input_document``."""
        answer: dict[str, Any] = self._request(
            "POST", f"/v1/data/{path}", {"input": input_document}
        )
        return answer

    # -- plumbing ----------------------------------------------------------

    def _request(self, method: str, path: str, body: object = None) -> Any:
        payload = body if isinstance(body, bytes) else None
        if body is not None and payload is None:
            payload = json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=payload, method=method)
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"OPA answered {method} {path} with HTTP {exc.code}") from exc
        return json.loads(raw) if raw else {}

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while True:
            if not self.running:
                raise TimeoutError("the OPA process exited")
            try:
                self._request("GET", "/health")
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"/health did not answer in {_STARTUP_TIMEOUT_S}s") from None
                time.sleep(0.02)
            else:
                return

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "OPA wrote no log"
        return "OPA's log ends: " + " | ".join(lines[-5:]) if lines else "OPA's log is empty"
