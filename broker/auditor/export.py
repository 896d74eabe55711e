"""``ixb audit export``: the log as JSON Lines, and a self-contained HTML report.

JSON Lines: one object per entry, in log order, with its offset, its index
in the tree, its leaf hash (what a receipt names), and its decoded fields;
digests are lower-case hex, times ISO 8601. An entry that does not decode is
still a line (``undecodable`` gives the reason), so line n is always entry n.

The HTML report is one file with no external assets and no scripts: the
flows between nations (who shared with whom, how many were withheld, held
or released) as an inline SVG bar chart and as a table, the refusals at
intake by reason, the fields most often withheld, and each log's
verification result. Every text that reaches the page is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from broker.auditlog.entries import AUDIT_ENTRY_SCHEMA, AuditEntry, Outcome, entry_from_record
from broker.auditor.summary import FLOW_OUTCOMES, FlowSummary
from broker.auditor.verify import VerificationReport
from broker.errors import DecodeError
from broker.trust.merkle import leaf_hash
from broker.wire.codec import SchemaCatalog

__all__ = ["entry_json", "render_html", "write_jsonl"]

_COLOURS = {
    Outcome.DELIVERED: "#2e7d32",
    Outcome.RELEASED: "#81c784",
    Outcome.HELD: "#f9a825",
    Outcome.WITHHELD: "#c62828",
    Outcome.RELEASE_REFUSED: "#8e24aa",
}
_REFUSAL_COLOUR = "#455a64"
_TOP_WITHHELD = 20


def entry_json(
    catalog: SchemaCatalog, log_id: str, offset: int, index: int, value: bytes
) -> tuple[dict[str, Any], AuditEntry | None]:
    """The JSON object of one entry, and the entry when it decodes."""
    line: dict[str, Any] = {
        "log_id": log_id,
        "offset": offset,
        "index": index,
        "leaf_hash": leaf_hash(value).hex(),
    }
    try:
        record = catalog.decode(value, AUDIT_ENTRY_SCHEMA)
    except DecodeError as exc:
        line["undecodable"] = exc.reason
        return line, None
    entry = entry_from_record(record)
    line |= {name: _json_ready(field) for name, field in record.items()}
    line["at"] = entry.event.at.isoformat(timespec="milliseconds")
    return line, entry


def _json_ready(value: Any) -> Any:
    """The decoded Avro value as JSON has it: digests and other bytes as hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def write_jsonl(
    out: TextIO,
    catalog: SchemaCatalog,
    log_id: str,
    records: Iterable[tuple[int, bytes]],
    summary: FlowSummary | None = None,
) -> int:
    """Write one line per record (offset order); count them into ``summary`` too. Returns lines."""
    lines = 0
    for index, (offset, value) in enumerate(records):
        line, entry = entry_json(catalog, log_id, offset, index, value)
        out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
        lines += 1
        if summary is not None:
            if entry is None:
                summary.add_undecodable()
            else:
                summary.add(entry, value)
    return lines


