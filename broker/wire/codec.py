"""Avro encoding and decoding, with hard limits, and nothing else.

Every message is written in Avro's single-object encoding: the two marker
bytes ``C3 01``, the schema's 8-byte CRC-64-AVRO fingerprint (little-endian),
then the binary body. A message therefore names its own schema; an unknown
fingerprint is refused with ``unknown_schema`` rather than guessed at.

Every record ixb writes to Kafka also says so in two headers
(:func:`schema_headers`): ``ixb-schema``, the schema's full name, and
``ixb-schema-fingerprint``, ``crc-64-avro:`` and the same 8 bytes in hex, so
a partner's tool sees what a record is without decoding it. The fingerprint
is over the Parsing Canonical Form as the Avro specification defines it
(logical types dropped, as fastavro does; Apache avro-python 1.12 keeps
them and gets other values): README, "Partners' tools".

Decoding is defensive because it runs on bytes from other sovereign parties:
the size is checked before anything is parsed, the whole buffer must be
consumed (no trailing bytes), and any decoder failure becomes a
:class:`~broker.errors.DecodeError` whose detail names the schema and the
failure kind, never a value from the payload.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from broker import native
from broker.errors import ConfigurationError, DecodeError
from broker.resources import SCHEMAS_DIR
from broker.wire.guard import AvroGuardError, Limits
from broker.wire.guard import check as guard_body
from broker.wire.records import Headers

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8

# Hard ceiling for anything a partner may send; Kafka's own default is 1 MiB.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000

SCHEMA_HEADER = "ixb-schema"
FINGERPRINT_HEADER = "ixb-schema-fingerprint"
# Every schema a catalog in this process loaded, by fingerprint: a fingerprint
# names one schema for good, so the map only ever grows and never disagrees.
_NAMES: dict[bytes, str] = {}


def schema_headers(value: bytes, headers: Headers = ()) -> Headers:
    """``headers`` with the two that name ``value``'s schema (replacing any already there).

    A value that is not a single-object message of a loaded schema keeps its
    headers as they are.
    """
    name = _NAMES.get(bytes(value[2:HEADER_LEN])) if value[:2] == MAGIC else None
    if name is None:
        return headers
    kept = tuple(h for h in headers if h[0] not in (SCHEMA_HEADER, FINGERPRINT_HEADER))
    fingerprint_hex = bytes(value[2:HEADER_LEN]).hex()
    return (
        *kept,
        (SCHEMA_HEADER, name.encode()),
        (FINGERPRINT_HEADER, f"crc-64-avro:{fingerprint_hex}".encode()),
    )


@dataclass(frozen=True, slots=True)
class AvroSchema:
    """A parsed schema with the fingerprint that names it on the wire."""

    name: str
    parsed: Any
    fingerprint: bytes
    # For an earlier version kept readable (schemas/previous/): today's schema of
    # the same name, which its records are decoded into by Avro's resolution rules.
    reader: Any = None

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint


def write_body(out: io.BytesIO, parsed: Any, record: Mapping[str, Any], *, name: str) -> None:
    """Append ``record``'s Avro body; a record that does not fit is a bug, named by schema."""
    try:
        fastavro.schemaless_writer(out, parsed, record)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigurationError(
            f"record does not fit schema {name}: {type(exc).__name__}"
        ) from exc


