"""Intake: from raw bytes on a submission topic to a verified, valid report.

The order is the security argument (docs/ARCHITECTURE.md, decision 1):

0. the record is opened (broker/trust/sealing/envelope.py) with the
   broker's key, for this topic: sealed for another topic it does not open.
   Its list of readers, authenticated by the opening, must name a broker
   sealing key valid at receipt and, when the origin registered a
   data-protection authority's key, that authority too (which is what lets
   it replay its nation's submissions);
1. the size is checked and only the outer submission and its envelope are
   parsed;
2. the signature is verified over the exact signed payload bytes, by a
   registered agency key;
3. the key's nation must be the nation whose topic carried the message;
4. only then is the signed payload (header and digests) decoded; the report
   must claim the key's nation as its origin, and the key must have been
   valid when the record reached Kafka (its append time, which Kafka stamps
   on the submit topics and the signer cannot choose; the broker's clock now
   where Kafka did not stamp it) and at the report's issued-at: the
   originator check every recipient makes too (broker/trust/key_checks.py);
   and the issued-at must not be in the future;
5. every disclosure is checked against the signed digests and the report is
   rebuilt from them; a submission must disclose every value (an agency
   withholds nothing from the broker), then it is validated;
6. the report id must not have been accepted before from another position,
   and the report must be fresh (broker/enforcer/stages/replay_guard.py).

Every refusal is a :class:`~broker.errors.RejectedInput` with a reason code,
returned as a :class:`~broker.enforcer.stages.outcome.Refused` value. The
replay guard (step 6) is the intake's own: what was accepted is remembered
through :meth:`Intake.remember` and read back through :meth:`Intake.recall`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from broker.domain.report import ThreatReport
from broker.enforcer.stages.context import BatchContext
from broker.enforcer.stages.outcome import Refused, refused_or
from broker.enforcer.stages.replay_guard import Position, ReplayGuard
from broker.errors import RejectedInput, VerificationError
from broker.trust.envelopes import verify_envelope
from broker.trust.key_checks import check_originator
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.sd.disclosure import SD_REPORT_SCHEMA, Disclosure, DisclosureError
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import open_submission
from broker.trust.sd.verify import verify_disclosures
from broker.trust.sealing.envelope import Opener, Sealed, read_sealed
from broker.trust.sealing.parties import check_sealed_to, sealing_keys
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord
from broker.wire.report import record_to_report
from broker.wire.topics import TopicNames


@dataclass(frozen=True, slots=True)
class Accepted:
    """A submission that passed intake, with everything fan-out needs."""

    report: ThreatReport
    record: dict[str, Any]  # the rebuilt Avro record, never mutated
    envelope: bytes  # the originator's signed envelope, passed on to recipients
    payload_sha256: bytes  # of the exact signed payload (header and digests)
    disclosures: tuple[Disclosure, ...]
    digests: dict[str, bytes]  # of each disclosure, by path (what derived values replace)
    key: KeyRecord
    position: Position
    received_at: dt.datetime  # when Kafka appended it (else when intake read it): judged at


Openers = Callable[[str], Opener]
"""Who opens a submission from an origin: the broker's opener for every origin (the
enforcer), or that origin's data-protection authority's (broker/auditor/replay.py)."""


class Intake:
    __slots__ = ("_catalog", "_layout", "_max_skew", "_openers", "_topics", "replay")

    def __init__(
        self,
        catalog: SchemaCatalog,
        topics: TopicNames,
        *,
        max_clock_skew: dt.timedelta,
        replay: ReplayGuard,
        openers: Openers,
        layout: ReportLayout | None = None,
    ) -> None:
        self._catalog = catalog
        self._topics = topics
        self._max_skew = max_clock_skew
        self._openers = openers
        self._layout = layout or ReportLayout.from_catalog(catalog)
        self.replay = replay

    def check(self, inbound: InboundRecord, context: BatchContext) -> Accepted | Refused:
        """The submission verified and valid, or refused with the reason of the step that failed."""
        return refused_or(lambda: self._check(inbound, context))

    def remember(self, accepted: Accepted) -> None:
        """An accepted submission's outputs are computed: a replay of its id is refused from now."""
        report = accepted.report
        self.replay.remember(str(report.report_id), report.issued_at, accepted.position)

    def recall(self, ledger: Iterable[InboundRecord], now: dt.datetime) -> int:
        """Load intake-ledger lines (what earlier owners accepted); how many ids were new."""
        before = len(self.replay)
        for line in ledger:
            self.replay.load(self._catalog, line)  # loading a line twice changes nothing
        self.replay.forget_older_than(now)
        return len(self.replay) - before

    def _check(self, inbound: InboundRecord, context: BatchContext) -> Accepted:
        topic_nation = self._topics.nation_of_submit_topic(inbound.topic)
        if topic_nation is None:
            raise RejectedInput("not_a_submission_topic", inbound.topic, stage="envelope")
        if inbound.value is None:
            raise RejectedInput("empty_message", "the record has no value", stage="envelope")
        received_at = received(inbound, context.now)
        sealed = read_sealed(self._catalog, inbound.value)  # 0
        plain = self._openers(topic_nation).open(sealed, topic=inbound.topic)
        _check_readers(sealed, context.registry, topic_nation, received_at)  # now authenticated
        submission = open_submission(self._catalog, plain)  # 1
        envelope = submission.envelope
        # 2: validity is judged at receipt and at the report's issued-at (step 4)
        key = verify_envelope(envelope, context.registry, role=KeyRole.AGENCY, at=None)
        if key.nation != topic_nation:  # 3
            raise VerificationError(
                "wrong_topic",
                f"key {key.key_id} belongs to {key.nation}, message was on {topic_nation}'s topic",
                stage="identity",
            )
        signed = self._catalog.decode(envelope.payload, SD_REPORT_SCHEMA)  # 4
        issued_at: dt.datetime = signed["issued_at"]
        check_originator(key, origin=signed["origin"], issued_at=issued_at, received_at=received_at)
        if issued_at > context.now + self._max_skew:
            raise RejectedInput(
                "issued_in_future", "issued_at is ahead of the broker's clock", stage="validate"
            )
        disclosed = verify_disclosures(self._layout, signed, submission.disclosures)  # 5
        if disclosed.holes:
            raise DisclosureError(
                "undisclosed_values",
                f"{len(disclosed.holes)} values have no disclosure, e.g. {disclosed.holes[0]}",
            )
        report = record_to_report(disclosed.record)
        position = (inbound.topic, inbound.partition, inbound.offset)
        self.replay.check(str(report.report_id), issued_at, position, context.now)  # 6
        return Accepted(
            report=report,
            record=disclosed.record,
            envelope=submission.envelope_bytes,
            payload_sha256=hashlib.sha256(envelope.payload).digest(),
            disclosures=submission.disclosures,
            digests=disclosed.digests,
            key=key,
            position=position,
            received_at=received_at,
        )


