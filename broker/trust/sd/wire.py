"""The Avro shapes selective disclosure handles most, read and written by hand.

A bench report carries some 75 disclosures. Reading each with fastavro and
re-encoding it to prove it canonical (broker/trust/sd/verify.py) cost more
than the signature check; so did decoding a whole submission only to
re-encode its disclosures into every recipient's statement. This module does
the same work directly on the bytes:

* :func:`read_disclosures` parses a disclosure array and keeps each item's
  exact bytes, which :func:`write_array` splices into a statement unchanged;
* :func:`leaf_reader` compiles a reader for a disclosure value's type
  (primitives, enums, unions, the logical types a report uses) that refuses
  every byte string fastavro would not write for the value it reads.

"Canonical" is what fastavro writes: varints are minimal, a non-empty array
is one block (a positive count, the items, then 0), a boolean is 0 or 1,
strings are UTF-8. Anything else is refused, so a value has one encoding and
no two readers disagree on it. The differential tests in
tests/unit/test_sd_wire.py compare every reader here with fastavro.
"""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from collections.abc import Callable
from typing import Any

__all__ = [
    "Item",
    "LeafReader",
    "WireError",
    "disclosure_item",
    "leaf_reader",
    "read_bytes",
    "read_disclosures",
    "read_long",
    "write_array",
    "write_bytes",
    "write_long",
]

_MAX_VARINT_BYTES = 10
_LONG_LIMIT = 1 << 64  # zigzag-encoded 64-bit values
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DOUBLE = struct.Struct("<d")


