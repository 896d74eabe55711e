"""Polling a TAXII 2.1 collection with taxii2-client, for an agency adapter publishing STIX.

An agency whose tools (OpenCTI, MISP's TAXII, a national platform) serve a
collection publishes from it: every object added after a point in time is
fetched page by page and handed to :func:`connectors.stix.bundle_to_reports`
as one bundle, so a report and the objects it refers to map together even
when the server paged them apart.
"""

from __future__ import annotations

import uuid
from typing import Any

import requests
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Collection, as_pages

from broker import TransportError


def poll_collection(
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    added_after: str | None = None,
    per_request: int = 100,
    verify: bool | str = True,
) -> dict[str, Any]:
    """Every object of the collection at ``url`` (added after ``added_after``) as one bundle."""
    filters = {"added_after": added_after} if added_after else {}
    objects: list[dict[str, Any]] = []
    try:
        collection = Collection(url, user=user, password=password, verify=verify)
        for page in as_pages(collection.get_objects, per_request=per_request, **filters):
            objects.extend(page.get("objects", []))
    except (requests.RequestException, TAXIIServiceException) as exc:
        raise TransportError(f"TAXII collection {url}: {type(exc).__name__}") from exc
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}
