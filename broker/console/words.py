"""Plain words for codes, and a delivered report's fields laid out with their provenance.

The provenance text of every field is :meth:`FieldProvenance.describe`, the
very text ``ixb subscribe --json`` prints under ``provenance``: the console
adds colour and layout, never other words.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from broker.domain.report import HandlingCode, Marking, ReportType, ThreatReport
from broker.parties.recipient import VerifiedDelivery

__all__ = [
    "HANDLING",
    "MARKINGS",
    "REPORT_TYPES",
    "FieldRow",
    "field_rows",
    "type_words",
]

HANDLING = {
    HandlingCode.H0.value: "purpose-limited: use only for the purpose it was shared for",
    HandlingCode.H1.value: "not for use in court without the originator's permission",
    HandlingCode.H2.value: "no onward sharing without the originator's consent",
    HandlingCode.H3.value: "other restrictions: read the originator's conditions",
}

MARKINGS = {
    Marking.CLEAR.value: "no limit on disclosure",
    Marking.GREEN.value: "the community, not the public",
    Marking.AMBER.value: "the recipient's organisation and its clients, need to know",
    Marking.AMBER_STRICT.value: "the recipient's organisation only",
    Marking.RED.value: "named recipients only",
}

REPORT_TYPES = [t.value for t in ReportType]


def type_words(report_type: str) -> str:
    """``migrant_smuggling`` → ``migrant smuggling``."""
    return report_type.replace("_", " ")


@dataclass(frozen=True, slots=True)
class FieldRow:
    """One value of a delivered report, as the report page shows it."""

    path: str
    label: str  # the path in words, indented by depth
    value: str  # empty when withheld
    kind: str  # signed | derived | withheld, or group: a heading for a list element
    provenance: str  # FieldProvenance.describe(), word for word
    depth: int


_STEP = re.compile(r"([a-z_]+)(?:\[(\d+)\])?")


def _resolve(document: Any, path: str) -> tuple[bool, Any]:
    """The value at a concrete path (``subjects[0].full_name``), and whether it is there."""
    node = document
    for part in path.split("."):
        match = _STEP.fullmatch(part)
        if match is None or not isinstance(node, dict) or match[1] not in node:
            return False, None
        node = node[match[1]]
        if match[2] is not None:
            index = int(match[2])
            if not isinstance(node, list) or index >= len(node):
                return False, None
            node = node[index]
    return True, node


def _label(path: str) -> str:
    last = path.rsplit(".", 1)[-1]
    name, _, index = last.partition("[")
    words = name.replace("_", " ")
    return f"{words} {int(index.rstrip(']')) + 1}" if index else words


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (``tuple[Subject, ...]``, ``Location | None`` → the model)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _order(path: str) -> tuple[tuple[int, int], ...]:
    """Where ``path`` comes in the report: by each step's field position, then its index."""
    model: type[BaseModel] | None = ThreatReport
    key = []
    for part in path.split("."):
        match = _STEP.fullmatch(part)
        names = list(model.model_fields) if model is not None else []
        if match is None or match[1] not in names:
            key.append((len(names), 0))
            model = None
            continue
        key.append((names.index(match[1]), int(match[2] or -1)))
        assert model is not None
        model = _model_of(model.model_fields[match[1]].annotation)
    return tuple(key)


def field_rows(delivery: VerifiedDelivery) -> list[FieldRow]:
    """Every value with its provenance, in the report's order; records and lists as headings."""
    document = delivery.report.model_dump(mode="json")
    rows: list[FieldRow] = []
    grouped: set[str] = set()
    for path in sorted(delivery.provenance, key=_order):
        provenance = delivery.provenance[path]
        rows.extend(_groups(path, grouped))
        present, value = _resolve(document, path)
        if provenance.kind != "withheld" and isinstance(value, dict | list):
            if isinstance(value, list) and not value:
                shown = "none"
            elif isinstance(value, list):
                shown = f"{len(value)}"
            else:
                shown = ""
        elif provenance.kind == "withheld" or not present:
            shown = ""
        else:
            shown = "—" if value is None else str(value)
        rows.append(
            FieldRow(
                path=path,
                label=_label(path),
                value=shown,
                kind=provenance.kind,
                provenance=provenance.describe(),
                depth=path.count("."),
            )
        )
    return rows


def _groups(path: str, seen: set[str]) -> list[FieldRow]:
    """A heading for each list element ``path`` is the first to enter (``subject 2``)."""
    headings = []
    prefix = ""
    for part in path.split(".")[:-1]:
        prefix = f"{prefix}.{part}" if prefix else part
        match = _STEP.fullmatch(part)
        if match is None or match[2] is None or prefix in seen:
            continue
        seen.add(prefix)
        name = match[1].replace("_", " ").removesuffix("s")
        headings.append(
            FieldRow(prefix, f"{name} {int(match[2]) + 1}", "", "group", "", prefix.count("."))
        )
    return headings
