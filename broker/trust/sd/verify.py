"""Verifying (the recipient, and the broker at intake): check disclosures, rebuild the report.

The caller has verified the originator's signature over the exact sd payload
bytes; here every disclosure given is hashed as received and must be one of
the signed digests before it is decoded, every decoded value must be the one
encoding of itself, derived values must lie under a field the broker says it
derived, and the report is rebuilt along the layout. What the signed
structure shows but no disclosure fills is a hole: withheld.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fastavro

from broker import native
from broker.errors import ConfigurationError
from broker.trust.sd import _native
from broker.trust.sd.disclosure import (
    DIGEST_ALGORITHM,
    HEADER_FIELDS,
    MAX_SALT_BYTES,
    MAX_VALUE_BYTES,
    SALT_BYTES,
    Disclosure,
    DisclosureError,
    Provenance,
    check_path_shape,
)
from broker.trust.sd.layout import (
    FieldKind,
    LayoutField,
    ReportLayout,
    Slot,
    abstract_path,
    covered,
    encode_value,
    stated_patterns,
)
from broker.trust.sd.wire import WireError


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
        return tuple(h for h in self.holes if not covered(abstract_path(h), patterns))


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
    if native.ACTIVE:
        listed = _native.take_signed(
            layout, disclosures, signed_set, values, digests, decode=_decode
        )
    else:
        listed = _take_signed(layout, disclosures, signed_set, values, digests)
    provenance.update(dict.fromkeys(digests, Provenance.SIGNED))
    derived_patterns = stated_patterns(layout, derived_fields, "derived_fields")
    for path, value in derived:
        check_path_shape(path)
        if len(value) > MAX_VALUE_BYTES:
            raise DisclosureError("value_too_large", f"{path}: value is too large")
        if not covered(abstract_path(path), derived_patterns):
            raise DisclosureError("underived_value", f"{path}: no derived field covers it")
        listed += _take(layout.slot_of(path), path, value, values)
        provenance[path] = Provenance.DERIVED
    # Every list item owns at least one digest, so larger lengths are lies, and
    # believing them would let a few bytes make the rebuild allocate without bound.
    if listed > len(signed):
        raise DisclosureError("implausible_count", "list lengths exceed the signed digests")
    holes: list[str] = []
    record = {name: sd_payload_record[name] for name in HEADER_FIELDS}
    record |= _rebuild(layout.fields, "", values, holes)
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


def _take(slot: Slot, path: str, encoded: bytes, values: dict[str, Any]) -> int:
    """Decode one value into ``values``; returns the list length it claims (0 if none)."""
    if path in values:
        raise DisclosureError("duplicate_path", f"{path} is disclosed twice")
    value = values[path] = _decode(slot, path, encoded)
    if slot.kind is not FieldKind.LIST:
        return 0
    if value < 0:
        raise DisclosureError("implausible_count", f"{path}: negative length")
    return int(value)


def _decode(slot: Slot, path: str, encoded: bytes) -> Any:
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
        canonical = encode_value(slot.schema, value, path) == encoded
    except ConfigurationError:
        canonical = False
    if not canonical:
        raise DisclosureError("non_canonical_value", f"{path}: not the one encoding")
    return value


def _rebuild(
    fields: tuple[LayoutField, ...], prefix: str, values: dict[str, Any], holes: list[str]
) -> dict[str, Any]:
    """Take the values under ``prefix`` out of ``values``; what is left over is an orphan."""
    node: dict[str, Any] = {}
    for f in fields:
        path = f"{prefix}{f.name}"
        if path not in values:
            holes.append(path)
            node[f.name] = [] if f.kind is FieldKind.LIST else None
            continue
        own = values.pop(path)
        if f.kind is FieldKind.LEAF:
            node[f.name] = own
        elif f.kind is FieldKind.RECORD:
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
