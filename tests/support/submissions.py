"""Submissions built by hand for tests: records signed and sealed as an agency does, tampering.

Tampering with a sealed submission means what an attacker can do: anyone
may seal to the broker's public key, so the helpers open a sealed
submission as the broker would (with the test home's broker key), change
the signed bytes inside and seal them again as the agency would
(:func:`resealed`). What they change is what the signature must catch.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from typing import Any

from broker.app.assembly import signer_for
from broker.app.settings import Settings
from broker.trust.envelopes import ENVELOPE_SCHEMA
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole
from broker.trust.registry_file import RegistryFile
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import SUBMISSION_SCHEMA, seal_submission
from broker.trust.sealing.envelope import Opener, read_sealed
from broker.trust.sealing.parties import BROKER_PARTY
from broker.trust.sealing.routes import sealed_submission
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from broker.wire.topics import TopicNames


@functools.cache
def _layout() -> ReportLayout:
    """Every catalog holds the same schemas; build the (costly) layout once."""
    return ReportLayout.from_catalog(SchemaCatalog.load())


def sign_record(
    settings: Settings, catalog: SchemaCatalog, record: Mapping[str, Any], *, key_nation: str
) -> bytes:
    """``record`` (an Avro ThreatReport record, valid or not) signed with ``key_nation``'s key."""
    signer = signer_for(settings, catalog, role=KeyRole.AGENCY, nation=key_nation)
    return seal_submission(catalog, _layout(), signer, record)


def seal_signed(settings: Settings, catalog: SchemaCatalog, signed: bytes, *, topic: str) -> bytes:
    """Signed submission bytes sealed for ``topic`` as that topic's nation's agency seals them."""
    origin = TopicNames(settings.topic_namespace).nation_of_submit_topic(topic)
    assert origin is not None, f"{topic} is not a submit topic"
    registry = RegistryFile(settings.registry_path).current()
    return sealed_submission(
        catalog, registry, signed, topic=topic, origin=origin, at=dt.datetime.now(dt.UTC)
    )


def seal_record(
    settings: Settings,
    catalog: SchemaCatalog,
    record: Mapping[str, Any],
    *,
    key_nation: str,
    topic_nation: str | None = None,
) -> bytes:
    """``record`` signed with ``key_nation``'s key and sealed for a submit topic.

    The topic is ``topic_nation``'s (default: the signer's own).
    """
    signed = sign_record(settings, catalog, record, key_nation=key_nation)
    topic = TopicNames(settings.topic_namespace).submit(topic_nation or key_nation)
    return seal_signed(settings, catalog, signed, topic=topic)


def opened(settings: Settings, catalog: SchemaCatalog, sealed: bytes, *, topic: str) -> bytes:
    """The signed submission inside ``sealed``, opened as the broker opens it."""
    opener = Opener(Keystore(settings.keystore_dir), BROKER_PARTY)
    return opener.open(read_sealed(catalog, sealed), topic=topic)


def reseal_value(
    settings: Settings,
    catalog: SchemaCatalog,
    sealed: bytes,
    *,
    topic: str,
    change: Callable[[bytes], bytes],
) -> bytes:
    """``sealed`` (for ``topic``) with its signed submission changed by ``change``, sealed again."""
    signed = opened(settings, catalog, sealed, topic=topic)
    return seal_signed(settings, catalog, change(signed), topic=topic)


def resealed(
    settings: Settings,
    catalog: SchemaCatalog,
    record: OutboundRecord,
    change: Callable[[bytes], bytes],
) -> OutboundRecord:
    """``record`` with its signed submission changed by ``change``, sealed again."""
    value = reseal_value(settings, catalog, record.value, topic=record.topic, change=change)
    return OutboundRecord(record.topic, record.key, value, record.headers)


def tamper_signed_payload(catalog: SchemaCatalog, submission: bytes, *, at: int = -40) -> bytes:
    """The signed submission with one bit flipped inside what the agency signed (the digests)."""
    outer = catalog.decode(submission, SUBMISSION_SCHEMA)
    envelope = catalog.decode(outer["envelope"], ENVELOPE_SCHEMA)
    payload = bytearray(envelope["payload"])
    payload[at] ^= 0x04
    envelope["payload"] = bytes(payload)
    outer["envelope"] = catalog.encode(ENVELOPE_SCHEMA, envelope)
    return catalog.encode(SUBMISSION_SCHEMA, outer)


def tamper_disclosure(catalog: SchemaCatalog, submission: bytes, path: str) -> bytes:
    """The signed submission with the value disclosed at ``path`` replaced by another valid one."""
    outer = catalog.decode(submission, SUBMISSION_SCHEMA)
    [disclosure] = [d for d in outer["disclosures"] if d["path"] == path]
    value = bytearray(disclosure["value"])
    value[-1] ^= 0x01  # the last byte of a string or number: still decodes, another value
    disclosure["value"] = bytes(value)
    return catalog.encode(SUBMISSION_SCHEMA, outer)
