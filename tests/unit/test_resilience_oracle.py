"""The resilience oracle catches each kind of violation it claims to catch.

The oracle is what makes the resilience run worth anything: if it could not
see a missing or an extra delivery, a clean run would prove nothing. These
tests hand it observations with one violation each.
"""

from __future__ import annotations

import datetime as dt

import pytest

from bench.resilience.oracle import Expectation, Observation, Verdict, expected, judge
from bench.resilience.workload import Submission
from broker.errors import ConfigurationError
from broker.resources import POLICIES_DIR
from broker.trust.records import PartnerRegistry
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from broker.wire.topics import TopicNames
from tests.factories import make_report

EXPECTATION = Expectation(
    allowed=frozenset({("r1", "BE"), ("r1", "DE"), ("r2", "BE")}),
    denied=3,
    refusals={b"bad": ("NL", "bad_signature")},
    valid_keys=frozenset({b"r1", b"r2"}),
)


def _seen(*deliveries: tuple[str, str, str]) -> Observation:
    """(report id, recipient, delivery id) records, plus the expected refusal."""
    seen = Observation()
    for report_id, recipient, delivery_id in deliveries:
        seen.delivery_records += 1
        seen.pairs[report_id, recipient].add(delivery_id)
    seen.rejections[b"bad"].append(("NL", "bad_signature"))
    seen.rejection_records += 1
    return seen


ALL = (("r1", "BE", "d1"), ("r1", "DE", "d2"), ("r2", "BE", "d3"))


def test_every_allowed_pair_once_and_its_refusal_is_no_violation() -> None:
    verdict = judge(EXPECTATION, _seen(*ALL))

    assert verdict.ok
    assert verdict.counts["duplicates"] == 0
    assert verdict.counts["delivered_pairs"] == 3


def test_a_repeated_delivery_id_counts_as_a_duplicate_not_a_violation() -> None:
    verdict = judge(EXPECTATION, _seen(*ALL, ("r1", "BE", "d1")))

    assert verdict.ok
    assert verdict.counts["duplicates"] == 1


def test_an_allowed_pair_never_delivered_is_missing() -> None:
    verdict = judge(EXPECTATION, _seen(*ALL[:2]))

    assert verdict.violations["missing"] == ["r2 -> BE"]
    assert not verdict.ok


def test_a_pair_the_agreements_refuse_is_unexpected() -> None:
    verdict = judge(EXPECTATION, _seen(*ALL, ("r2", "DE", "d4")))

    assert verdict.violations["unexpected"] == ["r2 -> DE"]


def test_one_pair_under_two_delivery_ids_is_a_violation() -> None:
    verdict = judge(EXPECTATION, _seen(*ALL, ("r2", "BE", "d5")))

    assert verdict.violations["split_delivery_ids"] == ["r2 -> BE"]


def test_a_refusal_absent_or_for_another_reason_is_a_violation() -> None:
    seen = _seen(*ALL)
    seen.rejections[b"bad"] = [("NL", "unknown_key")]
    assert verdict_names(judge(EXPECTATION, seen)) == {"refusal_wrong_reason"}

    seen.rejections.clear()
    assert verdict_names(judge(EXPECTATION, seen)) == {"refusal_missing"}


def test_a_valid_submission_on_a_rejected_topic_is_a_violation() -> None:
    seen = _seen(*ALL)
    seen.rejections[b"r2"].append(("NL", "internal_error"))

    assert verdict_names(judge(EXPECTATION, seen)) == {"valid_rejected"}


def verdict_names(verdict: Verdict) -> set[str]:
    return {name for name, found in verdict.violations.items() if found}


def test_the_oracle_refuses_a_workload_an_embargo_would_hold(catalog: SchemaCatalog) -> None:
    now = dt.datetime.now(dt.UTC)
    # Benelux: terrorism reaches the partner two hours after the observation.
    recent = make_report(
        "BE",
        report_type="terrorism",
        handling_code="H2",
        observed_at=now - dt.timedelta(minutes=15),
    )
    submission = Submission(OutboundRecord("ixb.submit.BE", b"k", b""), recent)

    with pytest.raises(ConfigurationError, match="embargo"):
        expected(
            POLICIES_DIR,
            catalog,
            registry=PartnerRegistry([]),
            submissions=[submission],
            topics=TopicNames(),
            now=now,
        )


def test_the_oracle_decides_with_the_repository_policies(catalog: SchemaCatalog) -> None:
    now = dt.datetime.now(dt.UTC)
    smuggling = make_report("NL", report_type="smuggling", handling_code="H1")
    submission = Submission(OutboundRecord("ixb.submit.NL", b"k", b""), smuggling)

    expectation = expected(
        POLICIES_DIR,
        catalog,
        registry=PartnerRegistry([]),
        submissions=[submission],
        topics=TopicNames(),
        now=now,
    )

    # Schengen: NL's smuggling reports go to the three other parties, to no one else.
    report_id = str(smuggling.report_id)
    assert expectation.allowed == {(report_id, n) for n in ("BE", "DE", "FR")}
    assert expectation.denied == 3  # US, CA, MX
