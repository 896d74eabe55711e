"""Counting an audit log for its report: flows between nations, refusals, withheld fields.

Only what the entries carry is counted (nations, outcomes, reason codes,
field paths); there are no values in an entry to count.
"""

from __future__ import annotations

from collections import Counter

from broker.auditlog.entries import AuditEntry, FirstWritten, Outcome

__all__ = ["FLOW_OUTCOMES", "FlowSummary"]

FLOW_OUTCOMES = (
    Outcome.DELIVERED,
    Outcome.RELEASED,
    Outcome.HELD,
    Outcome.WITHHELD,
    Outcome.RELEASE_REFUSED,
)
"""Outcomes that concern one recipient, in the order the report shows them."""


class FlowSummary:
    """Running counts over the events of one or more logs."""

    __slots__ = (
        "_first",
        "entries",
        "flows",
        "refusals",
        "refusals_by_origin",
        "undecodable",
        "withheld",
    )

    def __init__(self) -> None:
        self.entries = 0  # read, repeats included
        self.undecodable = 0
        self._first = FirstWritten()
        self.flows: dict[tuple[str, str], Counter[Outcome]] = {}
        self.refusals: Counter[str] = Counter()  # reason -> submissions refused at intake
        self.refusals_by_origin: Counter[str] = Counter()
        self.withheld: Counter[str] = Counter()  # field path -> deliveries it was withheld from

    @property
    def repeats(self) -> int:
        """Entries read again (at-least-once re-sends), not counted twice."""
        return self._first.repeats

    def add(self, entry: AuditEntry, value: bytes) -> None:
        """Count ``entry`` (decoded from ``value``), unless it is a copy already counted."""
        self.entries += 1
        if not self._first.first(entry, value):
            return
        event = entry.event
        if event.outcome is Outcome.REFUSED:
            self.refusals_by_origin[event.origin] += 1
            for reason in event.reasons or ("unspecified",):
                self.refusals[reason] += 1
            return
        recipient = event.recipient or "?"
        self.flows.setdefault((event.origin, recipient), Counter())[event.outcome] += 1
        if event.outcome in (Outcome.DELIVERED, Outcome.HELD):
            self.withheld.update(event.withheld_fields)

    def add_undecodable(self) -> None:
        self.entries += 1
        self.undecodable += 1

    @property
    def origins(self) -> list[str]:
        return sorted({o for o, _ in self.flows} | set(self.refusals_by_origin))

    @property
    def recipients(self) -> list[str]:
        return sorted({r for _, r in self.flows})

    @property
    def nations(self) -> list[str]:
        return sorted(set(self.origins) | set(self.recipients))

    def total(self, outcome: Outcome) -> int:
        if outcome is Outcome.REFUSED:
            return sum(self.refusals_by_origin.values())
        return sum(counts[outcome] for counts in self.flows.values())
