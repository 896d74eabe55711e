"""The operator's part: every enforcer's health, its decisions and rejections, what is held.

No report contents appear here: the enforcer's metrics carry outcomes,
reason codes, topics and partitions only; the held topic is read for its
metadata (broker/console/held.py) and the rejected topics for reasons and
source positions (broker/console/health.py).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.console.health import enforcer_health, rejected_topics
from broker.console.held import held_items
from broker.console.users import Role
from broker.console.web import allow, page, state_of

__all__ = ["routes"]


async def health(request: Request) -> Response:
    allow(request, Role.OPERATOR)
    sources = state_of(request).sources
    enforcers, rejected, held = await asyncio.gather(
        asyncio.gather(*(enforcer_health(a) for a in sources.probes)),
        rejected_topics(sources),
        held_items(sources),
    )
    return page(
        request,
        "operator.html",
        {
            "enforcers": list(enforcers),
            "rejected": [r for r in rejected if r.total],
            "quiet": [r.nation for r in rejected if not r.total],
            "held": held,
            "now": sources.clock(),
        },
    )


routes = [Route("/operator", health)]
