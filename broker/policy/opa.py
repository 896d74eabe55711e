"""The OPA-server decision point: the same Rego and data, evaluated by an OPA server.

An OPA server decides ``data.ixb.sharing.decision`` through its Data API
(``POST /v1/data/ixb/sharing/decision`` with ``{"input": ...}``), and the raw
result goes through the same contract as the in-process engine
(:func:`broker.policy.contract.decision_from_result`), so both engines turn
the same document into the same decision.

Decisions are tagged with the *local* bundle's content hash, because the
engine does not trust the server to hold that bundle: it makes it true at
construction, in one of two management modes.

``manage="push"``
    ixb owns the server's policy: every Rego module of the bundle is uploaded
    through the Policy API (``PUT /v1/policies/<module name>``) and the
    agreements through the Data API (``PUT /v1/data/agreements``), then both
    are read back and checked. Use it when the OPA server serves this
    enforcer only (a sidecar, or the compose service with no policy files of
    its own). Replicas sharing one server must run the same bundle: the last
    one to push wins.

``manage="verify"``
    Something else loads the server (``opa run`` with files, a bundle
    service); nothing is uploaded, and the server's ``data.agreements`` and
    policy module sources must equal the bundle's. Module ids are not
    compared, only sources: OPA names modules loaded from files by their path
    on the server, which ixb cannot know.

Either way a server that holds anything else (a missing, changed or extra
module, different agreement data) is a ConfigurationError naming what
differs, never the values: a decision tagged with a hash the server does not
hold would be false evidence. The check is made at construction; a server
changed behind ixb's back afterwards is not detected.

An OPA server keeps what it was pushed in memory only, so a restarted one
(a crash, ``restart: unless-stopped``, a rescheduled sidecar) comes back
empty and leaves every decision undefined: held, never delivered, but held
for ever. So in push mode an undefined decision makes the decision point
look at the server once: if it holds no policy module at all, the bundle is
pushed and checked again, as at construction, and the decision asked again.
A server that holds other modules is left alone (someone else loaded it,
perhaps another replica's newer bundle), and in verify mode nothing is ever
uploaded: whatever loads the server must load it again.

Every failure to decide (no ``result`` because the decision is undefined, an
HTTP error, a timeout, a refused connection, a body that is not JSON) raises
PolicyUndecided, never a deny, and no message carries input values.

The HTTP client is ``opa_client.OpaClient``. Its API covers all of this: the
Data API answer is returned whole, so an undefined decision (no ``result``
key) is told apart from a ``false`` or ``null`` one. The client's v0-syntax
upgrade is switched off (``rego_compat=False``): uploading a rewritten module
would make the bundle hash lie. The client holds one ``requests.Session``,
which is not documented as thread-safe, so each thread gets its own client.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import requests
import structlog
from opa_client import OpaClient
from opa_client.errors import (
    ConnectionsError,
    PolicyNotFoundError,
    RegoParseError,
    TypeException,
)

from broker.domain.decisions import Decision, DecisionInput
from broker.errors import ConfigurationError, PolicyUndecided
from broker.policy.bundle import PolicyBundle
from broker.policy.contract import DECISION_PATH, decision_from_result

AGREEMENTS_PATH = "agreements"  # data.agreements, as the Data API names it
_CONNECT_RETRIES = 1  # one retry of a failed connect; a refused decision is held, not retried here

Manage = Literal["push", "verify"]

log = structlog.get_logger("ixb.policy")

# Everything opa_client and requests raise when a management call fails:
# HTTP and connection errors, OPA's error bodies, and bodies that are not JSON.
_MANAGEMENT_ERRORS = (
    requests.RequestException,
    ConnectionsError,
    PolicyNotFoundError,
    RegoParseError,
    TypeException,
    ValueError,
    KeyError,
    AttributeError,
)


class OpaDecisionPoint:
    """Decides through an OPA server holding exactly ``bundle``; close() when done."""

    __slots__ = (
        "_bundle",
        "_clients",
        "_clients_lock",
        "_local",
        "_manage",
        "_refill_lock",
        "_refills",
        "_server",
        "_timeout_s",
    )

    def __init__(
        self,
        bundle: PolicyBundle,
        url: str,
        *,
        manage: Manage = "push",
        timeout_s: float = 2.0,
    ) -> None:
        if manage not in ("push", "verify"):
            raise ConfigurationError(f"OPA management mode must be push or verify, not {manage!r}")
        if timeout_s <= 0:
            raise ConfigurationError("the OPA timeout must be positive")
        self._bundle = bundle
        self._manage = manage
        self._server = _ServerAddress.parse(url)
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        self._refill_lock = threading.Lock()  # one refill at a time, however many threads decide
        self._refills = 0  # how often a restarted, empty server was given the bundle again
        try:
            self._connect()
            if manage == "push":
                self._push()
            self._verify()
        except BaseException:
            self.close()
            raise

    @property
    def bundle_hash(self) -> str:
        return self._bundle.content_hash

    def decide(self, decision_input: DecisionInput) -> Decision:
        document = decision_input.model_dump(mode="json")
        refills_before = self._refills
        body = self._ask(document)
        if "result" not in body and self._refill_if_empty(refills_before):
            body = self._ask(document)
        if "result" not in body:
            raise PolicyUndecided("the policy left the decision undefined on the OPA server")
        return decision_from_result(body["result"], self.bundle_hash)

    @property
    def refills(self) -> int:
        """How often the server came back empty and was given the bundle again."""
        return self._refills

    def _ask(self, document: dict[str, Any]) -> dict[str, Any]:
        """The Data API's whole answer for ``document``; every failure is PolicyUndecided."""
        try:
            body: object = self._client().query_rule(document, DECISION_PATH)
        except requests.JSONDecodeError as exc:  # also a RequestException: test it first
            raise PolicyUndecided("the OPA server's answer is not JSON") from exc
        except requests.HTTPError as exc:
            status = getattr(exc.response, "status_code", "?")
            raise PolicyUndecided(f"the OPA server answered HTTP {status}") from exc
        except requests.Timeout as exc:
            raise PolicyUndecided(
                f"the OPA server did not answer within {self._timeout_s}s"
            ) from exc
        except requests.ConnectionError as exc:
            raise PolicyUndecided(f"the OPA server at {self._server} is unreachable") from exc
        except requests.RequestException as exc:
            raise PolicyUndecided(
                f"the request to the OPA server failed ({type(exc).__name__})"
            ) from exc
        if not isinstance(body, dict):
            raise PolicyUndecided("the OPA server's answer is not a JSON object")
        return body

    def _refill_if_empty(self, refills_before: int) -> bool:
        """After an undefined decision: True when asking again can help.

        It can when this call gave a restarted, empty server the bundle again
        (push mode only), or when another thread did so since the decision was
        asked. A server holding any module keeps it: the undefined decision is
        the policy's own, or someone else manages that server.
        """
        with self._refill_lock:
            if self._refills != refills_before:
                return True
            if self._manage != "push":
                return False
            try:
                if self._client().get_policies_list():
                    return False
                self._push()
                self._verify()
            except ConfigurationError as exc:
                raise PolicyUndecided(
                    f"the OPA server came back empty and the bundle could not be restored: {exc}"
                ) from exc
            except _MANAGEMENT_ERRORS as exc:
                raise PolicyUndecided(
                    f"the OPA server answered an undefined decision and its policies cannot "
                    f"be listed ({_describe(exc)})"
                ) from exc
            self._refills += 1
        log.warning(
            "opa_server_refilled",
            server=str(self._server),
            bundle_hash=self.bundle_hash,
            refills=self._refills,
        )
        return True

    def close(self) -> None:
        """Close every thread's HTTP session."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close_connection()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _client(self) -> Any:
        """This thread's client: opa_client's session is not shared between threads."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = OpaClient(
                host=self._server.host,
                port=self._server.port,
                ssl=self._server.tls,
                retries=_CONNECT_RETRIES,
                timeout=self._timeout_s,
            )
            with self._clients_lock:
                self._clients.append(client)
            self._local.client = client
        return client

    def _connect(self) -> None:
        try:
            self._client().check_connection()
        except (ConnectionsError, requests.RequestException) as exc:
            raise ConfigurationError(
                f"the OPA server at {self._server} is unreachable or not answering its "
                "Policy API; check IXB_OPA_URL and that the server is running"
            ) from exc

    def _push(self) -> None:
        """The agreements first, then the modules.

        OPA has no transaction across REST calls, and other enforcers may ask
        the server while this one refills it: agreements without the module
        leave the decision undefined (held), where the module without the
        agreements would deny everything as ``no_agreement`` (withheld for
        good). A bundle of several modules still has a window between them.
        """
        client = self._client()
        try:
            client.update_or_create_data(self._expected_agreements(), AGREEMENTS_PATH)
        except _MANAGEMENT_ERRORS as exc:
            raise ConfigurationError(
                f"the OPA server at {self._server} refused the agreement data ({_describe(exc)})"
            ) from exc
        for name, source in sorted(self._bundle.modules.items()):
            try:
                client.update_policy_from_string(source, name, rego_compat=False)
            except _MANAGEMENT_ERRORS as exc:
                raise ConfigurationError(
                    f"the OPA server at {self._server} refused policy module {name} "
                    f"({_describe(exc)})"
                ) from exc

    def _verify(self) -> None:
        """The server holds exactly the bundle's module sources and agreement data."""
        problems = [
            *_module_differences(self._bundle.modules, self._server_modules()),
            *_agreement_differences(self._expected_agreements(), self._server_agreements()),
        ]
        if problems:
            raise ConfigurationError(
                f"the OPA server at {self._server} does not hold policy bundle "
                f"{self.bundle_hash[:19]}: " + "; ".join(problems)
            )

    def _expected_agreements(self) -> dict[str, Any]:
        """The agreement data as JSON gives it back: tuples become lists."""
        normalised: dict[str, Any] = json.loads(json.dumps(self._bundle.data()["agreements"]))
        return normalised

    def _server_modules(self) -> dict[str, str]:
        client = self._client()
        try:
            modules = {}
            for module_id in client.get_policies_list():
                raw = client.get_policy(module_id)["result"]["raw"]
                if not isinstance(raw, str):
                    raise TypeError("raw")
                modules[str(module_id)] = raw
        except (*_MANAGEMENT_ERRORS, TypeError) as exc:
            raise ConfigurationError(
                f"the policy modules of the OPA server at {self._server} cannot be read "
                f"({_describe(exc)})"
            ) from exc
        return modules

    def _server_agreements(self) -> dict[str, Any] | None:
        """``data.agreements`` on the server; None when it is undefined there."""
        try:
            result = self._client().get_data(AGREEMENTS_PATH)["result"]
        except PolicyNotFoundError:  # opa_client's answer to both "undefined" and non-200
            return None
        except _MANAGEMENT_ERRORS as exc:
            raise ConfigurationError(
                f"data.agreements of the OPA server at {self._server} cannot be read "
                f"({_describe(exc)})"
            ) from exc
        return result if isinstance(result, dict) else {}


