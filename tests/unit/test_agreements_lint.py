"""`ixb agreements check` catches a broken agreement set, and says why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.cli.main import app
from broker.resources import POLICIES_DIR

runner = CliRunner()

BASE = """
id: {id}
version: 1
title: {id}
purpose: testing
parties: [NL, BE, DE]
valid_from: {valid_from}
valid_until: {valid_until}
report_types: [smuggling, document_fraud]
max_marking: {marking}
"""


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES_DIR / "ixb", directory / "ixb")
    (directory / "agreements").mkdir()
    return directory


def _agreement(
    policies: Path,
    agreement_id: str,
    extra: str = "",
    *,
    valid_from: str = "2024-01-01T00:00:00Z",
    valid_until: str = "2099-01-01T00:00:00Z",
    marking: str = "TLP:AMBER",
) -> None:
    text = BASE.format(
        id=agreement_id, valid_from=valid_from, valid_until=valid_until, marking=marking
    )
    (policies / "agreements" / f"{agreement_id}.yaml").write_text(text + extra)


def _check(policies: Path) -> tuple[int, str]:
    result = runner.invoke(
        app, ["agreements", "check", str(policies)], env={"COLUMNS": "300", "IXB_HOME": "."}
    )
    return result.exit_code, result.output


def test_the_real_agreements_pass_the_check() -> None:
    code, output = _check(POLICIES_DIR)

    assert code == 0, output
    assert "error" not in output


def test_one_field_given_two_treatments_in_one_agreement_is_an_error(policies: Path) -> None:
    _agreement(
        policies,
        "self-contradicting",
        """field_rules:
  "*":
    - {field: "subjects[].full_name", action: redact}
  smuggling:
    - {field: "subjects[].full_name", action: pseudonymise}
""",
    )

    code, output = _check(policies)

    assert code == 1
    assert "error self-contradicting: smuggling reports: subjects[].full_name is both" in output
    assert "pseudonymise and redact" in output
    assert "must not be deployed" in output


def test_overlapping_agreements_are_reported_with_what_the_overlap_means(policies: Path) -> None:
    _agreement(
        policies,
        "first-agreement",
        'field_rules:\n  "*":\n    - {field: location, action: generalise, to: 0.1deg}\n',
    )
    _agreement(
        policies,
        "second-agreement",
        'field_rules:\n  "*":\n    - {field: location, action: generalise, to: country}\n',
        marking="TLP:GREEN",
    )

    code, output = _check(policies)

    assert code == 0, output  # overlaps are warnings: the policy resolves them deterministically
    assert "warning first-agreement + second-agreement: both cover" in output
    assert "NL→BE" in output
    assert "first-agreement authorises" in output
    assert "reports up to TLP:AMBER flow under first-agreement" in output
    assert "location is generalise to 0.1deg under first-agreement" in output
    assert "generalise to country under second-agreement" in output


def test_agreements_whose_periods_do_not_meet_do_not_overlap(policies: Path) -> None:
    _agreement(policies, "old-agreement", valid_until="2025-01-01T00:00:00Z")
    _agreement(policies, "new-agreement", valid_from="2025-01-01T00:00:00Z")

    code, output = _check(policies)

    assert code == 0
    assert "both cover" not in output
    assert "warning old-agreement: expired on 2025-01-01" in output


def test_a_not_yet_valid_agreement_is_a_warning(policies: Path) -> None:
    _agreement(policies, "future-agreement", valid_from="2098-01-01T00:00:00Z")

    code, output = _check(policies)

    assert code == 0
    assert "warning future-agreement: not valid until 2098-01-01" in output


def test_rules_for_a_type_the_agreement_does_not_cover_are_a_warning(policies: Path) -> None:
    _agreement(
        policies,
        "stray-rules",
        "field_rules:\n  terrorism:\n    - {field: summary, action: redact}\n",
    )

    code, output = _check(policies)

    assert code == 0
    assert "field_rules.terrorism: the agreement does not cover terrorism reports" in output


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "field_rules:\n  smuggling:\n    - {field: title, action: redact}\n",
            "cannot be withheld",
        ),
        ("field_rules:\n  smuggling:\n    - {field: nope, action: redact}\n", "no field 'nope'"),
        (
            'field_rules:\n  smuggling:\n    - {field: "location", action: pseudonymise}\n',
            "only text fields can be pseudonymised",
        ),
        (
            "field_rules:\n  smuggling:\n"
            "    - {field: observed_at, action: generalise, to: year}\n",
            "a timestamp field generalises to",
        ),
        ("field_rules:\n  smuggling:\n    - {action: embargo}\n", "an embargo names no field"),
        (
            "field_rules:\n  smuggling:\n"
            '    - {field: "subjects[].nationality", action: pseudonymise}\n',
            "holds a country code",
        ),
        ("handling_codes: [H9]\n", "handling_codes"),
        ("h2_consent: {NL: [US]}\n", "non-parties"),
        ("surprise: 1\n", "surprise"),
    ],
)
def test_a_broken_agreement_fails_the_check_naming_file_and_field(
    policies: Path, extra: str, expected: str
) -> None:
    _agreement(policies, "broken-agreement", extra)

    code, output = _check(policies)

    assert code == 2
    assert "broken-agreement.yaml" in output
    assert expected in output
