"""Selective disclosure: the originator signs salted digests, the broker withholds disclosures.

Today's envelope signs the whole report, so a report with a field removed no
longer verifies. Here (in the spirit of SD-JWT, RFC 9901) the originator
signs an :data:`SD_REPORT_SCHEMA` record instead: the always-visible header
(:data:`HEADER_FIELDS`, what the policy decides on, RFC 9901 §9.7) and the
sorted digests of one :class:`Disclosure` per value. The broker withholds a
field by not passing its disclosures on (:func:`select`); the recipient checks
every disclosure it was given against the signed digests and rebuilds the
report (:func:`verify_disclosures`).

A disclosure is ``(salt, path, value)``:

- ``salt``: 16 fresh random bytes (RFC 9901 §9.3), so a withheld value cannot
  be guessed by hashing candidates, and equal values give unrelated digests;
- ``path``: the concrete path, with indices: ``subjects[2].full_name``. A
  list's own path (``subjects``) discloses its length and a nullable record's
  (``location``) its presence, so the recipient can rebuild the structure and
  a broker cannot drop a list element unnoticed. Null values are disclosed
  too: "the originator said none" is signed, unlike "withheld";
- ``value``: the Avro binary encoding of the value with the Avro type of its
  path. The digest covers these exact bytes; the verifier hashes what it
  received and only then decodes, so nothing is re-encoded before it is
  verified (fastavro gives other bytes for other map orders). A decoded value
  must also re-encode to the same bytes, so every Avro implementation reads
  the same value from them (fastavro reads enum index -1 as the last symbol).

The digest is SHA-256 over ``"ixb-disclosure-v1" 0x00`` and the three parts,
each prefixed by its length as 4 bytes big-endian: no two triples share an
input. Decoys (RFC 9901 §4.2.5, §10.4) pad the digest list up to a multiple
of a bucket (16 by default) rather than adding a random number: the count
then reveals only its bucket, never where in the bucket the report lies, and
the overhead is bounded (fewer than 16 x 32 bytes). Without them the number of
digests a recipient cannot open would tell how many documents or subjects a
withheld list held.

Everything here is pure: no I/O, no clock; randomness is a parameter.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, NamedTuple

import fastavro
from fastavro.schema import expand_schema

from broker.domain.fields import FieldPath, FieldPathError
from broker.errors import ConfigurationError, VerificationError
from broker.trust.sd.wire import LeafReader, WireError, disclosure_item, leaf_reader
from broker.wire.codec import SchemaCatalog
from broker.wire.report import REPORT_SCHEMA

SD_REPORT_SCHEMA = "ixb.v1.SdThreatReport"
DISCLOSURE_SCHEMA = "ixb.v1.Disclosure"
DIGEST_ALGORITHM = "sha-256"
HEADER_FIELDS = ("report_id", "origin", "issued_at", "report_type", "marking", "handling_code")
SALT_BYTES = 16  # 128 bits, RFC 9901 §9.3
MAX_SALT_BYTES = 64
MAX_VALUE_BYTES = 65_536
DEFAULT_DECOYS_BUCKET = 16

_DISCLOSURE_CONTEXT = b"ixb-disclosure-v1\x00"
_DECOY_CONTEXT = b"ixb-decoy-v1\x00"
_DECOY_SEED_BYTES = 32
_FRAME = struct.Struct(">I")
_SALTED = _DISCLOSURE_CONTEXT + _FRAME.pack(SALT_BYTES)  # the usual head of a digest input
# Indices are canonical decimals (no leading zeros), so one value has one path.
_STEP = r"[a-z_][a-z0-9_]*(\[(0|[1-9][0-9]{0,5})\])?"
_PATH = re.compile(rf"{_STEP}(\.{_STEP})*")
MAX_PATH_CHARS = 512
_INDEX = re.compile(r"\[[0-9]+\]")
_LONG = fastavro.parse_schema("long")  # a list's own disclosure: its length
_BOOLEAN = fastavro.parse_schema("boolean")  # a nullable record's own disclosure: present

_MAX_COVERAGES = 256  # pattern lists remembered by a layout
_MAX_KNOWN_PATHS = 65_536  # concrete paths remembered by a layout

RandomBytes = Callable[[int], bytes]


class DisclosureError(VerificationError):
    """A disclosure or the signed digest list does not check out; ``detail`` names paths only."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail, stage="disclosure")


