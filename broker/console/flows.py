"""Who shared how much with whom over a period, and how much was withheld or refused and why.

Counted from the decision log (``ixb.audit``), which holds outcomes,
nations, reason codes and field paths, never values; an entry the log holds
twice (an at-least-once re-send) is counted once
(:class:`~broker.auditlog.entries.FirstWritten`). A liaison officer sees
only the flows their nation is part of: as origin or as recipient.

The picture is an SVG drawn here: origins on the left, recipients on the
right, one band per flow, as wide as what was delivered (released from
embargo included); each band's tooltip and the table beside it give every
count, so nothing is only in the picture.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter
from dataclasses import dataclass, field

from broker.auditlog.entries import FirstWritten, Outcome, decode_entry
from broker.auditor.source import read_logs
from broker.console.sources import ConsoleSources
from broker.errors import DecodeError

__all__ = ["Flow", "FlowCounts", "count_flows", "flows_svg"]


NO_AGREEMENT = "no_agreement"  # every partner is decided on; most pairs share no agreement


@dataclass
class Flow:
    delivered: int = 0  # delivered at once or released from embargo
    held: int = 0
    withheld: Counter[str] = field(default_factory=Counter)  # reason -> decisions
    release_refused: int = 0

    @property
    def withheld_total(self) -> int:
        return sum(self.withheld.values())

    @property
    def withheld_by_terms(self) -> int:
        """Withheld by an agreement's terms, not for want of any agreement."""
        return self.withheld_total - self.withheld[NO_AGREEMENT]


@dataclass
class FlowCounts:
    since: dt.datetime
    until: dt.datetime
    flows: dict[tuple[str, str], Flow] = field(default_factory=dict)
    refused: dict[str, Counter[str]] = field(default_factory=dict)  # origin -> reason -> count
    entries: int = 0

    def flow(self, origin: str, recipient: str) -> Flow:
        return self.flows.setdefault((origin, recipient), Flow())

    @property
    def refused_total(self) -> int:
        return sum(sum(c.values()) for c in self.refused.values())


async def count_flows(
    sources: ConsoleSources, since: dt.datetime, until: dt.datetime, *, nation: str | None = None
) -> FlowCounts:
    """Count the log's decisions in [since, until), those concerning ``nation`` if given."""
    counts = FlowCounts(since, until)
    first = FirstWritten()
    for records in (await read_logs(sources.bootstrap, sources.topics.audit)).values():
        for _, value in records:
            try:
                entry = decode_entry(sources.catalog, value)
            except DecodeError:
                continue  # ``ixb audit verify`` names it
            event = entry.event
            if not since <= event.at < until or not first.first(entry, value):
                continue
            if nation is not None and nation not in (event.origin, event.recipient):
                continue
            counts.entries += 1
            if event.outcome is Outcome.REFUSED:
                refused = counts.refused.setdefault(event.origin, Counter())
                refused.update(event.reasons or ("unspecified",))
                continue
            flow = counts.flow(event.origin, event.recipient or "?")
            if event.outcome in (Outcome.DELIVERED, Outcome.RELEASED):
                flow.delivered += 1
            elif event.outcome is Outcome.HELD:
                flow.held += 1
            elif event.outcome is Outcome.WITHHELD:
                flow.withheld.update(event.reasons or ("unspecified",))
            elif event.outcome is Outcome.RELEASE_REFUSED:
                flow.release_refused += 1
    return counts


_DELIVERED, _WITHHELD, _REFUSED = "#2e7d32", "#c62828", "#455a64"


def flows_svg(counts: FlowCounts) -> str:
    """Origins left, recipients right, a band per flow as wide as its deliveries.

    Pairs that share no agreement (everything between them withheld as
    ``no_agreement``) are not drawn: they are no flow; the table lists them.
    """
    drawn = {
        pair: f for pair, f in counts.flows.items() if f.delivered or f.held or f.withheld_by_terms
    }
    if not drawn and not counts.refused:
        return ""
    origins = sorted({o for o, _ in drawn} | set(counts.refused))
    recipients = sorted({r for _, r in drawn})
    widest = max([f.delivered + f.withheld_by_terms for f in drawn.values()] or [1]) or 1
    row_h, top, left_x, right_x, width = 46, 40, 200, 600, 800
    height = top + row_h * max(len(origins), len(recipients), 1) + 24
    o_y = {o: top + i * row_h + row_h / 2 for i, o in enumerate(origins)}
    r_y = {r: top + i * row_h + row_h / 2 for i, r in enumerate(recipients)}
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="flows between nations: delivered bands, withheld and refused counts">',
        f'<text x="{left_x}" y="16" text-anchor="end" font-weight="600">from</text>',
        f'<text x="{right_x}" y="16" font-weight="600">to</text>',
    ]
    for (origin, recipient), flow in sorted(drawn.items()):
        y1, y2 = o_y[origin], r_y[recipient]
        for amount, colour, offset in (
            (flow.delivered, _DELIVERED, -3.0),
            (flow.withheld_by_terms, _WITHHELD, 3.0),
        ):
            if not amount:
                continue
            stroke = 2 + 16 * amount / widest
            title = (
                f"{origin} → {recipient}: {flow.delivered} delivered, {flow.held} held, "
                f"{flow.withheld_total} withheld"
            )
            parts.append(
                f'<path d="M{left_x + 8},{y1 + offset} C{(left_x + right_x) / 2},{y1 + offset} '
                f'{(left_x + right_x) / 2},{y2 + offset} {right_x - 8},{y2 + offset}" '
                f'fill="none" stroke="{colour}" stroke-opacity="0.55" stroke-width="{stroke:.1f}">'
                f"<title>{html.escape(title)}</title></path>"
            )
    for origin, y in o_y.items():
        refused = sum(counts.refused.get(origin, Counter()).values())
        sent = sum(f.delivered for (o, _), f in drawn.items() if o == origin)
        parts.append(
            f'<circle cx="{left_x}" cy="{y}" r="7" fill="#14253d"/>'
            f'<text x="{left_x - 14}" y="{y + 4}" text-anchor="end" font-weight="700">'
            f"{html.escape(origin)}</text>"
            f'<text x="{left_x - 14}" y="{y + 18}" text-anchor="end" font-size="11">'
            f"{sent} delivered{f', {refused} refused' if refused else ''}</text>"
        )
    for recipient, y in r_y.items():
        got = sum(f.delivered for (_, r), f in drawn.items() if r == recipient)
        parts.append(
            f'<circle cx="{right_x}" cy="{y}" r="7" fill="#14253d"/>'
            f'<text x="{right_x + 14}" y="{y + 4}" font-weight="700">'
            f"{html.escape(recipient)}</text>"
            f'<text x="{right_x + 14}" y="{y + 18}" font-size="11">{got} received</text>'
        )
    legend = height - 8
    parts.append(
        f'<rect x="{left_x}" y="{legend - 8}" width="12" height="8" fill="{_DELIVERED}"/>'
        f'<text x="{left_x + 16}" y="{legend}" font-size="11">delivered</text>'
        f'<rect x="{left_x + 90}" y="{legend - 8}" width="12" height="8" fill="{_WITHHELD}"/>'
        f'<text x="{left_x + 106}" y="{legend}" font-size="11">withheld by the terms</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