class WireError(ValueError):
    """Bytes that are not the one encoding of a value; ``reason`` is a code, never data.

    Where the decode guard (broker/wire/guard/) refuses the same thing, the
    code is the guard's: a refusal reads the same whichever reader met it.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# --- primitives ----------------------------------------------------------------


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at ``pos``: (value, next position). Over-long forms are refused.

    Raises IndexError when the bytes end inside the number.
    """
    byte = data[pos]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos + 1
    raw = byte & 0x7F
    shift = 7
    end = pos + _MAX_VARINT_BYTES
    pos += 1
    while True:
        byte = data[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        if pos >= end:
            raise WireError("varint_too_long", "a number runs over ten bytes")
        shift += 7
    if byte == 0:
        raise WireError("non_canonical", "a number has an over-long encoding")
    if raw >= _LONG_LIMIT:
        raise WireError("varint_too_long", "a number exceeds 64 bits")
    return (raw >> 1) ^ -(raw & 1), pos


def write_long(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while raw > 0x7F:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def _length(data: bytes, pos: int, limit: int) -> tuple[int, int]:
    size, pos = read_long(data, pos)
    if size < 0:
        raise WireError("negative_length", "a negative length")
    if size > limit:
        raise WireError("bytes_too_long", f"a length of {size} exceeds {limit}")
    return size, pos


def read_bytes(data: bytes, pos: int, limit: int) -> tuple[bytes, int]:
    """A length-prefixed byte string of at most ``limit`` bytes."""
    size, pos = _length(data, pos, limit)
    end = pos + size
    if end > len(data):
        raise IndexError("the bytes end inside a byte string")
    return data[pos:end], end


def write_bytes(value: bytes) -> bytes:
    return write_long(len(value)) + value


# --- the disclosure array --------------------------------------------------------


Item = tuple[bytes, str, bytes, bytes]
"""A disclosure as read: salt, path, value, and the item's own bytes."""


def read_disclosures(
    data: bytes, pos: int, *, max_items: int, max_field_bytes: int
) -> tuple[list[Item], int]:
    """An array of ``ixb.v1.Disclosure`` at ``pos``, each item keeping its own bytes.

    Raises :class:`WireError` (or IndexError when the bytes end early); the
    caller names the message. Nothing is allocated ahead of the bytes: a
    claimed count only bounds the loop, which stops when the bytes do.
    """
    count, pos = read_long(data, pos)
    if count == 0:
        return [], pos
    if count < 0:
        raise WireError("non_canonical", "an array is written in sized blocks")
    if count > max_items:
        raise WireError("too_many_items", f"{count} disclosures exceed {max_items}")
    items: list[Item] = []
    for _ in range(count):
        start = pos
        parts = []
        for _part in range(3):  # salt, path, value: each a length, then that many bytes
            size = data[pos]
            if size < 0x80 and not size & 1:  # a short length, the usual case, read in line
                size >>= 1
                pos += 1
            else:
                size, pos = _length(data, pos, max_field_bytes)
            end = pos + size
            if end > len(data):
                raise IndexError("the bytes end inside a byte string")
            parts.append(data[pos:end])
            pos = end
        salt, path, value = parts
        try:
            text = path.decode()
        except UnicodeDecodeError:
            raise WireError("invalid_utf8", "a disclosure path is not UTF-8") from None
        items.append((salt, text, value, data[start:pos]))
    end, pos = read_long(data, pos)
    if end != 0:
        raise WireError("non_canonical", "an array is written in more than one block")
    return items, pos


def disclosure_item(salt: bytes, path: str, value: bytes) -> bytes:
    """One ``ixb.v1.Disclosure`` as fastavro writes it."""
    return write_bytes(salt) + write_bytes(path.encode()) + write_bytes(value)


def write_array(items: list[bytes]) -> bytes:
    """An array of already-encoded items, as fastavro writes it: one block, then 0."""
    if not items:
        return b"\x00"
    return write_long(len(items)) + b"".join(items) + b"\x00"


# --- disclosure values -------------------------------------------------------------

LeafReader = Callable[[bytes], Any]
_Step = Callable[[bytes, int], tuple[Any, int]]


def leaf_reader(schema: Any) -> LeafReader | None:
    """A reader for one value of ``schema`` (fastavro-parsed), or None if not supported.

    The reader returns what fastavro returns for the same bytes, and raises
    :class:`WireError` (``undecodable`` or ``non_canonical``) wherever
    fastavro would fail or would write other bytes for the value it read.
    """
    if schema == "string":
        return _read_string
    step = _step(schema)
    if step is None:
        return None

    def read(data: bytes) -> Any:
        try:
            value, end = step(data, 0)
        except IndexError:
            raise WireError("undecodable", "the value ends early") from None
        if end != len(data):
            raise WireError("undecodable", "bytes after the value")
        return value

    return read


def _read_string(data: bytes) -> Any:
    """A whole string value; short ones (a one-byte length) without a call per step."""
    if data and data[0] < 0x80 and not data[0] & 1:
        if (data[0] >> 1) + 1 != len(data):
            raise WireError("undecodable", "a string's length disagrees with its bytes")
        try:
            return data[1:].decode()
        except UnicodeDecodeError:
            raise WireError("undecodable", "a string is not UTF-8") from None
    try:
        value, end = _string(data, 0)
    except IndexError:
        raise WireError("undecodable", "the value ends early") from None
    if end != len(data):
        raise WireError("undecodable", "bytes after the value")
    return value


def _step(schema: Any) -> _Step | None:
    if isinstance(schema, list):
        return _union(schema)
    if isinstance(schema, str):
        return _PRIMITIVES.get(schema)
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "enum":
        return _enum(tuple(schema["symbols"]))
    if not isinstance(kind, str):
        return None
    logical = schema.get("logicalType")
    return _PRIMITIVES.get(kind) if logical is None else _LOGICAL.get((kind, str(logical)))


def _union(branches: list[Any]) -> _Step | None:
    """An optional value (null and one other type) only.

    With two non-null branches fastavro picks the branch from the value
    (an int fits "int" and "long"), so the branch index is not the only
    thing to check; such unions are left to decoding and re-encoding.
    """
    if len(branches) != 2 or "null" not in branches:
        return None
    steps = [_step(b) for b in branches]
    if any(s is None for s in steps):
        return None
    ready = [s for s in steps if s is not None]

    def step(data: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long(data, pos)
        _check_index(index, len(ready), "a union branch")
        return ready[index](data, pos)

    return step


def _enum(symbols: tuple[str, ...]) -> _Step:
    def step(data: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long(data, pos)
        _check_index(index, len(symbols), "an enum index")
        return symbols[index], pos

    return step


def _check_index(index: int, size: int, what: str) -> None:
    """fastavro reads -1 as the last choice (Python indexing): a second encoding, refused."""
    if 0 <= index < size:
        return
    if -size <= index < 0:
        raise WireError("non_canonical", f"{what} counted from the end")
    raise WireError("undecodable", f"{what} out of range")


def _null(data: bytes, pos: int) -> tuple[Any, int]:
    return None, pos


def _boolean(data: bytes, pos: int) -> tuple[Any, int]:
    byte = data[pos]
    if byte > 1:
        raise WireError("non_canonical", "a boolean other than 0 or 1")
    return byte == 1, pos + 1


def _int(data: bytes, pos: int) -> tuple[Any, int]:
    value, pos = read_long(data, pos)
    if not _INT_MIN <= value <= _INT_MAX:
        raise WireError("undecodable", "an int exceeds 32 bits")
    return value, pos


def _double(data: bytes, pos: int) -> tuple[Any, int]:
    end = pos + 8
    if end > len(data):
        raise IndexError("the bytes end inside a double")
    return _DOUBLE.unpack_from(data, pos)[0], end


def _string(data: bytes, pos: int) -> tuple[Any, int]:
    raw, pos = read_bytes(data, pos, len(data))
    try:
        return raw.decode(), pos
    except UnicodeDecodeError:
        raise WireError("undecodable", "a string is not UTF-8") from None


def _timestamp_millis(data: bytes, pos: int) -> tuple[Any, int]:
    millis, pos = read_long(data, pos)
    try:
        return _EPOCH + dt.timedelta(microseconds=millis * 1000), pos
    except OverflowError:
        raise WireError("undecodable", "a timestamp out of range") from None


def _date(data: bytes, pos: int) -> tuple[Any, int]:
    days, pos = _int(data, pos)
    try:
        return dt.date.fromordinal(days + _EPOCH_ORDINAL), pos
    except (OverflowError, ValueError):
        raise WireError("undecodable", "a date out of range") from None


def _uuid(data: bytes, pos: int) -> tuple[Any, int]:
    text, pos = _string(data, pos)
    try:
        value = uuid.UUID(text)
    except ValueError:
        raise WireError("undecodable", "not a UUID") from None
    if str(value) != text:
        raise WireError("non_canonical", "a UUID not in its canonical form")
    return value, pos


_PRIMITIVES: dict[str, _Step] = {
    "null": _null,
    "boolean": _boolean,
    "int": _int,
    "long": read_long,
    "double": _double,
    "string": _string,
}
_LOGICAL: dict[tuple[str, str], _Step] = {
    ("long", "timestamp-millis"): _timestamp_millis,
    ("int", "date"): _date,
    ("string", "uuid"): _uuid,
}