class Provenance(StrEnum):
    SIGNED = "signed"  # the originator's signature covers this value
    DERIVED = "derived"  # the broker derived it under an agreement and attests it


class Disclosure(NamedTuple):
    """One salted value. A tuple, not a dataclass: a submission brings some 75 of them."""

    salt: bytes  # never in logs (see __repr__): it would let a withheld value be guessed
    path: str
    value: bytes
    wire: bytes = b""  # the Avro item as received, passed on unchanged

    def __repr__(self) -> str:
        return f"Disclosure(path={self.path!r})"

    def digest(self) -> bytes:
        return disclosure_digest(self.salt, self.path.encode(), self.value)

    def encoded(self) -> bytes:
        """The Avro item: as received (passed on unchanged), or written now."""
        return self.wire or disclosure_item(self.salt, self.path, self.value)

    def to_record(self) -> dict[str, Any]:
        return {"salt": self.salt, "path": self.path, "value": self.value}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Disclosure:
        return cls(salt=record["salt"], path=record["path"], value=record["value"])


def disclosure_digest(salt: bytes, path: bytes, value: bytes) -> bytes:
    """SHA-256 over the context and each part prefixed by its length (4 bytes, big-endian)."""
    pack = _FRAME.pack
    head = _SALTED if len(salt) == SALT_BYTES else _DISCLOSURE_CONTEXT + pack(len(salt))
    return hashlib.sha256(
        b"".join((head, salt, pack(len(path)), path, pack(len(value)), value))
    ).digest()


class _Kind(Enum):
    LEAF = "leaf"  # one disclosure: the value with the field's own type
    RECORD = "record"  # a nullable record: one disclosure of its presence, then its fields
    LIST = "list"  # one disclosure of its length, then its items


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: _Kind
    schema: Any  # parsed Avro type of this field's own disclosure
    children: tuple[_Field, ...] = ()  # fields of a record, or of a list's record items
    item_schema: Any = None  # a list of plain values: the parsed item type


class _Slot:
    """A disclosable path's kind and value type, with the type's hand-written reader."""

    __slots__ = ("kind", "reader", "schema")

    def __init__(self, kind: _Kind, schema: Any) -> None:
        self.kind = kind
        self.schema = schema
        self.reader: LeafReader | None = leaf_reader(schema)