def received(inbound: InboundRecord, now: dt.datetime) -> dt.datetime:
    """When ``inbound`` reached the broker, by a clock its signer does not control.

    Kafka's append time where it stamped the record (the submit topics are
    made with ``message.timestamp.type=LogAppendTime``); otherwise ``now``,
    the enforcer's own clock as it reads the record, which is later still:
    a producer's timestamp is never believed.
    """
    appended = inbound.appended_at
    return now if appended is None else appended


def _check_readers(sealed: Sealed, registry: PartnerRegistry, origin: str, at: dt.datetime) -> None:
    """Sealed to a broker key valid ``at``, and to ``origin``'s auditor if it has a key then."""
    if check_sealed_to(registry, sealed.key_ids, role=KeyRole.BROKER, nation=None, at=at) is None:
        raise VerificationError(
            "not_sealed_to_broker", "sealed to no broker sealing key", stage="unseal"
        )
    auditors = sealing_keys(registry, role=KeyRole.AUDITOR, nation=origin, at=at)
    if auditors and not check_sealed_to(
        registry, sealed.key_ids, role=KeyRole.AUDITOR, nation=origin, at=at
    ):
        raise VerificationError(
            "not_sealed_to_auditor",
            f"not sealed to {origin}'s data-protection authority, which has a key",
            stage="unseal",
        )
