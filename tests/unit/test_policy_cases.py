"""Runs the policy tests kept as data in policies/tests/*.yaml against the real agreements."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.codec import SchemaCatalog
from broker.domain.decisions import DecisionInput
from broker.policy.bundle import POLICIES_DIR, load_bundle
from broker.policy.rego import RegoDecisionPoint


def _cases() -> list[Any]:
    cases = []
    for path in sorted((POLICIES_DIR / "tests").glob("*.yaml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            cases.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return cases


@pytest.fixture(scope="module")
def real_policy() -> RegoDecisionPoint:
    return RegoDecisionPoint(load_bundle(POLICIES_DIR, SchemaCatalog.load()))


def test_the_policy_test_files_hold_cases() -> None:
    assert len(_cases()) >= 10
    assert Path(POLICIES_DIR / "tests").is_dir()


@pytest.mark.parametrize("case", _cases())
def test_the_real_agreements_decide_as_the_policy_case_says(
    case: dict[str, Any], real_policy: RegoDecisionPoint
) -> None:
    given = dict(case["input"])
    at = given.pop("at")
    when = at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(str(at))
    decision = real_policy.decide(DecisionInput(**given, now_s=int(when.timestamp())))
    expected = case["expect"]

    assert decision.allow is expected["allow"]
    if expected["allow"]:
        assert decision.agreement is not None
        assert decision.agreement.model_dump() == expected["agreement"]
        assert sorted(r.field for r in decision.field_rules) == expected["withheld"]
        assert decision.reasons == ()
    else:
        assert list(decision.reasons) == expected["reasons"]
        assert decision.agreement is None
