"""Submissions as agencies sign them: a signed digest list plus one disclosure per value.

(What this module calls sealing a submission is its signing, the older sense
of the word; the signed submission is then sealed to its readers, encrypted,
by broker/trust/sealing/envelope.py, and opened before anything here runs.)

An agency never signs the report itself. It issues salted disclosures
(broker/trust/sd/issue.py), signs the :data:`SD_REPORT_SCHEMA` payload (the
visible header and the sorted digests) in an ordinary signed envelope, and
publishes both as one :data:`SUBMISSION_SCHEMA` record. The broker can then
withhold any field by leaving its disclosure out, and every recipient still
verifies the agency's own signature over everything it is given.

Opening a submission parses only the outer record and the envelope inside
it: nothing the agency signed is decoded before its signature is verified
(docs/ARCHITECTURE.md, decision 1), and disclosures are only checked against the digests
once the digests themselves are known to be signed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker import native
from broker.errors import ConfigurationError, DecodeError
from broker.trust.envelopes import Envelope, Signer, open_envelope
from broker.trust.sd import _native
from broker.trust.sd.disclosure import SD_REPORT_SCHEMA, Disclosure
from broker.trust.sd.issue import issue
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.wire import WireError, read_bytes, read_disclosures
from broker.wire.codec import HEADER_LEN, AvroSchema, SchemaCatalog

SUBMISSION_SCHEMA = "ixb.v1.SdSubmission"


@dataclass(frozen=True, slots=True)
class Submission:
    """An opened (not yet verified) submission."""

    envelope_bytes: bytes  # the agency's SignedEnvelope, exactly as received
    envelope: Envelope
    disclosures: tuple[Disclosure, ...]


def seal_submission(
    catalog: SchemaCatalog, layout: ReportLayout, signer: Signer, record: Mapping[str, Any]
) -> bytes:
    """Issue disclosures for ``record`` (an Avro ThreatReport record), sign, and encode."""
    issued = issue(layout, record)
    envelope = signer.seal(catalog.encode(SD_REPORT_SCHEMA, issued.sd_payload_record))
    return catalog.encode(
        SUBMISSION_SCHEMA,
        {
            "envelope": envelope,
            "disclosures": [d.to_record() for d in issued.disclosures.values()],
        },
    )


def open_submission(catalog: SchemaCatalog, data: bytes) -> Submission:
    """Parse the outer record and the envelope; only canonical encodings are accepted.

    The outer record is read by hand (broker/trust/sd/wire.py), so every
    disclosure keeps its exact bytes to be passed on unchanged, and nothing
    is decoded twice; the bytes are walked once, within the catalog's limits.
    """
    schema = catalog.schema_of(data)  # the size limit and the header
    if schema.name != SUBMISSION_SCHEMA:
        raise DecodeError(
            "unexpected_schema",
            f"expected {SUBMISSION_SCHEMA}, message is {schema.name}",
            stage="envelope",
        )
    _expect_shape(schema)
    limits = catalog.guard_limits
    try:
        envelope_bytes, pos = read_bytes(data, HEADER_LEN, limits.max_bytes_field)
        read = _native.read_disclosures if native.ACTIVE else read_disclosures
        items, pos = read(
            data,
            pos,
            max_items=limits.max_items_per_collection,
            max_field_bytes=limits.max_bytes_field,
        )
    except IndexError:
        raise DecodeError(
            "truncated", f"{SUBMISSION_SCHEMA} ends early", stage="envelope"
        ) from None
    except WireError as exc:
        raise DecodeError(
            exc.reason, f"{SUBMISSION_SCHEMA}: {exc.detail}", stage="envelope"
        ) from None
    if pos != len(data):
        raise DecodeError(
            "trailing_bytes",
            f"{len(data) - pos} bytes after the {SUBMISSION_SCHEMA} body",
            stage="envelope",
        )
    return Submission(
        envelope_bytes=envelope_bytes,
        envelope=open_envelope(catalog, envelope_bytes),
        disclosures=tuple(map(Disclosure._make, items)),
    )


_EXPECTED_FIELDS = (
    ("envelope", "bytes"),
    ("disclosures", ("salt", "bytes"), ("path", "string"), ("value", "bytes")),
)
_checked: set[bytes] = set()  # fingerprints of schemas found to have the expected shape


def _expect_shape(schema: AvroSchema) -> None:
    """The hand-written reader follows sd_submission.avsc: refuse to run if they part."""
    if schema.fingerprint in _checked:
        return
    parsed = schema.parsed
    fields = parsed["fields"]
    items = fields[1]["type"]["items"] if len(fields) == 2 else {"fields": []}
    shape = (
        (fields[0]["name"], fields[0]["type"]),
        (fields[1]["name"], *((f["name"], f["type"]) for f in items["fields"])),
    )
    if shape != _EXPECTED_FIELDS:
        raise ConfigurationError(
            f"{SUBMISSION_SCHEMA} changed: update broker/trust/sd/submission.py"
        )
    _checked.add(schema.fingerprint)


def signed_payload_sha256(catalog: SchemaCatalog, data: bytes) -> bytes:
    """SHA-256 of the payload the agency signed: what delivery ids are derived from."""
    return hashlib.sha256(open_submission(catalog, data).envelope.payload).digest()
