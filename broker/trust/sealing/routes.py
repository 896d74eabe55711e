"""Who reads each kind of sealed record, written once for every sender.

=====================  ==============================  ==========================
record                 sealed on                       to (newest key valid now)
=====================  ==============================  ==========================
submission             ``ixb.submit.<ORIGIN>``         the broker, and the
                                                       origin's data-protection
                                                       authority if registered
delivery               ``ixb.deliver.<RECIPIENT>``     the recipient nation
held delivery          ``ixb.held``                    the broker
=====================  ==============================  ==========================

The topic is bound into the seal (broker/trust/sealing/envelope.py), so each
function takes the exact topic name, namespace included: a record sealed for
one ixb instance's topic does not open on another's. Keys come from the
registry as it is at ``at``: a sender's keys are chosen when it seals.
"""

from __future__ import annotations

import datetime as dt

from broker.trust.records import KeyRole, PartnerRegistry
from broker.trust.sealing.envelope import ContentKey, seal
from broker.trust.sealing.parties import newest_sealing_key, submission_recipients
from broker.wire.codec import SchemaCatalog


def sealed_submission(
    catalog: SchemaCatalog,
    registry: PartnerRegistry,
    signed: bytes,
    *,
    topic: str,
    origin: str,
    at: dt.datetime,
) -> bytes:
    """A signed submission sealed as an agency of ``origin`` sends it on ``topic``."""
    return seal(catalog, signed, topic=topic, to=submission_recipients(registry, origin, at))


def submission_content_key(
    registry: PartnerRegistry, *, topic: str, origin: str, at: dt.datetime
) -> ContentKey:
    """A content key for several of ``origin``'s submissions on ``topic`` (one publish).

    The broker's opener keeps the content keys it unsealed, so a batch sealed
    under one costs the broker one HPKE open instead of one per report.
    """
    return ContentKey(topic, submission_recipients(registry, origin, at))


def delivery_content_key(
    registry: PartnerRegistry, *, topic: str, recipient: str, at: dt.datetime
) -> ContentKey:
    """A content key sealed to ``recipient``'s newest key, for deliveries on ``topic``."""
    key = newest_sealing_key(registry, role=KeyRole.AGENCY, nation=recipient, at=at)
    return ContentKey(topic, [key])


def held_content_key(registry: PartnerRegistry, *, topic: str, at: dt.datetime) -> ContentKey:
    """A content key sealed to the broker's newest key, for held deliveries on ``topic``."""
    key = newest_sealing_key(registry, role=KeyRole.BROKER, nation=None, at=at)
    return ContentKey(topic, [key])
