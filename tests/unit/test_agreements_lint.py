"""`ixb agreements check` catches a broken agreement set, and says why."""

from __future__ import annotations

import json
import shutil
import tempfile
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


def _check(policies: Path, *args: str) -> tuple[int, str]:
    """``ixb agreements check`` in-process; its stdout is not a terminal, so nothing wraps."""
    result = runner.invoke(
        app, ["agreements", "check", str(policies), *args], env={"IXB_HOME": "."}
    )
    return result.exit_code, result.output


def _file(policies: Path, agreement_id: str) -> str:
    return str(policies / "agreements" / f"{agreement_id}.yaml")


def _lines_with(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def test_the_real_agreements_pass_the_check() -> None:
    code, output = _check(POLICIES_DIR)

    assert code == 0, output
    assert "error" not in output


def test_one_field_given_two_treatments_in_one_agreement_is_an_error_naming_the_file(
    policies: Path,
) -> None:
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
    [line] = _lines_with(output, "is both")
    assert line.startswith(
        f"{_file(policies, 'self-contradicting')}: error: self-contradicting, smuggling reports: "
        "subjects[].full_name is both pseudonymise and redact"
    )
    assert "must not be deployed" in output


def test_overlapping_agreements_whose_terms_conflict_fail_saying_what_applies(
    policies: Path,
) -> None:
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

    assert code == 1, output
    files = f"{_file(policies, 'first-agreement')} + {_file(policies, 'second-agreement')}"
    errors = _lines_with(output, f"{files}: error: ")
    assert len(errors) == 2, output
    for line in errors:
        assert "first-agreement and second-agreement both cover" in line
        assert "BE→NL" in line
        assert "NL→BE" in line
        assert "document_fraud, smuggling reports now until 2099-01-01" in line
        assert "neither declares precedence" in line
    assert (
        "location is generalise to 0.1deg under first-agreement but generalise to country "
        "under second-agreement: generalise to country applies"
    ) in errors[0]
    assert "reports above TLP:GREEN are refused (second-agreement's ceiling)" in errors[1]


def test_overlapping_agreements_on_the_same_terms_are_a_warning_naming_who_authorises(
    policies: Path,
) -> None:
    _agreement(policies, "first-agreement")
    _agreement(policies, "second-agreement")

    code, output = _check(policies)

    assert code == 0, output
    [line] = _lines_with(output, "both cover")
    assert line.startswith(
        f"{_file(policies, 'first-agreement')} + {_file(policies, 'second-agreement')}: warning: "
    )
    assert line.endswith("on the same terms: first-agreement authorises them (first by id)")


def test_a_declared_precedence_resolves_a_conflicting_overlap(policies: Path) -> None:
    _agreement(policies, "general-agreement", marking="TLP:GREEN")
    _agreement(
        policies,
        "special-agreement",
        "precedence: {over: [general-agreement]}\n"
        'field_rules:\n  "*":\n    - {field: location, action: generalise, to: country}\n',
    )

    code, output = _check(policies)

    assert code == 0, output
    [line] = _lines_with(output, "both cover")
    assert ": warning: general-agreement and special-agreement both cover" in line
    assert (
        "special-agreement takes precedence (declared in its file): general-agreement's terms "
        "do not apply to these reports and special-agreement authorises them"
    ) in line


def test_a_precedence_for_some_types_leaves_the_others_in_conflict(policies: Path) -> None:
    _agreement(policies, "general-agreement", marking="TLP:GREEN")
    _agreement(
        policies, "special-agreement", "precedence: {over: [general-agreement], for: [smuggling]}\n"
    )

    code, output = _check(policies)

    assert code == 1, output
    [resolved] = _lines_with(output, "takes precedence")
    assert "both cover BE→DE, BE→NL, DE→BE, DE→NL, NL→BE, NL→DE smuggling reports now" in resolved
    [conflict] = _lines_with(output, ": error: ")
    assert " document_fraud reports now" in conflict
    assert "the marking ceilings differ" in conflict


def test_an_overlap_that_begins_later_is_reported_from_its_first_day_not_as_today(
    policies: Path,
) -> None:
    _agreement(policies, "current-agreement")
    _agreement(policies, "future-agreement", valid_from="2098-07-01T00:00:00Z")

    code, output = _check(policies)

    assert code == 0, output
    [validity] = _lines_with(output, "in force from")
    assert validity == (
        f"{_file(policies, 'future-agreement')}: warning: future-agreement is in force from "
        "2098-07-01: shares nothing until then"
    )
    [overlap] = _lines_with(output, "both cover")
    assert "reports from 2098-07-01 until 2099-01-01 on the same terms" in overlap
    assert " now" not in overlap


def test_an_overlap_wholly_in_the_past_is_not_reported(policies: Path) -> None:
    _agreement(policies, "old-agreement", valid_until="2025-01-01T00:00:00Z")
    _agreement(policies, "other-old-agreement", valid_until="2025-02-01T00:00:00Z")

    code, output = _check(policies)

    assert code == 0, output
    assert "both cover" not in output
    assert len(_lines_with(output, "expired on 2025-0")) == 2


def test_different_embargoes_on_an_overlap_are_a_warning_naming_the_longer(
    policies: Path,
) -> None:
    _agreement(
        policies,
        "first-agreement",
        "field_rules:\n  smuggling:\n    - {action: embargo, after: 30m}\n",
    )
    _agreement(
        policies,
        "second-agreement",
        "field_rules:\n  smuggling:\n    - {action: embargo, after: 1h}\n",
    )

    code, output = _check(policies)

    assert code == 0, output
    [line] = _lines_with(output, "embargoes differ")
    assert " smuggling reports now" in line
    assert (
        "embargoes differ (first-agreement: 30m; second-agreement: 1h): the longer, 1h, applies"
    ) in line


def test_different_h2_consent_on_a_shared_flow_is_a_conflict(policies: Path) -> None:
    _agreement(policies, "first-agreement", "h2_consent: {NL: [BE]}\n")
    _agreement(policies, "second-agreement")

    code, output = _check(policies)

    assert code == 1, output
    [line] = _lines_with(output, ": error: ")
    assert "the handling codes let through on NL→BE differ" in line
    assert "H2 reports there are refused" in line


def test_a_precedence_over_an_agreement_it_never_overlaps_is_a_warning(policies: Path) -> None:
    _agreement(policies, "old-agreement", valid_until="2025-01-01T00:00:00Z")
    _agreement(
        policies,
        "new-agreement",
        "precedence: {over: [old-agreement]}\n",
        valid_from="2025-01-01T00:00:00Z",
    )

    code, output = _check(policies)

    assert code == 0, output
    [line] = _lines_with(output, "has no effect")
    assert line.startswith(
        f"{_file(policies, 'new-agreement')} + {_file(policies, 'old-agreement')}: warning: "
    )


def test_agreements_whose_periods_do_not_meet_do_not_overlap(policies: Path) -> None:
    _agreement(policies, "old-agreement", valid_until="2025-01-01T00:00:00Z")
    _agreement(policies, "new-agreement", valid_from="2025-01-01T00:00:00Z")

    code, output = _check(policies)

    assert code == 0
    assert "both cover" not in output
    assert (
        f"{_file(policies, 'old-agreement')}: warning: old-agreement expired on 2025-01-01"
    ) in output


def test_rules_for_a_type_the_agreement_does_not_cover_are_a_warning(policies: Path) -> None:
    _agreement(
        policies,
        "stray-rules",
        "field_rules:\n  terrorism:\n    - {field: summary, action: redact}\n",
    )

    code, output = _check(policies)

    assert code == 0
    assert (
        f"{_file(policies, 'stray-rules')}: warning: field_rules.terrorism: stray-rules does not "
        "cover terrorism reports"
    ) in output


def test_the_check_as_json_is_one_document_with_every_finding_and_file(policies: Path) -> None:
    _agreement(policies, "general-agreement", marking="TLP:GREEN")
    _agreement(policies, "special-agreement")

    code, output = _check(policies, "--json")

    assert code == 1
    [document] = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert document["ok"] is False
    assert document["bundle"].startswith("sha256:")
    assert [a["file"] for a in document["agreements"]] == [
        _file(policies, "general-agreement"),
        _file(policies, "special-agreement"),
    ]
    assert document["errors"] == 1
    [finding] = document["findings"]
    assert finding["severity"] == "error"
    assert finding["agreements"] == ["general-agreement", "special-agreement"]
    assert finding["files"] == [
        _file(policies, "general-agreement"),
        _file(policies, "special-agreement"),
    ]


def test_every_line_about_the_overlap_policy_tests_names_its_files() -> None:
    """The agreements of policies/tests/overlaps conflict on purpose: the check must fail."""
    directory = POLICIES_DIR / "tests" / "overlaps"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(POLICIES_DIR / "ixb", root / "ixb")
        shutil.copytree(directory, root / "agreements")
        code, output = _check(root, "--at", "2026-11-22T12:00:00Z")
        findings = [
            line for line in output.splitlines() if ": error: " in line or ": warning: " in line
        ]

        assert code == 1, output
        assert findings
        assert all(line.startswith(str(root / "agreements")) for line in findings), findings
        assert any(
            "nl-be-operational takes precedence" in line and "watchlist_hit reports" in line
            for line in findings
        )
        assert any(
            "frontier-multilateral and nl-de-future both cover DE→NL, NL→DE smuggling reports "
            "from 2027-07-01" in line
            for line in findings
        )


def test_every_broken_file_is_reported_with_its_line_and_the_check_exits_2(
    policies: Path,
) -> None:
    _agreement(policies, "fine-agreement")
    _agreement(
        policies, "yes-embargo", "field_rules:\n  smuggling:\n    - {action: embargo, after: yes}\n"
    )
    _agreement(policies, "bad-marking", marking="TLP:PURPLE")

    code, output = _check(policies)

    assert code == 2
    [embargo] = _lines_with(output, "yes-embargo.yaml")
    assert embargo.startswith(f"{_file(policies, 'yes-embargo')}:13: error: ")
    assert "field_rules.smuggling[0].after: a duration is a whole number" in embargo
    assert 'YAML read `yes` as the boolean true, not as the word "yes"' in embargo
    [marking] = _lines_with(output, "bad-marking.yaml")
    assert marking.startswith(f"{_file(policies, 'bad-marking')}:10: error: max_marking: ")
    assert "2 problem(s): the agreements do not load" in output


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
