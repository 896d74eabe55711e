"""The report layout: which paths a ThreatReport discloses, with which Avro types.

Every party reads disclosure paths against the same layout: the agency walks
a report along it to issue one disclosure per value, the broker asks it which
disclosures a field pattern covers, and the recipient looks up the type of
each path it was given and rebuilds the report along it. Patterns are field
paths as agreements write them (``subjects[].full_name``, ``[]`` for any
index); a pattern covers its own path and all beneath it.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import fastavro
from fastavro.schema import expand_schema

from broker.domain.fields import FieldPath, FieldPathError
from broker.errors import ConfigurationError
from broker.trust.sd.disclosure import HEADER_FIELDS, SD_REPORT_SCHEMA, DisclosureError
from broker.trust.sd.wire import LeafReader, leaf_reader
from broker.wire.codec import SchemaCatalog
from broker.wire.report import REPORT_SCHEMA

_INDEX = re.compile(r"\[[0-9]+\]")
_LONG = fastavro.parse_schema("long")  # a list's own disclosure: its length
_BOOLEAN = fastavro.parse_schema("boolean")  # a nullable record's own disclosure: present

_MAX_COVERAGES = 256  # pattern lists remembered by a layout
_MAX_KNOWN_PATHS = 65_536  # concrete paths remembered by a layout


class FieldKind(Enum):
    LEAF = "leaf"  # one disclosure: the value with the field's own type
    RECORD = "record"  # a nullable record: one disclosure of its presence, then its fields
    LIST = "list"  # one disclosure of its length, then its items


@dataclass(frozen=True, slots=True)
class LayoutField:
    name: str
    kind: FieldKind
    schema: Any  # parsed Avro type of this field's own disclosure
    children: tuple[LayoutField, ...] = ()  # fields of a record, or of a list's record items
    item_schema: Any = None  # a list of plain values: the parsed item type


class Slot:
    """A disclosable path's kind and value type, with the type's hand-written reader."""

    __slots__ = ("kind", "reader", "schema")

    def __init__(self, kind: FieldKind, schema: Any) -> None:
        self.kind = kind
        self.schema = schema
        self.reader: LeafReader | None = leaf_reader(schema)


class ReportLayout:
    """The disclosable fields of one ThreatReport schema, with their Avro types.

    Built once from the schema catalog (expensive: it parses every leaf type);
    immutable afterwards. Its fingerprint is signed in every sd payload, so a
    recipient never reads paths against another version of the schema.
    """

    __slots__ = ("__weakref__", "_coverage", "_fields", "_known", "_slots", "fingerprint")

    def __init__(self, report_schema: Any, fingerprint: bytes, sd_schema: Any) -> None:
        expanded: Any = expand_schema(report_schema)  # named types inline: sub-schemas stand alone
        sd_expanded: Any = expand_schema(sd_schema)
        top = {f["name"]: f["type"] for f in expanded["fields"]}
        sd_types = {f["name"]: f["type"] for f in sd_expanded["fields"]}
        for name in HEADER_FIELDS:
            if name not in top or _without_docs(top[name]) != _without_docs(sd_types.get(name)):
                raise ConfigurationError(f"header field {name} differs between the two schemas")
        self.fingerprint = fingerprint
        self._slots: dict[str, Slot] = {}
        self._coverage: dict[tuple[str, ...], Coverage] = {}
        self._known: dict[str, Slot] = {}  # concrete paths already checked
        self._fields = tuple(
            self._field(f["name"], f["type"], "")
            for f in expanded["fields"]
            if f["name"] not in HEADER_FIELDS
        )

    @classmethod
    def from_catalog(cls, catalog: SchemaCatalog) -> ReportLayout:
        report = catalog.schema(REPORT_SCHEMA)
        return cls(report.parsed, report.fingerprint, catalog.schema(SD_REPORT_SCHEMA).parsed)

    def _field(self, name: str, avro: Any, prefix: str) -> LayoutField:
        path = f"{prefix}{name}"
        if isinstance(avro, dict) and avro.get("type") == "array":
            items = avro["items"]
            self._slots[path] = Slot(FieldKind.LIST, _LONG)
            if _records_in(items):
                return LayoutField(name, FieldKind.LIST, _LONG, self._children(items, f"{path}[]."))
            if _has_collection(items) or isinstance(items, list):
                raise ConfigurationError(f"{path}: list items must be records or plain values")
            item = fastavro.parse_schema(items)
            self._slots[f"{path}[]"] = Slot(FieldKind.LEAF, item)
            return LayoutField(name, FieldKind.LIST, _LONG, item_schema=item)
        records = _records_in(avro)
        if isinstance(avro, list) and len(avro) == 2 and avro[0] == "null" and records == avro[1:]:
            self._slots[path] = Slot(FieldKind.RECORD, _BOOLEAN)
            return LayoutField(
                name, FieldKind.RECORD, _BOOLEAN, self._children(avro[1], f"{path}.")
            )
        if records or _has_collection(avro):
            raise ConfigurationError(f"{path}: only nullable records and lists can hold fields")
        parsed = fastavro.parse_schema(avro)
        self._slots[path] = Slot(FieldKind.LEAF, parsed)
        return LayoutField(name, FieldKind.LEAF, parsed)

    def _children(self, record: Any, prefix: str) -> tuple[LayoutField, ...]:
        if not record["fields"]:
            raise ConfigurationError(f"{prefix[:-1]}: a record with no fields cannot be disclosed")
        return tuple(self._field(f["name"], f["type"], prefix) for f in record["fields"])

    @property
    def fields(self) -> tuple[LayoutField, ...]:
        """The disclosable top-level fields (the header is not among them), in schema order."""
        return self._fields

    def coverage(self, patterns: Iterable[str]) -> Coverage | None:
        """Whether ``patterns`` cover a concrete path; None if they cover nothing.

        Kept per pattern list: agreements use a handful, and each learns its
        answer per abstract path once instead of once per report.
        """
        key = tuple(patterns)
        covered = self._coverage.get(key)
        if covered is None:
            found = _patterns(self, key)
            if not found:
                return None
            if len(self._coverage) >= _MAX_COVERAGES:
                self._coverage.clear()
            covered = self._coverage[key] = Coverage(found)
        return covered

    def remembered(self, path: str) -> Slot | None:
        """The slot of a concrete path seen before (paths repeat from report to report)."""
        return self._known.get(path)

    def slot_of(self, path: str) -> Slot:
        """The slot of a concrete path from a disclosure, or a refusal naming why.

        Call it once the disclosure is known to be signed, after
        :func:`~broker.trust.sd.disclosure.check_path_shape`: what an
        originator did not sign is not interpreted further.
        """
        slot = self._known.get(path)
        if slot is not None:
            return slot
        slot = self._slots.get(abstract_path(path))
        if slot is None:
            raise DisclosureError("unknown_path", f"{path}: no such disclosable field")
        if len(self._known) >= _MAX_KNOWN_PATHS:
            self._known.clear()
        self._known[path] = slot
        return slot

    def slots(self) -> Mapping[str, Slot]:
        """Every disclosable path (indices as ``[]``) and its slot, for the native core."""
        return self._slots

    def knows(self, abstract_path: str) -> bool:
        """Whether disclosures exist at ``abstract_path`` (indices as ``[]``)."""
        return abstract_path in self._slots

    def paths(self) -> tuple[str, ...]:
        """Every disclosable path, indices as ``[]`` (``subjects[].full_name``)."""
        return tuple(self._slots)

    def values(self, record: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
        """``(concrete path, Avro type, value)`` of every disclosure ``record`` makes, in order."""
        return _values(self._fields, record, "")


def _records_in(avro: Any) -> list[Any]:
    branches = avro if isinstance(avro, list) else [avro]
    return [b for b in branches if isinstance(b, dict) and b.get("type") == "record"]


def _has_collection(avro: Any) -> bool:
    branches = avro if isinstance(avro, list) else [avro]
    return any(isinstance(b, dict) and b.get("type") in ("array", "map") for b in branches)


def _without_docs(avro: Any) -> Any:
    if isinstance(avro, dict):
        return {k: _without_docs(v) for k, v in avro.items() if k != "doc"}
    if isinstance(avro, list):
        return [_without_docs(v) for v in avro]
    return avro


@functools.lru_cache(maxsize=16_384)  # concrete paths repeat from report to report
def abstract_path(path: str) -> str:
    """``subjects[2].full_name`` → ``subjects[].full_name``."""
    return _INDEX.sub("[]", path) if "[" in path else path


def _values(
    fields: tuple[LayoutField, ...], node: Mapping[str, Any], prefix: str
) -> Iterator[tuple[str, Any, Any]]:
    for f in fields:
        path = f"{prefix}{f.name}"
        value = node.get(f.name)
        if f.kind is FieldKind.LEAF:
            yield path, f.schema, value
        elif f.kind is FieldKind.RECORD:
            yield path, _BOOLEAN, value is not None
            if value is not None:
                yield from _values(f.children, value, f"{path}.")
        else:
            items = value or []
            yield path, _LONG, len(items)
            for index, item in enumerate(items):
                if f.item_schema is not None:
                    yield f"{path}[{index}]", f.item_schema, item
                else:
                    yield from _values(f.children, item, f"{path}[{index}].")


def encode_value(schema: Any, value: Any, path: str) -> bytes:
    """The Avro binary encoding of ``value`` as the disclosure at ``path`` carries it."""
    out = io.BytesIO()
    try:
        fastavro.schemaless_writer(out, schema, value)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigurationError(f"{path} does not fit its schema: {type(exc).__name__}") from exc
    return out.getvalue()


class Coverage:
    """Whether patterns cover a concrete path, remembered per abstract path (they repeat)."""

    __slots__ = ("_known", "_patterns", "patterns")

    def __init__(self, patterns: set[str]) -> None:
        self._patterns = patterns
        self._known: dict[str, bool] = {}
        self.patterns = tuple(sorted(patterns))  # for the native core, which learns nothing

    def __call__(self, path: str) -> bool:
        abstract = abstract_path(path)
        known = self._known.get(abstract)
        if known is None:
            known = self._known[abstract] = covered(abstract, self._patterns)
        return known


def _patterns(layout: ReportLayout, texts: Iterable[str]) -> set[str]:
    patterns = set()
    for text in texts:
        pattern = FieldPath.parse(text).text.removesuffix("[]")
        if pattern in HEADER_FIELDS:
            raise FieldPathError(f"{text!r} is in the signed header and always visible")
        if not layout.knows(pattern):
            raise FieldPathError(f"{text!r}: the report has no such disclosable field")
        patterns.add(pattern)
    return patterns


def stated_patterns(layout: ReportLayout, texts: Iterable[str], where: str) -> set[str]:
    """Patterns a delivery statement states: one that names no disclosable field is a refusal.

    They come from the broker, so a bad one refuses that delivery (a
    DisclosureError) instead of breaking the reader with a FieldPathError.
    """
    try:
        return _patterns(layout, texts)
    except FieldPathError as exc:
        raise DisclosureError("bad_field_pattern", f"{where}: {exc}") from None


def covered(abstract: str, patterns: set[str]) -> bool:
    """Whether ``abstract`` (indices as ``[]``) is one of ``patterns`` or lies beneath one."""
    if not patterns:
        return False
    if abstract in patterns:
        return True
    return any(abstract[:i] in patterns for i, c in enumerate(abstract) if c in ".[")
