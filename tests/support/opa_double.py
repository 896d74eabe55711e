"""A TEST DOUBLE of an OPA server's REST API, evaluating Rego with regopy.

No OPA binary can run on the machine the tests run on; the real OPA server
is wired in docker-compose.yml. This double lets the OPA-server decision
point (broker/policy/opa.py) be tested over real HTTP against the parts of
OPA's REST API it uses, with OPA's status codes and body shapes:

* Policy API: ``GET /v1/policies`` (``{"result": [{"id", "raw", "ast"}]}``;
  ``/v1/policies/`` redirects there, as OPA's router does),
  ``GET``/``PUT``/``DELETE /v1/policies/<id>`` (ids may contain ``/``);
  a module that does not parse is a 400 ``invalid_parameter``.
* Data API: ``GET``/``PUT``/``DELETE /v1/data/<path>`` and
  ``POST /v1/data/<path>`` with ``{"input": ...}``; an undefined document is
  ``200 {}`` (no ``result`` key), a write is ``204``.
* Health API: ``GET /health`` is ``200 {}``.
* Errors are JSON objects with ``code`` and ``message``.

It is not OPA: the Rego is evaluated by regopy (rego-cpp), so it proves the
transport, the management protocol and the fail-closed handling, not that
OPA and rego-cpp agree on the language. ``ast`` is always ``{}``, there are
no query parameters, watches, PATCH, bundles or authentication, and a data
write that conflicts with a policy package is not refused.

Controls for tests: :meth:`stop_serving` (connection refused, or HTTP 503
from something in front of OPA) and :meth:`resume`; :meth:`fail_next_evaluations`
(HTTP 500), :meth:`garble_next_evaluations` (200 with a body that is not
JSON) and :meth:`delay_next_evaluations` (a slow answer, for timeouts).

regopy's traps (see broker/policy/rego.py) are handled the same way: only
binding queries (``x := data...``), never ``expressions()``, and a missing
binding is undefined.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast
from urllib.parse import unquote, urlsplit

import regopy  # noqa: TID251  # the double stands in for an OPA server, which evaluates Rego

_BINDING = "x"
_POLL_INTERVAL_S = 0.05  # how quickly stop_serving() takes effect


class _RegoFailure(Exception):
    """The modules do not load or the query fails in regopy."""


class OpaDataApiDouble:
    """An OPA REST API test double on 127.0.0.1; use as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # guards the state below and every regopy call
        self._policies: dict[str, str] = {}
        self._data: dict[str, Any] = {}
        self._interpreter: Any = None  # cached for evaluations with input, rebuilt on change
        self._failures = 0
        self._garbled = 0
        self._delays: list[float] = []
        self._unavailable = False
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.evaluations = 0  # POSTs to the Data API answered, for tests to check they happened

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        self._serve()
        return self

    def close(self) -> None:
        self._closing.set()
        self._shutdown()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- controls ----------------------------------------------------------

    def stop_serving(self, *, refuse: bool = True) -> None:
        """Simulate the engine being down: connections refused, or every answer a 503."""
        if refuse:
            self._shutdown()
        else:
            with self._lock:
                self._unavailable = True

    def resume(self) -> None:
        """Serve again, on the same port."""
        with self._lock:
            self._unavailable = False
        if self._server is None:
            self._serve(self._port)

    def fail_next_evaluations(self, count: int) -> None:
        """The next ``count`` Data API evaluations answer HTTP 500, as OPA does on an error."""
        with self._lock:
            self._failures += count

    def garble_next_evaluations(self, count: int) -> None:
        """The next ``count`` Data API evaluations answer 200 with a body that is not JSON."""
        with self._lock:
            self._garbled += count

    def delay_next_evaluations(self, count: int, seconds: float) -> None:
        """The next ``count`` Data API evaluations answer only after ``seconds``."""
        with self._lock:
            self._delays.extend([seconds] * count)

    # -- direct access, to seed or inspect what the server holds -----------

    def put_policy(self, module_id: str, raw: str) -> None:
        with self._lock:
            candidate = {**self._policies, module_id: raw}
            self._build_interpreter(candidate, self._data)  # refuse what does not load
            self._policies = candidate
            self._interpreter = None

    def put_data(self, path: str, value: object) -> None:
        """Write ``value`` at ``path`` ("agreements", "a/b"), as ``PUT /v1/data/<path>`` does."""
        self._put_data(_segments(path), value)

    def policies(self) -> dict[str, str]:
        with self._lock:
            return dict(self._policies)

    def data(self) -> dict[str, Any]:
        with self._lock:
            copied: dict[str, Any] = json.loads(json.dumps(self._data))
            return copied

    # -- server plumbing ---------------------------------------------------

    def _serve(self, port: int = 0) -> None:
        server = _Server(("127.0.0.1", port), _Handler)
        server.double = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name=f"opa-double-{self._port}",
            daemon=True,
        )
        self._thread.start()

    def _shutdown(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    # -- what the handler calls --------------------------------------------

    def _evaluation_fault(self) -> tuple[str, float]:
        """The fault injected into this evaluation: ("fail" | "garble" | "", delay)."""
        with self._lock:
            delay = self._delays.pop(0) if self._delays else 0.0
            if self._failures:
                self._failures -= 1
                return "fail", delay
            if self._garbled:
                self._garbled -= 1
                return "garble", delay
            return "", delay

    def _wait(self, seconds: float) -> None:
        self._closing.wait(seconds)

    def _put_data(self, path: list[str], value: object) -> None:
        with self._lock:
            _set_path(self._data, path, value)
            self._interpreter = None

    def _delete_policy(self, module_id: str) -> bool:
        with self._lock:
            if module_id not in self._policies:
                return False
            del self._policies[module_id]
            self._interpreter = None
            return True

    def _delete_data(self, path: list[str]) -> bool:
        with self._lock:
            parent: Any = self._data
            for segment in path[:-1]:
                parent = parent.get(segment) if isinstance(parent, dict) else None
            if not path or not isinstance(parent, dict) or path[-1] not in parent:
                return False
            del parent[path[-1]]
            self._interpreter = None
            return True

    def _evaluate(self, path: list[str], input_document: object, has_input: bool) -> object:
        """``{"result": value}``, or ``{}`` when the document is undefined."""
        query = f"{_BINDING} := data" + "".join(f"[{json.dumps(s)}]" for s in path)
        with self._lock:
            if has_input:
                if self._interpreter is None:
                    self._interpreter = self._build_interpreter(self._policies, self._data)
                interpreter = self._interpreter
                interpreter.set_input(regopy.Input(input_document))
            else:  # regopy cannot unset an input: evaluate without one on a fresh interpreter
                interpreter = self._build_interpreter(self._policies, self._data)
            try:
                output = interpreter.query(query)
            except Exception as exc:  # regopy raises its own RegoError
                raise _RegoFailure(type(exc).__name__) from exc
            if not output.ok():
                raise _RegoFailure("evaluation failed")
            results = output.results
            bindings = results[0].bindings if len(results) == 1 else {}
            if _BINDING not in bindings:
                return {}
            return {"result": bindings[_BINDING]}

    @staticmethod
    def _build_interpreter(policies: dict[str, str], data: dict[str, Any]) -> Any:
        interpreter = regopy.Interpreter()
        try:
            for module_id, raw in policies.items():
                interpreter.add_module(module_id, raw)
            interpreter.add_data(data)
        except Exception as exc:  # regopy raises its own RegoError
            raise _RegoFailure(type(exc).__name__) from exc
        return interpreter


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a delayed answer must not hold up close()
    double: OpaDataApiDouble


class _Handler(BaseHTTPRequestHandler):
    """Routes OPA's REST API onto the double. HTTP/1.0: one request per connection,
    so a stopped server really refuses the next request."""

    @property
    def double(self) -> OpaDataApiDouble:
        return cast(_Server, self.server).double

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the tests read outcomes, not access logs."""

    def do_GET(self) -> None:
        self._route("GET")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        if self.double._unavailable:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"service unavailable", "text/plain")
            return
        path = urlsplit(self.path).path
        if path == "/health" and method == "GET":
            self._json(HTTPStatus.OK, {})
        elif path == "/v1/policies" and method == "GET":
            self._list_policies()
        elif path == "/v1/policies/" and method == "GET":  # OPA's router has StrictSlash(true)
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", "/v1/policies")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path in ("/health", "/v1/policies", "/v1/policies/"):
            self._method_not_allowed()
        elif path.startswith("/v1/policies/"):
            self._policy(method, unquote(path.removeprefix("/v1/policies/")))
        elif path == "/v1/data" or path.startswith("/v1/data/"):
            self._document(method, _segments(path.removeprefix("/v1/data")))
        else:
            self._send(HTTPStatus.NOT_FOUND, b"404 page not found", "text/plain")

    def _list_policies(self) -> None:
        policies = self.double.policies()
        listed = [{"id": i, "raw": raw, "ast": {}} for i, raw in sorted(policies.items())]
        self._json(HTTPStatus.OK, {"result": listed})

    def _policy(self, method: str, module_id: str) -> None:
        if method == "GET":
            raw = self.double.policies().get(module_id)
            if raw is None:
                self._policy_not_found(module_id)
            else:
                self._json(HTTPStatus.OK, {"result": {"id": module_id, "raw": raw, "ast": {}}})
        elif method == "PUT":
            try:
                self.double.put_policy(module_id, self._body().decode())
            except (_RegoFailure, UnicodeDecodeError) as exc:
                self._error(
                    HTTPStatus.BAD_REQUEST,
                    "invalid_parameter",
                    "error(s) occurred while compiling module(s)",
                    errors=[
                        {
                            "code": "rego_parse_error",
                            "message": f"module does not load ({exc})",
                            "location": {"file": module_id, "row": 1, "col": 1},
                        }
                    ],
                )
            else:
                self._json(HTTPStatus.OK, {})
        elif method == "DELETE":
            if self.double._delete_policy(module_id):
                self._json(HTTPStatus.OK, {})
            else:
                self._policy_not_found(module_id)
        else:
            self._method_not_allowed()

    def _document(self, method: str, path: list[str]) -> None:
        if method == "PUT":
            self._put_document(path)
        elif method == "DELETE":
            if self.double._delete_data(path):
                self._send(HTTPStatus.NO_CONTENT, b"", "application/json")
            else:
                self._error(
                    HTTPStatus.NOT_FOUND,
                    "resource_not_found",
                    f"storage_not_found_error: {'/' + '/'.join(path)}: document does not exist",
                )
        elif method == "GET":
            self._answer_query(path, None, has_input=False)
        elif method == "POST":
            self._post_document(path)
        else:
            self._method_not_allowed()

    def _put_document(self, path: list[str]) -> None:
        try:
            value = json.loads(self._body() or b"null")
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "invalid_parameter", "body is not valid JSON")
            return
        if not path and not isinstance(value, dict):
            self._error(HTTPStatus.BAD_REQUEST, "invalid_parameter", "root must be object")
            return
        try:
            self.double._put_data(path, value)
        except _WriteConflict:
            self._error(
                HTTPStatus.NOT_FOUND,
                "resource_conflict",
                "storage_write_conflict_error: a parent is not an object",
            )
            return
        self._send(HTTPStatus.NO_CONTENT, b"", "application/json")

    def _post_document(self, path: list[str]) -> None:
        body = self._body()
        try:
            request = json.loads(body) if body.strip() else {}
        except ValueError:
            self._error(
                HTTPStatus.BAD_REQUEST,
                "invalid_parameter",
                "body contains malformed input document",
            )
            return
        if not isinstance(request, dict):
            self._error(HTTPStatus.BAD_REQUEST, "invalid_parameter", "body must be an object")
            return
        fault, delay = self.double._evaluation_fault()
        if delay:
            self.double._wait(delay)
        with self.double._lock:
            self.double.evaluations += 1
        if fault == "fail":
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "injected failure")
        elif fault == "garble":
            self._send(HTTPStatus.OK, b"<html>not json</html>", "application/json")
        else:
            self._answer_query(path, request.get("input"), has_input="input" in request)

    def _answer_query(self, path: list[str], input_document: object, *, has_input: bool) -> None:
        try:
            answer = self.double._evaluate(path, input_document, has_input)
        except _RegoFailure as exc:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", f"eval failed ({exc})")
            return
        self._json(HTTPStatus.OK, answer)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _policy_not_found(self, module_id: str) -> None:
        self._error(
            HTTPStatus.NOT_FOUND,
            "resource_not_found",
            f'storage_not_found_error: policy id "{module_id}"',
        )

    def _method_not_allowed(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed")

    def _error(self, status: HTTPStatus, code: str, message: str, **extra: object) -> None:
        self._json(status, {"code": code, "message": message, **extra})

    def _json(self, status: HTTPStatus, body: object) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        if status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


class _WriteConflict(Exception):
    """A data write under a path whose parent is not an object."""


def _segments(path: str) -> list[str]:
    return [unquote(s) for s in path.split("/") if s]


def _set_path(root: dict[str, Any], path: list[str], value: object) -> None:
    """Write ``value`` at ``path``, creating parent objects like ``mkdir -p`` (OPA's PUT)."""
    if not path:
        if not isinstance(value, dict):
            raise _WriteConflict
        root.clear()
        root.update(value)
        return
    parent: Any = root
    for segment in path[:-1]:
        child = parent.setdefault(segment, {})
        if not isinstance(child, dict):
            raise _WriteConflict
        parent = child
    parent[path[-1]] = value
