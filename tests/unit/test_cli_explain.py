"""`ixb agreements explain` tells an officer what the agreements decide, and why."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.cli.main import app
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
