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
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from broker.errors import ConfigurationError

REASONS: Final = frozenset(
    {
        "message_too_large",
        "too_many_items",
        "string_too_long",
        "bytes_too_long",
        "too_deep",
        "negative_length",
        "bad_enum_index",
        "bad_union_index",
        "bad_boolean",
        "invalid_utf8",
        "truncated",
        "trailing_bytes",
        "varint_too_long",
        "timestamp_out_of_range",
    }
)

# Each nesting level costs at most one Python frame (unions are inlined), so
# this keeps the walk far from Python's default recursion limit of 1000 even
# when the caller is already deep.
MAX_DEPTH_CEILING: Final = 100


@dataclass(frozen=True, slots=True)
class Limits:
    """What one message may claim; defaults fit threat reports with a wide margin."""

    max_bytes: int = 1 << 20
    max_items_per_collection: int = 10_000
    max_total_items: int = 50_000
    max_string_bytes: int = 64 * 1024
    max_bytes_field: int = 64 * 1024
    max_depth: int = 32

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigurationError(
                    f"avro guard limit {name} must be an integer of at least 1"
                )
        if self.max_depth > MAX_DEPTH_CEILING:
            raise ConfigurationError(f"avro guard max_depth must be at most {MAX_DEPTH_CEILING}")


DEFAULT_LIMITS: Final = Limits()


class AvroGuardError(ValueError):
    """The body breaks the schema or a limit; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Fail(Exception):
    """Raised inside the walk; records and collections add their path segment on the way out."""

    def __init__(self, reason: str, what: str, *path: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.what = what
        self.path = list(path)  # innermost first

    def to_error(self) -> AvroGuardError:
        where = ""
        for segment in reversed(self.path):
            where += segment if segment.startswith(("[", "{")) or not where else "." + segment
        return AvroGuardError(self.reason, f"{self.what} at {where or 'the top level'}")


_WHAT: Final[Mapping[str, str]] = {
    "too_many_items": "a collection claims more than {} items",
    "string_too_long": "a string is longer than {} bytes",
    "bytes_too_long": "a bytes value is longer than {} bytes",
    "too_deep": "values nest deeper than {} levels",
    "negative_length": "a length or block size is negative",
    "bad_enum_index": "an enum index is outside the symbols",
    "bad_union_index": "a union index is outside the branches",
    "bad_boolean": "a boolean is neither 0 nor 1",
    "invalid_utf8": "a string is not valid UTF-8",
    "truncated": "the body ends early",
    "varint_too_long": "a number does not fit its type",
    "timestamp_out_of_range": "a date or time is outside years 1 to 9999",
}


def _fail(reason: str, limit: int = 0) -> _Fail:
    return _Fail(reason, _WHAT[reason].format(limit))


class _Walk:
    """What one walk over one body carries along, beside the position and depth."""

    __slots__ = ("ascii_until", "items")

    def __init__(self, items: int) -> None:
        self.items = items  # items still allowed across all arrays and maps
        # No byte at or above 0x80 lies before this position (from wherever the
        # walk is now): strings that end before it are ASCII, so valid UTF-8,
        # and need no decoding. Most strings in a report are.
        self.ascii_until = 0


# A compiled reader: (body, position, depth of the value, walk) -> position after it.
Reader = Callable[[bytes, int, int, _Walk], int]

_INT_BYTES, _INT_RAW = 5, 1 << 32
_LONG_BYTES, _LONG_RAW = 10, 1 << 64


def _varint(data: bytes, pos: int, max_len: int, raw_limit: int) -> tuple[int, int]:
    """A zig-zag varint of at most ``max_len`` bytes: (value, position after it)."""
    raw = shift = 0
    for offset in range(max_len):
        byte = data[pos + offset]
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if raw >= raw_limit:
                raise _fail("varint_too_long")
            return (raw >> 1) ^ -(raw & 1), pos + offset + 1
        shift += 7
    raise _fail("varint_too_long")


def _length(data: bytes, pos: int, limit: int, reason: str) -> tuple[int, int]:
    """A string or bytes length in its general form: (length, position after it)."""
    size, pos = _varint(data, pos, _LONG_BYTES, _LONG_RAW)
    if size < 0:
        raise _fail("negative_length")
    if size > limit:
        raise _fail(reason, limit)
    return size, pos


_NON_ASCII = re.compile(rb"[\x80-\xff]")


def _text(data: bytes, start: int, end: int, walk: _Walk) -> None:
    """Check a string that may hold non-ASCII bytes, and find where the next ones are."""
    if end > len(data):
        raise IndexError
    try:
        data[start:end].decode()
    except UnicodeDecodeError:
        raise _fail("invalid_utf8") from None
    found = _NON_ASCII.search(data, end)
    walk.ascii_until = found.start() if found else len(data)


def _enum_index(data: bytes, pos: int, count: int) -> int:
    index, pos = _varint(data, pos, _INT_BYTES, _INT_RAW)
    if not 0 <= index < count:
        raise _fail("bad_enum_index")
    return pos


def _union_index(data: bytes, pos: int) -> tuple[int, int]:
    """A union index in its general form, doubled as in its one-byte form."""
    index, pos = _varint(data, pos, _LONG_BYTES, _LONG_RAW)
    if index < 0:
        raise _fail("bad_union_index")
    return 2 * index, pos


def _block_header(data: bytes, pos: int) -> tuple[int, int, int]:
    """A block's item count, where it must end (-1: not announced), and where items start."""
    count, pos = _varint(data, pos, _LONG_BYTES, _LONG_RAW)
    if count >= 0:
        return count, -1, pos
    size, pos = _varint(data, pos, _LONG_BYTES, _LONG_RAW)
    if size < 0:
        raise _fail("negative_length")
    if pos + size > len(data):
        raise IndexError
    return -count, pos + size, pos


