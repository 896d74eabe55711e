"""`ixb agreements explain` tells an officer what the agreements decide, and why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from broker.cli.main import app
from broker.resources import POLICIES_DIR
from connectors.json_file import dump_report
from tests.factories import make_report

runner = CliRunner()


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.json"
    path.write_text(dump_report(make_report("NL", report_type="human_trafficking")))
    return path


def _explain(report_file: Path, origin: str, recipient: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["agreements", "explain", "--from", origin, "--to", recipient, str(report_file)],
        env={"COLUMNS": "200"},
    )
    return result.exit_code, result.output


def test_an_allowed_flow_names_the_agreement_and_every_field_rule(report_file: Path) -> None:
    code, output = _explain(report_file, "NL", "DE")

    assert code == 0
    assert "deliver NL → DE" in output
    assert "schengen-frontier-cooperation v4" in output
    for field in ("subjects[].full_name", "subjects[].travel_documents[].number"):
        assert f"redact: {field}" in output
    assert "generalise to year: subjects[].date_of_birth" in output
    assert "generalise to 0.1deg: location" in output


def test_a_refused_flow_says_why(report_file: Path) -> None:
    code, output = _explain(report_file, "NL", "US")

    assert code == 0
    assert "withhold NL → US" in output
    assert "because no_agreement" in output


def test_a_malformed_nation_is_an_error_naming_the_field(report_file: Path) -> None:
    code, output = _explain(report_file, "NL", "nl")

    assert code == 2
    assert "recipient" in output


# --- under an overlap ------------------------------------------------------------


@pytest.fixture
def overlap_policies(tmp_path: Path) -> Path:
    """The shipped Rego over the overlapping agreements of the policy tests."""
    root = tmp_path / "policies"
    shutil.copytree(POLICIES_DIR / "ixb", root / "ixb")
    shutil.copytree(POLICIES_DIR / "tests" / "overlaps", root / "agreements")
    return root


def _explain_under(
    policies: Path, report_file: Path, origin: str, recipient: str, *extra: str
) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["agreements", "explain", "--from", origin, "--to", recipient, str(report_file), *extra],
        env={"IXB_POLICIES_DIR": str(policies), "IXB_HOME": str(policies.parent / "home")},
    )
    return result.exit_code, result.output


def _report(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / "overlap-report.json"
    path.write_text(dump_report(make_report("NL", **fields)))
    return path


def test_under_an_overlap_explain_names_every_governing_agreement_and_whose_pseudonyms(
    overlap_policies: Path, tmp_path: Path
) -> None:
    report = _report(tmp_path, report_type="human_trafficking", marking="TLP:GREEN")

    code, output = _explain_under(
        overlap_policies, report, "NL", "BE", "--at", "2026-11-22T12:00:00Z"
    )

    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == (
        "deliver NL → BE: human_trafficking TLP:GREEN H1 under frontier-multilateral v2"
    )
    assert (
        "  governed together by frontier-multilateral v2, nl-be-operational v5: any prohibition "
        "refuses, the strictest rule per field and the longest embargo apply"
    ) in lines
    assert "  redact: subjects[].travel_documents[].number" in lines
    assert "  generalise to 0.1deg: location" in lines
    [pseudonyms] = [line for line in lines if line.startswith("  pseudonyms: ")]
    assert "keyed by frontier-multilateral's secret (the authorising agreement)" in pseudonyms
    assert "BE can link them with the pseudonyms of the same values in other deliveries" in (
        pseudonyms
    )


def test_under_an_overlap_explain_says_which_agreement_refuses_and_which_does_not_cover(
    overlap_policies: Path, tmp_path: Path
) -> None:
    report = _report(tmp_path, report_type="smuggling", marking="TLP:AMBER")

    code, output = _explain_under(
        overlap_policies, report, "DE", "NL", "--at", "2026-11-22T12:00:00Z"
    )

    assert code == 0, output
    lines = output.splitlines()
    assert lines[:3] == [
        "withhold DE → NL: smuggling TLP:AMBER H1",
        "  because frontier-multilateral:marking_above_limit",
        "  not covering: nl-de-future (agreement_not_yet_valid)",
    ]


def test_explain_as_json_gives_the_decision_its_effect_and_the_pseudonyms(
    overlap_policies: Path, tmp_path: Path
) -> None:
    report = _report(tmp_path, report_type="watchlist_hit", marking="TLP:AMBER")

    code, output = _explain_under(
        overlap_policies, report, "NL", "BE", "--json", "--at", "2026-11-22T12:00:00Z"
    )

    assert code == 0, output
    [document] = [json.loads(line) for line in output.splitlines()]
    decision = document["decision"]
    assert decision["allow"] is True
    assert decision["agreement"] == {"id": "nl-be-operational", "version": 5}
    assert decision["set_aside"] == [{"id": "frontier-multilateral", "by": "nl-be-operational"}]
    assert document["pseudonyms"]["keyed_by"] == "nl-be-operational"
    assert document["pseudonyms"]["fields"] == {
        "subjects[].travel_documents[].number": ["nl-be-operational"]
    }
    assert {"field": "location", "action": "generalise", "to": "0.01deg"} in document[
        "effective_rules"
    ]
