"""Runs the policy tests kept as data in policies/tests/*.yaml against the real agreements."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.domain.decisions import DecisionInput
from broker.enforcer.stages.derive import effective_rules
from broker.policy.bundle import load_bundle
from broker.policy.rego import RegoDecisionPoint
from broker.resources import POLICIES_DIR
from broker.wire.codec import SchemaCatalog


def _cases() -> list[Any]:
    cases = []
    for path in sorted((POLICIES_DIR / "tests").glob("*.yaml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            cases.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return cases


def _epoch(value: object) -> int:
    if isinstance(value, int):
        return value
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return int(when.timestamp())


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
    now_s = _epoch(given.pop("at"))
    observed_at_s = _epoch(given.pop("observed_at", given.get("at", now_s)))
    decision = real_policy.decide(DecisionInput(**given, observed_at_s=observed_at_s, now_s=now_s))
    expected = case["expect"]

    assert decision.allow is expected["allow"]
    if expected["allow"]:
        assert decision.agreement is not None
        assert decision.agreement.model_dump() == expected["agreement"]
        effective = effective_rules(decision.field_rules)
        assert sorted(effective.withheld) == expected["withheld"]
        derived = [r.model_dump(mode="json", exclude_none=True) for r in effective.derived]
        assert sorted(derived, key=str) == sorted(expected.get("derived", []), key=str)
        not_before = expected.get("not_before")
        assert decision.not_before_s == (None if not_before is None else _epoch(not_before))
        assert decision.reasons == ()
    else:
        assert list(decision.reasons) == expected["reasons"]
        assert decision.agreement is None
