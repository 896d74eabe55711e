"""The OPA-server decision point: same decisions as in-process Rego, and it fails closed.

The server is tests/support/opa_double.py, a test double of OPA's REST API
(no OPA binary runs here): these tests prove the HTTP path, the push/verify
management and the fail-closed handling, not that OPA and rego-cpp agree.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.domain.agreements import Facet
from broker.domain.decisions import Decision, DecisionInput
from broker.domain.report import HandlingCode, Marking, ReportType
from broker.errors import ConfigurationError, PolicyUndecided
from broker.policy.bundle import PolicyBundle, load_bundle
from broker.policy.opa import OpaDecisionPoint
from broker.policy.rego import RegoDecisionPoint
from broker.resources import POLICIES_DIR
from broker.wire.codec import SchemaCatalog
from tests.support.opa_double import OpaDataApiDouble

OUTSIDERS = ("ZZ", "QX")  # nations no agreement names
DAY_S = 86_400


def epoch(year: int, month: int, day: int) -> int:
    return int(dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp())


# Exercises what the real agreements do not: an embargo, an excluded facet and
# H2 with consent, so not_before_s and facets cross the wire too.
EXTENSION = {
    "id": "de-us-liaison",
    "version": 7,
    "title": "DE-US liaison exchange",
    "purpose": "Test agreement exercising embargo, excluded facets and H2 consent.",
    "parties": ["DE", "US"],
    "valid_from": "2025-09-01T00:00:00Z",
    "valid_until": "2027-01-01T00:00:00Z",
    "report_types": ["terrorism", "smuggling", "document_fraud"],
    "max_marking": "TLP:RED",
    "handling_codes": ["H0", "H1", "H2"],
    "h2_consent": {"DE": ["US"]},
    "excluded_facets": ["victims"],
    "field_rules": {
        "*": [{"action": "embargo", "after": "6h"}],
        "smuggling": [{"field": "subjects[].full_name", "action": "redact"}],
    },
}


def policy_dir_with(target: Path, *agreements: dict[str, Any]) -> Path:
    """The real Rego and real agreements under ``target``, plus ``agreements``."""
    shutil.copytree(POLICIES_DIR / "ixb", target / "ixb")
    shutil.copytree(POLICIES_DIR / "agreements", target / "agreements")
    for document in agreements:
        (target / "agreements" / f"{document['id']}.yaml").write_text(yaml.safe_dump(document))
    return target


def rego_only_bundle(directory: Path, catalog: SchemaCatalog, source: str) -> PolicyBundle:
    (directory / "ixb").mkdir(parents=True)
    (directory / "ixb" / "sharing.rego").write_text(source)
    (directory / "agreements").mkdir()
    return load_bundle(directory, catalog)


@pytest.fixture(scope="module")
def real_bundle(catalog: SchemaCatalog) -> PolicyBundle:
    return load_bundle(POLICIES_DIR, catalog)


@pytest.fixture
def double() -> Iterator[OpaDataApiDouble]:
    with OpaDataApiDouble() as server:
        yield server


@pytest.fixture
def engine(double: OpaDataApiDouble, real_bundle: PolicyBundle) -> Iterator[OpaDecisionPoint]:
    with OpaDecisionPoint(real_bundle, double.url, manage="push") as point:
        yield point


def ask(**changes: Any) -> DecisionInput:
    """A report the Schengen agreement lets NL send to BE, with distinctive times."""
    fields: dict[str, Any] = {
        "origin": "NL",
        "recipient": "BE",
        "report_type": ReportType.SMUGGLING,
        "marking": Marking.GREEN,
        "handling_code": HandlingCode.H1,
        "facets": (Facet.LOCATION,),
        "observed_at_s": epoch(2026, 3, 14) + 1234,
        "now_s": epoch(2026, 3, 15) + 5678,
    }
    fields.update(changes)
    return DecisionInput(**fields)


def assert_no_input_values(message: str, decision_input: DecisionInput) -> None:
    dumped = decision_input.model_dump(mode="json")
    values = [str(v) for k, v in dumped.items() if k != "facets"] + list(dumped["facets"])
    for value in values:
        assert value not in message


# -- equivalence with the in-process engine --------------------------------


@dataclass(frozen=True)
class Engines:
    """Both engines on one bundle, and the server the OPA one talks to."""

    bundle: PolicyBundle
    opa: OpaDecisionPoint
    rego: RegoDecisionPoint
    server: OpaDataApiDouble

    def __repr__(self) -> str:  # hypothesis prints it with every falsifying example
        return f"Engines(bundle={self.bundle.content_hash[:19]})"


@contextmanager
def engines_for(bundle: PolicyBundle) -> Iterator[Engines]:
    with OpaDataApiDouble() as server, OpaDecisionPoint(bundle, server.url) as opa:
        yield Engines(bundle, opa, RegoDecisionPoint(bundle), server)


@pytest.fixture(scope="module")
def real_engines(real_bundle: PolicyBundle) -> Iterator[Engines]:
    with engines_for(real_bundle) as engines:
        yield engines


@pytest.fixture(scope="module")
def extended_engines(
    catalog: SchemaCatalog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engines]:
    directory = policy_dir_with(tmp_path_factory.mktemp("policies"), EXTENSION)
    with engines_for(load_bundle(directory, catalog)) as engines:
        yield engines


@st.composite
def decision_inputs(draw: st.DrawFn, bundle: PolicyBundle) -> DecisionInput:
    """Any input, half of them between the parties of an agreement so allows are common."""
    nations = sorted({p for a in bundle.agreements for p in a.parties}) + list(OUTSIDERS)
    origin, recipient, report_type = (
        st.sampled_from(nations),
        st.sampled_from(nations),
        st.sampled_from(ReportType),
    )
    if draw(st.booleans()):
        agreement = draw(st.sampled_from(bundle.agreements))
        senders, receivers = agreement.senders_and_receivers()
        origin, recipient = st.sampled_from(senders), st.sampled_from(receivers)
        report_type = st.one_of(st.sampled_from(agreement.report_types), report_type)
    instants = sorted(
        {b + d for b in bundle.time_boundaries_s() for d in (-DAY_S, -1, 0, 1, DAY_S)}
    )
    spread = 400 * DAY_S
    times = st.one_of(
        st.sampled_from(instants),
        st.integers(min_value=instants[0] - spread, max_value=instants[-1] + spread),
    )
    return draw(
        st.builds(
            DecisionInput,
            origin=origin,
            recipient=recipient,
            report_type=report_type,
            marking=st.sampled_from(Marking),
            handling_code=st.sampled_from(HandlingCode),
            facets=st.lists(st.sampled_from(Facet), unique=True).map(lambda f: tuple(sorted(f))),
            observed_at_s=times,
            now_s=times,
        )
    )


def assert_same_decision(engines: Engines, decision_input: DecisionInput) -> None:
    evaluations = engines.server.evaluations

    expected = engines.rego.decide(decision_input)

    assert engines.opa.decide(decision_input) == expected
    assert engines.server.evaluations == evaluations + 1  # decided by the server, not elsewhere


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_opa_server_decides_exactly_as_in_process_rego(
    real_engines: Engines, data: st.DataObject
) -> None:
    assert_same_decision(real_engines, data.draw(decision_inputs(real_engines.bundle)))


@settings(max_examples=60, deadline=None)  # the 300 above cover the general case
@given(data=st.data())
def test_embargoes_excluded_facets_and_h2_consent_decide_the_same_through_the_server(
    extended_engines: Engines, data: st.DataObject
) -> None:
    assert_same_decision(extended_engines, data.draw(decision_inputs(extended_engines.bundle)))


def test_an_embargoed_allow_keeps_its_not_before_instant_through_the_server(
    extended_engines: Engines,
) -> None:
    observed = epoch(2026, 2, 1)
    decision_input = ask(
        origin="DE",
        recipient="US",
        report_type=ReportType.TERRORISM,
        handling_code=HandlingCode.H2,
        observed_at_s=observed,
        now_s=observed + 60,
    )

    decision = extended_engines.opa.decide(decision_input)

    assert decision == extended_engines.rego.decide(decision_input)
    assert decision.allow
    assert decision.not_before_s == observed + 6 * 3600


def test_decisions_from_several_threads_match_the_sequential_ones(
    engine: OpaDecisionPoint, real_bundle: PolicyBundle
) -> None:
    nations = sorted({p for a in real_bundle.agreements for p in a.parties})
    inputs = [ask(origin=o, recipient=r) for o in nations for r in nations]
    rego = RegoDecisionPoint(real_bundle)
    expected = [rego.decide(x) for x in inputs]

    with ThreadPoolExecutor(max_workers=6) as pool:
        decided = list(pool.map(engine.decide, inputs))

    assert decided == expected
    assert any(d.allow for d in decided)
    assert not all(d.allow for d in decided)


# -- management: push and verify --------------------------------------------


def test_push_leaves_exactly_the_bundles_modules_and_agreements_on_the_server(
    engine: OpaDecisionPoint, double: OpaDataApiDouble, real_bundle: PolicyBundle
) -> None:
    assert double.policies() == dict(real_bundle.modules)
    assert double.data() == json.loads(json.dumps(real_bundle.data()))
    assert engine.bundle_hash == real_bundle.content_hash


def test_verify_accepts_a_server_holding_the_bundle_and_uploads_nothing(
    double: OpaDataApiDouble, real_bundle: PolicyBundle
) -> None:
    # As `opa run /policies/ixb` would hold it: the module named by its path on the server.
    double.put_policy("/policies/ixb/sharing.rego", real_bundle.modules["ixb/sharing.rego"])
    double.put_data("agreements", real_bundle.data()["agreements"])
    before = (double.policies(), double.data())

    with OpaDecisionPoint(real_bundle, double.url, manage="verify") as verifier:
        assert verifier.decide(ask()) == RegoDecisionPoint(real_bundle).decide(ask())

    assert (double.policies(), double.data()) == before


def test_verify_refuses_different_agreement_data_naming_the_agreement_only(
    engine: OpaDecisionPoint,
    double: OpaDataApiDouble,
    catalog: SchemaCatalog,
    tmp_path: Path,
) -> None:
    directory = policy_dir_with(tmp_path / "policies")
    path = directory / "agreements" / "benelux-joint-patrol.yaml"
    changed = yaml.safe_load(path.read_text()) | {"max_marking": "TLP:RED"}
    path.write_text(yaml.safe_dump(changed))
    bundle = load_bundle(directory, catalog)

    with pytest.raises(ConfigurationError, match="benelux-joint-patrol") as refused:
        OpaDecisionPoint(bundle, double.url, manage="verify")

    message = str(refused.value)
    assert "schengen-frontier-cooperation" not in message
    assert "TLP:RED" not in message


def test_verify_refuses_a_server_without_the_policy_modules(
    double: OpaDataApiDouble, real_bundle: PolicyBundle
) -> None:
    double.put_data("agreements", real_bundle.data()["agreements"])

    with pytest.raises(ConfigurationError, match=r"missing or different.*ixb/sharing\.rego"):
        OpaDecisionPoint(real_bundle, double.url, manage="verify")


def test_verify_refuses_a_server_without_agreement_data(
    double: OpaDataApiDouble, real_bundle: PolicyBundle
) -> None:
    for name, source in real_bundle.modules.items():
        double.put_policy(name, source)

    with pytest.raises(ConfigurationError, match=r"data\.agreements is undefined"):
        OpaDecisionPoint(real_bundle, double.url, manage="verify")


def test_push_refuses_a_server_holding_modules_outside_the_bundle(
    double: OpaDataApiDouble, real_bundle: PolicyBundle
) -> None:
    double.put_policy("team-b/other.rego", "package other\n\nallow := true\n")

    with pytest.raises(ConfigurationError, match=r"not in the bundle: team-b/other\.rego"):
        OpaDecisionPoint(real_bundle, double.url, manage="push")


def test_push_refuses_a_module_the_server_cannot_compile(
    double: OpaDataApiDouble, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    bundle = rego_only_bundle(tmp_path, catalog, "package ixb.sharing\n\ndecision := if {\n")

    with pytest.raises(ConfigurationError, match=r"refused policy module ixb/sharing\.rego"):
        OpaDecisionPoint(bundle, double.url, manage="push")


def test_an_unreachable_server_at_construction_is_a_configuration_error(
    double: OpaDataApiDouble, real_bundle: PolicyBundle
) -> None:
    double.stop_serving()

    with pytest.raises(ConfigurationError, match="unreachable"):
        OpaDecisionPoint(real_bundle, double.url, timeout_s=0.5)


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8181", "ftp://127.0.0.1:8181", "http://127.0.0.1:8181/opa", "http://:1"]
)
def test_a_url_opa_client_cannot_address_is_a_configuration_error(
    url: str, real_bundle: PolicyBundle
) -> None:
    with pytest.raises(ConfigurationError, match="OPA URL"):
        OpaDecisionPoint(real_bundle, url)


# -- deciding: every failure is PolicyUndecided, never a deny ---------------


def test_a_server_stopped_mid_stream_is_undecided_until_it_is_back(
    engine: OpaDecisionPoint, double: OpaDataApiDouble
) -> None:
    before = engine.decide(ask())
    double.stop_serving()

    with pytest.raises(PolicyUndecided, match="unreachable") as undecided:
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())
    double.resume()
    assert engine.decide(ask()) == before


def test_a_server_answering_503_is_undecided(
    engine: OpaDecisionPoint, double: OpaDataApiDouble
) -> None:
    double.stop_serving(refuse=False)

    with pytest.raises(PolicyUndecided, match="HTTP 503") as undecided:
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())


def test_an_http_500_is_undecided_for_that_evaluation_only(
    engine: OpaDecisionPoint, double: OpaDataApiDouble
) -> None:
    double.fail_next_evaluations(1)

    with pytest.raises(PolicyUndecided, match="HTTP 500") as undecided:
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())
    assert engine.decide(ask()).allow


def test_an_answer_that_is_not_json_is_undecided(
    engine: OpaDecisionPoint, double: OpaDataApiDouble
) -> None:
    double.garble_next_evaluations(1)

    with pytest.raises(PolicyUndecided, match="not JSON") as undecided:
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())


def test_a_server_slower_than_the_timeout_is_undecided(
    double: OpaDataApiDouble, real_bundle: PolicyBundle
) -> None:
    with OpaDecisionPoint(real_bundle, double.url, timeout_s=0.2) as engine:
        double.delay_next_evaluations(1, seconds=3.0)

        with pytest.raises(PolicyUndecided, match="did not answer") as undecided:
            engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())


def test_an_undefined_decision_is_undecided(
    double: OpaDataApiDouble, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    source = (
        "package ixb.sharing\n\nimport rego.v1\n\n"
        'decision := {"allow": false, "reasons": ["never"]} if input.origin == "none"\n'
    )
    bundle = rego_only_bundle(tmp_path, catalog, source)

    with (
        OpaDecisionPoint(bundle, double.url) as engine,
        pytest.raises(PolicyUndecided, match="undefined") as undecided,
    ):
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())


def test_a_decision_that_is_false_rather_than_an_object_is_undecided(
    double: OpaDataApiDouble, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    bundle = rego_only_bundle(tmp_path, catalog, "package ixb.sharing\n\ndecision := false\n")

    with (
        OpaDecisionPoint(bundle, double.url) as engine,
        pytest.raises(PolicyUndecided, match="malformed") as undecided,
    ):
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())


def test_a_decision_names_the_local_bundle_it_was_checked_against(
    engine: OpaDecisionPoint, real_bundle: PolicyBundle
) -> None:
    decision = engine.decide(ask())

    assert isinstance(decision, Decision)
    assert decision.bundle_hash == real_bundle.content_hash
