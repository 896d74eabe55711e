"""Submissions as agencies publish them: a signed digest list plus one disclosure per value.

An agency never signs the report itself. It issues salted disclosures
(broker/trust/disclosure.py), signs the :data:`SD_REPORT_SCHEMA` payload (the
visible header and the sorted digests) in an ordinary signed envelope, and
publishes both as one :data:`SUBMISSION_SCHEMA` record. The broker can then
withhold any field by leaving its disclosure out, and every recipient still
verifies the agency's own signature over everything it is given.

Opening a submission parses only the outer record and the envelope inside
it: nothing the agency signed is decoded before its signature is verified
(DESIGN.md decision 1), and disclosures are only checked against the digests
once the digests themselves are known to be signed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.codec import SchemaCatalog
from broker.trust.disclosure import SD_REPORT_SCHEMA, Disclosure, ReportLayout, issue
from broker.trust.envelopes import Envelope, Signer, open_envelope

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
    """Parse the outer record and the envelope; only canonical encodings are accepted."""
    record = catalog.decode_canonical(data, SUBMISSION_SCHEMA, stage="envelope")
    envelope_bytes: bytes = record["envelope"]
    return Submission(
        envelope_bytes=envelope_bytes,
        envelope=open_envelope(catalog, envelope_bytes),
        disclosures=tuple(Disclosure.from_record(d) for d in record["disclosures"]),
    )


def signed_payload_sha256(catalog: SchemaCatalog, data: bytes) -> bytes:
    """SHA-256 of the payload the agency signed: what delivery ids are derived from."""
    return hashlib.sha256(open_submission(catalog, data).envelope.payload).digest()
