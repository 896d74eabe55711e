"""Selective disclosure: the originator signs salted digests, the broker withholds disclosures.

Today's envelope signs the whole report, so a report with a field removed no
longer verifies. Here (in the spirit of SD-JWT, RFC 9901) the originator
signs an :data:`SD_REPORT_SCHEMA` record instead: the always-visible header
(:data:`HEADER_FIELDS`, what the policy decides on, RFC 9901 §9.7) and the
sorted digests of one :class:`Disclosure` per value. Each party has its own
module: the agency issues them (:mod:`broker.trust.sd.issue`), the broker
withholds a field by not passing its disclosures on
(:mod:`broker.trust.sd.select`), and the recipient checks every disclosure it
was given against the signed digests and rebuilds the report
(:mod:`broker.trust.sd.verify`). All three read paths against one
:class:`~broker.trust.sd.layout.ReportLayout`.

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

This module holds what every party shares: the names, the disclosure and its
digest, the path syntax and the refusal. Everything in the package is pure:
no I/O, no clock; randomness is a parameter.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, NamedTuple

from broker.errors import VerificationError
from broker.trust.sd.wire import disclosure_item

SD_REPORT_SCHEMA = "ixb.v1.SdThreatReport"
DISCLOSURE_SCHEMA = "ixb.v1.Disclosure"
DIGEST_ALGORITHM = "sha-256"
HEADER_FIELDS = ("report_id", "origin", "issued_at", "report_type", "marking", "handling_code")
SALT_BYTES = 16  # 128 bits, RFC 9901 §9.3
MAX_SALT_BYTES = 64
MAX_VALUE_BYTES = 65_536
MAX_PATH_CHARS = 512

_DISCLOSURE_CONTEXT = b"ixb-disclosure-v1\x00"
_FRAME = struct.Struct(">I")
_SALTED = _DISCLOSURE_CONTEXT + _FRAME.pack(SALT_BYTES)  # the usual head of a digest input
# Indices are canonical decimals (no leading zeros), so one value has one path.
_STEP = r"[a-z_][a-z0-9_]*(\[(0|[1-9][0-9]{0,5})\])?"
_PATH = re.compile(rf"{_STEP}(\.{_STEP})*")


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


def check_path_shape(path: str) -> None:
    """A concrete field path of bounded length; until then the text is never repeated."""
    if len(path) > MAX_PATH_CHARS or _PATH.fullmatch(path) is None:
        raise DisclosureError("malformed_path", "a disclosure path is not a concrete field path")
