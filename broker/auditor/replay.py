"""``ixb audit replay``: re-run logged decisions with the bundle that made them, and compare.

For every decision entry of the log in the window asked for, the replay
takes the archived submission the entry names, checks that its bytes are
the ones the entry digested, runs intake on them again as of the entry's
``at`` (the batch's clock: the same key validity, clock skew and freshness
judgement, the key judged at the record's append time where Kafka stamped
it, as the enforcer judged it; but no memory of other reports, so nothing
is refused as replayed) against the partner registry as it was: the version
the entry names, archived in ``ixb.registry`` (broker/auditlog/registry_archive.py),
or today's for an entry that names none. It decides again for the entry's
recipient with the archived bundle whose hash the entry records and
``now_s`` = ``at``. The replayed
outcome, agreement id and version, reasons, withheld and derived fields are
compared with those recorded.

An entry the replay cannot reproduce is a finding, with a reason code:

=============================  ================================================
reason                         the entry ...
=============================  ================================================
differs                        replays to another outcome or other fields
submission_missing             names a submission that is no longer there
submission_digest_mismatch     names submission bytes other than those archived
no_submission_recorded         names no submission at all
no_bundle_recorded             is a decision that names no bundle
bundle_not_archived ...        names a bundle ``ixb.bundles`` does not give back
                               (broker/auditlog/bundles.py)
policy_undecided               names a bundle that cannot decide its input now
registry_not_archived          names a registry version ``ixb.registry`` does not
                               give back, or one whose governance chain fails
=============================  ================================================

Who replays what: submissions are sealed (broker/trust/sealing/), and the
contents a replay needs are opened with the auditor's own keys. An agency
seals each submission to the broker and to its own nation's data-protection
authority, so that authority, and nobody else, replays its nation's reports
(docs/ARCHITECTURE.md, decision 7): a replayer holding NL's authority key
replays the entries of NL's reports. The others are counted, not replayed:

==============================  ==============================================
skipped as                      the entry ...
==============================  ==============================================
sealed_for_another_authority    is of a report from a nation whose authority's
                                key this replayer does not hold
no_authority_key_then           is of a report from a nation whose authority
                                had no key at ``at``: sealed to the broker
                                alone, as it then had to be
==============================  ==============================================

A report the origin's authority had a key for but cannot open is a finding
(it replays as refused, ``not_sealed_to_us``, where the broker decided): the
broker must refuse such submissions (``not_sealed_to_auditor``).

Not replayed, but counted: releases of held deliveries (decided again at
release against the then current bundle, not re-derivable from the entry),
and refusals whose reason depends on what else happened (``replayed_report``,
``policy_undecided``, ``internal_error``) or on what only the broker could
open (``not_sealed_to_us``: it held no key the record was sealed to;
``not_sealed_to_auditor``: the authority's copy is missing, so it cannot
open it either). Refusals otherwise replay like decisions: intake must
refuse again, with the same reason.

A delivered or held decision also reconstructs what its recipient received
(broker/auditor/received.py): field paths and kinds, never values. Everything
here is pure: entries, archives and submissions come in as values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from broker.auditlog.bundles import BundleShelf
from broker.auditlog.entries import AuditEntry, AuditEvent, Outcome
from broker.auditlog.registry_archive import RegistryHistory
from broker.auditor.received import Received, ReceivedViews
from broker.domain.decisions import Decision, DecisionInput, decision_inputs
from broker.enforcer.stages.context import BatchContext
from broker.enforcer.stages.derive import effective_rules
from broker.enforcer.stages.intake import Accepted, Intake
from broker.enforcer.stages.outcome import Refused
from broker.enforcer.stages.replay_guard import Position
from broker.enforcer.stages.sealing import sealable
from broker.errors import PolicyUndecided, RejectedInput
from broker.trust.records import KeyRole, PartnerRegistry
from broker.trust.sealing.parties import sealing_keys
from broker.wire.records import InboundRecord

__all__ = [
    "ACCEPTED",
    "NOT_REPLAYABLE_REFUSALS",
    "LoggedEntry",
    "ReplayFilter",
    "ReplayReport",
    "Replayed",
    "Replayer",
    "Verdict",
]

NOT_REPLAYABLE_REFUSALS = frozenset(
    {
        "replayed_report",
        "policy_undecided",
        "internal_error",
        "not_sealed_to_us",
        "not_sealed_to_auditor",
    }
)
_DECISIONS = (Outcome.DELIVERED, Outcome.HELD, Outcome.WITHHELD)
ACCEPTED = "accepted"  # a replayed refusal that intake now lets through
_INTAKE_MEMORY = 1024  # one submission's entries are adjacent in the log


@dataclass(frozen=True, slots=True)
class LoggedEntry:
    """A decoded entry and where it is in the log."""

    log_id: str
    offset: int
    entry: AuditEntry


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Which entries to replay: ``since`` <= at < ``until``, by origin and recipient."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    origin: str | None = None
    recipient: str | None = None

    def admits(self, event: AuditEvent) -> bool:
        return (
            (self.since is None or event.at >= self.since)
            and (self.until is None or event.at < self.until)
            and (self.origin is None or event.origin == self.origin)
            and (self.recipient is None or event.recipient == self.recipient)
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """What was decided for one recipient (or why intake refused): ids, codes and paths."""

    outcome: str  # an Outcome's value, or ACCEPTED
    agreement_id: str | None = None
    agreement_version: int | None = None
    reasons: tuple[str, ...] = ()
    withheld_fields: tuple[str, ...] = ()
    derived_fields: tuple[str, ...] = ()

    @classmethod
    def recorded(cls, event: AuditEvent) -> Verdict:
        return cls(
            str(event.outcome),
            event.agreement_id,
            event.agreement_version,
            event.reasons,
            event.withheld_fields,
            event.derived_fields,
        )

    def differences(self, other: Verdict) -> tuple[str, ...]:
        """The names of the fields in which ``other`` differs from this verdict."""
        return tuple(
            f.name
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        )


@dataclass(frozen=True, slots=True)
class Replayed:
    """One entry replayed: what was recorded, what the replay gives, and what differs."""

    log_id: str
    offset: int
    at: dt.datetime
    origin: str
    recipient: str | None
    report_id: str | None
    delivery_id: str | None
    bundle_hash: str | None  # the bundle the replay decided with (the one recorded)
    recorded: Verdict
    replayed: Verdict | None  # None when the entry could not be replayed
    finding: str | None  # reason code, None when the replay matches
    differences: tuple[str, ...] = ()  # Verdict fields that differ
    received: Received | None = None  # what the recipient was given, when the replay matches

    @property
    def ok(self) -> bool:
        return self.finding is None


@dataclass(frozen=True, slots=True)
class ReplayReport:
    replayed: tuple[Replayed, ...]
    skipped: Mapping[str, int] = field(default_factory=dict)  # why not replayed -> count
    undecodable_archives: int = 0

    @property
    def findings(self) -> tuple[Replayed, ...]:
        return tuple(r for r in self.replayed if r.finding is not None)

    @property
    def ok(self) -> bool:
        return not self.findings


class _NoDecisions:
    """The policy slot of intake's context: intake never decides, so it must not be asked."""

    bundle_hash = ""

    def decide(self, decision_input: DecisionInput) -> Decision:
        raise PolicyUndecided("intake does not consult the policy")


