"""The decision cache gives the engine's decisions, evaluating each distinct input once."""

from __future__ import annotations

import itertools

import pytest

from broker.domain.decisions import Decision, DecisionInput
from broker.domain.report import HandlingCode, Marking, ReportType
from broker.errors import PolicyUndecided
from broker.policy.bundle import PolicyBundle, load_bundle
from broker.policy.cache import CachedDecisionPoint
from broker.policy.rego import RegoDecisionPoint
from broker.resources import POLICIES_DIR
from broker.wire.codec import SchemaCatalog

NATIONS = ["NL", "BE", "DE", "US", "CA"]


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return load_bundle(POLICIES_DIR, SchemaCatalog.load())


def _inputs(now_s: int) -> list[DecisionInput]:
    return [
        DecisionInput(
            origin=origin,
            recipient=recipient,
            report_type=report_type,
            marking=marking,
            handling_code=HandlingCode.H1,
            now_s=now_s,
        )
        for origin, recipient in itertools.permutations(NATIONS, 2)
        for report_type in (ReportType.SMUGGLING, ReportType.WATCHLIST_HIT)
        for marking in (Marking.GREEN, Marking.AMBER_STRICT)
    ]


def test_cached_decisions_equal_the_engines_on_both_sides_of_every_validity_boundary(
    bundle: PolicyBundle,
) -> None:
    engine = RegoDecisionPoint(bundle)
    cached = CachedDecisionPoint(engine, bundle.time_boundaries_s())
    instants = [t + d for t in bundle.time_boundaries_s() for d in (-1, 0, 1)]
    assert instants, "the real agreements have validity boundaries"
    for now_s in instants:
        for decision_input in _inputs(now_s):
            assert cached.decide(decision_input) == engine.decide(decision_input)
    # Asked again at the same instants, everything comes from the cache.
    misses = cached.misses
    for now_s in instants:
        for decision_input in _inputs(now_s):
            assert cached.decide(decision_input) == engine.decide(decision_input)
    assert cached.misses == misses


def test_a_repeated_input_is_answered_from_the_cache_until_the_next_boundary(
    bundle: PolicyBundle,
) -> None:
    cached = CachedDecisionPoint(RegoDecisionPoint(bundle), bundle.time_boundaries_s())
    start = bundle.time_boundaries_s()[-1] + 10
    first = _inputs(start)[0]

    cached.decide(first)
    cached.decide(first.model_copy(update={"now_s": start + 86_400}))

    assert (cached.hits, cached.misses) == (1, 1)
    assert cached.hit_rate == 0.5


class _FlakyEngine:
    """Test double of the PolicyDecisionPoint protocol: undecided once, then deciding."""

    bundle_hash = "sha256:test"

    def __init__(self, decision: Decision) -> None:
        self.calls = 0
        self._decision = decision

    def decide(self, decision_input: DecisionInput) -> Decision:
        self.calls += 1
        if self.calls == 1:
            raise PolicyUndecided("engine unavailable")
        return self._decision


def test_an_undecided_result_is_not_cached() -> None:
    deny = Decision(allow=False, reasons=("no_agreement",))
    engine = _FlakyEngine(deny)
    cached = CachedDecisionPoint(engine, [])
    decision_input = _inputs(0)[0]

    with pytest.raises(PolicyUndecided):
        cached.decide(decision_input)
    assert cached.decide(decision_input) == deny
    assert engine.calls == 2
