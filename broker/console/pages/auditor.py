"""The auditor's part: verify every log, replay a period, check a receipt, the export's charts.

Each page runs the auditor's own library (broker/auditor/use_cases.py) on
the live decision log, exactly as ``ixb audit verify``, ``replay``,
``check-receipt`` and ``export`` do, and shows its result. Verification
and replay run when the auditor asks (a button), not on every page view:
they read the whole log.

The export's HTML report is served as it is written (one self-contained
file, no script) and shown in a frame; its own inline styles are the one
thing its Content-Security-Policy allows beyond this console's defaults.
"""

from __future__ import annotations

import datetime as dt
import json

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from broker.auditlog.checkpoints import checkpoint_verifier
from broker.auditlog.entries import decode_entry
from broker.auditlog.receipts import receipt_from_json, verify_receipt
from broker.auditor.export import render_html
from broker.auditor.replay import ReplayFilter
from broker.auditor.replay_output import report_document
from broker.auditor.summary import FlowSummary
from broker.auditor.use_cases import replay_audit, verify_audit
from broker.console.flows import count_flows, flows_svg
from broker.console.pages.liaison import period
from broker.console.users import Role
from broker.console.web import allow, page, state_of
from broker.errors import DecodeError, IxbError, RejectedInput

__all__ = ["routes"]

MAX_RECEIPT_BYTES = 1_000_000
_EXPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"


async def verification(request: Request) -> Response:
    allow(request, Role.AUDITOR)
    run = request.query_params.get("run") == "1"
    context: dict[str, object] = {"run": run, "reports": [], "error": None, "quorum": 0}
    if run:
        try:
            sources = state_of(request).sources
            reports, _ = await verify_audit(sources.audit_source(), sources.witnessing)
            context["reports"] = reports
            context["bad"] = sum(not r.ok for r in reports)
            context["quorum"] = sources.witnessing.quorum
        except IxbError as exc:
            context["error"] = f"the decision log could not be read ({type(exc).__name__})"
    return page(request, "audit_verify.html", context)


async def replay(request: Request) -> Response:
    allow(request, Role.AUDITOR)
    since, until = period(request, default_days=1)
    context: dict[str, object] = {
        "since": since.strftime("%Y-%m-%dT%H:%M"),
        "until": until.strftime("%Y-%m-%dT%H:%M"),
        "origin": request.query_params.get("origin", "").upper(),
        "recipient": request.query_params.get("recipient", "").upper(),
        "document": None,
        "error": None,
    }
    if request.query_params.get("run") == "1":
        sources = state_of(request).sources
        admit = ReplayFilter(
            since, until, str(context["origin"]) or None, str(context["recipient"]) or None
        )
        try:
            report = await replay_audit(
                sources.audit_source(), admit, sources.intake_window, keys=sources.keys
            )
            context["document"] = report_document(report)
            context["ok"] = report.ok
        except IxbError as exc:
            context["error"] = f"the replay could not run ({type(exc).__name__})"
    return page(request, "audit_replay.html", context)


async def receipt_form(request: Request) -> Response:
    allow(request, Role.AUDITOR)
    return page(request, "audit_receipt.html", {"result": None, "message": None})


async def receipt_check(request: Request) -> Response:
    session = allow(request, Role.AUDITOR)
    async with request.form(max_files=1, max_fields=5) as form:
        if not session.csrf_matches(str(form.get("csrf", ""))):
            raise HTTPException(403, "form token does not match")
        upload = form.get("receipt")
        data = await upload.read(MAX_RECEIPT_BYTES + 1) if isinstance(upload, UploadFile) else b""
    if not data.strip() or len(data) > MAX_RECEIPT_BYTES:
        return page(
            request,
            "audit_receipt.html",
            {"result": None, "message": "Upload a receipt written by `ixb audit receipt`."},
            status=400,
        )
    sources = state_of(request).sources
    try:
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError("malformed_receipt", "the file is not JSON") from exc
        held = receipt_from_json(document)
        verify_receipt(held, None, checkpoint_verifier(sources.registry()))
    except RejectedInput as exc:
        result = {"ok": False, "reason": exc.reason, "detail": exc.detail}
        return page(request, "audit_receipt.html", {"result": result, "message": None})
    event = None
    if held.entry is not None:
        try:
            event = decode_entry(sources.catalog, held.entry).event
        except DecodeError:
            event = None
    c = held.checkpoint
    result = {
        "ok": True,
        "index": held.index,
        "log_id": c.log_id,
        "tree_size": c.tree_size,
        "signer": c.signer_key_id,
        "at": c.at,
        "event": event,
    }
    return page(request, "audit_receipt.html", {"result": result, "message": None})


async def charts(request: Request) -> Response:
    allow(request, Role.AUDITOR)
    since, until = period(request)
    counts = await count_flows(state_of(request).sources, since, until)
    return page(
        request,
        "audit_charts.html",
        {
            "nation": None,
            "counts": counts,
            "svg": flows_svg(counts),
            "since": since.strftime("%Y-%m-%dT%H:%M"),
            "until": until.strftime("%Y-%m-%dT%H:%M"),
            "action": "/audit/charts",
        },
    )


async def export_html(request: Request) -> Response:
    """The whole log's HTML report, as ``ixb audit export`` writes it."""
    allow(request, Role.AUDITOR)
    try:
        sources = state_of(request).sources
        source = sources.audit_source()
        reports, logs = await verify_audit(source, sources.witnessing)
    except IxbError as exc:
        raise HTTPException(503, "the decision log could not be read") from exc
    summary = FlowSummary()
    for records in logs.values():
        for _, value in records:
            try:
                summary.add(decode_entry(source.catalog, value), value)
            except DecodeError:
                summary.add_undecodable()
    body = render_html(summary, reports, generated_at=dt.datetime.now(dt.UTC))
    return HTMLResponse(body, headers={"content-security-policy": _EXPORT_CSP})


routes = [
    Route("/audit", verification),
    Route("/audit/replay", replay),
    Route("/audit/receipt", receipt_form, methods=["GET"]),
    Route("/audit/receipt", receipt_check, methods=["POST"]),
    Route("/audit/charts", charts),
    Route("/audit/export.html", export_html),
]
