"""`ixb agreements check`: what a liaison office should know before signing off.

Loading a bundle already refuses anything malformed (errors name the file and
the field). This module looks at the agreements together:

* **errors** (the set must not be deployed): one agreement giving the same
  field two different treatments for the same report type, so the file says
  two things at once;
* **warnings** (deployable, but someone should have meant it): agreements
  that have expired or are not yet valid; two agreements covering the same
  flow (origin → recipient, report type) at the same time, with what that
  means (the first by id authorises, the field rules of both apply, the more
  permissive marking and handling terms let a report through); rules for a
  report type the agreement does not cover.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from broker.domain.agreements import ALL_TYPES, Agreement, FieldRule
from broker.policy.bundle import PolicyBundle


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    agreements: tuple[str, ...]
    message: str


def lint(bundle: PolicyBundle, now: dt.datetime) -> list[Finding]:
    findings: list[Finding] = []
    for agreement in bundle.agreements:
        findings.extend(_validity(agreement, now))
        findings.extend(_own_rules(agreement))
    for first, second in itertools.combinations(bundle.agreements, 2):
        findings.extend(_overlap(first, second))
    return findings


def _validity(agreement: Agreement, now: dt.datetime) -> list[Finding]:
    ids = (agreement.id,)
    if agreement.valid_until is not None and agreement.valid_until <= now:
        return [
            Finding(
                Severity.WARNING,
                ids,
                f"expired on {agreement.valid_until:%Y-%m-%d}: shares nothing",
            )
        ]
    if agreement.valid_from > now:
        return [
            Finding(
                Severity.WARNING,
                ids,
                f"not valid until {agreement.valid_from:%Y-%m-%d}: shares nothing yet",
            )
        ]
    return []


def _own_rules(agreement: Agreement) -> list[Finding]:
    findings = []
    ids = (agreement.id,)
    covered = {t.value for t in agreement.report_types}
    for key in agreement.field_rules:
        if key != ALL_TYPES and key not in covered:
            findings.append(
                Finding(
                    Severity.WARNING,
                    ids,
                    f"field_rules.{key}: the agreement does not cover {key} reports",
                )
            )
    for report_type in agreement.report_types:
        by_field: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
        for rule in agreement.rules_for(report_type):
            if rule.field is not None:
                by_field[rule.field].add((rule.action.value, rule.to))
        for field, treatments in sorted(by_field.items()):
            if len(treatments) > 1:
                said = " and ".join(_treatment(a, t) for a, t in sorted(treatments, key=str))
                findings.append(
                    Finding(
                        Severity.ERROR,
                        ids,
                        f"{report_type.value} reports: {field} is both {said}; "
                        "say one treatment per field",
                    )
                )
    return findings


def _overlap(first: Agreement, second: Agreement) -> list[Finding]:
    if not _periods_meet(first, second):
        return []
    flows = sorted(_flows(first) & _flows(second))
    if not flows:
        return []
    ids = tuple(sorted((first.id, second.id)))
    pairs = sorted({f"{o}→{r}" for o, r, _ in flows})
    types = sorted({t for _, _, t in flows})
    findings = [
        Finding(
            Severity.WARNING,
            ids,
            f"both cover {', '.join(pairs)} for {', '.join(types)}: {ids[0]} authorises "
            "such reports and the field rules of both apply (the strictest per field)",
        )
    ]
    if first.max_marking != second.max_marking:
        wider = max(first, second, key=lambda a: a.max_marking.rank)
        findings.append(
            Finding(
                Severity.WARNING,
                ids,
                f"on the shared flows the markings differ ({first.id}: {first.max_marking}, "
                f"{second.id}: {second.max_marking}): reports up to {wider.max_marking} flow "
                f"under {wider.id}",
            )
        )
    for report_type in types:
        findings.extend(_conflicting_rules(first, second, report_type, ids))
    return findings


def _conflicting_rules(
    first: Agreement, second: Agreement, report_type: str, ids: tuple[str, ...]
) -> list[Finding]:
    mine = _treatments(first.rules_for(report_type))
    theirs = _treatments(second.rules_for(report_type))
    findings = []
    for field in sorted(set(mine) & set(theirs)):
        if mine[field] != theirs[field]:
            findings.append(
                Finding(
                    Severity.WARNING,
                    ids,
                    f"{report_type} reports: {field} is {_treatment(*mine[field])} under "
                    f"{first.id} but {_treatment(*theirs[field])} under {second.id}; "
                    "the strictest applies",
                )
            )
    return findings


def _treatments(rules: tuple[FieldRule, ...]) -> dict[str, tuple[str, str | None]]:
    return {r.field: (r.action.value, r.to) for r in rules if r.field is not None}


def _treatment(action: str, to: str | None) -> str:
    return f"{action} to {to}" if to else action


def _flows(agreement: Agreement) -> set[tuple[str, str, str]]:
    senders, receivers = agreement.senders_and_receivers()
    return {
        (origin, recipient, report_type.value)
        for origin in senders
        for recipient in receivers
        if origin != recipient
        for report_type in agreement.report_types
    }


def _periods_meet(first: Agreement, second: Agreement) -> bool:
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return max(first.valid_from, second.valid_from) < min(
        first.valid_until or far, second.valid_until or far
    )
