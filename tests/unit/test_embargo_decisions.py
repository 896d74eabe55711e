"""Embargoes in decisions: the cache never returns another observation's not-before instant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from broker.domain.agreements import Facet, FieldAction, FieldRule
from broker.domain.decisions import AgreementRef, Decision, DecisionInput
from broker.domain.report import HandlingCode, Marking, ReportType
from broker.policy.bundle import PolicyBundle, load_bundle
from broker.policy.cache import CachedDecisionPoint
from broker.policy.rego import RegoDecisionPoint
from broker.resources import POLICIES_DIR
from broker.wire.codec import SchemaCatalog

REAL = load_bundle(POLICIES_DIR, SchemaCatalog.load())  # the real agreements, read once
PARTIES = sorted({n for a in REAL.agreements for n in a.parties} | {"GB"})  # GB: party to none
BOUNDARIES = REAL.time_boundaries_s()
DELAYS = sorted(
    {r.after for a in REAL.agreements for rs in a.field_rules.values() for r in rs if r.after}
)


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return REAL


@pytest.fixture(scope="module")
def engine(bundle: PolicyBundle) -> RegoDecisionPoint:
    return RegoDecisionPoint(bundle)


@pytest.fixture(scope="module")
def cached(bundle: PolicyBundle, engine: RegoDecisionPoint) -> CachedDecisionPoint:
    """One cache for every example, so that later examples are answered from it."""
    return CachedDecisionPoint(engine, bundle.time_boundaries_s())


def embargoed_inputs(bundle: PolicyBundle) -> Iterator[tuple[DecisionInput, int]]:
    """An allowed input per (agreement, report type) with an embargo, and its delay."""
    for agreement in bundle.agreements:
        senders, receivers = agreement.senders_and_receivers()
        for report_type in agreement.report_types:
            delays = [r.after for r in agreement.rules_for(report_type) if r.after is not None]
            pairs = [(s, r) for s in senders for r in receivers if s != r]
            if not delays or not pairs:
                continue
            yield (
                DecisionInput(
                    origin=pairs[0][0],
                    recipient=pairs[0][1],
                    report_type=report_type,
                    marking=Marking.CLEAR,
                    handling_code=HandlingCode.H0,
                    now_s=int(agreement.valid_from.timestamp()) + 86_400,
                ),
                max(delays),
            )


def test_the_real_agreements_embargo_some_reports(bundle: PolicyBundle) -> None:
    assert list(embargoed_inputs(bundle))


def test_a_cached_decision_carries_the_not_before_of_its_own_observation(
    bundle: PolicyBundle, engine: RegoDecisionPoint
) -> None:
    for first, delay in embargoed_inputs(bundle):
        cache = CachedDecisionPoint(engine, bundle.time_boundaries_s())
        observations = [first.now_s - 3 * delay, first.now_s - delay, first.now_s, first.now_s + 5]
        for observed_at_s in observations:
            decision_input = first.model_copy(update={"observed_at_s": observed_at_s})

            decision = cache.decide(decision_input)

            assert decision == engine.decide(decision_input)
            assert decision.allow
            assert decision.not_before_s == observed_at_s + delay
        assert (cache.hits, cache.misses) == (len(observations) - 1, 1)


def test_a_report_without_an_embargo_has_no_not_before_whatever_its_observation(
    bundle: PolicyBundle, engine: RegoDecisionPoint
) -> None:
    cache = CachedDecisionPoint(engine, bundle.time_boundaries_s())
    smuggling = DecisionInput(
        origin="NL",
        recipient="DE",
        report_type=ReportType.SMUGGLING,
        marking=Marking.GREEN,
        handling_code=HandlingCode.H1,
        now_s=bundle.time_boundaries_s()[0] + 86_400 * 365 * 2,
    )
    for observed_at_s in (0, 1, smuggling.now_s):
        decision = cache.decide(smuggling.model_copy(update={"observed_at_s": observed_at_s}))

        assert decision.allow
        assert decision.not_before_s is None
        assert decision.embargo_s is None


def test_a_deny_carries_no_not_before(engine: RegoDecisionPoint, bundle: PolicyBundle) -> None:
    for decision_input, _ in embargoed_inputs(bundle):
        refused = decision_input.model_copy(update={"marking": Marking.RED, "observed_at_s": 7})

        decision = engine.decide(refused)

        assert not decision.allow
        assert decision.not_before_s is None


# --- property: cache and engine agree on every input, around every boundary --

# (origin, recipient, report type) some agreement covers, and those it embargoes:
# drawn two times in three, so that allows and embargoes are common examples.
COVERED = sorted(
    (sender, receiver, report_type)
    for a in REAL.agreements
    for sender in a.senders_and_receivers()[0]
    for receiver in a.senders_and_receivers()[1]
    if sender != receiver
    for report_type in a.report_types
)
EMBARGOED = [
    (origin, recipient, report_type)
    for origin, recipient, report_type in COVERED
    for a in REAL.agreements
    if origin in a.senders_and_receivers()[0]
    and recipient in a.senders_and_receivers()[1]
    and any(r.after for r in a.rules_for(report_type))
]
pairs = (
    st.sampled_from(EMBARGOED)
    | st.sampled_from(COVERED)
    | st.tuples(
        st.sampled_from(PARTIES), st.sampled_from(PARTIES), st.sampled_from(list(ReportType))
    )
)

instants = st.one_of(
    st.builds(int.__add__, st.sampled_from(BOUNDARIES), st.integers(-2, 2)),
    st.integers(BOUNDARIES[0] - 86_400, BOUNDARIES[-1] + 86_400),
)


@st.composite
def input_series(draw: st.DrawFn) -> list[DecisionInput]:
    """One declared input observed at several times: only observed_at_s differs."""
    now_s = draw(instants)
    observation = st.one_of(
        st.builds(int.__sub__, st.just(now_s), st.sampled_from([0, *DELAYS])).flatmap(
            lambda t: st.integers(t - 1, t + 1)
        ),
        instants,
        st.integers(0, 2**33),
    )
    origin, recipient, report_type = draw(pairs)
    base = DecisionInput(
        origin=origin,
        recipient=recipient,
        report_type=report_type,
        marking=draw(st.sampled_from(Marking)),
        handling_code=draw(st.sampled_from(HandlingCode)),
        facets=tuple(sorted(draw(st.sets(st.sampled_from(Facet))))),
        now_s=now_s,
    )
    observed = draw(st.lists(observation, min_size=1, max_size=3, unique=True))
    return [base.model_copy(update={"observed_at_s": o}) for o in observed]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series=input_series())
def test_cached_and_uncached_decisions_are_equal_whatever_the_observation_time(
    series: list[DecisionInput], cached: CachedDecisionPoint, engine: RegoDecisionPoint
) -> None:
    for decision_input in series:
        expected = engine.decide(decision_input)

        assert cached.decide(decision_input) == expected
        event(f"allow={expected.allow} embargo={expected.embargo_s is not None}")
        if expected.embargo_s is None:
            assert expected.not_before_s is None
        else:
            assert expected.not_before_s == decision_input.observed_at_s + expected.embargo_s


# --- embargo_s: the longest embargo among the rules -------------------------

field_rules = st.sampled_from(
    [
        FieldRule(field="subjects[].full_name", action=FieldAction.REDACT),
        FieldRule(field="location", action=FieldAction.GENERALISE, to="country"),
        FieldRule(field="vehicles[].registration", action=FieldAction.PSEUDONYMISE),
    ]
)
embargo_rules = st.builds(
    FieldRule, action=st.just(FieldAction.EMBARGO), after=st.integers(1, 366 * 86_400)
)


@settings(max_examples=200, deadline=None)
@given(rules=st.lists(field_rules | embargo_rules, max_size=8))
def test_the_embargo_is_the_longest_among_the_rules_and_none_without_one(
    rules: list[FieldRule],
) -> None:
    decision = Decision(
        allow=True, agreement=AgreementRef(id="x-y-z", version=1), field_rules=rules
    )

    delays = [r.after for r in rules if r.action is FieldAction.EMBARGO]
    if delays:
        assert decision.embargo_s is not None
        assert decision.embargo_s in delays
        assert all(decision.embargo_s >= d for d in delays if d is not None)
    else:
        assert decision.embargo_s is None