class ReportLayout:
    """The disclosable fields of one ThreatReport schema, with their Avro types.

    Built once from the schema catalog (expensive: it parses every leaf type);
    immutable afterwards. Its fingerprint is signed in every sd payload, so a
    recipient never reads paths against another version of the schema.
    """

    __slots__ = ("_coverage", "_fields", "_known", "_slots", "fingerprint")

    def __init__(self, report_schema: Any, fingerprint: bytes, sd_schema: Any) -> None:
        expanded: Any = expand_schema(report_schema)  # named types inline: sub-schemas stand alone
        sd_expanded: Any = expand_schema(sd_schema)
        top = {f["name"]: f["type"] for f in expanded["fields"]}
        sd_types = {f["name"]: f["type"] for f in sd_expanded["fields"]}
        for name in HEADER_FIELDS:
            if name not in top or _without_docs(top[name]) != _without_docs(sd_types.get(name)):
                raise ConfigurationError(f"header field {name} differs between the two schemas")
        self.fingerprint = fingerprint
        self._slots: dict[str, _Slot] = {}
        self._coverage: dict[tuple[str, ...], _Coverage] = {}
        self._known: dict[str, _Slot] = {}  # concrete paths already checked
        self._fields = tuple(
            self._field(f["name"], f["type"], "")
            for f in expanded["fields"]
            if f["name"] not in HEADER_FIELDS
        )

    @classmethod
    def from_catalog(cls, catalog: SchemaCatalog) -> ReportLayout:
        report = catalog.schema(REPORT_SCHEMA)
        return cls(report.parsed, report.fingerprint, catalog.schema(SD_REPORT_SCHEMA).parsed)

    def _field(self, name: str, avro: Any, prefix: str) -> _Field:
        path = f"{prefix}{name}"
        if isinstance(avro, dict) and avro.get("type") == "array":
            items = avro["items"]
            self._slots[path] = _Slot(_Kind.LIST, _LONG)
            if _records_in(items):
                return _Field(name, _Kind.LIST, _LONG, self._children(items, f"{path}[]."))
            if _has_collection(items) or isinstance(items, list):
                raise ConfigurationError(f"{path}: list items must be records or plain values")
            item = fastavro.parse_schema(items)
            self._slots[f"{path}[]"] = _Slot(_Kind.LEAF, item)
            return _Field(name, _Kind.LIST, _LONG, item_schema=item)
        records = _records_in(avro)
        if isinstance(avro, list) and len(avro) == 2 and avro[0] == "null" and records == avro[1:]:
            self._slots[path] = _Slot(_Kind.RECORD, _BOOLEAN)
            return _Field(name, _Kind.RECORD, _BOOLEAN, self._children(avro[1], f"{path}."))
        if records or _has_collection(avro):
            raise ConfigurationError(f"{path}: only nullable records and lists can hold fields")
        parsed = fastavro.parse_schema(avro)
        self._slots[path] = _Slot(_Kind.LEAF, parsed)
        return _Field(name, _Kind.LEAF, parsed)

    def _children(self, record: Any, prefix: str) -> tuple[_Field, ...]:
        if not record["fields"]:
            raise ConfigurationError(f"{prefix[:-1]}: a record with no fields cannot be disclosed")
        return tuple(self._field(f["name"], f["type"], prefix) for f in record["fields"])

    def coverage(self, patterns: Iterable[str]) -> _Coverage | None:
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
            covered = self._coverage[key] = _Coverage(found)
        return covered

    def remembered(self, path: str) -> _Slot | None:
        """The slot of a concrete path seen before (paths repeat from report to report)."""
        return self._known.get(path)

    def slot_of(self, path: str) -> _Slot:
        """The slot of a concrete path from a disclosure, or a refusal naming why.

        Call it once the disclosure is known to be signed, after
        :func:`check_path_shape`: what an originator did not sign is not
        interpreted further.
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

    def knows(self, abstract_path: str) -> bool:
        """Whether disclosures exist at ``abstract_path`` (indices as ``[]``)."""
        return abstract_path in self._slots

    def paths(self) -> tuple[str, ...]:
        """Every disclosable path, indices as ``[]`` (``subjects[].full_name``)."""
        return tuple(self._slots)


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


# --- issuing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issued:
    sd_payload_record: dict[str, Any]  # encode as SD_REPORT_SCHEMA and seal it
    disclosures: dict[str, Disclosure]  # by concrete path, in document order


def issue(
    layout: ReportLayout,
    record: Mapping[str, Any],
    *,
    decoys_bucket: int = DEFAULT_DECOYS_BUCKET,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> Issued:
    """Salt, encode and digest every value of ``record`` (an Avro ThreatReport record).

    ``random_bytes`` is ``secrets.token_bytes`` except in tests that need
    repeatable output; a source that repeats itself is refused here rather
    than producing a payload every verifier would refuse.
    """
    if decoys_bucket < 1:
        raise ValueError("decoys_bucket must be at least 1")
    disclosures: dict[str, Disclosure] = {}
    for path, schema, value in _values(layout._fields, record, ""):
        disclosures[path] = Disclosure(random_bytes(SALT_BYTES), path, _encode(schema, value, path))
    digests = [d.digest() for d in disclosures.values()]
    for _ in range(-len(digests) % decoys_bucket):
        digests.append(hashlib.sha256(_DECOY_CONTEXT + random_bytes(_DECOY_SEED_BYTES)).digest())
    if len(set(digests)) != len(digests):
        raise ConfigurationError("the random source repeated itself: digests are not unique")
    sd_record = {name: record[name] for name in HEADER_FIELDS}
    sd_record |= {
        "report_schema": layout.fingerprint,
        "digest_algorithm": DIGEST_ALGORITHM,
        "digests": sorted(digests),
    }
    return Issued(sd_record, disclosures)


def _values(
    fields: tuple[_Field, ...], node: Mapping[str, Any], prefix: str
) -> Iterator[tuple[str, Any, Any]]:
    for f in fields:
        path = f"{prefix}{f.name}"
        value = node.get(f.name)
        if f.kind is _Kind.LEAF:
            yield path, f.schema, value
        elif f.kind is _Kind.RECORD:
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


def _encode(schema: Any, value: Any, path: str) -> bytes:
    out = io.BytesIO()
    try:
        fastavro.schemaless_writer(out, schema, value)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigurationError(f"{path} does not fit its schema: {type(exc).__name__}") from exc
    return out.getvalue()


# --- withholding -------------------------------------------------------------


def select(
    layout: ReportLayout, disclosures: Iterable[Disclosure], withheld: Iterable[str]
) -> list[Disclosure]:
    """The disclosures to pass on when the fields ``withheld`` are withheld.

    Patterns are field paths as agreements write them (``subjects[].full_name``,
    ``[]`` for any index). A pattern withholds its own disclosure and all
    beneath it; ``subjects[]`` means ``subjects``, as in
    :func:`broker.domain.fields.withhold`. A pattern that names no disclosable
    field is an error, never a silent no-op.
    """
    covered = layout.coverage(withheld)
    if covered is None:
        return list(disclosures)
    return [d for d in disclosures if not covered(d.path)]


def derived_values(
    layout: ReportLayout, record: Mapping[str, Any], fields: Iterable[str]
) -> list[tuple[str, bytes]]:
    """``(concrete path, encoded value)`` for every value of ``record`` under ``fields``.

    ``record`` is the report after the broker's rules were applied; the
    values come out exactly as disclosures would carry them (the same paths,
    the same Avro types, structure included), so the recipient rebuilds a
    derived value the way it rebuilds a disclosed one.
    """
    covered = layout.coverage(fields)
    if covered is None:
        return []
    return [
        (path, _encode(schema, value, path))
        for path, schema, value in _values(layout._fields, record, "")
        if covered(path)
    ]


class _Coverage:
    """Whether patterns cover a concrete path, remembered per abstract path (they repeat)."""

    __slots__ = ("_known", "_patterns")

    def __init__(self, patterns: set[str]) -> None:
        self._patterns = patterns
        self._known: dict[str, bool] = {}

    def __call__(self, path: str) -> bool:
        abstract = abstract_path(path)
        known = self._known.get(abstract)
        if known is None:
            known = self._known[abstract] = _covered(abstract, self._patterns)
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


def _covered(abstract: str, patterns: set[str]) -> bool:
    if not patterns:
        return False
    if abstract in patterns:
        return True
    return any(abstract[:i] in patterns for i, c in enumerate(abstract) if c in ".[")


# --- verifying ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DisclosedReport:
    """A report rebuilt from verified disclosures.

    ``record`` is a ThreatReport record whose withheld values are null and
    withheld lists empty; a withheld required field (``title``) is null too,
    so it validates only once the broker's attested replacement is filled in.
    ``holes`` are the concrete paths the signed structure shows but whose
    disclosure was not given; what lay beneath a withheld list or record, and
    whether a withheld value was null, stays hidden.
    """

    record: dict[str, Any]
    provenance: dict[str, Provenance]
    holes: tuple[str, ...]
    digests: dict[str, bytes]  # of each disclosure given, by path

    def unexplained_holes(self, layout: ReportLayout, withheld: Iterable[str]) -> tuple[str, ...]:
        """Holes no pattern in ``withheld`` accounts for: withheld without saying so."""
        patterns = stated_patterns(layout, withheld, "withheld_fields")
        return tuple(h for h in self.holes if not _covered(abstract_path(h), patterns))


def verify_disclosures(
    layout: ReportLayout,
    sd_payload_record: Mapping[str, Any],
    disclosures: Iterable[Disclosure],
    *,
    derived: Iterable[tuple[str, bytes]] = (),
    derived_fields: Iterable[str] = (),
) -> DisclosedReport:
    """Check ``disclosures`` against a signature-verified sd payload; rebuild the report.

    The caller has verified the originator's signature over the exact sd
    payload bytes and decoded them; this checks everything else and raises
    :class:`DisclosureError` on the first problem. ``derived`` are values the
    broker attests (its signature verified by the caller), each at a path
    under one of ``derived_fields`` and never where a disclosure was given.
    """
    if sd_payload_record["digest_algorithm"] != DIGEST_ALGORITHM:
        raise DisclosureError("unsupported_digest_algorithm", "only sha-256 is accepted")
    if sd_payload_record["report_schema"] != layout.fingerprint:
        raise DisclosureError("unknown_report_schema", "disclosures use another report schema")
    signed = sd_payload_record["digests"]
    signed_set = set(signed)
    if len(signed_set) != len(signed):
        raise DisclosureError("duplicate_digest", "a digest appears twice in the signed list")
    values: dict[str, Any] = {}
    provenance: dict[str, Provenance] = dict.fromkeys(HEADER_FIELDS, Provenance.SIGNED)
    digests: dict[str, bytes] = {}
    listed = _take_signed(layout, disclosures, signed_set, values, digests)
    provenance.update(dict.fromkeys(digests, Provenance.SIGNED))
    derived_patterns = stated_patterns(layout, derived_fields, "derived_fields")
    for path, value in derived:
        check_path_shape(path)
        if len(value) > MAX_VALUE_BYTES:
            raise DisclosureError("value_too_large", f"{path}: value is too large")
        if not _covered(abstract_path(path), derived_patterns):
            raise DisclosureError("underived_value", f"{path}: no derived field covers it")
        listed += _take(layout.slot_of(path), path, value, values)
        provenance[path] = Provenance.DERIVED
    # Every list item owns at least one digest, so larger lengths are lies, and
    # believing them would let a few bytes make the rebuild allocate without bound.
    if listed > len(signed):
        raise DisclosureError("implausible_count", "list lengths exceed the signed digests")
    holes: list[str] = []
    record = {name: sd_payload_record[name] for name in HEADER_FIELDS}
    record |= _rebuild(layout._fields, "", values, holes)
    if values:
        raise DisclosureError(
            "orphan_disclosure", f"outside the disclosed structure: {_names(values)}"
        )
    return DisclosedReport(record, provenance, tuple(holes), digests)


def _take_signed(
    layout: ReportLayout,
    disclosures: Iterable[Disclosure],
    signed: set[bytes],
    values: dict[str, Any],
    digests: dict[str, bytes],
) -> int:
    """Check each disclosure against the signed digests and decode it into ``values``.

    ``digests`` learns each disclosure's digest by path, so nobody hashes it again.

    Returns the list items the disclosed lengths claim (each has a digest of
    its own). Nothing unsigned is interpreted beyond its shape.
    """
    listed = 0
    for disclosure in disclosures:
        path, salt = disclosure.path, disclosure.salt
        known = layout.remembered(path)
        if known is None:
            check_path_shape(path)
        if len(disclosure.value) > MAX_VALUE_BYTES:
            raise DisclosureError("value_too_large", f"{path}: value is too large")
        if not SALT_BYTES <= len(salt) <= MAX_SALT_BYTES:
            raise DisclosureError("bad_salt", f"{path}: salt length out of range")
        digest = disclosure.digest()
        if digest not in signed:
            raise DisclosureError("disclosure_not_signed", f"{path} is not signed")
        listed += _take(known or layout.slot_of(path), path, disclosure.value, values)
        digests[path] = digest
    return listed


def check_path_shape(path: str) -> None:
    """A concrete field path of bounded length; until then the text is never repeated."""
    if len(path) > MAX_PATH_CHARS or _PATH.fullmatch(path) is None:
        raise DisclosureError("malformed_path", "a disclosure path is not a concrete field path")


def _take(slot: _Slot, path: str, encoded: bytes, values: dict[str, Any]) -> int:
    """Decode one value into ``values``; returns the list length it claims (0 if none)."""
    if path in values:
        raise DisclosureError("duplicate_path", f"{path} is disclosed twice")
    value = values[path] = _decode(slot, path, encoded)
    if slot.kind is not _Kind.LIST:
        return 0
    if value < 0:
        raise DisclosureError("implausible_count", f"{path}: negative length")
    return int(value)


def _decode(slot: _Slot, path: str, encoded: bytes) -> Any:
    if slot.reader is not None:  # the common case: read and proven canonical in one pass
        try:
            return slot.reader(encoded)
        except WireError as exc:
            reason = "non_canonical_value" if exc.reason == "non_canonical" else "undecodable_value"
            raise DisclosureError(reason, f"{path}: {exc.detail}") from None
    body = io.BytesIO(encoded)
    try:
        value = fastavro.schemaless_reader(body, slot.schema, None)
    except Exception as exc:  # any decoder failure is a refusal; its text may quote bytes
        raise DisclosureError(
            "undecodable_value", f"{path}: value does not decode ({type(exc).__name__})"
        ) from exc
    if body.tell() != len(encoded):
        raise DisclosureError("undecodable_value", f"{path}: bytes after the value")
    try:
        canonical = _encode(slot.schema, value, path) == encoded
    except ConfigurationError:
        canonical = False
    if not canonical:
        raise DisclosureError("non_canonical_value", f"{path}: not the one encoding")
    return value


def _rebuild(
    fields: tuple[_Field, ...], prefix: str, values: dict[str, Any], holes: list[str]
) -> dict[str, Any]:
    """Take the values under ``prefix`` out of ``values``; what is left over is an orphan."""
    node: dict[str, Any] = {}
    for f in fields:
        path = f"{prefix}{f.name}"
        if path not in values:
            holes.append(path)
            node[f.name] = [] if f.kind is _Kind.LIST else None
            continue
        own = values.pop(path)
        if f.kind is _Kind.LEAF:
            node[f.name] = own
        elif f.kind is _Kind.RECORD:
            node[f.name] = _rebuild(f.children, f"{path}.", values, holes) if own else None
        elif f.item_schema is not None:
            node[f.name] = [_item(f"{path}[{i}]", values, holes) for i in range(own)]
        else:
            node[f.name] = [
                _rebuild(f.children, f"{path}[{i}].", values, holes) for i in range(own)
            ]
    return node


def _item(path: str, values: dict[str, Any], holes: list[str]) -> Any:
    if path not in values:
        holes.append(path)
        return None
    return values.pop(path)


def _names(values: Mapping[str, Any]) -> str:
    paths = sorted(values)
    return ", ".join(paths[:5]) + (f" (+{len(paths) - 5} more)" if len(paths) > 5 else "")