class Replayer:
    """Replays entries against archived bundles and submissions; see the module docstring.

    ``intake`` must be built as the enforcer's is (same catalog, topic
    namespace, clock skew and freshness window); its replay guard must be
    one nobody remembers reports in, so nothing is refused as replayed.
    ``registry`` is the partner registry to check signatures with where an
    entry names no archived version of it (``registries``).
    """

    __slots__ = (
        "_intake",
        "_intake_memory",
        "_registries",
        "_registry",
        "_shelf",
        "_views",
        "authorities",
    )

    def __init__(
        self,
        intake: Intake,
        registry: PartnerRegistry,
        shelf: BundleShelf,
        views: ReceivedViews,
        *,
        authorities: frozenset[str],
        registries: RegistryHistory | None = None,
    ) -> None:
        if len(intake.replay):
            raise ValueError("replay needs an intake whose replay guard remembers nothing")
        self._intake = intake
        self._registry = registry
        self._registries = registries
        self._shelf = shelf
        self._views = views
        self.authorities = authorities  # nations whose authority's keys this replayer holds
        self._intake_memory: dict[
            tuple[Position, bytes, dt.datetime, str | None], Accepted | RejectedInput
        ] = {}

    def replay(
        self,
        entries: Iterable[LoggedEntry],
        submissions: Mapping[Position, InboundRecord],
    ) -> ReplayReport:
        """Replay every entry, in the order given; count what is skipped.

        The caller filters entries (:class:`ReplayFilter`) first, since it
        fetches only the submissions the remaining entries name.
        """
        skipped: Counter[str] = Counter()
        replayed = []
        for logged in entries:
            event = logged.entry.event
            outcome = event.outcome
            if outcome in (Outcome.RELEASED, Outcome.RELEASE_REFUSED):
                skipped[str(outcome)] += 1
            elif (
                outcome is Outcome.REFUSED
                and event.reasons[:1]
                and (event.reasons[0] in NOT_REPLAYABLE_REFUSALS)
            ):
                skipped[f"refused:{event.reasons[0]}"] += 1
            elif event.origin not in self.authorities:
                skipped["sealed_for_another_authority"] += 1
            elif not sealing_keys(
                self._registry, role=KeyRole.AUDITOR, nation=event.origin, at=event.at
            ):
                skipped["no_authority_key_then"] += 1
            else:
                replayed.append(self.one(logged, submissions))
        return ReplayReport(tuple(replayed), dict(skipped), self._shelf.undecodable)

    def one(self, logged: LoggedEntry, submissions: Mapping[Position, InboundRecord]) -> Replayed:
        """Replay one decision or refusal entry."""
        event = logged.entry.event
        recorded = Verdict.recorded(event)
        is_decision = event.outcome in _DECISIONS
        bundle_hash = event.policy_bundle_hash if is_decision else None
        checked = self._intake_of(event, submissions)
        replayed: Verdict | None = None
        received = None
        problem: str | None = None
        if isinstance(checked, str):
            problem = checked
        elif isinstance(checked, RejectedInput):
            replayed = Verdict(str(Outcome.REFUSED), reasons=(checked.reason,))
        elif not is_decision:  # a refusal that intake now accepts
            replayed = Verdict(ACCEPTED)
        elif bundle_hash is None or event.recipient is None:
            problem = "no_bundle_recorded"
        else:
            registry = self._registry_of(event)
            assert registry is not None  # intake found it (or named registry_not_archived)
            decided = self._decide(bundle_hash, event.recipient, event.at, checked, registry)
            if isinstance(decided, str):
                problem = decided
            else:
                replayed, received = decided
        differences = () if replayed is None else recorded.differences(replayed)
        if differences:
            problem = "differs"
            received = None  # the replay's view is not what the recipient was given
        return Replayed(
            log_id=logged.log_id,
            offset=logged.offset,
            at=event.at,
            origin=event.origin,
            recipient=event.recipient,
            report_id=event.report_id,
            delivery_id=event.delivery_id,
            bundle_hash=bundle_hash,
            recorded=recorded,
            replayed=replayed,
            finding=problem,
            differences=differences,
            received=received,
        )

    def _decide(
        self,
        bundle_hash: str,
        recipient: str,
        at: dt.datetime,
        accepted: Accepted,
        registry: PartnerRegistry,
    ) -> tuple[Verdict, Received | None] | str:
        """The verdict of the archived bundle as of ``at``, or a finding's reason.

        As fan-out does, an allowed recipient with no sealing key valid then
        in ``registry`` is withheld (``no_sealing_key``): nothing can be
        sealed to it.
        """
        try:
            point = self._shelf.point(bundle_hash)
        except RejectedInput as exc:
            return exc.reason
        now_s = int(at.timestamp())
        [decision_input] = decision_inputs(accepted.report, [recipient], now_s=now_s)
        try:
            decision = point.decide(decision_input)
        except PolicyUndecided:
            return "policy_undecided"
        return self._verdict(sealable(decision, registry, recipient, at), now_s, accepted)

    def _verdict(
        self, decision: Decision, now_s: int, accepted: Accepted
    ) -> tuple[Verdict, Received | None]:
        """The entry fan-out would have written for ``decision``, and what it delivered."""
        if not decision.allow:
            return Verdict(str(Outcome.WITHHELD), reasons=decision.reasons), None
        assert decision.agreement is not None  # an allow always names its agreement
        rules = effective_rules(decision.field_rules)
        held = decision.not_before_s is not None and decision.not_before_s > now_s
        verdict = Verdict(
            str(Outcome.HELD if held else Outcome.DELIVERED),
            decision.agreement.id,
            decision.agreement.version,
            withheld_fields=rules.withheld,
            derived_fields=rules.derived_fields,
        )
        return verdict, self._views.view(accepted.disclosures, rules)

    def _intake_of(
        self, event: AuditEvent, submissions: Mapping[Position, InboundRecord]
    ) -> Accepted | RejectedInput | str:
        """Intake's result for the entry's submission as of ``at``, or a finding's reason."""
        ref = event.submission
        if ref is None:
            return "no_submission_recorded"
        position = (ref.topic, ref.partition, ref.offset)
        if position not in submissions:
            return "submission_missing"
        # The digest was checked before remembering.
        key = (position, ref.sha256, event.at, event.registry_hash)
        known = self._intake_memory.get(key)
        if known is not None:
            return known
        inbound = submissions[position]  # as read, with the time Kafka stamped it
        if hashlib.sha256(inbound.value or b"").digest() != ref.sha256:
            return "submission_digest_mismatch"
        registry = self._registry_of(event)
        if registry is None:
            return "registry_not_archived"
        context = BatchContext(registry, _NoDecisions(), frozenset(), event.at)
        checked = self._intake.check(inbound, context)  # as the enforcer: one record, one finding
        result = checked.error if isinstance(checked, Refused) else checked
        if len(self._intake_memory) >= _INTAKE_MEMORY:
            self._intake_memory.clear()
        self._intake_memory[key] = result
        return result

    def _registry_of(self, event: AuditEvent) -> PartnerRegistry | None:
        """The registry the entry's signatures were checked against, or None if not archived."""
        if event.registry_hash is None:
            return self._registry  # written before registries were archived
        if self._registries is None:
            return None
        return self._registries.registry(event.registry_hash)
