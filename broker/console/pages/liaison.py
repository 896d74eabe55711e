"""The liaison officer's part: their nation's agreements, who receives what, explain, check, flows.

A liaison officer acts for one nation and sees the agreements it is party
to (another agreement's page is 404 to them, as if it did not exist), the
flows it sends and receives, and the check's findings about its agreements.
``explain`` asks the policy about an uploaded report, with the officer's
nation as sender or receiver, exactly as ``ixb agreements explain`` does
(broker/app/documents.py), and nothing is published.
"""

from __future__ import annotations

import datetime as dt
import json

from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.app.documents import decision_json, explain
from broker.console.agreements import (
    agreements_of,
    direction_words,
    flow_matrix,
    rule_words,
    timeline_svg,
)
from broker.console.flows import count_flows, flows_svg
from broker.console.sessions import Session
from broker.console.users import Role
from broker.console.web import allow, page, state_of
from broker.console.words import HANDLING, type_words
from broker.domain.report import ThreatReport
from broker.enforcer.stages.derive import effective_rules
from broker.errors import ConfigurationError
from broker.policy.lint import lint
from broker.wire.report import describe_validation_error

__all__ = ["period", "routes"]

MAX_UPLOAD_BYTES = 1_000_000


def _officer(request: Request) -> tuple[Session, str]:
    session = allow(request, Role.LIAISON)
    assert session.principal.nation is not None  # a liaison officer acts for a nation
    return session, session.principal.nation


async def agreements(request: Request) -> Response:
    _, nation = _officer(request)
    bundle, _ = state_of(request).sources.policies.current()
    mine = agreements_of(bundle, nation)
    now = state_of(request).sources.clock()
    return page(
        request,
        "liaison_agreements.html",
        {
            "nation": nation,
            "agreements": mine,
            "timeline": timeline_svg(mine, now),
            "now": now,
            "bundle": bundle,
            "direction_words": direction_words,
        },
    )


async def agreement(request: Request) -> Response:
    _, nation = _officer(request)
    bundle, _ = state_of(request).sources.policies.current()
    found = {a.id: a for a in agreements_of(bundle, nation)}.get(request.path_params["id"])
    if found is None:
        raise HTTPException(404, "no such agreement of yours")
    now = state_of(request).sources.clock()
    rules = {
        key: [rule_words(r) for r in rules] for key, rules in sorted(found.field_rules.items())
    }
    return page(
        request,
        "liaison_agreement.html",
        {
            "nation": nation,
            "a": found,
            "senders_receivers": found.senders_and_receivers(),
            "direction": direction_words(found),
            "timeline": timeline_svg([found], now),
            "in_force": found.valid_from <= now
            and (found.valid_until is None or now < found.valid_until),
            "rules": rules,
            "handling": HANDLING,
            "type_words": type_words,
            "file": bundle.file_of(found.id),
        },
    )


async def matrix(request: Request) -> Response:
    _, nation = _officer(request)
    bundle, policy = state_of(request).sources.policies.current()
    now = state_of(request).sources.clock()
    return page(
        request,
        "liaison_matrix.html",
        {"m": flow_matrix(bundle, policy, nation, now), "now": now, "type_words": type_words},
    )


async def explain_form(request: Request) -> Response:
    _, nation = _officer(request)
    return page(request, "liaison_explain.html", _explain_context(request, nation))


def _partners(request: Request, nation: str) -> list[str]:
    """The nations ``nation`` shares an agreement with."""
    bundle, _ = state_of(request).sources.policies.current()
    return sorted({p for a in agreements_of(bundle, nation) for p in a.parties} - {nation})


def _explain_context(request: Request, nation: str, **extra: object) -> dict[str, object]:
    partners = _partners(request, nation)
    return {"nation": nation, "partners": partners, "result": None, "message": None, **extra}


