"""What one body may claim, and the error that names which limit or rule it broke.

These are the guard's public values (:mod:`broker.wire.guard` re-exports
them): the limits a caller configures, the stable refusal reasons, and
:class:`AvroGuardError`, the one error a refused body raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

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
