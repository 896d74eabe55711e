"""The analyst's part: the nation's verified feed, live, filtered, and each report with provenance.

Every route names the nation in its path and :func:`~broker.console.web.allow`
refuses it to anyone but that nation's analyst, before anything is read:
BE's analyst asking for ``/analyst/NL`` gets 403 and a page that says only
that. A report is looked up in the asking nation's own feed, so another
nation's delivery id is simply not found there.

Live updates are server-sent events: ``/analyst/<N>/events`` says when the
feed changed, and the page's script fetches the rows again with its
filter (``/analyst/<N>/rows``). The pages work without JavaScript too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from broker.app.documents import delivery_json
from broker.console.feeds import FeedFilter, NationFeed
from broker.console.held import held_items
from broker.console.users import Role
from broker.console.web import allow, page, session_of, state_of
from broker.console.words import HANDLING, MARKINGS, REPORT_TYPES, field_rows

__all__ = ["routes"]

SHOWN = 200  # rows on one page; the filter narrows the rest
_STREAM_S = 600.0  # an event stream ends after this; the browser reconnects on its own
_HEARTBEAT_S = 15.0


async def start(request: Request) -> Response:
    session = allow(request, Role.ANALYST)
    return RedirectResponse(f"/analyst/{session.principal.nation}", status_code=303)


async def _feed(request: Request) -> tuple[str, NationFeed]:
    nation = request.path_params["nation"]
    allow(request, Role.ANALYST, nation)
    return nation, await state_of(request).feeds.feed(nation)


def _rows_context(feed: NationFeed, wanted: FeedFilter) -> dict[str, object]:
    selected = feed.select(wanted)
    return {
        "nation": feed.nation,
        "deliveries": selected[:SHOWN],
        "matching": len(selected),
        "total": len(feed.deliveries),
        "version": feed.version,
    }


async def feed_page(request: Request) -> Response:
    nation, feed = await _feed(request)
    wanted = FeedFilter.from_query(request.query_params)
    delivered = {d.delivery_id for d in feed.deliveries}
    held = [
        h
        for h in await held_items(state_of(request).sources, recipient=nation)
        if h.delivery_id not in delivered
    ]
    return page(
        request,
        "analyst_feed.html",
        {
            **_rows_context(feed, wanted),
            "filter": wanted.query(),
            "report_types": REPORT_TYPES,
            "origins": sorted({d.origin for d in feed.deliveries}),
            "markings": list(MARKINGS),
            "handling_codes": list(HANDLING),
            "held": held,
            "problems": feed.problems[-10:],
            "error": feed.error,
        },
    )


async def feed_rows(request: Request) -> Response:
    _, feed = await _feed(request)
    return page(
        request, "_feed_rows.html", _rows_context(feed, FeedFilter.from_query(request.query_params))
    )


async def feed_events(request: Request) -> Response:
    """``event: feed`` with the feed's version whenever it changes; a comment as heartbeat."""
    _, feed = await _feed(request)

    async def events() -> AsyncIterator[str]:
        asked = request.query_params.get("version", "0")
        seen = int(asked) if asked.isdigit() and len(asked) < 12 else 0
        ends = time.monotonic() + _STREAM_S
        yield "retry: 2000\n\n"
        while time.monotonic() < ends and not await request.is_disconnected():
            if session_of(request) is None:  # logged out (or expired) meanwhile: the stream ends
                return
            version = await feed.wait_newer(seen, _HEARTBEAT_S)
            if version > seen:
                seen = version
                yield f"event: feed\ndata: {version}\n\n"
            else:
                yield ": still here\n\n"
            await asyncio.sleep(0.2)  # a burst of deliveries is one refresh, not hundreds

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"cache-control": "no-store"}
    )


async def report_page(request: Request) -> Response:
    nation, feed = await _feed(request)
    delivery = feed.find(request.path_params["delivery_id"])
    if delivery is None:
        raise HTTPException(404, "no such delivery in this feed")
    return page(
        request,
        "report.html",
        {
            "nation": nation,
            "delivery": delivery,
            "report": delivery.report,
            "rows": field_rows(delivery),
            "handling": HANDLING,
            "markings": MARKINGS,
            "counts": {
                kind: sum(p.kind == kind for p in delivery.provenance.values())
                for kind in ("signed", "derived", "withheld")
            },
        },
    )


async def report_json(request: Request) -> Response:
    """The delivery exactly as ``ixb subscribe --json`` prints it."""
    _, feed = await _feed(request)
    delivery = feed.find(request.path_params["delivery_id"])
    if delivery is None:
        raise HTTPException(404, "no such delivery in this feed")
    return JSONResponse(delivery_json(delivery))


routes = [
    Route("/analyst", start),
    Route("/analyst/{nation:str}", feed_page),
    Route("/analyst/{nation:str}/rows", feed_rows),
    Route("/analyst/{nation:str}/events", feed_events),
    Route("/analyst/{nation:str}/reports/{delivery_id:str}.json", report_json),
    Route("/analyst/{nation:str}/reports/{delivery_id:str}", report_page),
]
