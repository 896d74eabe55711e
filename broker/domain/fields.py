"""Field paths into a threat report, checked against the Avro schema.

A path names a field by its record fields, with ``[]`` stepping into every
element of a list: ``subjects[].travel_documents[].number`` is the number of
every travel document of every subject. Paths are checked when agreements
load, so an agreement naming a field the schema does not have is an error
at load time, never a silent no-op at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.domain.agreements import GENERALISATIONS, FieldAction, FieldRule
from broker.domain.report import COUNTRY_CODE_FIELDS

_SEGMENT = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*)(?P<each>\[\])?$")


class FieldPathError(ValueError):
    """A field path that is malformed or that the schema does not have."""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    each: bool  # the field is a list and the path continues into every element


@dataclass(frozen=True, slots=True)
class FieldPath:
    text: str
    steps: tuple[Step, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        steps = []
        for segment in text.split("."):
            match = _SEGMENT.match(segment)
            if match is None:
                raise FieldPathError(f"{text!r}: {segment!r} is not a field name or name[]")
            steps.append(Step(match["name"], match["each"] is not None))
        return cls(text, tuple(steps))


def _record_fields(schema: Any) -> Mapping[str, Any] | None:
    """The fields of a record type, looking through a ``["null", record]`` union."""
    if isinstance(schema, list):
        records = [s for s in schema if isinstance(s, dict) and s.get("type") == "record"]
        return _record_fields(records[0]) if len(records) == 1 else None
    if isinstance(schema, dict) and schema.get("type") == "record":
        return {f["name"]: f["type"] for f in schema["fields"]}
    return None


def _is_nullable(schema: Any) -> bool:
    return isinstance(schema, list) and "null" in schema


def _is_array(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "array"


def resolve(path: FieldPath, record_schema: Mapping[str, Any]) -> Any:
    """The Avro type ``path`` leads to (the item type after a final ``[]``)."""
    current: Any = record_schema
    for index, step in enumerate(path.steps):
        fields = _record_fields(current)
        if fields is None or step.name not in fields:
            where = ".".join(s.name for s in path.steps[:index]) or "the report"
            raise FieldPathError(f"{path.text!r}: {where} has no field {step.name!r}")
        current = fields[step.name]
        if step.each:
            if not _is_array(current):
                raise FieldPathError(f"{path.text!r}: {step.name!r} is not a list")
            current = current["items"]
    return current


def check_withholdable(path: FieldPath, record_schema: Mapping[str, Any]) -> None:
    """Raise unless ``path`` exists and its target can be withheld.

    A field can be withheld when its type is nullable (it becomes null) or a
    list (it becomes empty); anything else would make the report invalid.
    """
    current = resolve(path, record_schema)
    last = path.steps[-1]
    if not last.each and not (_is_nullable(current) or _is_array(current)):
        raise FieldPathError(f"{path.text!r}: this field is required and cannot be withheld")


def value_kind(schema: Any) -> str:  # noqa: PLR0911 - one return per kind reads best
    """What a field holds, for rules that transform values rather than withhold them.

    One of ``string``, ``timestamp``, ``date``, ``location`` or ``other``;
    a ``["null", T]`` union is looked through.
    """
    if isinstance(schema, list):
        non_null = [s for s in schema if s != "null"]
        return value_kind(non_null[0]) if len(non_null) == 1 else "other"
    if schema == "string":
        return "string"
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical in ("timestamp-millis", "timestamp-micros"):
            return "timestamp"
        if logical == "date":
            return "date"
        if logical is None and schema.get("type") == "string":
            return "string"
        if schema.get("type") == "record" and schema.get("name", "").endswith("Location"):
            return "location"
    return "other"


def check_rule(rule: FieldRule, record_schema: Mapping[str, Any]) -> None:
    """Raise unless ``rule`` can be applied to every report of this schema.

    Redaction needs a nullable or list field; a pseudonym replaces text, so
    it needs a text field; a generalisation must fit the kind of value
    (``to: year`` on a date, ``to: border_sector`` on a location, ...).
    """
    if rule.field is None:
        return  # an embargo concerns the whole report
    path = FieldPath.parse(rule.field)
    if rule.action is FieldAction.REDACT:
        check_withholdable(path, record_schema)
        return
    kind = value_kind(resolve(path, record_schema))
    if rule.action is FieldAction.PSEUDONYMISE and kind != "string":
        raise FieldPathError(f"{path.text!r}: only text fields can be pseudonymised")
    if rule.action is FieldAction.PSEUDONYMISE and path.steps[-1].name in COUNTRY_CODE_FIELDS:
        raise FieldPathError(
            f"{path.text!r}: holds a country code, which a pseudonym cannot replace; redact it"
        )
    if rule.action is FieldAction.GENERALISE and rule.to not in GENERALISATIONS.get(kind, ()):
        allowed = list(GENERALISATIONS.get(kind, ())) or "nothing: it cannot be generalised"
        raise FieldPathError(f"{path.text!r}: a {kind} field generalises to {allowed}")


def withhold(record: dict[str, Any], path: FieldPath) -> int:
    """Withhold the field at ``path`` in ``record`` (in place); count what was present.

    The caller passes a copy: the original record is never touched.
    """
    return _withhold(record, path.steps)


def _withhold(node: Any, steps: tuple[Step, ...]) -> int:
    if node is None:
        return 0
    step, rest = steps[0], steps[1:]
    value = node.get(step.name)
    if not rest:
        if step.each or isinstance(value, list):
            present = int(bool(value))
            node[step.name] = []
        else:
            present = int(value is not None)
            node[step.name] = None
        return present
    if step.each:
        return sum(_withhold(item, rest) for item in value or [])
    return _withhold(value, rest)


def transform(record: dict[str, Any], path: FieldPath, change: Callable[[Any], Any]) -> int:
    """Replace every present (non-null) value at ``path`` by ``change(value)``, in place.

    Returns how many values were changed. As with :func:`withhold`, the
    caller passes a copy.
    """
    return _transform(record, path.steps, change)


def _transform(node: Any, steps: tuple[Step, ...], change: Callable[[Any], Any]) -> int:
    if node is None:
        return 0
    step, rest = steps[0], steps[1:]
    value = node.get(step.name)
    if value is None:
        return 0
    if step.each:
        if not rest:
            node[step.name] = [None if v is None else change(v) for v in value]
            return sum(v is not None for v in value)
        return sum(_transform(item, rest, change) for item in value)
    if not rest:
        node[step.name] = change(value)
        return 1
    return _transform(value, rest, change)
