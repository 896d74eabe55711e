"""Agreements and policy bundles: what loads, what is refused (naming file and field), the hash."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.domain.agreements import Agreement, Direction, FieldAction, FieldRule
from broker.domain.report import Marking, ReportType
from broker.errors import ConfigurationError
from broker.policy.bundle import BundleRefused, load_bundle, parse_agreement_file
from broker.wire.codec import SchemaCatalog

SHARING_REGO = Path(__file__).resolve().parents[2] / "policies" / "ixb" / "sharing.rego"


def mutual(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "nl-be-border",
        "version": 2,
        "title": "Benelux border cooperation",
        "purpose": "Prevention of migrant smuggling across the NL-BE border.",
        "parties": ["NL", "BE"],
        "direction": "mutual",
        "valid_from": "2024-01-01T00:00:00Z",
        "valid_until": "2030-01-01T00:00:00Z",
        "report_types": ["migrant_smuggling", "document_fraud"],
        "max_marking": "TLP:AMBER",
        "field_rules": {
            "*": [{"field": "subjects[].travel_documents[].number", "action": "redact"}],
            "document_fraud": [{"field": "location", "action": "redact"}],
        },
    }
    document.update(changes)
    return document


def one_way(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "fr-to-de-watchlist",
        "version": 1,
        "title": "Watchlist hits from FR to DE",
        "purpose": "Alerting DE of FR watchlist hits at the shared border.",
        "parties": ["FR", "DE"],
        "direction": "one_way",
        "senders": ["FR"],
        "receivers": ["DE"],
        "valid_from": "2025-01-01T00:00:00+01:00",
        "report_types": ["watchlist_hit"],
        "max_marking": "TLP:AMBER+STRICT",
    }
    document.update(changes)
    return document


def write_agreement(directory: Path, name: str, document: dict[str, Any]) -> Path:
    path = directory / "agreements" / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigurationError) as caught:
        parse_agreement_file(path)
    return str(caught.value)


# --- agreements that load --------------------------------------------------


def test_a_mutual_agreement_loads_with_every_field_typed(policies_dir: Path) -> None:
    path = write_agreement(policies_dir, "nl-be.yaml", mutual())

    agreement = parse_agreement_file(path)

    assert agreement.id == "nl-be-border"
    assert agreement.version == 2
    assert agreement.direction is Direction.MUTUAL
    assert agreement.parties == ("NL", "BE")
    assert agreement.valid_from == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert agreement.valid_until == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert agreement.report_types == (ReportType.MIGRANT_SMUGGLING, ReportType.DOCUMENT_FRAUD)
    assert agreement.max_marking is Marking.AMBER
    assert agreement.rules_for(ReportType.DOCUMENT_FRAUD) == (
        FieldRule(field="subjects[].travel_documents[].number", action=FieldAction.REDACT),
        FieldRule(field="location", action=FieldAction.REDACT),
    )
    assert agreement.rules_for(ReportType.MIGRANT_SMUGGLING) == (
        FieldRule(field="subjects[].travel_documents[].number", action=FieldAction.REDACT),
    )


def test_a_mutual_agreement_lets_every_party_send_and_receive() -> None:
    data = Agreement.model_validate(mutual(parties=["NL", "BE", "LU"])).policy_data()

    assert data["senders"] == ["NL", "BE", "LU"]
    assert data["receivers"] == ["NL", "BE", "LU"]
    assert data["valid_from_s"] == 1_704_067_200
    assert data["valid_until_s"] == 1_893_456_000


def test_a_one_way_agreement_loads_with_its_senders_and_receivers(policies_dir: Path) -> None:
    path = write_agreement(policies_dir, "fr-de.yml", one_way())

    agreement = parse_agreement_file(path)
    data = agreement.policy_data()

    assert agreement.direction is Direction.ONE_WAY
    assert agreement.valid_from == dt.datetime(2024, 12, 31, 23, 0, tzinfo=dt.UTC)
    assert agreement.valid_until is None
    assert agreement.max_marking is Marking.AMBER_STRICT
    assert data["senders"] == ["FR"]
    assert data["receivers"] == ["DE"]
    assert data["valid_until_s"] is None
    assert data["field_rules"] == {}


def test_a_bundle_loads_every_yaml_and_yml_agreement_with_the_rego_modules(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    write_agreement(policies_dir, "nl-be.yaml", mutual())
    write_agreement(policies_dir, "fr-de.yml", one_way())
    (policies_dir / "agreements" / "notes.txt").write_text("not an agreement")

    bundle = load_bundle(policies_dir, catalog)

    assert sorted(a.id for a in bundle.agreements) == ["fr-to-de-watchlist", "nl-be-border"]
    assert list(bundle.modules) == ["ixb/sharing.rego"]
    assert bundle.modules["ixb/sharing.rego"] == SHARING_REGO.read_text()
    assert set(bundle.data()["agreements"]) == {"fr-to-de-watchlist", "nl-be-border"}
    assert bundle.content_hash.startswith("sha256:")


def test_a_bundle_without_agreements_loads_empty(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    bundle = load_bundle(policies_dir, catalog)

    assert bundle.agreements == ()
    assert bundle.data() == {"agreements": {}}


# --- agreements that are refused, naming the file and the field ------------


def test_an_unknown_key_is_refused_naming_the_file_and_the_key(policies_dir: Path) -> None:
    path = write_agreement(policies_dir, "a.yaml", mutual(expires="2030-01-01T00:00:00Z"))

    message = refusal(path)

    assert str(path) in message
    assert "expires" in message


@pytest.mark.parametrize("bad", ["nl", "NLD", "N1", ""])
def test_a_bad_nation_code_is_refused_naming_the_file_and_the_party(
    policies_dir: Path, bad: str
) -> None:
    path = write_agreement(policies_dir, "a.yaml", mutual(parties=["NL", bad]))

    message = refusal(path)

    assert str(path) in message
    assert "parties[1]" in message


def test_a_party_listed_twice_is_refused(policies_dir: Path) -> None:
    path = write_agreement(policies_dir, "a.yaml", mutual(parties=["NL", "BE", "NL"]))

    message = refusal(path)

    assert str(path) in message
    assert "parties" in message


def test_a_one_way_agreement_without_senders_is_refused(policies_dir: Path) -> None:
    document = one_way()
    del document["senders"]
    path = write_agreement(policies_dir, "a.yaml", document)

    message = refusal(path)

    assert str(path) in message
    assert "senders" in message


def test_a_one_way_agreement_without_receivers_is_refused(policies_dir: Path) -> None:
    path = write_agreement(policies_dir, "a.yaml", one_way(receivers=[]))

    message = refusal(path)

    assert str(path) in message
    assert "receivers" in message


def test_senders_who_are_not_parties_are_refused(policies_dir: Path) -> None:
    path = write_agreement(policies_dir, "a.yaml", one_way(senders=["FR", "PL"]))

    message = refusal(path)

    assert str(path) in message
    assert "senders" in message
    assert "PL" in message


def test_senders_on_a_mutual_agreement_are_refused(policies_dir: Path) -> None:
    path = write_agreement(policies_dir, "a.yaml", mutual(senders=["NL"]))

    message = refusal(path)

    assert str(path) in message
    assert "senders" in message


@pytest.mark.parametrize("until", ["2023-12-31T23:59:59Z", "2024-01-01T00:00:00Z"])
def test_valid_until_not_after_valid_from_is_refused(policies_dir: Path, until: str) -> None:
    path = write_agreement(policies_dir, "a.yaml", mutual(valid_until=until))

    message = refusal(path)

    assert str(path) in message
    assert "valid_until" in message


def test_a_valid_from_without_a_time_zone_is_refused(policies_dir: Path) -> None:
    path = write_agreement(policies_dir, "a.yaml", mutual(valid_from="2024-01-01T00:00:00"))

    message = refusal(path)

    assert str(path) in message
    assert "valid_from" in message


def test_an_unknown_report_type_key_in_field_rules_is_refused(policies_dir: Path) -> None:
    rules = {"smugling": [{"field": "location", "action": "redact"}]}
    path = write_agreement(policies_dir, "a.yaml", mutual(field_rules=rules))

    message = refusal(path)

    assert str(path) in message
    assert "field_rules" in message
    assert "smugling" in message


def test_an_unknown_field_rule_action_is_refused(policies_dir: Path) -> None:
    rules = {"*": [{"field": "location", "action": "blur"}]}
    path = write_agreement(policies_dir, "a.yaml", mutual(field_rules=rules))

    message = refusal(path)

    assert str(path) in message
    assert "field_rules.*[0].action" in message


def test_an_unknown_report_type_is_refused(policies_dir: Path) -> None:
    path = write_agreement(policies_dir, "a.yaml", mutual(report_types=["piracy"]))

    message = refusal(path)

    assert str(path) in message
    assert "report_types[0]" in message


def test_an_unknown_marking_is_refused(policies_dir: Path) -> None:
    path = write_agreement(policies_dir, "a.yaml", mutual(max_marking="AMBER"))

    message = refusal(path)

    assert str(path) in message
    assert "max_marking" in message


def test_a_file_that_is_not_yaml_is_refused_naming_the_file(policies_dir: Path) -> None:
    path = policies_dir / "agreements" / "a.yaml"
    path.write_text("id: [unclosed\n")

    message = refusal(path)

    assert str(path) in message
    assert "YAML" in message


def test_a_file_that_is_not_one_mapping_is_refused_naming_the_file(policies_dir: Path) -> None:
    path = policies_dir / "agreements" / "a.yaml"
    path.write_text(yaml.safe_dump([mutual()]))

    message = refusal(path)

    assert str(path) in message


def test_an_agreement_id_defined_in_two_files_is_refused_naming_both(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    first = write_agreement(policies_dir, "a.yaml", mutual())
    second = write_agreement(policies_dir, "b.yaml", mutual(version=3, title="Another"))

    with pytest.raises(ConfigurationError) as caught:
        load_bundle(policies_dir, catalog)

    message = str(caught.value)
    assert str(second) in message
    assert str(first) in message
    assert "nl-be-border" in message


def test_a_field_rule_naming_a_field_the_schema_lacks_is_refused_at_load(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    rules = {
        "*": [{"field": "location", "action": "redact"}],
        "document_fraud": [
            {"field": "summary", "action": "redact"},
            {"field": "subjects[].passport", "action": "redact"},
        ],
    }
    path = write_agreement(policies_dir, "a.yaml", mutual(field_rules=rules))

    with pytest.raises(ConfigurationError) as caught:
        load_bundle(policies_dir, catalog)

    message = str(caught.value)
    assert str(path) in message
    assert "field_rules.document_fraud[1].field" in message
    assert "passport" in message


def test_a_field_rule_naming_a_required_field_is_refused_at_load(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    path = write_agreement(
        policies_dir, "a.yaml", mutual(field_rules={"*": [{"field": "title", "action": "redact"}]})
    )

    with pytest.raises(ConfigurationError) as caught:
        load_bundle(policies_dir, catalog)

    assert str(path) in str(caught.value)
    assert "field_rules.*[0].field" in str(caught.value)


def test_a_directory_that_does_not_exist_is_refused(tmp_path: Path, catalog: SchemaCatalog) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_bundle(tmp_path / "missing", catalog)


def test_a_directory_without_rego_modules_is_refused(
    tmp_path: Path, catalog: SchemaCatalog
) -> None:
    with pytest.raises(ConfigurationError, match="no Rego modules"):
        load_bundle(tmp_path, catalog)


# --- the content hash --------------------------------------------------------


def test_the_content_hash_is_stable_when_nothing_changes(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    write_agreement(policies_dir, "nl-be.yaml", mutual())
    write_agreement(policies_dir, "fr-de.yaml", one_way())

    first = load_bundle(policies_dir, catalog).content_hash
    second = load_bundle(policies_dir, catalog).content_hash

    assert first == second


def test_the_content_hash_ignores_yaml_layout(policies_dir: Path, catalog: SchemaCatalog) -> None:
    path = write_agreement(policies_dir, "nl-be.yaml", mutual())
    before = load_bundle(policies_dir, catalog).content_hash

    reordered = dict(reversed(list(mutual().items())))
    path.write_text("# reviewed by the liaison office\n" + yaml.safe_dump(reordered, indent=4))

    assert load_bundle(policies_dir, catalog).content_hash == before


@pytest.mark.parametrize(
    "change",
    [
        {"version": 3},
        {"parties": ["NL", "BE", "LU"]},
        {"valid_until": "2031-01-01T00:00:00Z"},
        {"report_types": ["migrant_smuggling"]},
        {"max_marking": "TLP:GREEN"},
        {"field_rules": {}},
        {"field_rules": {"*": [{"field": "summary", "action": "redact"}]}},
    ],
)
def test_the_content_hash_changes_when_an_agreement_changes(
    policies_dir: Path, catalog: SchemaCatalog, change: dict[str, Any]
) -> None:
    path = write_agreement(policies_dir, "nl-be.yaml", mutual())
    before = load_bundle(policies_dir, catalog).content_hash

    write_agreement(policies_dir, path.name, mutual(**change))

    assert load_bundle(policies_dir, catalog).content_hash != before


def test_the_content_hash_changes_when_an_agreement_is_added(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    write_agreement(policies_dir, "nl-be.yaml", mutual())
    before = load_bundle(policies_dir, catalog).content_hash

    write_agreement(policies_dir, "fr-de.yaml", one_way())

    assert load_bundle(policies_dir, catalog).content_hash != before


def test_the_content_hash_changes_when_a_rego_module_changes(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    write_agreement(policies_dir, "nl-be.yaml", mutual())
    before = load_bundle(policies_dir, catalog).content_hash

    module = policies_dir / "ixb" / "sharing.rego"
    module.write_text(module.read_text() + "\n# reviewed\n")

    assert load_bundle(policies_dir, catalog).content_hash != before


# --- every problem, said plainly ------------------------------------------------


def bundle_refusal(policies_dir: Path, catalog: SchemaCatalog) -> list[str]:
    """Every problem the loader found, as the lines it reports them in."""
    with pytest.raises(BundleRefused) as caught:
        load_bundle(policies_dir, catalog)
    return [str(p) for p in caught.value.problems]


def test_every_malformed_file_is_reported_not_only_the_first(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    first = write_agreement(policies_dir, "a.yaml", mutual(id="first-broken", max_marking="red"))
    second = write_agreement(policies_dir, "b.yaml", mutual(id="second-broken", version=0))
    (policies_dir / "agreements" / "c.yaml").write_text("id: [unclosed\n")
    write_agreement(policies_dir, "d.yaml", mutual(id="fine-agreement"))

    problems = bundle_refusal(policies_dir, catalog)

    assert [p.split(":")[0] for p in problems] == [
        str(first),
        str(second),
        str(policies_dir / "agreements" / "c.yaml"),
    ]
    assert "max_marking" in problems[0]
    assert "version" in problems[1]
    assert "not valid YAML" in problems[2]


def test_a_problem_names_the_line_it_is_on(policies_dir: Path) -> None:
    path = policies_dir / "agreements" / "a.yaml"
    text = yaml.safe_dump(mutual(), sort_keys=False).replace("TLP:AMBER", "TLP:PURPLE")
    path.write_text(text)
    line = 1 + text.splitlines().index("max_marking: TLP:PURPLE")

    assert refusal(path).startswith(f"{path}:{line}: max_marking: ")


def test_a_word_yaml_read_as_a_boolean_is_named_as_the_word_it_was(policies_dir: Path) -> None:
    path = policies_dir / "agreements" / "a.yaml"
    text = yaml.safe_dump(
        mutual(field_rules={"*": [{"action": "embargo", "after": "PLACEHOLDER"}]}),
        sort_keys=False,
    ).replace("PLACEHOLDER", "yes")
    path.write_text(text)

    message = refusal(path)

    assert "field_rules.*[0].after: a duration is a whole number" in message
    assert 'YAML read `yes` as the boolean true, not as the word "yes"' in message


def test_a_nation_yaml_read_as_a_boolean_is_named_in_a_list_and_as_a_key(
    policies_dir: Path,
) -> None:
    path = policies_dir / "agreements" / "a.yaml"
    path.write_text(
        yaml.safe_dump(mutual(parties=["NL", "NORWAY"], h2_consent={"NORWAY": ["NL"]}))
        .replace("NORWAY", "NO")
        .replace("'NO'", "NO")
    )

    message = refusal(path)

    assert "parties[1]: Input should be a valid string; YAML read `NO` as the boolean" in message
    assert "h2_consent key `NO`: " in message


# --- precedence -------------------------------------------------------------------


def test_a_declared_precedence_loads_for_the_types_it_names(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    write_agreement(policies_dir, "general.yaml", mutual(id="general-border"))
    write_agreement(
        policies_dir,
        "special.yaml",
        mutual(precedence={"over": ["general-border"], "for": ["document_fraud"]}),
    )

    bundle = load_bundle(policies_dir, catalog)
    [special] = [a for a in bundle.agreements if a.id == "nl-be-border"]

    assert special.precedence_over("document_fraud") == {"general-border"}
    assert special.precedence_over("migrant_smuggling") == frozenset()
    assert special.policy_data()["precedence"] == [
        {"over": ["general-border"], "report_types": ["document_fraud"]}
    ]


def test_a_precedence_without_types_holds_for_every_type_of_the_agreement() -> None:
    agreement = Agreement.model_validate(mutual(precedence=[{"over": ["general-border"]}]))

    assert agreement.policy_data()["precedence"] == [
        {"over": ["general-border"], "report_types": ["migrant_smuggling", "document_fraud"]}
    ]


def test_an_agreement_without_precedence_keeps_the_data_and_hash_it_had_before_precedence() -> None:
    """Archived bundles are re-loaded and refused unless their hash is the recorded one."""
    assert "precedence" not in Agreement.model_validate(mutual()).policy_data()


def test_a_precedence_over_an_agreement_the_bundle_does_not_hold_is_refused(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    path = write_agreement(policies_dir, "a.yaml", mutual(precedence={"over": ["nowhere-else"]}))

    [problem] = bundle_refusal(policies_dir, catalog)

    assert problem.startswith(f"{path}:")
    assert "precedence[0].over[0]: no agreement 'nowhere-else' in this bundle" in problem


def test_precedences_that_go_round_in_a_circle_are_refused_naming_every_file(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    paths = [
        write_agreement(
            policies_dir, f"{name}.yaml", mutual(id=f"{name}-border", precedence={"over": [over]})
        )
        for name, over in [("aa", "bb-border"), ("bb", "cc-border"), ("cc", "aa-border")]
    ]

    problems = bundle_refusal(policies_dir, catalog)

    assert len(problems) == 2  # one circle, for each of the two report types
    assert "goes round in a circle for document_fraud reports" in problems[0]
    for path in paths:
        assert str(path) in problems[0]


@pytest.mark.parametrize(
    ("declaration", "expected"),
    [
        ({"over": ["nl-be-border"]}, "cannot take precedence over itself"),
        ({"over": ["x-border"], "for": ["terrorism"]}, "terrorism, which this agreement does not"),
        ({"over": []}, "precedence[0].over"),
        ({"over": ["x-border", "x-border"]}, "named more than once"),
        ({"over": ["x-border"], "when": "always"}, "precedence[0].when"),
    ],
)
def test_a_malformed_precedence_is_refused_naming_the_file(
    policies_dir: Path, declaration: dict[str, Any], expected: str
) -> None:
    path = write_agreement(policies_dir, "a.yaml", mutual(precedence=declaration))

    message = refusal(path)

    assert str(path) in message
    assert expected in message
