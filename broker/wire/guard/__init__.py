"""A pre-decode guard: walk an Avro body against its writer schema before fastavro does.

fastavro trusts what the bytes claim. A few bytes announcing 2**62 array
items make it loop or allocate; a recursive record nested 100,000 deep
crashes the interpreter; a negative enum index silently reads as the last
symbol; a timestamp past year 9999 fails with an overflow. Reports come from
other sovereign parties, so :func:`check` reads every length, count and
index first and refuses the body, by a stable ``reason``, before anything is
built from it:

======================  =====================================================
reason                  the body ...
======================  =====================================================
message_too_large       is longer than ``Limits.max_bytes``
too_many_items          claims more array/map items than the limits allow
string_too_long         has a string longer than ``max_string_bytes``
bytes_too_long          has a bytes value longer than ``max_bytes_field``
too_deep                nests records/arrays/maps/unions past ``max_depth``
negative_length         has a negative string/bytes length or block size
bad_enum_index          has an enum index outside the symbols
bad_union_index         has a union index outside the branches
bad_boolean             has a boolean byte other than 0 or 1
invalid_utf8            has a string that is not valid UTF-8
truncated               ends before its values, or a block before its items
trailing_bytes          has bytes after its value, or a block after its items
varint_too_long         has an int/long that does not fit 32/64 bits
timestamp_out_of_range  has a date/time outside what ``datetime`` can hold
======================  =====================================================

The detail names the field path (``subjects[3].full_name``; map entries by
position, ``tags{2}``), never a byte or a value from the body.

The walk costs no memory per claimed item (a count is checked against the
bytes that remain before any item is read) and its Python recursion is
bounded by ``max_depth``, whatever the schema or the data. The schema is
compiled once (:class:`AvroGuard`) into generated Python: a function per
record with every field inlined, so a typical report is checked in about
half the time fastavro takes to decode it, or less. Reading past the end of the body raises
``IndexError``, which the enclosing record or collection turns into
``truncated`` at the right path.

The package has one module per job: ``limits`` (the limits, the reasons and
the error), ``runtime`` (the reader primitives the generated code calls, and
the reader of arrays and maps) and ``codegen`` (the schema compiler); this
module puts them together behind :class:`AvroGuard` and :func:`check`.
"""

from __future__ import annotations

from typing import Any

from broker.wire.guard.codegen import Codegen
from broker.wire.guard.limits import (
    DEFAULT_LIMITS,
    MAX_DEPTH_CEILING,
    REASONS,
    AvroGuardError,
    Limits,
)
from broker.wire.guard.runtime import Fail, Walk

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_DEPTH_CEILING",
    "REASONS",
    "AvroGuard",
    "AvroGuardError",
    "Limits",
    "check",
]


class AvroGuard:
    """One schema compiled for one set of limits; build once, check many bodies."""

    __slots__ = ("_limits", "_root")

    def __init__(self, schema: Any, limits: Limits | None = None) -> None:
        self._limits = limits or DEFAULT_LIMITS
        self._root = Codegen(schema, self._limits).build(schema)

    def check(self, body: bytes | bytearray | memoryview) -> None:
        """Return if ``body`` is one well-formed value of the schema within limits; else raise."""
        data = body if isinstance(body, bytes) else bytes(body)
        limits = self._limits
        if len(data) > limits.max_bytes:
            raise AvroGuardError("message_too_large", f"the body exceeds {limits.max_bytes} bytes")
        try:
            end = self._root(data, 0, 0, Walk(limits.max_total_items))
        except Fail as fail:
            raise fail.to_error() from None
        except IndexError:
            raise AvroGuardError("truncated", "the body ends early at the top level") from None
        if end != len(data):
            raise AvroGuardError("trailing_bytes", f"{len(data) - end} bytes after the body")


_CACHE: dict[tuple[int, Limits], tuple[Any, AvroGuard]] = {}
_CACHE_SIZE = 64


def check(schema: Any, body: bytes | bytearray | memoryview, limits: Limits | None = None) -> None:
    """Guard ``body`` (an Avro body, without the single-object header) against ``schema``.

    ``schema`` is a raw JSON schema or ``fastavro.parse_schema`` output. Its
    compiled form is cached by identity, so a schema must not be changed
    after it was first checked against (ixb's schemas are built once).
    """
    limits = limits or DEFAULT_LIMITS
    key = (id(schema), limits)
    cached = _CACHE.get(key)
    if cached is None or cached[0] is not schema:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        cached = (schema, AvroGuard(schema, limits))
        _CACHE[key] = cached
    cached[1].check(body)