async def explain_upload(request: Request) -> Response:
    session, nation = _officer(request)
    async with request.form(max_files=1, max_fields=10) as form:
        if not session.csrf_matches(str(form.get("csrf", ""))):
            raise HTTPException(403, "form token does not match")
        direction, partner = str(form.get("direction", "to")), str(form.get("partner", ""))
        try:
            raw = await _read_upload(form.get("report"), str(form.get("text", "")))
        except ConfigurationError as exc:
            raw, problem = None, str(exc)
        else:
            problem = ""
    origin, recipient = (nation, partner) if direction == "to" else (partner, nation)
    try:
        if problem:
            raise ConfigurationError(problem)
        if partner not in _partners(request, nation):
            raise ConfigurationError("choose one of your agreements' partner nations")
        report = ThreatReport.model_validate(
            {"issued_at": dt.datetime.now(dt.UTC).isoformat(), **_one_report(raw)}
        )
    except ValidationError as exc:
        message = f"the report is not valid: {describe_validation_error(exc)}"
        return page(
            request,
            "liaison_explain.html",
            _explain_context(request, nation, message=message),
            status=400,
        )
    except ConfigurationError as exc:
        return page(
            request,
            "liaison_explain.html",
            _explain_context(request, nation, message=str(exc)),
            status=400,
        )
    bundle, policy = state_of(request).sources.policies.current()
    now = state_of(request).sources.clock()
    decision = explain(
        policy, report, origin=origin, recipient=recipient, now_s=int(now.timestamp())
    )
    document = decision_json(bundle, report, origin, recipient, decision)
    return page(
        request,
        "liaison_explain.html",
        _explain_context(
            request,
            nation,
            result=document,
            decision=decision,
            asked={"origin": origin, "recipient": recipient, "title": report.title},
            document_text=json.dumps(document, indent=2),
            rules=[(rule_words(r), r.field) for r in effective_rules(decision.field_rules).rules],
            embargo_until=None
            if decision.not_before_s is None
            else dt.datetime.fromtimestamp(decision.not_before_s, dt.UTC),
        ),
    )


async def _read_upload(upload: object, text: str) -> object:
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
    else:
        data = text.encode()
    if not data.strip():
        raise ConfigurationError("upload a JSON report file, or paste one")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ConfigurationError("the report is larger than 1 MB")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError("that is not JSON") from exc


def _one_report(raw: object) -> dict[str, object]:
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    if not isinstance(raw, dict):
        raise ConfigurationError("the file holds one report (a JSON object)")
    return raw


async def check(request: Request) -> Response:
    _, nation = _officer(request)
    bundle, _ = state_of(request).sources.policies.current()
    mine = {a.id for a in agreements_of(bundle, nation)}
    now = state_of(request).sources.clock()
    findings = [f for f in lint(bundle, now) if mine & set(f.agreements)]
    return page(
        request,
        "liaison_check.html",
        {
            "nation": nation,
            "agreements": agreements_of(bundle, nation),
            "findings": findings,
            "errors": sum(f.severity.value == "error" for f in findings),
            "bundle": bundle,
        },
    )


def period(request: Request, *, default_days: int = 7) -> tuple[dt.datetime, dt.datetime]:
    """The ``since``/``until`` of the query (UTC), by default the last ``default_days`` days."""
    now = state_of(request).sources.clock()
    since = _instant(request.query_params.get("since", "")) or now - dt.timedelta(days=default_days)
    until = _instant(request.query_params.get("until", "")) or now + dt.timedelta(minutes=1)
    return since, until


def _instant(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None
    return None if when is None else when if when.tzinfo else when.replace(tzinfo=dt.UTC)


async def flows(request: Request) -> Response:
    _, nation = _officer(request)
    since, until = period(request)
    counts = await count_flows(state_of(request).sources, since, until, nation=nation)
    return page(
        request,
        "flows.html",
        {
            "nation": nation,
            "counts": counts,
            "svg": flows_svg(counts),
            "since": since.strftime("%Y-%m-%dT%H:%M"),
            "until": until.strftime("%Y-%m-%dT%H:%M"),
            "action": "/liaison/flows",
        },
    )


routes = [
    Route("/liaison", agreements),
    Route("/liaison/agreements/{id:str}", agreement),
    Route("/liaison/matrix", matrix),
    Route("/liaison/explain", explain_form, methods=["GET"]),
    Route("/liaison/explain", explain_upload, methods=["POST"]),
    Route("/liaison/check", check),
    Route("/liaison/flows", flows),
]
