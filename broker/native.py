"""Whether the native core runs: decided here, once, for the whole process.

The native core (``ixb_native``: Rust and PyO3, built from native/ by
``make install``) does per-field and per-record work that cost more in
Python than the signature check (issue 23): the selective-disclosure loops
(broker/trust/sd/_native.py) and writing records as fastavro writes them
(:func:`record_writer`, used by the codec and the statement writer). The
Python code stays the reference: every call site runs the native function
when :data:`ACTIVE` is true and its own otherwise, and
tests/unit/test_native_core.py holds the two to the same answers and the
same refusals on arbitrary input.

``IXB_NATIVE=0`` forces the reference, for comparison and as a way out
should the core misbehave. It is read here, at import, rather than through
the settings: the choice is the process's, made before any settings exist,
and it changes no behaviour, only the cost. This module imports nothing of
ixb's, so every layer may ask it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

__all__ = ["ACTIVE", "BUILT", "core", "record_writer"]


def _import() -> ModuleType | None:
    try:
        return importlib.import_module("ixb_native")
    except ImportError:  # not built: the reference runs, at its own cost
        return None


_core = _import()
BUILT = _core is not None
ACTIVE = BUILT and os.environ.get("IXB_NATIVE", "1") != "0"
"""Whether the native core runs; call sites read it on every call (tests switch it)."""


def core() -> Any:
    """The ``ixb_native`` module; only called where :data:`ACTIVE` said it runs."""
    if _core is None:
        raise RuntimeError("the native core is not built (make install builds it)")
    return _core


def record_writer(schema: Any) -> Any | None:
    """A native writer of ``schema`` (a fastavro-parsed record), or None if the core has none.

    Its ``write(record)`` gives the body fastavro writes for ``record``, or
    None where fastavro must write it: a value the core would not write
    byte for byte as fastavro does (a naive datetime, a missing field with a
    default, a value fastavro coerces), so the bytes and every refusal stay
    fastavro's.
    """
    if _core is None:
        return None
    described = _described(schema)
    return None if described is None else _core.RecordWriter(described)


_PRIMITIVE = frozenset({"null", "boolean", "int", "long", "bytes", "string"})
# fastavro writes a UUID's text and a datetime's milliseconds; other logical types are left to it.
_LOGICAL = {("string", "uuid"): "string", ("long", "timestamp-millis"): "timestamp-millis"}


def _described(schema: Any, named: dict[str, object] | None = None) -> object:
    """``schema`` as the core's writer reads it; None where any part is beyond it.

    ``named`` collects the named types described so far: fastavro's parsed
    schema refers to a named type by its full name after its first use.
    """
    named = {} if named is None else named
    if isinstance(schema, str):
        return schema if schema in _PRIMITIVE else named.get(schema)
    if isinstance(schema, list):
        return _optional(schema, named)
    if not isinstance(schema, dict) or not isinstance(schema.get("type"), str | dict | list):
        return None
    if schema["type"] not in ("record", "enum", "fixed") or "logicalType" in schema:
        return _unnamed(schema, named)
    described = _named(schema, named)
    if described is not None:
        named[str(schema["name"])] = described
    return described


def _unnamed(schema: dict[str, Any], named: dict[str, object]) -> object:
    kind, logical = schema["type"], schema.get("logicalType")
    if logical is not None:
        return _LOGICAL.get((kind, str(logical))) if isinstance(kind, str) else None
    if kind == "array":
        items = _described(schema["items"], named)
        return None if items is None else ("array", items)
    return _described(kind, named)


def _optional(branches: list[Any], named: dict[str, object]) -> object:
    """Null and one other type: fastavro picks the branch by the value being None."""
    if len(branches) != 2 or "null" not in branches:
        return None
    null = branches.index("null")
    other = _described(branches[1 - null], named)
    return None if other is None else ("optional", null, other)


def _named(schema: dict[str, Any], named: dict[str, object]) -> object:
    if schema["type"] == "enum":
        return ("enum", list(schema["symbols"]))
    if schema["type"] == "fixed":
        return ("fixed", int(schema["size"]))
    fields = [(f["name"], _described(f["type"], named)) for f in schema["fields"]]
    return None if any(t is None for _, t in fields) else ("record", fields)