def _refuse_block_size(pos: int, block_end: int) -> None:
    if pos > block_end:
        raise _Fail("truncated", "a block ends before its items")
    raise _Fail("trailing_bytes", "a block has bytes after its items")


class _Shape(NamedTuple):
    min_size: int  # fewest bytes any value of the type encodes to (a lower bound)
    width: int | None  # exact size, when every value has it and its bytes need no check


def _collection(item: Reader, shape: _Shape, keyed: bool, limits: Limits) -> Reader:
    """An array, or a map (``item`` then reads a key and a value): blocks of items.

    A block's count is checked against the limits and against the bytes left
    (each item needs at least ``shape.min_size`` bytes) before the first of
    its items is read. A negative count announces the block's byte size,
    which must match its items exactly. A zero count ends the collection.
    """
    min_size, width = shape
    per_collection, max_depth = limits.max_items_per_collection, limits.max_depth
    max_total = limits.max_total_items
    open_, close = "{}" if keyed else "[]"

    def admit(count: int, seen: int, room: int, walk: _Walk) -> None:
        if count > per_collection - seen:
            raise _fail("too_many_items", per_collection)
        if count > walk.items:
            raise _Fail("too_many_items", f"the body claims more than {max_total} items")
        walk.items -= count
        if count * min_size > room:
            raise IndexError

    def read(data: bytes, pos: int, depth: int, walk: _Walk) -> int:
        if depth >= max_depth:
            raise _fail("too_deep", max_depth)
        depth += 1
        seen = 0
        while True:
            byte = data[pos]
            if byte < 0x80 and not byte & 1:  # the usual one-byte, unsized block
                count, block_end, pos = byte >> 1, -1, pos + 1
            else:
                count, block_end, pos = _block_header(data, pos)
            if count == 0:
                return pos
            admit(count, seen, len(data) - pos, walk)
            first, seen = seen, seen + count
            if width is not None:
                pos += count * width
            else:
                index = first
                try:
                    for index in range(first, seen):  # noqa: B007 (read in the except clauses)
                        pos = item(data, pos, depth, walk)
                except _Fail as fail:
                    fail.path.append(f"{open_}{index}{close}")
                    raise
                except IndexError:
                    raise _Fail("truncated", _WHAT["truncated"], f"{open_}{index}{close}") from None
            if block_end >= 0 and pos != block_end:
                _refuse_block_size(pos, block_end)

    return read


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FIRST = dt.datetime(1, 1, 1, tzinfo=dt.UTC) - _EPOCH
_LAST = dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC) - _EPOCH
_MS, _US, _DAY = dt.timedelta(milliseconds=1), dt.timedelta(microseconds=1), dt.timedelta(days=1)
_MILLIS = (_FIRST // _MS, _LAST // _MS)
_MICROS = (_FIRST // _US, _LAST // _US)
# fastavro converts these ("<underlying type>-<logical type>") to datetime,
# date and time values, which cannot hold anything outside these bounds.
_LOGICAL_BOUNDS: Final[Mapping[str, tuple[int, int]]] = {
    "long-timestamp-millis": _MILLIS,
    "long-local-timestamp-millis": _MILLIS,
    "long-timestamp-micros": _MICROS,
    "long-local-timestamp-micros": _MICROS,
    "int-date": (_FIRST // _DAY, _LAST // _DAY),
    "int-time-millis": (0, _DAY // _MS - 1),
    "long-time-micros": (0, _DAY // _US - 1),
}
_PRIMITIVES: Final = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
_COMPLEX: Final = frozenset({"record", "error", "enum", "fixed", "array", "map"})

# Source templates. They hold only integers and generated identifiers: every
# name from the schema reaches the generated code as a constant tuple. Each
# has a fast path for the usual one-byte number (``n & 0x81`` is zero for an
# even, single-byte varint, i.e. a small non-negative one) and calls a
# helper for anything else.
_INTEGER = """\
if data[pos] < 0x80:
    pos += 1
else:
    pos = _varint(data, pos, {max_len}, {raw})[1]"""
_BOUNDED = """\
n, pos = _varint(data, pos, {max_len}, {raw})
if not {low} <= n <= {high}:
    raise _fail("timestamp_out_of_range")"""
_LENGTH_PREFIXED = """\
n = data[pos]
if n & 0x81{over_limit}:
    n, pos = _length(data, pos, {limit}, "{reason}")
    pos += n
else:
    n >>= 1
    pos += 1 + n"""
_STRING_END = """\
if pos > walk.ascii_until:
    _text(data, pos - n, pos, walk)"""
_BYTES_END = """\
if pos > len(data):
    raise IndexError"""
_ENUM = """\
n = data[pos]
if n & 0x81 or n >= {double_count}:
    pos = _enum_index(data, pos, {count})
else:
    pos += 1"""
_UNION_INDEX = """\
n = data[pos]
if n & 0x81:
    n, pos = _union_index(data, pos)
else:
    pos += 1"""
_RECORD = """\
def {name}(data, pos, depth, walk):
    if depth >= {depth_limit}:
        raise _fail("too_deep", {max_depth})
    at = 0
    try:
{body}
    except _Fail as fail:
        fail.path.append({name}_path[at])
        raise
    except IndexError:
        raise _Fail("truncated", _WHAT["truncated"], {name}_path[at]) from None
    return pos"""
_ITEM = """\
def {name}(data, pos, depth, walk):
{body}
    return pos"""
_ITEM_DEPTH = """\
if depth >= {max_depth}:
    raise _fail("too_deep", {max_depth})"""


class _Codegen:
    """Compiles a schema to Python: one function per record, unions and leaves inlined.

    A record's fields become straight-line code, which makes the guard about
    twice as fast as fastavro's own (compiled) decode; closures per value
    were barely faster than the decode itself. Records call one
    another through the generated module's globals, so recursive schemas need
    nothing special. Names are resolved the Avro way (a dotted name is full,
    a bare one takes the enclosing namespace), which reads raw JSON schemas
    and fastavro's parsed ones alike; fastavro's ``__named_schemas`` is the
    fallback. The schema is trusted configuration, so this recurses over it.
    """

    def __init__(self, schema: Any, limits: Limits) -> None:
        self._limits = limits
        named = schema.get("__named_schemas") if isinstance(schema, dict) else None
        self._fallback: Mapping[str, Any] = named if isinstance(named, dict) else {}
        # full name -> ("record", function) | ("enum", symbol count) | ("fixed", size)
        self._named: dict[str, tuple[str, str | int]] = {}
        self._record_shapes: dict[str, _Shape] = {}
        self._sources: list[str] = []
        self._collections: list[tuple[str, str, _Shape, bool]] = []
        self._ids = itertools.count()
        self._globals: dict[str, Any] = {
            "_Fail": _Fail,
            "_WHAT": _WHAT,
            "_enum_index": _enum_index,
            "_fail": _fail,
            "_length": _length,
            "_text": _text,
            "_union_index": _union_index,
            "_varint": _varint,
        }
        # Deepest offset at which the function being generated enters an
        # inlined union; its prologue checks the depth once for all of them.
        self._union_offset = -1

    def build(self, schema: Any) -> Reader:
        root, _ = self._function(schema, "")
        code = compile("\n\n".join(self._sources), "<avro_guard>", "exec")
        exec(code, self._globals)  # noqa: S102 (source is built from the templates above)
        for name, item, shape, keyed in self._collections:
            self._globals[name] = _collection(self._globals[item], shape, keyed, self._limits)
        reader: Reader = self._globals[root]
        return reader

    def _function(self, schema: Any, namespace: str, *, keyed: bool = False) -> tuple[str, _Shape]:
        """A generated function reading one value of ``schema`` (``keyed``: after a map key)."""
        full = self._named_type(schema, namespace)
        if not keyed and full is not None and self._named[full][0] == "record":
            return str(self._named[full][1]), self._record_shapes.get(full, _Shape(0, None))
        name = f"_v{next(self._ids)}"
        outer, self._union_offset = self._union_offset, -1
        lines: list[str] = []
        key = self._primitive("string", None, lines) if keyed else _Shape(0, 0)
        value = self._value(schema, namespace, lines, 0)
        if self._union_offset >= 0:  # a union item: the one container inlined here
            lines.insert(0, _ITEM_DEPTH.format(max_depth=self._limits.max_depth))
        self._union_offset = outer
        body = textwrap.indent("\n".join(lines) or "pass", "    ")
        self._sources.append(_ITEM.format(name=name, body=body))
        width = None if keyed or value.width is None else value.width
        return name, _Shape(key.min_size + value.min_size, width)

    def _value(self, schema: Any, namespace: str, lines: list[str], offset: int) -> _Shape:
        """Append code reading one value at depth ``depth + offset``; return its shape."""
        if isinstance(schema, list):
            return self._union(schema, namespace, lines, offset)
        full = self._named_type(schema, namespace)
        if full is not None:
            return self._named_value(full, lines, offset)
        kind = schema.get("type") if isinstance(schema, dict) else schema
        if isinstance(kind, list | dict):
            return self._value(kind, namespace, lines, offset)
        if kind in ("array", "map"):
            return self._collection(schema, str(kind), namespace, lines, offset)
        if kind not in _PRIMITIVES:
            raise ConfigurationError("an Avro schema has no usable type")
        logical = schema.get("logicalType") if isinstance(schema, dict) else None
        return self._primitive(str(kind), _LOGICAL_BOUNDS.get(f"{kind}-{logical}"), lines)

    def _named_type(self, schema: Any, namespace: str) -> str | None:
        """The full name ``schema`` defines or refers to, or None if it is not a named type."""
        if isinstance(schema, dict):
            if schema.get("type") in ("record", "error", "enum", "fixed"):
                return self._define(schema, namespace)
            schema = schema.get("type")
        if isinstance(schema, str) and schema not in _PRIMITIVES and schema not in _COMPLEX:
            return self._resolve(schema, namespace)
        return None

    def _define(self, schema: Mapping[str, Any], namespace: str) -> str:
        full, inner = _full_name(schema, namespace)
        if full in self._named:
            return full
        kind = str(schema["type"])
        if kind == "enum":
            self._named[full] = (kind, len(schema["symbols"]))
        elif kind == "fixed":
            size = schema["size"]
            if type(size) is not int or size < 0:
                raise ConfigurationError(f"fixed type {full} has no valid size")
            self._named[full] = (kind, size)
        else:
            self._record(full, inner, schema["fields"])
        return full

    def _resolve(self, name: str, namespace: str) -> str:
        candidates = [name] if "." in name or not namespace else [f"{namespace}.{name}", name]
        for full in candidates:
            if full in self._named:
                return full
        for full in candidates:
            if isinstance(self._fallback.get(full), dict):
                return self._define(self._fallback[full], namespace)
        raise ConfigurationError(f"unknown Avro type {name!r}")

    def _record(self, full: str, namespace: str, fields: list[Mapping[str, Any]]) -> None:
        name = f"_r{next(self._ids)}"
        self._named[full] = ("record", name)
        self._globals[f"{name}_path"] = tuple(str(field["name"]) for field in fields)
        outer, self._union_offset = self._union_offset, 0
        lines: list[str] = []
        min_size = 0
        for index, field in enumerate(fields):
            if index:
                lines.append(f"at = {index}")
            min_size += self._value(field["type"], namespace, lines, 1).min_size
        # Every field is read, so a union field is always entered one level down.
        depth_limit = self._limits.max_depth - self._union_offset
        self._union_offset = outer
        self._record_shapes[full] = _Shape(min_size, None)
        self._sources.append(
            _RECORD.format(
                name=name,
                depth_limit=depth_limit,
                max_depth=self._limits.max_depth,
                body=textwrap.indent("\n".join(lines) or "pass", "        "),
            )
        )

    def _named_value(self, full: str, lines: list[str], offset: int) -> _Shape:
        kind, target = self._named[full]
        if kind == "record":
            lines.append(f"pos = {target}(data, pos, depth + {offset}, walk)")
            return self._record_shapes.get(full, _Shape(0, None))
        if kind == "enum":
            lines.append(_ENUM.format(count=int(target), double_count=2 * int(target)))
            return _Shape(1, None)
        return self._fixed(int(target), lines)

    def _primitive(self, kind: str, bounds: tuple[int, int] | None, lines: list[str]) -> _Shape:
        if kind == "null":
            return _Shape(0, 0)
        if kind == "boolean":
            lines.append('if data[pos] > 1:\n    raise _fail("bad_boolean")\npos += 1')
        elif kind in ("float", "double"):
            return self._fixed(4 if kind == "float" else 8, lines)
        elif kind in ("int", "long"):
            max_len, raw = (_INT_BYTES, _INT_RAW) if kind == "int" else (_LONG_BYTES, _LONG_RAW)
            if bounds is None:
                lines.append(_INTEGER.format(max_len=max_len, raw=raw))
            else:
                lines.append(
                    _BOUNDED.format(max_len=max_len, raw=raw, low=bounds[0], high=bounds[1])
                )
        else:
            string = kind == "string"
            limit = self._limits.max_string_bytes if string else self._limits.max_bytes_field
            # One byte holds lengths up to 63; only a lower limit needs a check there.
            over_limit = f" or n > {2 * limit + 1}" if limit < 63 else ""
            reason = "string_too_long" if string else "bytes_too_long"
            lines.append(_LENGTH_PREFIXED.format(over_limit=over_limit, limit=limit, reason=reason))
            lines.append(_STRING_END if string else _BYTES_END)
        return _Shape(1, None)

    @staticmethod
    def _fixed(size: int, lines: list[str]) -> _Shape:
        if size:
            lines.append(f"pos += {size}\nif pos > len(data):\n    raise IndexError")
        return _Shape(size, size)

    def _union(self, schema: list[Any], namespace: str, lines: list[str], offset: int) -> _Shape:
        if not schema:
            raise ConfigurationError("an Avro union needs at least one branch")
        self._union_offset = max(self._union_offset, offset)
        lines.append(_UNION_INDEX)
        sizes = []
        for index, branch in enumerate(schema):
            code: list[str] = []
            sizes.append(self._value(branch, namespace, code, offset + 1).min_size)
            lines.append(f"{'elif' if index else 'if'} n == {2 * index}:")
            lines.append(textwrap.indent("\n".join(code) or "pass", "    "))
        lines.append('else:\n    raise _fail("bad_union_index")')
        return _Shape(1 + min(sizes), None)

    def _collection(
        self, schema: Mapping[str, Any], kind: str, namespace: str, lines: list[str], offset: int
    ) -> _Shape:
        if kind == "array":
            item, shape = self._function(schema["items"], namespace)
        else:  # a map entry is a string key, then the value
            item, shape = self._function(schema["values"], namespace, keyed=True)
        name = f"_c{next(self._ids)}"
        self._collections.append((name, item, shape, kind == "map"))
        lines.append(f"pos = {name}(data, pos, depth + {offset}, walk)")
        return _Shape(1, None)


def _full_name(schema: Mapping[str, Any], namespace: str) -> tuple[str, str]:
    """The full name of a named type, and the namespace its own fields take."""
    name = str(schema["name"])
    if "." not in name and schema.get("namespace") is not None:
        namespace = str(schema["namespace"])
    full = name if "." in name or not namespace else f"{namespace}.{name}"
    return full, full.rpartition(".")[0]


class AvroGuard:
    """One schema compiled for one set of limits; build once, check many bodies."""

    __slots__ = ("_limits", "_root")

    def __init__(self, schema: Any, limits: Limits | None = None) -> None:
        self._limits = limits or DEFAULT_LIMITS
        self._root = _Codegen(schema, self._limits).build(schema)

    def check(self, body: bytes | bytearray | memoryview) -> None:
        """Return if ``body`` is one well-formed value of the schema within limits; else raise."""
        data = body if isinstance(body, bytes) else bytes(body)
        limits = self._limits
        if len(data) > limits.max_bytes:
            raise AvroGuardError("message_too_large", f"the body exceeds {limits.max_bytes} bytes")
        try:
            end = self._root(data, 0, 0, _Walk(limits.max_total_items))
        except _Fail as fail:
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