def _module_differences(expected: Mapping[str, str], held: Mapping[str, str]) -> list[str]:
    held_sources = set(held.values())
    expected_sources = set(expected.values())
    missing = sorted(name for name, source in expected.items() if source not in held_sources)
    extra = sorted(module_id for module_id, raw in held.items() if raw not in expected_sources)
    problems = []
    if missing:
        problems.append(f"policy modules missing or different on the server: {', '.join(missing)}")
    if extra:
        problems.append(f"policy modules on the server not in the bundle: {', '.join(extra)}")
    return problems


def _agreement_differences(expected: dict[str, Any], held: dict[str, Any] | None) -> list[str]:
    if held is None:
        return ["data.agreements is undefined on the server or could not be read back"]
    differing = sorted(
        agreement_id
        for agreement_id in expected.keys() | held.keys()
        if expected.get(agreement_id) != held.get(agreement_id)
    )
    if differing:
        return [f"data.agreements differs for agreements: {', '.join(differing)}"]
    return []


def _describe(exc: BaseException) -> str:
    """The exception's type and OPA's error code, never a body that could echo data."""
    code = getattr(exc, "expression", None)
    if isinstance(exc, requests.HTTPError):
        code = f"HTTP {getattr(exc.response, 'status_code', '?')}"
    return f"{type(exc).__name__}: {code}" if isinstance(code, str) else type(exc).__name__


@dataclass(frozen=True, slots=True)
class _ServerAddress:
    """scheme://host:port of the OPA server, as opa_client wants it (no credentials, no path)."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> _ServerAddress:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("the OPA URL must look like http://host:8181")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigurationError(
                "the OPA URL must not have a path: opa_client addresses /v1 at the server root"
            )
        if parts.username or parts.password:
            raise ConfigurationError("the OPA URL must not carry credentials")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ConfigurationError("the OPA URL has an invalid port") from exc
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return cls(host, port, parts.scheme == "https")

    def __str__(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"
