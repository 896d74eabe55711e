"""Sealing a batch's outputs: deliveries to their recipients, held deliveries to the broker.

Sign inside, seal outside: statements are attested first (one signature per
batch, broker/trust/attestation.py), then each attested statement is sealed
(broker/trust/sealing/envelope.py) for the topic it goes on. A batch uses
one content key per recipient topic, sealed once with HPKE to the
recipient's newest sealing key, and each delivery of the batch is only
AES-256-GCM under it with a fresh nonce: ``make bench`` measured a fresh
HPKE encapsulation per delivery at about ten times the cost, a third of the
enforcer's whole per-report budget. Every record still carries its sealed
content key, so it opens on its own.

A held delivery (``ixb.held``) is sealed whole, the terms it was held under
included, to the broker: only the releaser reads it again, and it seals the
statement inside to the recipient's key of the day it is released
(broker/enforcer/runtime/embargo.py).

A recipient the policy allows but that has no valid sealing key cannot be
delivered to without handing its values to whoever reads its topic; such a
decision becomes a withholding with the reason :data:`NO_SEALING_KEY`
(:func:`sealable`), made here and by the audit replay alike.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from broker.domain.decisions import Decision
from broker.trust.records import KeyRole, PartnerRegistry
from broker.trust.sealing.envelope import ContentKey
from broker.trust.sealing.parties import sealing_keys
from broker.trust.sealing.routes import delivery_content_key, held_content_key

NO_SEALING_KEY: Final = "no_sealing_key"


def sealable(
    decision: Decision, registry: PartnerRegistry, recipient: str, at: dt.datetime
) -> Decision:
    """``decision``, or a withholding if it allows a recipient with no sealing key valid ``at``."""
    if not decision.allow or sealing_keys(registry, role=KeyRole.AGENCY, nation=recipient, at=at):
        return decision
    return Decision(allow=False, reasons=(NO_SEALING_KEY,), bundle_hash=decision.bundle_hash)


class BatchSeals:
    """The content keys of one batch's outputs: one per recipient topic, one for held ones."""

    __slots__ = ("_at", "_deliveries", "_held", "_registry", "held_topic")

    def __init__(self, registry: PartnerRegistry, *, held_topic: str, at: dt.datetime) -> None:
        self._registry = registry
        self._at = at
        self.held_topic = held_topic
        self._deliveries: dict[str, ContentKey] = {}
        self._held: ContentKey | None = None

    def delivery(self, topic: str, recipient: str) -> ContentKey:
        """The content key for ``recipient``'s deliveries on ``topic`` in this batch.

        ConfigurationError if the recipient has no valid sealing key: fan-out
        withholds such deliveries (:func:`sealable`), so only a registry
        changed within the batch could ask.
        """
        known = self._deliveries.get(topic)
        if known is None:
            known = delivery_content_key(
                self._registry, topic=topic, recipient=recipient, at=self._at
            )
            self._deliveries[topic] = known
        return known

    def held(self) -> ContentKey:
        if self._held is None:
            self._held = held_content_key(self._registry, topic=self.held_topic, at=self._at)
        return self._held