class SchemaCatalog:
    """All schemas ixb speaks, found by full name or by fingerprint.

    Built once at start-up from ``schemas/*.avsc``; immutable afterwards.

    ``schemas/previous/*.avsc`` holds earlier versions of a few schemas whose
    records may still wait in Kafka when ixb is upgraded (a held delivery
    whose embargo has not ended). Their fingerprints are known, and their
    records decode as today's schema sees them, by Avro's schema-resolution
    rules (a field added since takes its default); nothing is written in
    them. A version dropped from there is refused as ``unknown_schema``.
    """

    __slots__ = ("_by_fingerprint", "_by_name", "_writers", "guard_limits", "max_message_bytes")

    def __init__(self, schemas: Mapping[str, AvroSchema], *, max_message_bytes: int) -> None:
        self._by_name = dict(schemas)
        self._by_fingerprint = {s.fingerprint: s for s in schemas.values()}
        _NAMES.update({s.fingerprint: s.name for s in schemas.values()})
        # The native core writes what it can byte for byte as fastavro does (broker/native.py).
        self._writers = {n: native.record_writer(s.parsed) for n, s in schemas.items()}
        self.max_message_bytes = max_message_bytes
        self.guard_limits = Limits(max_bytes=max(1, max_message_bytes))

    @classmethod
    def load(
        cls,
        directory: Path = SCHEMAS_DIR,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> SchemaCatalog:
        files = sorted(directory.glob("*.avsc"))
        if not files:
            raise ConfigurationError(f"no Avro schemas found in {directory}")
        schemas = {s.name: s for s in map(_parse, files)}
        catalog = cls(schemas, max_message_bytes=max_message_bytes)
        for path in sorted((directory / "previous").glob("*.avsc")):
            catalog._add_previous(path)
        return catalog

    def _add_previous(self, path: Path) -> None:
        old = _parse(path)
        current = self._by_name.get(old.name)
        if current is None:
            raise ConfigurationError(f"{path}: no current schema is named {old.name}")
        if old.fingerprint in self._by_fingerprint:
            raise ConfigurationError(f"{path}: the same as a schema already loaded")
        previous = AvroSchema(old.name, old.parsed, old.fingerprint, reader=current.parsed)
        self._by_fingerprint[old.fingerprint] = previous
        _NAMES[old.fingerprint] = old.name

    def schema(self, name: str) -> AvroSchema:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigurationError(f"schema {name!r} is not in the catalog") from None

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Encode ``record`` as a single-object message of schema ``name``."""
        schema = self.schema(name)
        writer = self._writers[name]
        if writer is not None and native.ACTIVE:
            body: bytes | None = writer.write(record)
            if body is not None:  # else a value fastavro must write: it does, below
                return schema.header + body
        out = io.BytesIO()
        out.write(schema.header)
        write_body(out, schema.parsed, record, name=name)
        return out.getvalue()

    def schema_of(self, data: bytes) -> AvroSchema:
        """Identify the schema of a single-object message from its header alone."""
        if len(data) > self.max_message_bytes:
            raise DecodeError(
                "message_too_large",
                f"{len(data)} bytes exceeds the limit of {self.max_message_bytes}",
                stage="size",
            )
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise DecodeError("not_single_object", "missing the Avro single-object header")
        schema = self._by_fingerprint.get(bytes(data[2:HEADER_LEN]))
        if schema is None:
            raise DecodeError(
                "unknown_schema", f"schema fingerprint {data[2:HEADER_LEN].hex()} is not known"
            )
        return schema

    def decode(self, data: bytes, expected: str) -> dict[str, Any]:
        """Decode a single-object message that must be of schema ``expected``."""
        schema = self.schema_of(data)
        if schema.name != expected:
            raise DecodeError("unexpected_schema", f"expected {expected}, message is {schema.name}")
        # fastavro trusts every count, length and index it reads: walk them
        # first, so a hostile body is refused by reason before anything is built.
        try:
            guard_body(schema.parsed, data[HEADER_LEN:], self.guard_limits)
        except AvroGuardError as exc:
            raise DecodeError(exc.reason, f"{schema.name} body: {exc.detail}") from exc
        body = io.BytesIO(data)
        body.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(body, schema.parsed, schema.reader)
        except EOFError as exc:
            raise DecodeError("truncated", f"{schema.name} ends early") from exc
        except Exception as exc:
            if body.tell() >= len(data):  # ran out inside a multi-byte number
                raise DecodeError("truncated", f"{schema.name} ends early") from exc
            # The exception text may quote payload bytes: keep only its kind.
            raise DecodeError(
                "malformed", f"{schema.name} body is invalid ({type(exc).__name__})"
            ) from exc
        if body.tell() != len(data):
            raise DecodeError(
                "trailing_bytes", f"{len(data) - body.tell()} bytes after the {schema.name} body"
            )
        if not isinstance(record, dict):
            raise DecodeError("malformed", f"{schema.name} body is not a record")
        return record

    def decode_canonical(self, data: bytes, expected: str, *, stage: str) -> dict[str, Any]:
        """Decode an unsigned wrapper, accepting only its one canonical encoding.

        A wrapper's own fields (an envelope, a submission) are not covered by
        the signature inside it, and Avro admits several byte strings for one
        value (an over-long varint, which the pre-decode guard lets through).
        Accepting only the encoding this catalog writes means unsigned bytes
        cannot vary undetected. Every refusal is reported at ``stage``.
        """
        try:
            record = self.decode(data, expected)
        except DecodeError as exc:
            raise DecodeError(exc.reason, exc.detail, stage=stage) from exc
        if self.encode(expected, record) != data:
            raise DecodeError(
                "non_canonical", f"{expected} is not canonically encoded", stage=stage
            )
        return record


def _parse(path: Path) -> AvroSchema:
    try:
        parsed = fastavro.parse_schema(json.loads(path.read_text()))
    except (ValueError, fastavro.schema.SchemaParseException) as exc:
        raise ConfigurationError(f"{path}: invalid Avro schema: {exc}") from exc
    canonical = to_parsing_canonical_form(parsed)
    digest = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ConfigurationError(f"{path}: a message schema must be a named record")
    name = str(parsed["name"])  # fastavro's parsed name is the full name
    return AvroSchema(name, parsed, digest)
