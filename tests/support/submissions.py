"""Submissions built by hand for tests: any record sealed as an agency seals it, and tampering."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from broker.app.assembly import signer_for
from broker.app.settings import Settings
from broker.trust.envelopes import ENVELOPE_SCHEMA
from broker.trust.records import KeyRole
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import SUBMISSION_SCHEMA, seal_submission
from broker.wire.codec import SchemaCatalog


@functools.cache
def _layout() -> ReportLayout:
    """Every catalog holds the same schemas; build the (costly) layout once."""
    return ReportLayout.from_catalog(SchemaCatalog.load())


def seal_record(
    settings: Settings, catalog: SchemaCatalog, record: Mapping[str, Any], *, key_nation: str
) -> bytes:
    """``record`` (an Avro ThreatReport record, valid or not) sealed with ``key_nation``'s key."""
    layout = _layout()
    signer = signer_for(settings, catalog, role=KeyRole.AGENCY, nation=key_nation)
    return seal_submission(catalog, layout, signer, record)


def tamper_signed_payload(catalog: SchemaCatalog, submission: bytes, *, at: int = -40) -> bytes:
    """The submission with one bit flipped inside what the agency signed (the digest list)."""
    outer = catalog.decode(submission, SUBMISSION_SCHEMA)
    envelope = catalog.decode(outer["envelope"], ENVELOPE_SCHEMA)
    payload = bytearray(envelope["payload"])
    payload[at] ^= 0x04
    envelope["payload"] = bytes(payload)
    outer["envelope"] = catalog.encode(ENVELOPE_SCHEMA, envelope)
    return catalog.encode(SUBMISSION_SCHEMA, outer)


def tamper_disclosure(catalog: SchemaCatalog, submission: bytes, path: str) -> bytes:
    """The submission with the value disclosed at ``path`` replaced by another valid one."""
    outer = catalog.decode(submission, SUBMISSION_SCHEMA)
    [disclosure] = [d for d in outer["disclosures"] if d["path"] == path]
    value = bytearray(disclosure["value"])
    value[-1] ^= 0x01  # the last byte of a string or number: still decodes, another value
    disclosure["value"] = bytes(value)
    return catalog.encode(SUBMISSION_SCHEMA, outer)
