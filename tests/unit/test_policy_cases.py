"""Runs the policy tests kept as data in policies/tests/*.yaml against real agreements.

A case file decides against the shipped policies/agreements/ unless it
names its own ``agreements:`` directory (the overlap cases do: the shipped
set has no overlaps to test). Either way the Rego is the shipped one.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import tempfile
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

CASES_DIR = POLICIES_DIR / "tests"


def _cases() -> list[Any]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        for case in document["cases"]:
            param = (document.get("agreements"), case)
            cases.append(pytest.param(param, id=f"{path.stem}: {case['name']}"))
    return cases


def _epoch(value: object) -> int:
    if isinstance(value, int):
        return value
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return int(when.timestamp())


@functools.cache
def _policy(agreements: str | None) -> RegoDecisionPoint:
    """The shipped Rego over the shipped agreements, or over a case file's own."""
    if agreements is None:
        return RegoDecisionPoint(load_bundle(POLICIES_DIR, SchemaCatalog.load()))
    with tempfile.TemporaryDirectory(prefix="ixb-policy-cases-") as tmp:
        root = Path(tmp)
        shutil.copytree(POLICIES_DIR / "ixb", root / "ixb")
        shutil.copytree(CASES_DIR / agreements, root / "agreements")
        return RegoDecisionPoint(load_bundle(root, SchemaCatalog.load()))


def test_the_policy_test_files_hold_cases() -> None:
    assert len(_cases()) >= 10
    assert Path(CASES_DIR).is_dir()


@pytest.mark.parametrize("param", _cases())
def test_the_agreements_decide_as_the_policy_case_says(param: tuple[str | None, Any]) -> None:
    agreements, case = param
    given = dict(case["input"])
    now_s = _epoch(given.pop("at"))
    observed_at_s = _epoch(given.pop("observed_at", given.get("at", now_s)))
    decision = _policy(agreements).decide(
        DecisionInput(**given, observed_at_s=observed_at_s, now_s=now_s)
    )
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
    if "governing" in expected:
        assert [a.id for a in decision.governing] == expected["governing"]
    if "set_aside" in expected:
        assert [s.model_dump() for s in decision.set_aside] == expected["set_aside"]
    if "not_covering" in expected:
        assert list(decision.not_covering) == expected["not_covering"]