def render_html(
    summary: FlowSummary,
    reports: Sequence[VerificationReport],
    *,
    generated_at: dt.datetime,
    title: str = "ixb audit report",
) -> str:
    """The whole report as one HTML document."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>Generated {_e(generated_at.isoformat(timespec='seconds'))}. "
        f"{summary.entries} entries; nations: {_e(', '.join(summary.nations) or 'none')}.</p>",
        *_verification(reports),
        *_totals(summary),
        *_flow_chart(summary),
        *_flow_table(summary),
        *_refusals(summary),
        *_withheld(summary),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _verification(reports: Sequence[VerificationReport]) -> list[str]:
    rows = ["<h2>Verification</h2>"]
    if not reports:
        return [*rows, "<p>No log was verified.</p>"]
    rows += [
        "<table>",
        "<tr><th>log</th><th>entries</th><th>checkpoints</th><th>consistency steps</th>"
        "<th>root</th><th>result</th></tr>",
    ]
    for report in reports:
        problem = report.problem
        if problem is None:
            result = '<td class="ok">verified</td>'
        else:
            where = []
            if problem.offset is not None:
                where.append(f"offset {problem.offset}")
            if problem.index is not None:
                where.append(f"index {problem.index}")
            if problem.indices is not None:
                where.append(f"entries {problem.indices[0]}..{problem.indices[1] - 1}")
            result = (
                f'<td class="bad"><strong>{_e(problem.reason)}</strong>'
                f"{_e(' (' + ', '.join(where) + ')' if where else '')}: {_e(problem.detail)}</td>"
            )
        rows.append(
            f"<tr><td>{_e(report.log_id)}</td><td>{report.entries}</td>"
            f"<td>{report.checkpoints}</td><td>{report.consistency_steps}</td>"
            f'<td class="hash">{_e(report.root_hash.hex())}</td>{result}</tr>'
        )
    return [*rows, "</table>"]


def _totals(summary: FlowSummary) -> list[str]:
    cells = "".join(
        f"<tr><td>{_swatch(_COLOURS[o])}{_e(o.value)}</td><td>{summary.total(o)}</td></tr>"
        for o in FLOW_OUTCOMES
    )
    refused = summary.total(Outcome.REFUSED)
    cells += f"<tr><td>{_swatch(_REFUSAL_COLOUR)}refused at intake</td><td>{refused}</td></tr>"
    if summary.undecodable:
        cells += f"<tr><td>undecodable entries</td><td>{summary.undecodable}</td></tr>"
    if summary.repeats:
        cells += (
            f"<tr><td>entries held twice (re-sent), counted once</td>"
            f"<td>{summary.repeats}</td></tr>"
        )
    return [
        "<h2>Outcomes</h2>",
        "<table>",
        "<tr><th>outcome</th><th>entries</th></tr>",
        cells,
        "</table>",
    ]


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}"></span>'


def _flow_chart(summary: FlowSummary) -> list[str]:
    """One stacked bar per origin → recipient pair, a segment per outcome."""
    header = ["<h2>Flows between nations</h2>"]
    if not summary.flows:
        return [*header, "<p>No decisions in the log.</p>"]
    pairs = sorted(summary.flows)
    widest = max(sum(c[o] for o in FLOW_OUTCOMES) for c in summary.flows.values()) or 1
    label_w, bar_w, row_h, legend_h = 110, 560, 22, 26
    height = legend_h + row_h * len(pairs)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" '
        f'height="{height}" role="img" aria-label="flows between nations">'
    ]
    x = label_w
    for outcome in FLOW_OUTCOMES:
        svg.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{_COLOURS[outcome]}"/>'
            f'<text x="{x + 16}" y="16">{_e(outcome.value)}</text>'
        )
        x += 110
    for row, pair in enumerate(pairs):
        counts = summary.flows[pair]
        y = legend_h + row * row_h
        svg.append(f'<text x="0" y="{y + 15}">{_e(pair[0])} → {_e(pair[1])}</text>')
        x_pos = float(label_w)
        for outcome in FLOW_OUTCOMES:
            if not counts[outcome]:
                continue
            width = bar_w * counts[outcome] / widest
            svg.append(
                f'<rect x="{x_pos:.1f}" y="{y + 3}" width="{width:.1f}" height="{row_h - 6}" '
                f'fill="{_COLOURS[outcome]}"><title>{_e(pair[0])} → {_e(pair[1])}: '
                f"{counts[outcome]} {_e(outcome.value)}</title></rect>"
            )
            x_pos += width
        total = sum(counts[o] for o in FLOW_OUTCOMES)
        svg.append(f'<text x="{x_pos + 6:.1f}" y="{y + 15}">{total}</text>')
    svg.append("</svg>")
    return [*header, *svg]


def _flow_table(summary: FlowSummary) -> list[str]:
    """The same flows as a matrix: origin rows, recipient columns, counts per outcome."""
    if not summary.flows:
        return []
    recipients = summary.recipients
    legend = " / ".join(o.value for o in FLOW_OUTCOMES)
    rows = [
        f"<p>Each cell: {_e(legend)}.</p>",
        "<table>",
        "<tr><th>origin \\ recipient</th>"
        + "".join(f"<th>{_e(r)}</th>" for r in recipients)
        + "</tr>",
    ]
    for origin in summary.origins:
        cells = []
        for recipient in recipients:
            counts = summary.flows.get((origin, recipient))
            text = "" if counts is None else " / ".join(str(counts[o]) for o in FLOW_OUTCOMES)
            cells.append(f"<td>{_e(text)}</td>")
        rows.append(f"<tr><th>{_e(origin)}</th>{''.join(cells)}</tr>")
    return [*rows, "</table>"]


def _refusals(summary: FlowSummary) -> list[str]:
    header = ["<h2>Refused at intake</h2>"]
    if not summary.refusals:
        return [*header, "<p>No submission was refused.</p>"]
    reasons = summary.refusals.most_common()
    widest = reasons[0][1]
    label_w, bar_w, row_h = 220, 440, 22
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" '
        f'height="{row_h * len(reasons)}" role="img" aria-label="refusals by reason">'
    ]
    for row, (reason, count) in enumerate(reasons):
        y = row * row_h
        width = bar_w * count / widest
        svg.append(
            f'<text x="0" y="{y + 15}">{_e(reason)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row_h - 6}" '
            f'fill="{_REFUSAL_COLOUR}"><title>{_e(reason)}: {count}</title></rect>'
            f'<text x="{label_w + width + 6:.1f}" y="{y + 15}">{count}</text>'
        )
    svg.append("</svg>")
    by_origin = "".join(
        f"<tr><td>{_e(origin)}</td><td>{count}</td></tr>"
        for origin, count in sorted(summary.refusals_by_origin.items())
    )
    table = ["<table>", "<tr><th>origin</th><th>refused</th></tr>", by_origin, "</table>"]
    return [*header, *svg, *table]


def _withheld(summary: FlowSummary) -> list[str]:
    header = ["<h2>Fields withheld from deliveries</h2>"]
    if not summary.withheld:
        return [*header, "<p>No field was withheld.</p>"]
    rows = "".join(
        f"<tr><td>{_e(path)}</td><td>{count}</td></tr>"
        for path, count in summary.withheld.most_common(_TOP_WITHHELD)
    )
    return [*header, "<table>", "<tr><th>field</th><th>deliveries</th></tr>", rows, "</table>"]


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#212121}"
    "table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #bdbdbd;padding:4px 8px;text-align:left}"
    "td.ok{color:#2e7d32}td.bad{color:#c62828}"
    ".hash{font-family:monospace;font-size:80%}"
    ".swatch{display:inline-block;width:10px;height:10px;margin-right:6px}"
    "svg text{font-size:12px;font-family:system-ui,sans-serif}"
)
