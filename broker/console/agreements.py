"""Agreements for a liaison officer: in plain words, on a timeline, and as who-receives-what.

The words are made from the agreement's own terms, field by field, so the
page says what the YAML says and nothing else. The matrix is not made from
the terms but asked of the policy itself (the same Rego the enforcer
decides with): for each report type and partner, would the least
restricted report of that type (TLP:CLEAR, H0, nothing but a title) flow
now, and under which agreement; its marking ceiling is the lowest of the
governing agreements' (the most protective combination). Pairs that share
no agreement are not asked: no agreement means nothing flows.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass

from broker.domain.agreements import Agreement, FieldAction, FieldRule
from broker.domain.decisions import Decision, DecisionInput
from broker.domain.report import HandlingCode, Marking, ReportType
from broker.policy import PolicyDecisionPoint
from broker.policy.bundle import PolicyBundle

__all__ = ["Cell", "FlowMatrix", "agreements_of", "flow_matrix", "rule_words", "timeline_svg"]


def agreements_of(bundle: PolicyBundle, nation: str | None) -> list[Agreement]:
    """The agreements ``nation`` is party to (all of them for None), by id."""
    return sorted(
        (a for a in bundle.agreements if nation is None or nation in a.parties),
        key=lambda a: a.id,
    )


def field_words(path: str) -> str:
    """``subjects[].full_name`` → ``the full name of each subject``."""
    steps = path.split(".")
    words = [steps[-1].removesuffix("[]").replace("_", " ")]
    for step in reversed(steps[:-1]):
        name = step.removesuffix("[]").replace("_", " ")
        words.append(f"each {name.removesuffix('s')}" if step.endswith("[]") else f"the {name}")
    return "the " + " of ".join(words)


def rule_words(rule: FieldRule) -> str:
    """One field rule as a sentence a liaison officer would sign."""
    target = field_words(rule.field or "")
    if rule.action is FieldAction.REDACT:
        return f"{target} is withheld: the recipient does not receive it"
    if rule.action is FieldAction.PSEUDONYMISE:
        return (
            f"{target} is replaced by a pseudonym, the same for the same value under this "
            "agreement, so reports can be linked without the value"
        )
    if rule.action is FieldAction.GENERALISE:
        return f"{target} is made coarser, to the {rule.to}"
    after = rule.after or 0
    amount = f"{after // 3600} h" if after % 3600 == 0 else f"{after // 60} min"
    return f"the whole report is held for {amount} after it was observed, then delivered"


def direction_words(agreement: Agreement) -> str:
    senders, receivers = agreement.senders_and_receivers()
    if agreement.direction.value == "mutual":
        return f"mutual: each of {', '.join(agreement.parties)} shares with every other"
    return f"one way: {', '.join(senders)} to {', '.join(receivers)}, nothing back"


def timeline_svg(agreements: list[Agreement], now: dt.datetime) -> str:
    """Each agreement's validity as a bar on one time axis, with today marked."""
    if not agreements:
        return ""
    starts = [a.valid_from for a in agreements]
    ends = [a.valid_until or now + dt.timedelta(days=3 * 365) for a in agreements]
    first = min([*starts, now]) - dt.timedelta(days=120)
    last = max([*ends, now]) + dt.timedelta(days=120)
    span = (last - first).total_seconds()
    label_w, width, row_h = 250, 620, 26
    height = 30 + row_h * len(agreements)

    def x(when: dt.datetime) -> float:
        return label_w + width * (when - first).total_seconds() / span

    parts = [
        f'<svg class="timeline" viewBox="0 0 {label_w + width + 20} {height}" role="img" '
        f'aria-label="validity of each agreement on a time line, today marked">'
    ]
    for year in range(first.year + 1, last.year + 1):
        at = x(dt.datetime(year, 1, 1, tzinfo=dt.UTC))
        parts.append(
            f'<line x1="{at:.1f}" y1="18" x2="{at:.1f}" y2="{height}" stroke="#e1e5eb"/>'
            f'<text x="{at + 3:.1f}" y="13">{year}</text>'
        )
    for row, (agreement, start, end) in enumerate(zip(agreements, starts, ends, strict=True)):
        y = 24 + row * row_h
        open_ended = agreement.valid_until is None
        live = agreement.valid_from <= now and (open_ended or now < end)
        colour = "#2e7d32" if live else "#9aa5b4"
        until = "open-ended" if open_ended else end.date().isoformat()
        title = f"{agreement.id} v{agreement.version}: {start.date().isoformat()} to {until}"
        opacity = ' fill-opacity="0.55"' if open_ended else ""
        parts.append(
            f'<text x="0" y="{y + 14}">{html.escape(agreement.id)}</text>'
            f'<rect x="{x(start):.1f}" y="{y + 3}" width="{max(2.0, x(end) - x(start)):.1f}" '
            f'height="{row_h - 10}" rx="4" fill="{colour}"{opacity}>'
            f"<title>{html.escape(title)}</title></rect>"
        )
    today = x(now)
    parts.append(
        f'<line x1="{today:.1f}" y1="16" x2="{today:.1f}" y2="{height}" stroke="#a1221b" '
        f'stroke-width="2"/><text x="{today + 4:.1f}" y="{height - 4}" fill="#a1221b">today</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Cell:
    """What the policy says of the least restricted report of one type on one flow."""

    allowed: bool
    agreement: str = ""  # the authorising agreement, "id vN"
    ceiling: str = ""  # the highest marking the governing agreements let through
    handling: tuple[str, ...] = ()  # the handling codes they all carry
    reasons: tuple[str, ...] = ()
    embargo: bool = False


@dataclass(frozen=True, slots=True)
class FlowMatrix:
    """For one nation: what it sends to each partner, and receives from each, per report type."""

    nation: str
    partners: tuple[str, ...]
    report_types: tuple[str, ...]
    sends: dict[tuple[str, str], Cell]  # (report type, partner) -> cell
    receives: dict[tuple[str, str], Cell]


def flow_matrix(
    bundle: PolicyBundle, policy: PolicyDecisionPoint, nation: str, now: dt.datetime
) -> FlowMatrix:
    mine = agreements_of(bundle, nation)
    partners = sorted({p for a in mine for p in a.parties} - {nation})
    types = sorted({t.value for a in mine for t in a.report_types})
    sends: dict[tuple[str, str], Cell] = {}
    receives: dict[tuple[str, str], Cell] = {}
    for report_type in types:
        for partner in partners:
            sends[report_type, partner] = _cell(bundle, policy, (nation, partner), report_type, now)
            receives[report_type, partner] = _cell(
                bundle, policy, (partner, nation), report_type, now
            )
    return FlowMatrix(nation, tuple(partners), tuple(types), sends, receives)


def _cell(
    bundle: PolicyBundle,
    policy: PolicyDecisionPoint,
    flow: tuple[str, str],
    report_type: str,
    now: dt.datetime,
) -> Cell:
    origin, recipient = flow
    covering = [
        a
        for a in bundle.agreements
        if origin in a.senders_and_receivers()[0] and recipient in a.senders_and_receivers()[1]
    ]
    if not covering:
        return Cell(False, reasons=("no agreement between them",))
    asked = DecisionInput(
        origin=origin,
        recipient=recipient,
        report_type=ReportType(report_type),
        marking=Marking.CLEAR,
        handling_code=HandlingCode.H0,
        observed_at_s=int(now.timestamp()),
        now_s=int(now.timestamp()),
    )
    decision: Decision = policy.decide(asked)
    if not decision.allow or decision.agreement is None:
        return Cell(False, reasons=decision.reasons)
    by_id = {a.id: a for a in bundle.agreements}
    governing = [by_id[g.id] for g in decision.governing if g.id in by_id] or [
        by_id[decision.agreement.id]
    ]
    ceiling = min((a.max_marking for a in governing), key=lambda m: m.rank)
    handling = set.intersection(*(_carried(a, origin, recipient) for a in governing))
    return Cell(
        True,
        agreement=f"{decision.agreement.id} v{decision.agreement.version}",
        ceiling=ceiling.value,
        handling=tuple(sorted(handling)),
        embargo=decision.not_before_s is not None,
    )


def _carried(agreement: Agreement, origin: str, recipient: str) -> set[str]:
    """The handling codes that flow from ``origin`` to ``recipient``: H2 only with consent."""
    codes = {c.value for c in agreement.handling_codes}
    if recipient not in agreement.h2_consent.get(origin, ()):
        codes.discard(HandlingCode.H2.value)
    return codes
