"""The reader primitives the generated guard code calls, and the reader of arrays and maps.

Every function here reads at ``pos`` in ``data`` and returns where it stopped,
or raises :class:`Fail` (a refusal, its path filled in on the way out) or
``IndexError`` (the body ends early; the enclosing record or collection
turns it into ``truncated`` at the right path). Nothing is allocated per
claimed item: a count is checked against the bytes that remain first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final, NamedTuple

from broker.wire.guard.limits import AvroGuardError, Limits


class Fail(Exception):
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


WHAT: Final[Mapping[str, str]] = {
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


def failure(reason: str, limit: int = 0) -> Fail:
    return Fail(reason, WHAT[reason].format(limit))


class Walk:
    """What one walk over one body carries along, beside the position and depth."""

    __slots__ = ("ascii_until", "items")

    def __init__(self, items: int) -> None:
        self.items = items  # items still allowed across all arrays and maps
        # No byte at or above 0x80 lies before this position (from wherever the
        # walk is now): strings that end before it are ASCII, so valid UTF-8,
        # and need no decoding. Most strings in a report are.
        self.ascii_until = 0


# A compiled reader: (body, position, depth of the value, walk) -> position after it.
Reader = Callable[[bytes, int, int, Walk], int]

INT_BYTES, INT_RAW = 5, 1 << 32
LONG_BYTES, LONG_RAW = 10, 1 << 64


def varint(data: bytes, pos: int, max_len: int, raw_limit: int) -> tuple[int, int]:
    """A zig-zag varint of at most ``max_len`` bytes: (value, position after it)."""
    raw = shift = 0
    for offset in range(max_len):
        byte = data[pos + offset]
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if raw >= raw_limit:
                raise failure("varint_too_long")
            return (raw >> 1) ^ -(raw & 1), pos + offset + 1
        shift += 7
    raise failure("varint_too_long")


def length(data: bytes, pos: int, limit: int, reason: str) -> tuple[int, int]:
    """A string or bytes length in its general form: (length, position after it)."""
    size, pos = varint(data, pos, LONG_BYTES, LONG_RAW)
    if size < 0:
        raise failure("negative_length")
    if size > limit:
        raise failure(reason, limit)
    return size, pos


_NON_ASCII = re.compile(rb"[\x80-\xff]")


def text(data: bytes, start: int, end: int, walk: Walk) -> None:
    """Check a string that may hold non-ASCII bytes, and find where the next ones are."""
    if end > len(data):
        raise IndexError
    try:
        data[start:end].decode()
    except UnicodeDecodeError:
        raise failure("invalid_utf8") from None
    found = _NON_ASCII.search(data, end)
    walk.ascii_until = found.start() if found else len(data)


def enum_index(data: bytes, pos: int, count: int) -> int:
    index, pos = varint(data, pos, INT_BYTES, INT_RAW)
    if not 0 <= index < count:
        raise failure("bad_enum_index")
    return pos


def union_index(data: bytes, pos: int) -> tuple[int, int]:
    """A union index in its general form, doubled as in its one-byte form."""
    index, pos = varint(data, pos, LONG_BYTES, LONG_RAW)
    if index < 0:
        raise failure("bad_union_index")
    return 2 * index, pos


def _block_header(data: bytes, pos: int) -> tuple[int, int, int]:
    """A block's item count, where it must end (-1: not announced), and where items start."""
    count, pos = varint(data, pos, LONG_BYTES, LONG_RAW)
    if count >= 0:
        return count, -1, pos
    size, pos = varint(data, pos, LONG_BYTES, LONG_RAW)
    if size < 0:
        raise failure("negative_length")
    if pos + size > len(data):
        raise IndexError
    return -count, pos + size, pos


def _refuse_block_size(pos: int, block_end: int) -> None:
    if pos > block_end:
        raise Fail("truncated", "a block ends before its items")
    raise Fail("trailing_bytes", "a block has bytes after its items")


class Shape(NamedTuple):
    min_size: int  # fewest bytes any value of the type encodes to (a lower bound)
    width: int | None  # exact size, when every value has it and its bytes need no check


def collection(item: Reader, shape: Shape, keyed: bool, limits: Limits) -> Reader:
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

    def admit(count: int, seen: int, room: int, walk: Walk) -> None:
        if count > per_collection - seen:
            raise failure("too_many_items", per_collection)
        if count > walk.items:
            raise Fail("too_many_items", f"the body claims more than {max_total} items")
        walk.items -= count
        if count * min_size > room:
            raise IndexError

    def read(data: bytes, pos: int, depth: int, walk: Walk) -> int:
        if depth >= max_depth:
            raise failure("too_deep", max_depth)
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
                except Fail as fail:
                    fail.path.append(f"{open_}{index}{close}")
                    raise
                except IndexError:
                    raise Fail("truncated", WHAT["truncated"], f"{open_}{index}{close}") from None
            if block_end >= 0 and pos != block_end:
                _refuse_block_size(pos, block_end)

    return read
