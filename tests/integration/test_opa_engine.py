"""The OPA-server decision point against a real OPA: push, verify, restarts, fail closed.

The server is the session's ``opa run --server`` (tests/support/opa_server.py),
empty at the start of every test; a test that needs the server loaded as a
centrally managed one would be starts its own with files. Faults OPA cannot
produce on demand (503, 500, bodies that are not JSON, slowness) are in
test_opa_faults.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from broker.domain.decisions import Decision
from broker.errors import ConfigurationError, PolicyUndecided
from broker.policy.bundle import PolicyBundle, load_bundle
from broker.policy.opa import OpaDecisionPoint
from broker.policy.rego import RegoDecisionPoint
from broker.resources import POLICIES_DIR
from broker.wire.codec import SchemaCatalog
from tests.integration.opa_support import (
    ask,
    assert_no_input_values,
    policy_dir_with,
    rego_only_bundle,
)
from tests.support.opa_server import OPA_VERSION, OpaServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real_bundle(catalog: SchemaCatalog) -> PolicyBundle:
    return load_bundle(POLICIES_DIR, catalog)


@pytest.fixture
def engine(opa: OpaServer, real_bundle: PolicyBundle) -> Iterator[OpaDecisionPoint]:
    with OpaDecisionPoint(real_bundle, opa.url, manage="push") as point:
        yield point


def agreements_json(bundle: PolicyBundle) -> object:
    return json.loads(json.dumps(bundle.data()["agreements"]))


def test_the_session_runs_the_pinned_opa_version(opa: OpaServer) -> None:
    printed = subprocess.run(
        [str(opa.binary), "version"], capture_output=True, text=True, check=True
    ).stdout

    assert f"Version: {OPA_VERSION}\n" in printed


def test_the_opa_command_of_docker_compose_serves_without_a_deprecation_warning() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    command = compose["services"]["opa"]["command"]
    assert command[:2] == ["run", "--server"]
    flags = [flag for flag in command[2:] if not flag.startswith("--addr=")]  # ours: loopback

    with OpaServer(flags=flags) as server:
        log = server.log_path.read_text()

    assert "Initializing server" in log  # the flags were read and the server came up
    assert "deprecated" not in log


# -- management: push and verify --------------------------------------------


def test_push_leaves_exactly_the_bundles_modules_and_agreements_on_the_server(
    engine: OpaDecisionPoint, opa: OpaServer, real_bundle: PolicyBundle
) -> None:
    assert opa.policies() == dict(real_bundle.modules)
    assert opa.document("agreements") == agreements_json(real_bundle)
    assert engine.bundle_hash == real_bundle.content_hash


def test_verify_accepts_a_server_loaded_from_files_and_uploads_nothing(
    real_bundle: PolicyBundle, tmp_path: Path
) -> None:
    # As a centrally managed OPA holds it: `opa run --server <dir>`, the module
    # named by its path there, agreements as agreements/data.json.
    served = tmp_path / "served"
    (served / "ixb").mkdir(parents=True)
    (served / "ixb" / "sharing.rego").write_text(real_bundle.modules["ixb/sharing.rego"])
    (served / "agreements").mkdir()
    (served / "agreements" / "data.json").write_text(json.dumps(real_bundle.data()["agreements"]))

    with OpaServer(served) as loaded:
        before = (loaded.policies(), loaded.document("agreements"))
        with OpaDecisionPoint(real_bundle, loaded.url, manage="verify") as verifier:
            decision = verifier.decide(ask())
        after = (loaded.policies(), loaded.document("agreements"))

    assert decision == RegoDecisionPoint(real_bundle).decide(ask())
    assert after == before
    [module_id] = before[0]
    assert module_id != "ixb/sharing.rego"  # OPA's id for it: its path, not the bundle's name
    assert module_id.endswith("served/ixb/sharing.rego")


def test_verify_refuses_different_agreement_data_naming_the_agreement_only(
    engine: OpaDecisionPoint, opa: OpaServer, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    directory = policy_dir_with(tmp_path / "policies")
    path = directory / "agreements" / "benelux-joint-patrol.yaml"
    changed = yaml.safe_load(path.read_text()) | {"max_marking": "TLP:RED"}
    path.write_text(yaml.safe_dump(changed))
    bundle = load_bundle(directory, catalog)

    with pytest.raises(ConfigurationError, match="benelux-joint-patrol") as refused:
        OpaDecisionPoint(bundle, opa.url, manage="verify")

    message = str(refused.value)
    assert "schengen-frontier-cooperation" not in message
    assert "TLP:RED" not in message


def test_verify_refuses_a_server_without_the_policy_modules(
    opa: OpaServer, real_bundle: PolicyBundle
) -> None:
    opa.put_data("agreements", real_bundle.data()["agreements"])

    with pytest.raises(ConfigurationError, match=r"missing or different.*ixb/sharing\.rego"):
        OpaDecisionPoint(real_bundle, opa.url, manage="verify")


def test_verify_refuses_a_server_without_agreement_data(
    opa: OpaServer, real_bundle: PolicyBundle
) -> None:
    for name, source in real_bundle.modules.items():
        opa.put_policy(name, source)

    with pytest.raises(ConfigurationError, match=r"data\.agreements is undefined"):
        OpaDecisionPoint(real_bundle, opa.url, manage="verify")


def test_push_refuses_a_server_holding_modules_outside_the_bundle(
    opa: OpaServer, real_bundle: PolicyBundle
) -> None:
    opa.put_policy("team-b/other.rego", "package other\n\nallow := true\n")

    with pytest.raises(ConfigurationError, match=r"not in the bundle: team-b/other\.rego"):
        OpaDecisionPoint(real_bundle, opa.url, manage="push")


def test_push_refuses_a_module_the_server_cannot_compile(
    opa: OpaServer, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    bundle = rego_only_bundle(tmp_path, catalog, "package ixb.sharing\n\ndecision := if {\n")

    with pytest.raises(ConfigurationError, match=r"refused policy module ixb/sharing\.rego"):
        OpaDecisionPoint(bundle, opa.url, manage="push")

    assert opa.policies() == {}


def test_an_unreachable_server_at_construction_is_a_configuration_error(
    opa: OpaServer, real_bundle: PolicyBundle
) -> None:
    opa.stop()

    with pytest.raises(ConfigurationError, match="unreachable"):
        OpaDecisionPoint(real_bundle, opa.url, timeout_s=0.5)


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8181", "ftp://127.0.0.1:8181", "http://127.0.0.1:8181/opa", "http://:1"]
)
def test_a_url_opa_client_cannot_address_is_a_configuration_error(
    url: str, real_bundle: PolicyBundle
) -> None:
    with pytest.raises(ConfigurationError, match="OPA URL"):
        OpaDecisionPoint(real_bundle, url)


# -- a server that stops and comes back empty --------------------------------


def test_a_server_stopped_mid_stream_is_undecided_and_decides_again_once_restarted(
    engine: OpaDecisionPoint, opa: OpaServer, real_bundle: PolicyBundle
) -> None:
    before = engine.decide(ask())
    opa.stop()

    with pytest.raises(PolicyUndecided, match="unreachable") as undecided:
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())
    opa.start()  # in memory, as OPA runs by default: it comes back holding nothing
    assert engine.decide(ask()) == before
    assert engine.refills == 1
    assert opa.policies() == dict(real_bundle.modules)
    assert opa.document("agreements") == agreements_json(real_bundle)


def test_a_server_restarted_between_two_decisions_is_given_the_bundle_once(
    engine: OpaDecisionPoint, opa: OpaServer
) -> None:
    before = engine.decide(ask())
    opa.restart()

    assert [engine.decide(ask()) for _ in range(3)] == [before] * 3
    assert engine.refills == 1


def test_in_verify_mode_a_server_that_came_back_empty_is_undecided_and_left_empty(
    opa: OpaServer, real_bundle: PolicyBundle
) -> None:
    with OpaDecisionPoint(real_bundle, opa.url, manage="push"):
        pass  # something else loads the server; here, a push
    with OpaDecisionPoint(real_bundle, opa.url, manage="verify") as verifier:
        verifier.decide(ask())
        opa.restart()

        with pytest.raises(PolicyUndecided, match="undefined"):
            verifier.decide(ask())

        assert verifier.refills == 0
    assert opa.policies() == {}


def test_a_server_someone_else_loaded_after_a_restart_is_not_overwritten(
    engine: OpaDecisionPoint, opa: OpaServer
) -> None:
    engine.decide(ask())
    opa.restart()
    opa.put_policy("team-b/other.rego", "package other\n\nallow := true\n")

    with pytest.raises(PolicyUndecided, match="undefined"):
        engine.decide(ask())

    assert engine.refills == 0
    assert list(opa.policies()) == ["team-b/other.rego"]


# -- deciding ------------------------------------------------------------------


def test_an_undefined_decision_is_undecided(
    opa: OpaServer, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    source = (
        "package ixb.sharing\n\nimport rego.v1\n\n"
        'decision := {"allow": false, "reasons": ["never"]} if input.origin == "none"\n'
    )
    bundle = rego_only_bundle(tmp_path, catalog, source)

    with (
        OpaDecisionPoint(bundle, opa.url) as engine,
        pytest.raises(PolicyUndecided, match="undefined") as undecided,
    ):
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())
    assert engine.refills == 0, "a server holding the bundle is not pushed to again"


def test_a_decision_that_is_false_rather_than_an_object_is_undecided(
    opa: OpaServer, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    bundle = rego_only_bundle(tmp_path, catalog, "package ixb.sharing\n\ndecision := false\n")

    with (
        OpaDecisionPoint(bundle, opa.url) as engine,
        pytest.raises(PolicyUndecided, match="malformed") as undecided,
    ):
        engine.decide(ask())

    assert_no_input_values(str(undecided.value), ask())


def test_a_decision_names_the_local_bundle_it_was_checked_against(
    engine: OpaDecisionPoint, opa: OpaServer, real_bundle: PolicyBundle
) -> None:
    evaluations = opa.evaluations()

    decision = engine.decide(ask())

    assert isinstance(decision, Decision)
    assert decision.bundle_hash == real_bundle.content_hash
    assert opa.evaluations() == evaluations + 1
