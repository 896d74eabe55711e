"""The oracle: what the agreements say must happen, against what the topics hold.

Expected deliveries are decided here, in-process, by the same Rego policy
and agreements the enforcers load (a :class:`RegoDecisionPoint` on the same
bundle), for every valid report and every partner other than its origin.
Time enters a decision only through the agreements' validity bounds and the
embargo; :func:`expected` refuses a run in which either could differ
between the moment the oracle decides and the moment an enforcer does.

What happened is read back only through the public readers: a recipient's
verified feed (:func:`broker.parties.recipient.read_feed`, without de-duplication so
repeats can be counted) and the rejected topics (rendered by
:func:`broker.cli.render.rejection_json`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.resilience.workload import Submission
from broker.cli.render import rejection_json
from broker.domain.decisions import DecisionInput, decision_inputs
from broker.domain.report import ThreatReport
from broker.errors import ConfigurationError
from broker.kafka.reader import read_topic
from broker.parties.derivations import AgreementSource
from broker.parties.recipient import FeedProblem, read_feed
from broker.policy.bundle import load_bundle
from broker.policy.rego import RegoDecisionPoint
from broker.trust.records import PartnerRegistry
from broker.trust.sealing.keys import DecryptionKeys
from broker.wire.codec import SchemaCatalog
from broker.wire.topics import TopicNames

Pair = tuple[str, str]  # (report id, recipient)
RUN_WINDOW = dt.timedelta(hours=6)  # no agreement may start or end this close to the run
EXAMPLES = 5  # violations listed by name, per kind


@dataclass(frozen=True, slots=True)
class Expectation:
    allowed: frozenset[Pair]
    denied: int  # (report, partner) pairs the agreements refuse
    refusals: Mapping[bytes, tuple[str, str]]  # submission key -> (rejected topic nation, reason)
    valid_keys: frozenset[bytes]


def expected(
    policies_dir: Path,
    catalog: SchemaCatalog,
    *,
    registry: PartnerRegistry,
    submissions: Iterable[Submission],
    topics: TopicNames,
    now: dt.datetime,
) -> Expectation:
    """Decide every (valid report, partner) pair now, as an enforcer would."""
    bundle = load_bundle(policies_dir, catalog)
    now_s = int(now.timestamp())
    near = [b for b in bundle.time_boundaries_s() if abs(b - now_s) < RUN_WINDOW.total_seconds()]
    if near:
        raise ConfigurationError("an agreement starts or ends within hours of the run")
    partners = frozenset(p for a in bundle.agreements for p in a.parties) | registry.nations()
    decider = _Decider(RegoDecisionPoint(bundle), partners, now_s)
    allowed: set[Pair] = set()
    denied = 0
    refusals: dict[bytes, tuple[str, str]] = {}
    valid_keys: set[bytes] = set()
    for submission in submissions:
        key = submission.record.key or b""
        if submission.refusal is not None:
            nation = topics.nation_of_submit_topic(submission.record.topic) or "?"
            refusals[key] = (nation, submission.refusal.value)
            continue
        valid_keys.add(key)
        for recipient, allow in decider.decide(submission.report):
            if allow:
                allowed.add((str(submission.report.report_id), recipient))
            else:
                denied += 1
    return Expectation(frozenset(allowed), denied, refusals, frozenset(valid_keys))


class _Decider:
    """Decides each distinct input once.

    The policy reads the observation time only to place the embargo's
    not-before instant at a fixed delay after it (policies/ixb/sharing.rego),
    so a decision is remembered without it, with that delay.
    """

    def __init__(self, point: RegoDecisionPoint, partners: frozenset[str], now_s: int) -> None:
        self._point = point
        self._partners = partners
        self._now_s = now_s
        self._known: dict[DecisionInput, tuple[bool, int | None]] = {}

    def decide(self, report: ThreatReport) -> Iterable[tuple[str, bool]]:
        observed_at_s = int(report.observed_at.timestamp())
        recipients = sorted(self._partners - {report.origin})
        for full in decision_inputs(report, recipients, now_s=self._now_s):
            recipient = full.recipient
            asked = full.model_copy(update={"observed_at_s": 0})  # embargoes: checked below
            if asked not in self._known:
                decision = self._point.decide(full)
                delay = (
                    None if decision.not_before_s is None else decision.not_before_s - observed_at_s
                )
                self._known[asked] = (decision.allow, delay)
            allow, delay = self._known[asked]
            if delay is not None and observed_at_s + delay > self._now_s:
                raise ConfigurationError(
                    f"report {report.report_id} would be held under an embargo; "
                    "the workload must observe further in the past"
                )
            yield recipient, allow


@dataclass
class Observation:
    """Everything the output topics hold, as a recipient and an operator would read it."""

    delivery_records: int = 0  # before de-duplication
    pairs: dict[Pair, set[str]] = field(default_factory=lambda: defaultdict(set))  # -> ids
    feed_problems: Counter[str] = field(default_factory=Counter)
    rejections: dict[bytes, list[tuple[str, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )  # key -> [(rejected topic nation, reason)]
    rejection_records: int = 0


async def observe(
    bootstrap: str,
    topics: TopicNames,
    catalog: SchemaCatalog,
    registry: PartnerRegistry,
    nations: Iterable[str],
    *,
    agreements: AgreementSource,
    keys: DecryptionKeys,
    idle_timeout_s: float = 3.0,
) -> Observation:
    seen = Observation()
    for nation in nations:
        async for item in read_feed(
            bootstrap=bootstrap,
            topics=topics,
            nation=nation,
            catalog=catalog,
            registry=lambda: registry,
            agreements=agreements,
            keys=keys,
            idle_timeout_s=idle_timeout_s,
            deduplicate=False,
        ):
            if isinstance(item, FeedProblem):
                seen.feed_problems[item.reason] += 1
                continue
            seen.delivery_records += 1
            seen.pairs[str(item.report.report_id), item.recipient].add(item.delivery_id)
        async for record in read_topic(
            bootstrap, topics.rejected(nation), idle_timeout_s=idle_timeout_s
        ):
            seen.rejection_records += 1
            reason = str(rejection_json(catalog, record.value or b"")["reason"])
            seen.rejections[record.key or b""].append((nation, reason))
    return seen


@dataclass(frozen=True, slots=True)
class Verdict:
    """Counts, and a few examples of each violation; ``ok`` when there are none."""

    counts: dict[str, int]
    violations: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())


VIOLATIONS = (
    "missing",  # an allowed pair never delivered
    "unexpected",  # a delivered pair the agreements refuse (or of a refused submission)
    "split_delivery_ids",  # one pair delivered under two delivery ids
    "feed_problems",  # a record on a feed that does not verify
    "refusal_missing",  # a submission to refuse that is not on its rejected topic
    "refusal_wrong_reason",  # ... that is there, with another reason or on another topic
    "valid_rejected",  # a valid submission on a rejected topic
)


def judge(expectation: Expectation, seen: Observation) -> Verdict:
    delivered = frozenset(seen.pairs)
    missing = sorted(expectation.allowed - delivered)
    unexpected = sorted(delivered - expectation.allowed)
    split = sorted(pair for pair, ids in seen.pairs.items() if len(ids) > 1)
    distinct = sum(len(ids) for ids in seen.pairs.values())
    refusal_missing, wrong_reason = [], []
    for key, want in sorted(expectation.refusals.items()):
        got = seen.rejections.get(key, [])
        if not got:
            refusal_missing.append(f"{key.decode()} ({want[1]} on {want[0]})")
        elif any(g != want for g in got):
            wrong_reason.append(f"{key.decode()}: want {want}, got {sorted(set(got))}")
    valid_rejected = sorted(
        f"{k.decode()}: {sorted(set(v))}"
        for k, v in seen.rejections.items()
        if k in expectation.valid_keys
    )
    refusals_found = sum(1 for k in expectation.refusals if seen.rejections.get(k))
    counts = {
        "expected_pairs": len(expectation.allowed),
        "denied_pairs": expectation.denied,
        "delivery_records": seen.delivery_records,
        "delivered_pairs": len(delivered),
        "duplicates": seen.delivery_records - distinct,
        "refusals_expected": len(expectation.refusals),
        "refusals_found": refusals_found,
        "rejection_records": seen.rejection_records,
        "rejection_duplicates": sum(len(v) - 1 for v in seen.rejections.values() if v),
    }
    violations = {
        "missing": [f"{r} -> {n}" for r, n in missing],
        "unexpected": [f"{r} -> {n}" for r, n in unexpected],
        "split_delivery_ids": [f"{r} -> {n}" for r, n in split],
        "feed_problems": [f"{reason} x{n}" for reason, n in seen.feed_problems.items()],
        "refusal_missing": refusal_missing,
        "refusal_wrong_reason": wrong_reason,
        "valid_rejected": valid_rejected,
    }
    for name in VIOLATIONS:
        counts[name] = len(violations[name])
    return Verdict(counts, violations)
