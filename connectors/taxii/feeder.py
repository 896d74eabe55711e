"""Filling the store from a nation's verified feed, exactly once per delivery.

The feed is the recipient library's (:func:`broker.read_feed`): only what
verified arrives here as a :class:`~broker.VerifiedDelivery`; anything else
is a :class:`~broker.FeedProblem`, which is kept in the store's problem table
for the operator and never served. Each delivery becomes a STIX bundle,
is checked by stix2-validator (a bundle it finds errors in is a problem, not
served), and is added in one transaction with its delivery id, so a restart
that reads the feed from the start adds nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from stix2validator import ValidationOptions, validate_instance

from broker import FeedProblem, VerifiedDelivery
from connectors.stix import delivery_to_bundle
from connectors.taxii.server import collection_id
from connectors.taxii.store import Store

log = structlog.get_logger("ixb.taxii")

Feed = AsyncIterator[VerifiedDelivery | FeedProblem]
FeedFactory = Callable[[str], Feed]


@dataclass
class FeedCounts:
    added: int = 0
    already_held: int = 0
    problems: int = 0


def validation_errors(bundle: dict[str, Any]) -> list[str]:
    """stix2-validator's error codes for ``bundle``, without the values they quote."""
    results = validate_instance(bundle, ValidationOptions(version="2.1"))
    reports = results if isinstance(results, list) else [results]
    return [
        f"{getattr(r, 'object_id', '?')}: {type(e).__name__}" for r in reports for e in r.errors
    ]


async def feed_store(
    store: Store, nation: str, feed: Feed, *, counts: FeedCounts | None = None
) -> FeedCounts:
    """Add every verified delivery of ``feed`` to ``nation``'s collection until it ends."""
    counts = counts or FeedCounts()
    collection = collection_id(nation)
    async for item in feed:
        if isinstance(item, FeedProblem):
            store.add_problem(collection, item.offset, item.reason, item.detail)
            counts.problems += 1
            log.warning("taxii_feed_problem", nation=nation, offset=item.offset, reason=item.reason)
            continue
        if store.has_delivery(collection, item.delivery_id):
            counts.already_held += 1
            continue
        bundle = delivery_to_bundle(item)
        errors = await asyncio.to_thread(validation_errors, bundle)
        if errors:
            store.add_problem(collection, item.offset, "stix_invalid", "; ".join(errors[:5]))
            counts.problems += 1
            log.error("taxii_bundle_invalid", nation=nation, offset=item.offset, errors=len(errors))
            continue
        store.add_delivery(collection, item.delivery_id, item.offset, bundle["objects"])
        counts.added += 1
    return counts
