"""`ixb agreements check`: what a liaison office should know before signing off.

Loading a bundle already refuses anything malformed, every problem of every
file at once (broker/policy/agreement_file.py). This module looks at the
agreements together, and every finding names the files it is about:

* **errors** (the set must not be deployed): one agreement giving the same
  field two different treatments for one report type; two agreements whose
  terms conflict where they overlap, with no declared precedence to say
  which prevails (broker/policy/overlaps.py defines "conflict");
* **warnings** (deployable, but someone should have meant it): agreements
  that have expired or are not yet in force; overlaps without a conflict,
  or resolved by a precedence, with what really happens and from when;
  different embargoes on one overlap (the longer applies); a precedence
  that never takes effect; rules for a report type the agreement does not
  cover.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from broker.domain.agreements import ALL_TYPES, Agreement
from broker.policy.bundle import PolicyBundle
from broker.policy.overlaps import Kind, Overlap, overlaps, shares_reports


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    agreements: tuple[str, ...]
    files: tuple[str, ...]
    message: str

    def document(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "agreements": list(self.agreements),
            "files": list(self.files),
            "message": self.message,
        }


def lint(bundle: PolicyBundle, now: dt.datetime) -> list[Finding]:
    findings: list[Finding] = []
    for agreement in bundle.agreements:
        findings.extend(_validity(bundle, agreement, now))
        findings.extend(_own_rules(bundle, agreement))
        findings.extend(_idle_precedence(bundle, agreement))
    for first, second in itertools.combinations(bundle.agreements, 2):
        findings.extend(_overlap(bundle, overlap) for overlap in overlaps(first, second, now))
    return findings


def _finding(
    bundle: PolicyBundle, severity: Severity, agreements: tuple[Agreement, ...], message: str
) -> Finding:
    ids = tuple(a.id for a in agreements)
    return Finding(severity, ids, tuple(bundle.file_of(i) for i in ids), message)


def _validity(bundle: PolicyBundle, agreement: Agreement, now: dt.datetime) -> list[Finding]:
    if agreement.valid_until is not None and agreement.valid_until <= now:
        message = f"{agreement.id} expired on {agreement.valid_until:%Y-%m-%d}: shares nothing"
    elif agreement.valid_from > now:
        message = (
            f"{agreement.id} is in force from {agreement.valid_from:%Y-%m-%d}: "
            "shares nothing until then"
        )
    else:
        return []
    return [_finding(bundle, Severity.WARNING, (agreement,), message)]


def _own_rules(bundle: PolicyBundle, agreement: Agreement) -> list[Finding]:
    findings = []
    covered = {t.value for t in agreement.report_types}
    for key in agreement.field_rules:
        if key != ALL_TYPES and key not in covered:
            message = f"field_rules.{key}: {agreement.id} does not cover {key} reports"
            findings.append(_finding(bundle, Severity.WARNING, (agreement,), message))
    for report_type in agreement.report_types:
        by_field: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
        for rule in agreement.rules_for(report_type):
            if rule.field is not None:
                by_field[rule.field].add((rule.action.value, rule.to))
        for field, treatments in sorted(by_field.items()):
            if len(treatments) > 1:
                said = " and ".join(_treatment(a, t) for a, t in sorted(treatments, key=str))
                message = (
                    f"{agreement.id}, {report_type.value} reports: {field} is both {said}; "
                    "say one treatment per field"
                )
                findings.append(_finding(bundle, Severity.ERROR, (agreement,), message))
    return findings


def _idle_precedence(bundle: PolicyBundle, agreement: Agreement) -> list[Finding]:
    """A precedence over an agreement it never overlaps decides nothing: probably a mistake."""
    others = {a.id: a for a in bundle.agreements}
    findings = []
    for declaration in agreement.precedence:
        for other_id in declaration.over:
            other = others[other_id]  # the loader refused unknown ids
            types = [t.value for t in declaration.report_types or agreement.report_types]
            if not any(shares_reports(agreement, other, t) for t in types):
                message = (
                    f"{agreement.id} takes precedence over {other_id} for {', '.join(types)} "
                    "reports, but the two never cover the same such reports: it has no effect"
                )
                findings.append(_finding(bundle, Severity.WARNING, (agreement, other), message))
    return findings


def _overlap(bundle: PolicyBundle, overlap: Overlap) -> Finding:
    pair = (overlap.first, overlap.second)
    both = f"{overlap.first.id} and {overlap.second.id} both cover {overlap.scope()}"
    if overlap.kind is Kind.RESOLVED:
        winner = overlap.text
        loser = overlap.second if winner == overlap.first.id else overlap.first
        message = (
            f"{both}; {winner} takes precedence (declared in its file): {loser.id}'s terms "
            f"do not apply to these reports and {winner} authorises them"
        )
    elif overlap.kind is Kind.CONFLICT:
        message = (
            f"{both}, and neither declares precedence: {overlap.text}. Declare `precedence` "
            "in one of them, or give both the same terms"
        )
        return _finding(bundle, Severity.ERROR, pair, message)
    elif overlap.kind is Kind.AGREED:
        message = f"{both} on the same terms: {overlap.first.id} authorises them (first by id)"
    else:
        message = f"{both}: {overlap.text}"
    return _finding(bundle, Severity.WARNING, pair, message)


def _treatment(action: str, to: str | None) -> str:
    return f"{action} to {to}" if to else action
