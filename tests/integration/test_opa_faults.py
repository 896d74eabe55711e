"""Faults a real OPA does not make on demand: every one is PolicyUndecided, never a deny.

A TEST DOUBLE (tests/support/opa_fault_double.py) stands between the
decision point and the session's real OPA server: it forwards everything
and answers for OPA only with the fault a test asks for.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.errors import PolicyUndecided
from broker.policy.bundle import PolicyBundle, load_bundle
from broker.policy.opa import OpaDecisionPoint
from broker.resources import POLICIES_DIR
from broker.wire.codec import SchemaCatalog
from tests.integration.opa_support import ask, assert_no_input_values
from tests.support.opa_fault_double import OpaFaultDouble
from tests.support.opa_server import OpaServer


@pytest.fixture(scope="module")
def real_bundle(catalog: SchemaCatalog) -> PolicyBundle:
    return load_bundle(POLICIES_DIR, catalog)


@pytest.fixture
def faults(opa: OpaServer) -> Iterator[OpaFaultDouble]:
    with OpaFaultDouble(opa.url) as double:
        yield double


@pytest.fixture
def engine(faults: OpaFaultDouble, real_bundle: PolicyBundle) -> Iterator[OpaDecisionPoint]:
    with OpaDecisionPoint(real_bundle, faults.url, manage="push") as point:
        yield point


def test_decisions_through_the_double_are_the_real_servers(
    engine: OpaDecisionPoint, faults: OpaFaultDouble, opa: OpaServer
) -> None:
    evaluations = opa.evaluations()

    assert engine.decide(ask()).allow

    assert opa.evaluations() == evaluations + 1
    assert faults.forwarded_evaluations == 1


def test_a_server_answering_503_is_undecided_until_it_answers_again(
    engine: OpaDecisionPoint, faults: OpaFaultDouble
) -> None:
    before = engine.decide(ask())
    faults.answer_unavailable()

    with pytest.raises(PolicyUndecided, match="HTTP 503") as undecided:
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())
    faults.resume()
    assert engine.decide(ask()) == before


def test_an_http_500_is_undecided_for_that_evaluation_only(
    engine: OpaDecisionPoint, faults: OpaFaultDouble
) -> None:
    faults.fail_next_evaluations(1)

    with pytest.raises(PolicyUndecided, match="HTTP 500") as undecided:
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())
    assert engine.decide(ask()).allow


def test_an_answer_that_is_not_json_is_undecided(
    engine: OpaDecisionPoint, faults: OpaFaultDouble
) -> None:
    faults.garble_next_evaluations(1)

    with pytest.raises(PolicyUndecided, match="not JSON") as undecided:
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())


def test_a_server_slower_than_the_timeout_is_undecided(
    faults: OpaFaultDouble, real_bundle: PolicyBundle
) -> None:
    with OpaDecisionPoint(real_bundle, faults.url, timeout_s=0.2) as engine:
        faults.delay_next_evaluations(1, seconds=3.0)

        with pytest.raises(PolicyUndecided, match="did not answer") as undecided:
            engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())


def test_a_push_uploads_the_agreements_before_the_module_that_reads_them(
    faults: OpaFaultDouble, real_bundle: PolicyBundle
) -> None:
    """Other enforcers may ask while one refills a restarted server: the module
    without the agreements would deny everything (withheld for good), the
    agreements without the module leave decisions undefined (held)."""
    with OpaDecisionPoint(real_bundle, faults.url, manage="push"):
        pass

    writes = [path for method, path in faults.requests if method == "PUT"]
    assert writes == ["/v1/data/agreements", "/v1/policies/ixb/sharing.rego"]
