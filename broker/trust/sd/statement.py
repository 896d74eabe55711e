"""Delivery statements written by splicing, not by re-encoding every disclosure.

A statement (``ixb.v1.DeliveryStatement``) ends with two arrays: the
originator's disclosures the recipient may see, and the values the broker
derived. Avro writes a record as its fields' encodings one after another, so
a statement is the encoding of its other fields (a "head" record with the
same fields in the same order), then the two arrays. The disclosures are
already bytes (as received, broker/trust/sd/wire.py) and the same for every
recipient under one rule set: fan-out builds each array once per rule set
and every statement splices it in. tests/unit/test_statements.py checks the
result is byte for byte what fastavro writes for the whole record.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

import fastavro

from broker import native
from broker.errors import ConfigurationError
from broker.resources import SCHEMAS_DIR
from broker.trust.sd import _native
from broker.trust.sd.disclosure import Disclosure
from broker.trust.sd.wire import write_array, write_bytes
from broker.wire.codec import SchemaCatalog, write_body

DELIVERY_SCHEMA = "ixb.v1.DeliveryStatement"
_TAIL = ("disclosures", "derived_values")
_DIGEST_BYTES = 32


def disclosures_array(disclosures: Iterable[Disclosure]) -> bytes:
    """The ``disclosures`` field, spliced from each disclosure's bytes."""
    if native.ACTIVE:
        return _native.disclosures_array(disclosures)
    return write_array([d.encoded() for d in disclosures])


def derived_array(derived: Iterable[tuple[str, bytes, bytes | None]]) -> bytes:
    """The ``derived_values`` field: (path, Avro value, digest of the value replaced)."""
    items = []
    for path, value, original in derived:
        if original is None:
            digest = b"\x00"
        elif len(original) == _DIGEST_BYTES:
            digest = b"\x02" + original
        else:
            raise ConfigurationError("an original digest is not 32 bytes")
        items.append(write_bytes(path.encode()) + write_bytes(value) + digest)
    return write_array(items)


class StatementWriter:
    """Writes statements: the head through fastavro, the two arrays spliced after it."""

    __slots__ = ("_head", "_header", "_names", "_native")

    def __init__(self, catalog: SchemaCatalog) -> None:
        self._header = catalog.schema(DELIVERY_SCHEMA).header
        raw = json.loads((SCHEMAS_DIR / "delivery_statement.avsc").read_text())
        names = [f["name"] for f in raw["fields"]]
        if tuple(names[-2:]) != _TAIL:
            raise ConfigurationError(f"{DELIVERY_SCHEMA} must end with {_TAIL}")
        raw["name"] = "DeliveryStatementHead"
        raw["namespace"] = "ixb.internal"
        raw["fields"] = raw["fields"][:-2]
        self._head = fastavro.parse_schema(raw)
        self._names = frozenset(names[:-2])
        self._native = native.record_writer(self._head)  # None: fastavro writes every head

    def write(self, head: Mapping[str, Any], disclosures: bytes, derived: bytes) -> bytes:
        """A single-object encoded statement; the arrays come from the functions above."""
        if head.keys() != self._names:
            raise ConfigurationError("a statement head must have exactly the head fields")
        if self._native is not None and native.ACTIVE:
            body = self._native.write(head)
            if body is not None:  # else a value fastavro must write: it does, below
                return b"".join((self._header, body, disclosures, derived))
        out = io.BytesIO()
        out.write(self._header)
        write_body(out, self._head, head, name=DELIVERY_SCHEMA)
        out.write(disclosures)
        out.write(derived)
        return out.getvalue()
