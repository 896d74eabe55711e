"""What waits on ``ixb.held``: embargoed deliveries, for whom, from whom, and when they are due.

Only the held record's own metadata is read (the delivery id, the due time,
the agreement and the declared decision input: origin, recipient, report
type, marking, handling code); never the statement it carries, which is the
recipient's to open once it is released. Held records are sealed whole to
the broker, so only a console holding the broker's sealing key (one run on
the broker's side, as the demo's is) lists them; any other lists none. A
held item whose delivery id has already arrived on the recipient's feed has
been released and is left out by the caller.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from broker.console.sources import ConsoleSources
from broker.enforcer.stages.fanout import HELD_SCHEMA
from broker.errors import DecodeError, VerificationError
from broker.kafka.reader import read_topic
from broker.trust.sealing.envelope import Opener, read_sealed
from broker.trust.sealing.parties import BROKER_PARTY

__all__ = ["HeldItem", "held_items"]


@dataclass(frozen=True, slots=True)
class HeldItem:
    delivery_id: str
    origin: str
    recipient: str
    report_type: str
    marking: str
    handling_code: str
    agreement: str
    held_at: dt.datetime
    not_before: dt.datetime


async def held_items(sources: ConsoleSources, *, recipient: str | None = None) -> list[HeldItem]:
    """Every held item (for ``recipient`` only, if given), soonest due first."""
    items: dict[str, HeldItem] = {}
    opener = Opener(sources.keys, BROKER_PARTY)
    async for record in read_topic(
        sources.bootstrap, sources.topics.held, idle_timeout_s=sources.read_idle_s
    ):
        try:
            value = record.value or b""
            if sources.catalog.schema_of(value).name != HELD_SCHEMA:  # 0.2 held it unsealed
                value = opener.open(read_sealed(sources.catalog, value), topic=record.topic)
            held = sources.catalog.decode(value, HELD_SCHEMA)
            asked = json.loads(held["decision_input"])
            item = HeldItem(
                delivery_id=str(held["delivery_id"]),
                origin=str(asked["origin"]),
                recipient=str(asked["recipient"]),
                report_type=str(asked["report_type"]),
                marking=str(asked["marking"]),
                handling_code=str(asked["handling_code"]),
                agreement=f"{held['agreement_id']} v{held['agreement_version']}",
                held_at=held["held_at"],
                not_before=held["not_before"],
            )
        except (DecodeError, VerificationError, ValueError, KeyError, TypeError):
            continue  # not a held record this console can read; the enforcer's releaser decides
        if recipient is None or item.recipient == recipient:
            items[item.delivery_id] = item
    return sorted(items.values(), key=lambda i: (i.not_before, i.delivery_id))
