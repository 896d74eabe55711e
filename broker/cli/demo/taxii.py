"""The demo's last act: one nation's verified feed fetched over TAXII 2.1 with taxii2-client.

A partner's analyst tools (OpenCTI, MISP) speak TAXII, not ixb: the demo
serves two nations' feeds, reads one as that nation would with the
standard client, checks every object with stix2-validator, and shows that
the other nation's collection is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import requests
from rich.console import Console
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Collection, Server, as_pages

from broker.app.settings import Settings
from broker.cli.taxii import ServeOptions, serve, users_file
from connectors.taxii.auth import add_user
from connectors.taxii.feeder import FeedCounts
from connectors.taxii.server import collection_id

CATCH_UP_S = 20.0


def _fetch(url: str, user: str, secret: str) -> tuple[list[str], list[dict[str, Any]]]:
    [root] = Server(url, user=user, password=secret).api_roots
    collections = root.collections
    objects = [
        obj
        for page in as_pages(collections[0].get_objects, per_request=50)
        for obj in page.get("objects", [])
    ]
    return [c.title for c in collections], objects


def _refused(collection_url: str, user: str, secret: str) -> int:
    try:
        Collection(collection_url, user=user, password=secret).get_objects()
    except requests.HTTPError as exc:
        return exc.response.status_code if exc.response is not None else 0
    return 200


async def show_taxii(
    settings: Settings, bootstrap: str, console: Console, *, nation: str, other: str, expected: int
) -> bool:
    """Serve ``nation`` and ``other``, fetch ``nation``'s feed as ``nation``; True if all holds."""
    console.rule(f"[bold]{nation}[/bold]'s feed over TAXII 2.1 (taxii2-client)")
    secrets = {n: add_user(users_file(settings), n.lower(), n) for n in (nation, other)}
    stop = asyncio.Event()
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    counts: dict[str, FeedCounts] = {}
    server = asyncio.create_task(
        serve(
            settings,
            bootstrap,
            ServeOptions((nation, other)),
            stop,
            on_listening=listening.set_result,
            counts=counts,
        )
    )
    try:
        url = await asyncio.wait_for(listening, timeout=CATCH_UP_S)
        deadline = time.monotonic() + CATCH_UP_S
        while counts[nation].added < expected and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a counter
            await asyncio.sleep(0.1)
        titles, objects = await asyncio.to_thread(_fetch, url, nation.lower(), secrets[nation])
        foreign = f"{url.removesuffix('taxii2/')}ixb/collections/{collection_id(other)}/"
        status = await asyncio.to_thread(_refused, foreign, nation.lower(), secrets[nation])
    finally:
        stop.set()
        await server
    invalid = [
        o["id"] for o in objects if validate_instance(o, ValidationOptions(version="2.1")).errors
    ]
    kinds = Counter(o["type"] for o in objects)
    console.print(f"  server {url}; {nation} sees {len(titles)} collection: {', '.join(titles)}")
    console.print(
        f"  {len(objects)} STIX objects: "
        + ", ".join(f"{kind}×{count}" for kind, count in kinds.most_common())
    )
    console.print(f"  stix2-validator: {len(invalid)} objects with errors")
    console.print(f"  {nation} asking for {other}'s collection: HTTP {status}")
    return kinds["report"] == expected and not invalid and status == 403
