"""Field paths into a threat report, checked against the Avro schema.

A path names a field by its record fields, with ``[]`` stepping into every
element of a list: ``subjects[].travel_documents[].number`` is the number of
every travel document of every subject. Paths are checked when agreements
load, so an agreement naming a field the schema does not have is an error
at load time, never a silent no-op at run time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def check_withholdable(path: FieldPath, record_schema: Mapping[str, Any]) -> None:
    """Raise unless ``path`` exists and its target can be withheld.

    A field can be withheld when its type is nullable (it becomes null) or a
    list (it becomes empty); anything else would make the report invalid.
    """
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
    last = path.steps[-1]
    if not last.each and not (_is_nullable(current) or _is_array(current)):
        raise FieldPathError(f"{path.text!r}: this field is required and cannot be withheld")


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
