"""Where two agreements cover the same reports: what really happens, and whether it conflicts.

Two agreements *overlap* where both cover one report at one time: the
origin may send to the recipient under both, both list the report type,
and their validity periods meet (an overlap entirely in the past is
ignored; one in the future is reported "from" the day it begins).

What happens there is what policies/ixb/sharing.rego decides:

* if one declares precedence over the other for the type, the other is set
  aside and the declaring agreement alone decides (a *resolved* overlap);
* otherwise both govern, the most protective combination: either's
  prohibition refuses, each field gets the stricter rule, the longer
  embargo applies, and the first by id authorises (its secret keys the
  pseudonyms).

An unresolved overlap *conflicts* when the two say different things about
the same reports: a field treated differently (a rule under one, another
rule or none under the other), different marking ceilings, different
handling codes, different H2 consent on a shared flow, or different
excluded facets. Then one agreement's terms are not what its parties get,
and an officer must either declare which prevails or make them agree; the
check fails. Different embargoes alone are a warning: the longer applies,
and nothing is shown that either agreement withholds.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from broker.domain.agreements import Agreement, FieldAction, FieldRule, strictness
from broker.domain.report import HandlingCode

FAR = dt.datetime.max.replace(tzinfo=dt.UTC)


class Kind(StrEnum):
    RESOLVED = "resolved"  # a declared precedence decides; ``text`` names the winner
    CONFLICT = "conflict"  # unresolved, and the terms differ; ``text`` says how and what applies
    AGREED = "agreed"  # unresolved, and the terms agree
    NOTE = "note"  # worth knowing, not a conflict: different embargoes, whose pseudonyms


@dataclass(frozen=True, slots=True)
class Overlap:
    """One thing about the reports two agreements both cover, for a group of report types."""

    first: Agreement  # the lesser id
    second: Agreement
    flows: tuple[tuple[str, str], ...]  # (origin, recipient)
    report_types: tuple[str, ...]
    when: str  # "now", "from 2027-07-01", "now until 2029-12-31", ...
    kind: Kind
    text: str

    def scope(self) -> str:
        flows = ", ".join(f"{o}→{r}" for o, r in self.flows)
        return f"{flows} {', '.join(self.report_types)} reports {self.when}"


def overlaps(first: Agreement, second: Agreement, now: dt.datetime) -> list[Overlap]:
    """What two agreements do where they overlap; report types that share a finding share it."""
    first, second = sorted((first, second), key=lambda a: a.id)
    start = max(first.valid_from, second.valid_from)
    end = min(first.valid_until or FAR, second.valid_until or FAR)
    if start >= end or end <= now:
        return []
    flows = tuple(sorted(_flows(first) & _flows(second)))
    types = sorted({t.value for t in first.report_types} & {t.value for t in second.report_types})
    if not flows or not types:
        return []
    when = "now" if start <= now else f"from {start:%Y-%m-%d}"
    if end != FAR:
        when += f" until {end:%Y-%m-%d}"
    groups: dict[tuple[Kind, str], list[str]] = defaultdict(list)
    for report_type in types:
        for kind, text in _judge(first, second, report_type, flows):
            groups[kind, text].append(report_type)
    return [
        Overlap(first, second, flows, tuple(group), when, kind, text)
        for (kind, text), group in groups.items()
    ]


def _judge(
    first: Agreement, second: Agreement, report_type: str, flows: tuple[tuple[str, str], ...]
) -> list[tuple[Kind, str]]:
    for winner, loser in ((first, second), (second, first)):
        if loser.id in winner.precedence_over(report_type):
            return [(Kind.RESOLVED, winner.id)]
    conflicts = [
        *_field_conflicts(first, second, report_type),
        *_admission_conflicts(first, second, flows),
    ]
    found = [(Kind.CONFLICT, c) for c in conflicts] or [(Kind.AGREED, "")]
    embargoes = (_embargo_s(first, report_type), _embargo_s(second, report_type))
    if embargoes[0] != embargoes[1]:
        longer = max(e or 0 for e in embargoes)
        found.append(
            (
                Kind.NOTE,
                f"embargoes differ ({first.id}: {_duration(embargoes[0])}; {second.id}: "
                f"{_duration(embargoes[1])}): the longer, {_duration(longer)}, applies",
            )
        )
    if any(r.action is FieldAction.PSEUDONYMISE for r in _strictest(first, second, report_type)):
        found.append(
            (
                Kind.NOTE,
                f"pseudonyms are keyed by {first.id}'s secret (it authorises, first by id): a "
                f"recipient can link them only with pseudonyms in other deliveries {first.id} "
                "authorises",
            )
        )
    return found


def _field_conflicts(first: Agreement, second: Agreement, report_type: str) -> list[str]:
    mine, theirs = _treatments(first, report_type), _treatments(second, report_type)
    found = []
    for field in sorted(mine.keys() | theirs.keys()):
        a, b = mine.get(field), theirs.get(field)
        if a == b:
            continue
        applied = _stricter(a, b)
        found.append(
            f"{field} is {_said(a)} under {first.id} but {_said(b)} under {second.id}: "
            f"{_said(applied)} applies"
        )
    return found


def _admission_conflicts(
    first: Agreement, second: Agreement, flows: tuple[tuple[str, str], ...]
) -> list[str]:
    found = []
    if first.max_marking != second.max_marking:
        lower = min(first, second, key=lambda a: a.max_marking.rank)
        found.append(
            f"the marking ceilings differ ({first.id}: {first.max_marking}; {second.id}: "
            f"{second.max_marking}): reports above {lower.max_marking} are refused "
            f"({lower.id}'s ceiling)"
        )
    by_codes: dict[tuple[str, str], list[str]] = defaultdict(list)
    for origin, recipient in flows:
        mine, theirs = _admitted(first, origin, recipient), _admitted(second, origin, recipient)
        if mine != theirs:
            by_codes[_codes(mine), _codes(theirs)].append(f"{origin}→{recipient}")
    for (mine_text, theirs_text), where in sorted(by_codes.items()):
        refused = sorted(set(mine_text.split(", ")) ^ set(theirs_text.split(", ")) - {"none"})
        found.append(
            f"the handling codes let through on {', '.join(where)} differ ({first.id}: "
            f"{mine_text}; {second.id}: {theirs_text}; H2 only with the originator's "
            f"consent): {', '.join(refused)} reports there are refused"
        )
    facets = (set(first.excluded_facets), set(second.excluded_facets))
    if facets[0] != facets[1]:
        found.append(
            f"the excluded facets differ ({first.id}: {_listed(facets[0])}; {second.id}: "
            f"{_listed(facets[1])}): reports with {_listed(facets[0] | facets[1])} are refused"
        )
    return found


def _admitted(agreement: Agreement, origin: str, recipient: str) -> set[str]:
    """The handling codes a report from ``origin`` to ``recipient`` may carry (H2: consent)."""
    return {
        code.value
        for code in agreement.handling_codes
        if code is not HandlingCode.H2 or recipient in agreement.h2_consent.get(origin, ())
    }


Treatment = tuple[FieldAction, str | None]


def _treatments(agreement: Agreement, report_type: str) -> dict[str, Treatment]:
    """The strictest treatment per field under one agreement alone (as derive.py applies it)."""
    best: dict[str, Treatment] = {}
    for rule in agreement.rules_for(report_type):
        if rule.field is not None:
            current = best.get(rule.field)
            best[rule.field] = _stricter(current, (rule.action, rule.to)) or (rule.action, rule.to)
    return best


def _strictest(first: Agreement, second: Agreement, report_type: str) -> list[FieldRule]:
    mine, theirs = _treatments(first, report_type), _treatments(second, report_type)
    rules = []
    for field in mine.keys() | theirs.keys():
        treatment = _stricter(mine.get(field), theirs.get(field))
        if treatment is not None:
            rules.append(FieldRule(field=field, action=treatment[0], to=treatment[1]))
    return rules


def _stricter(a: Treatment | None, b: Treatment | None) -> Treatment | None:
    """The stricter of two treatments, as derive.py picks it; "as issued" is the least strict."""
    if a is None or b is None:
        return a or b
    return a if strictness(*a) >= strictness(*b) else b


def _said(treatment: Treatment | None) -> str:
    if treatment is None:
        return "as issued"
    action, to = treatment
    return f"{action.value} to {to}" if to else action.value


def _embargo_s(agreement: Agreement, report_type: str) -> int | None:
    delays = [r.after for r in agreement.rules_for(report_type) if r.after is not None]
    return max(delays) if delays else None


def _duration(seconds: int | None) -> str:
    if not seconds:
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _codes(codes: Iterable[str]) -> str:
    return ", ".join(sorted(codes)) or "none"


def _listed(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"


def _flows(agreement: Agreement) -> set[tuple[str, str]]:
    senders, receivers = agreement.senders_and_receivers()
    return {(o, r) for o in senders for r in receivers if o != r}


def shares_reports(first: Agreement, second: Agreement, report_type: str) -> bool:
    """Whether the two can ever cover one ``report_type`` report together (precedence matters)."""
    start = max(first.valid_from, second.valid_from)
    end = min(first.valid_until or FAR, second.valid_until or FAR)
    both = {t.value for t in first.report_types} & {t.value for t in second.report_types}
    return start < end and report_type in both and bool(_flows(first) & _flows(second))
