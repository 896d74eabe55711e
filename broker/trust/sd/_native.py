"""The native core's side of selective disclosure: its loops, fed as the reference's are.

A submission carries some 75 disclosures, and reading, hashing, looking up
and checking each one in Python cost more than the signature check
(issue 23). The core does that per-field work: reading the disclosure array
(:func:`broker.trust.sd.wire.read_disclosures`), the verifier's loop
(``_take_signed`` in :mod:`broker.trust.sd.verify`), and selecting and
splicing disclosures into statements (:mod:`broker.trust.sd.select`,
:mod:`broker.trust.sd.statement`). Each call site runs the function here
when :data:`broker.native.ACTIVE` is true, its own Python otherwise.

The core raises the reference's own error classes (bound here once), so no
caller can tell which implementation refused, only why.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from broker import native
from broker.trust.sd.disclosure import Disclosure, DisclosureError
from broker.trust.sd.layout import FieldKind, ReportLayout, Slot
from broker.trust.sd.wire import _LOGICAL, _PRIMITIVES, Item, WireError

__all__ = ["disclosures_array", "read_disclosures", "take_signed", "uncovered", "value_type"]

if native.BUILT:
    native.core().bind(WireError, DisclosureError)

Decode = Callable[[Slot, str, bytes], Any]


def read_disclosures(
    data: bytes, pos: int, *, max_items: int, max_field_bytes: int
) -> tuple[list[Item], int]:
    """:func:`broker.trust.sd.wire.read_disclosures`, natively."""
    result: tuple[list[Item], int] = native.core().read_disclosures(
        data, pos, max_items=max_items, max_field_bytes=max_field_bytes
    )
    return result


def take_signed(
    layout: ReportLayout,
    disclosures: Iterable[Disclosure],
    signed: set[bytes],
    values: dict[str, Any],
    digests: dict[str, bytes],
    *,
    decode: Decode,
) -> int:
    """``_take_signed`` of :mod:`broker.trust.sd.verify`, natively.

    ``decode`` is the reference's decoding of one value, run for a type the
    core has no reader for (none of today's report, but a schema may grow one).
    """
    plan = _plans.get(layout)
    if plan is None:
        plan = _plans[layout] = _plan(layout, decode)
    listed: int = plan.take_signed(disclosures, signed, values, digests)
    return listed


def uncovered(disclosures: Iterable[Disclosure], patterns: Sequence[str]) -> list[Disclosure]:
    """The disclosures no pattern covers, natively (the filter in :func:`~.select.select`)."""
    kept: list[Disclosure] = native.core().uncovered(disclosures, patterns)
    return kept


def disclosures_array(disclosures: Iterable[Disclosure]) -> bytes:
    """:func:`broker.trust.sd.statement.disclosures_array`, natively."""
    array: bytes = native.core().disclosures_array(disclosures)
    return array


_plans: weakref.WeakKeyDictionary[ReportLayout, Any] = weakref.WeakKeyDictionary()
_KINDS = {FieldKind.LEAF: "leaf", FieldKind.RECORD: "record", FieldKind.LIST: "list"}


def _plan(layout: ReportLayout, decode: Decode) -> Any:
    """The layout's slots, compiled once for the core."""
    return native.core().Plan(
        [
            (
                path,
                _KINDS[slot.kind],
                value_type(slot.schema) if slot.reader is not None else None,
                functools.partial(decode, slot),
            )
            for path, slot in layout.slots().items()
        ]
    )


def value_type(schema: Any) -> object:
    """A value type as the core reads it, or None where the reference has no reader.

    Follows :func:`broker.trust.sd.wire.leaf_reader` case by case: the whole
    value a plain ``"string"`` has its own fast path there, with its own
    refusal texts, so it is its own type here.
    """
    if schema == "string":
        return "whole-string"
    return _step(schema)


def _step(schema: Any) -> object:
    """``wire._step``, as a description: a name, ("enum", symbols) or ("optional", a, b)."""
    if isinstance(schema, list):
        branches = [_step(b) for b in schema] if len(schema) == 2 and "null" in schema else [None]
        return None if None in branches else ("optional", *branches)
    if isinstance(schema, str):
        return schema if schema in _PRIMITIVES else None
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "enum":
        return ("enum", tuple(schema["symbols"]))
    logical = schema.get("logicalType") if isinstance(kind, str) else None
    if logical is not None:
        return str(logical) if (kind, str(logical)) in _LOGICAL else None
    return kind if isinstance(kind, str) and kind in _PRIMITIVES else None
