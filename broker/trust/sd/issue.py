"""Issuing (the agency): salt, encode and digest every value of a report, add decoys.

What the agency signs is :attr:`Issued.sd_payload_record` (the visible
header and the sorted digests); what it publishes beside it is one
disclosure per value (broker/trust/sd/submission.py seals both). The format
of a disclosure and its digest is in :mod:`broker.trust.sd.disclosure`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.errors import ConfigurationError
from broker.trust.sd.disclosure import DIGEST_ALGORITHM, HEADER_FIELDS, SALT_BYTES, Disclosure
from broker.trust.sd.layout import ReportLayout, encode_value

DEFAULT_DECOYS_BUCKET = 16

_DECOY_CONTEXT = b"ixb-decoy-v1\x00"
_DECOY_SEED_BYTES = 32

RandomBytes = Callable[[int], bytes]


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
    for path, schema, value in layout.values(record):
        disclosures[path] = Disclosure(
            random_bytes(SALT_BYTES), path, encode_value(schema, value, path)
        )
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
