"""Field rules: invalid rules are refused by name, rules fit the schema, the strictest wins."""

from __future__ import annotations

import itertools
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from broker.domain import report
from broker.domain.agreements import (
    GENERALISATIONS,
    MAX_EMBARGO_S,
    Agreement,
    Facet,
    FieldAction,
    FieldRule,
)
from broker.domain.fields import FieldPathError, check_rule
from broker.domain.report import COUNTRY_CODE_FIELDS, NATION_PATTERN
from broker.enforcer.stages.derive import effective_rules
from broker.errors import ConfigurationError
from broker.policy.bundle import load_bundle
from broker.wire.codec import SchemaCatalog
from broker.wire.report import REPORT_SCHEMA


@pytest.fixture(scope="module")
def report_schema() -> Any:
    return SchemaCatalog.load().schema(REPORT_SCHEMA).parsed


def refused_rule(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        FieldRule.model_validate(fields)
    return str(caught.value)


# --- FieldRule: each parameter belongs to its action ------------------------


def test_an_embargo_naming_a_field_is_refused() -> None:
    message = refused_rule(field="location", action="embargo", after="6h")

    assert "an embargo names no field" in message


def test_an_embargo_without_a_duration_is_refused() -> None:
    message = refused_rule(action="embargo")

    assert "gives `after`" in message


def test_an_embargo_with_a_generalisation_target_is_refused() -> None:
    message = refused_rule(action="embargo", after="6h", to="hour")

    assert "an embargo names no field" in message


def test_a_generalisation_without_a_target_is_refused() -> None:
    message = refused_rule(field="observed_at", action="generalise")

    assert "says what to generalise to" in message


def test_a_generalisation_to_an_unknown_target_is_refused_listing_the_known_ones() -> None:
    message = refused_rule(field="observed_at", action="generalise", to="fortnight")

    assert "says what to generalise to, one of" in message
    assert all(t in message for targets in GENERALISATIONS.values() for t in targets)


def test_a_target_on_a_redaction_is_refused() -> None:
    message = refused_rule(field="location", action="redact", to="country")

    assert "`to` is only for generalise rules" in message


def test_a_target_on_a_pseudonym_is_refused() -> None:
    message = refused_rule(field="subjects[].full_name", action="pseudonymise", to="hour")

    assert "`to` is only for generalise rules" in message


def test_a_duration_on_a_pseudonym_is_refused() -> None:
    message = refused_rule(field="subjects[].full_name", action="pseudonymise", after="6h")

    assert "`after` is only for embargo rules" in message


@pytest.mark.parametrize("action", ["redact", "pseudonymise", "generalise"])
def test_a_field_rule_without_a_field_is_refused(action: str) -> None:
    extra = {"to": "hour"} if action == "generalise" else {}

    message = refused_rule(action=action, **extra)

    assert f"a {action} rule names its field" in message


def test_an_unknown_action_is_refused() -> None:
    message = refused_rule(field="location", action="encrypt")

    assert "action" in message


@pytest.mark.parametrize(
    ("after", "seconds"),
    [("6h", 6 * 3600), ("90m", 90 * 60), ("2d", 2 * 86_400), ("30s", 30), (3600, 3600), ("45", 45)],
)
def test_an_embargo_duration_is_read_as_whole_seconds(after: object, seconds: int) -> None:
    assert FieldRule.model_validate({"action": "embargo", "after": after}).after == seconds


def test_an_embargo_of_exactly_the_longest_allowed_duration_is_accepted() -> None:
    rule = FieldRule.model_validate({"action": "embargo", "after": f"{MAX_EMBARGO_S // 86_400}d"})

    assert rule.after == MAX_EMBARGO_S


@pytest.mark.parametrize(
    "after", ["6 hours", "-1h", "0", 0, "1.5h", "6H", "h", "", "367d", MAX_EMBARGO_S + 1]
)
def test_a_malformed_zero_negative_or_over_a_year_duration_is_refused(after: object) -> None:
    message = refused_rule(action="embargo", after=after)

    assert "after" in message


# --- Agreement: H2 consent and facets ---------------------------------------


def agreement_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "nl-be-patrol",
        "version": 1,
        "title": "Joint patrol",
        "purpose": "Joint patrols along the NL-BE border.",
        "parties": ["NL", "BE"],
        "valid_from": "2025-01-01T00:00:00Z",
        "report_types": ["terrorism", "watchlist_hit"],
        "max_marking": "TLP:AMBER",
    }
    document.update(changes)
    return document


def test_h2_consent_between_parties_with_h2_handled_loads_and_reaches_the_policy() -> None:
    agreement = Agreement.model_validate(
        agreement_document(
            handling_codes=["H1", "H2"],
            h2_consent={"NL": ["BE"]},
            excluded_facets=["victims"],
        )
    )

    data = agreement.policy_data()
    assert data["h2_consent"] == {"NL": ["BE"]}
    assert data["excluded_facets"] == ["victims"]
    assert data["handling_codes"] == ["H1", "H2"]


@pytest.mark.parametrize(
    ("consent", "outsider"),
    [({"NL": ["DE"]}, "DE"), ({"FR": ["BE"]}, "FR"), ({"NL": ["BE", "US"]}, "US")],
)
def test_h2_consent_naming_a_non_party_is_refused_naming_it(
    consent: dict[str, list[str]], outsider: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Agreement.model_validate(agreement_document(h2_consent=consent))

    assert "h2_consent names non-parties" in str(caught.value)
    assert outsider in str(caught.value)


def test_h2_consent_without_h2_among_the_handling_codes_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Agreement.model_validate(
            agreement_document(handling_codes=["H0", "H1"], h2_consent={"NL": ["BE"]})
        )

    assert "H2 is not among handling_codes" in str(caught.value)


def test_an_unknown_facet_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        Agreement.model_validate(agreement_document(excluded_facets=["victims", "weather"]))

    assert "excluded_facets" in str(caught.value)
    assert {e["loc"][0] for e in caught.value.errors()} == {"excluded_facets"}


def test_every_declared_facet_can_be_excluded() -> None:
    agreement = Agreement.model_validate(agreement_document(excluded_facets=list(Facet)))

    assert set(agreement.excluded_facets) == set(Facet)


# --- check_rule against the real report schema ------------------------------


def rule(field: str, action: str, to: str | None = None) -> FieldRule:
    return FieldRule(field=field, action=FieldAction(action), to=to)


@pytest.mark.parametrize(
    "field",
    ["subjects[].date_of_birth", "location", "observed_at", "information_credibility",
     "report_id", "report_type", "subjects[].travel_documents"],
)  # fmt: skip
def test_pseudonymising_a_field_that_is_not_text_is_refused_naming_the_path(
    field: str, report_schema: Any
) -> None:
    with pytest.raises(FieldPathError, match="only text fields") as caught:
        check_rule(rule(field, "pseudonymise"), report_schema)

    assert repr(field) in str(caught.value)


@pytest.mark.parametrize(
    "field",
    ["origin", "location.country", "subjects[].nationality", "vehicles[].flag",
     "subjects[].travel_documents[].issuing_country"],
)  # fmt: skip
def test_pseudonymising_a_country_code_is_refused_because_the_report_would_be_invalid(
    field: str, report_schema: Any
) -> None:
    with pytest.raises(FieldPathError, match="country code") as caught:
        check_rule(rule(field, "pseudonymise"), report_schema)

    assert repr(field) in str(caught.value)


@pytest.mark.parametrize(
    "field",
    ["subjects[].full_name", "subjects[].travel_documents[].number", "vehicles[].registration",
     "indicators[].value", "summary"],
)  # fmt: skip
def test_pseudonymising_a_text_field_is_accepted(field: str, report_schema: Any) -> None:
    check_rule(rule(field, "pseudonymise"), report_schema)


@pytest.mark.parametrize(
    ("field", "to"),
    [("observed_at", "hour"), ("observed_at", "minute"), ("issued_at", "day"),
     ("subjects[].date_of_birth", "year"), ("subjects[].date_of_birth", "month"),
     ("location", "border_sector"), ("location", "country"), ("location", "0.1deg")],
)  # fmt: skip
def test_a_generalisation_fitting_the_kind_of_value_is_accepted(
    field: str, to: str, report_schema: Any
) -> None:
    check_rule(rule(field, "generalise", to), report_schema)


@pytest.mark.parametrize(
    ("field", "to"),
    [("observed_at", "year"), ("observed_at", "border_sector"), ("subjects[].date_of_birth", "day"),
     ("location", "hour"), ("subjects[].full_name", "0.1deg"), ("summary", "country"),
     ("information_credibility", "hour")],
)  # fmt: skip
def test_a_generalisation_that_does_not_fit_the_kind_of_value_is_refused_naming_the_path(
    field: str, to: str, report_schema: Any
) -> None:
    with pytest.raises(FieldPathError, match="generalises to") as caught:
        check_rule(rule(field, "generalise", to), report_schema)

    assert repr(field) in str(caught.value)


def test_a_text_field_is_said_to_generalise_to_nothing(report_schema: Any) -> None:
    with pytest.raises(FieldPathError, match="cannot be generalised"):
        check_rule(rule("subjects[].full_name", "generalise", "0.1deg"), report_schema)


@pytest.mark.parametrize("action", ["redact", "pseudonymise"])
def test_a_rule_on_a_field_the_schema_lacks_is_refused_naming_the_path(
    action: str, report_schema: Any
) -> None:
    with pytest.raises(FieldPathError) as caught:
        check_rule(rule("subjects[].shoe_size", action), report_schema)

    assert "'subjects[].shoe_size'" in str(caught.value)


def test_an_embargo_needs_no_field_in_the_schema(report_schema: Any) -> None:
    check_rule(FieldRule(action=FieldAction.EMBARGO, after=3600), report_schema)


def test_every_rule_in_the_real_agreements_fits_the_schema(report_schema: Any) -> None:
    directory = Path(__file__).resolve().parents[2] / "policies" / "agreements"
    checked = 0
    for path in sorted(directory.glob("*.yaml")):
        agreement = Agreement.model_validate(yaml.safe_load(path.read_text()))
        for rules in agreement.field_rules.values():
            for one in rules:
                check_rule(one, report_schema)
                checked += 1
    assert checked > 0


def test_a_bundle_with_a_rule_the_schema_refuses_names_the_file_and_the_rule(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    document = agreement_document(
        field_rules={
            "*": [{"field": "observed_at", "action": "generalise", "to": "hour"}],
            "terrorism": [
                {"field": "subjects[].full_name", "action": "redact"},
                {"field": "location", "action": "pseudonymise"},
            ],
        }
    )
    path = policies_dir / "agreements" / "bad-rule.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))

    with pytest.raises(ConfigurationError) as caught:
        load_bundle(policies_dir, catalog)

    message = str(caught.value)
    assert str(path) in message
    assert "field_rules.terrorism[1]" in message
    assert "only text fields" in message


def test_a_bundle_with_a_mistyped_generalisation_names_the_file_and_the_rule(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    document = agreement_document(
        field_rules={"*": [{"field": "subjects[].date_of_birth", "action": "generalise",
                            "to": "hour"}]}
    )  # fmt: skip
    path = policies_dir / "agreements" / "bad-generalise.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))

    with pytest.raises(ConfigurationError) as caught:
        load_bundle(policies_dir, catalog)

    assert str(path) in str(caught.value)
    assert "field_rules.*[0]" in str(caught.value)


# --- effective_rules: the strictest rule per field --------------------------

REDACT = rule("location", "redact")
PSEUDONYMISE = rule("location", "pseudonymise")
GENERALISE = rule("location", "generalise", "border_sector")


@pytest.mark.parametrize("rules", list(itertools.permutations([REDACT, PSEUDONYMISE, GENERALISE])))
def test_a_redaction_beats_a_pseudonym_and_a_generalisation_in_any_order(
    rules: tuple[FieldRule, ...],
) -> None:
    assert effective_rules(rules).rules == (REDACT,)


@pytest.mark.parametrize("rules", [(PSEUDONYMISE, GENERALISE), (GENERALISE, PSEUDONYMISE)])
def test_a_pseudonym_beats_a_generalisation_in_any_order(rules: tuple[FieldRule, ...]) -> None:
    assert effective_rules(rules).rules == (PSEUDONYMISE,)


@pytest.mark.parametrize(
    ("field", "finer", "coarser"),
    [("location", "0.01deg", "border_sector"), ("observed_at", "hour", "day"),
     ("location", "border_sector", "country"), ("subjects[].date_of_birth", "month", "year"),
     ("location", "0.1deg", "1deg")],
)  # fmt: skip
def test_of_two_generalisations_the_coarser_is_kept_in_any_order(
    field: str, finer: str, coarser: str
) -> None:
    fine, coarse = rule(field, "generalise", finer), rule(field, "generalise", coarser)

    assert effective_rules([fine, coarse]).rules == (coarse,)
    assert effective_rules([coarse, fine]).rules == (coarse,)


def test_embargo_rules_are_not_field_rules() -> None:
    embargo = FieldRule(action=FieldAction.EMBARGO, after=7200)
    kept = rule("observed_at", "generalise", "hour")

    rule_set = effective_rules([embargo, kept, FieldRule(action=FieldAction.EMBARGO, after=60)])

    assert rule_set.rules == (kept,)


def test_redactions_are_applied_before_anything_else() -> None:
    rules = [
        rule("vehicles[].registration", "pseudonymise"),
        rule("observed_at", "generalise", "hour"),
        rule("subjects[].full_name", "redact"),
        rule("location", "generalise", "country"),
        rule("subjects[].travel_documents[].number", "redact"),
    ]

    actions = [r.action for r in effective_rules(rules).rules]

    assert actions[:2] == [FieldAction.REDACT, FieldAction.REDACT]
    assert FieldAction.REDACT not in actions[2:]
    assert len(actions) == len(rules)


def test_a_rule_set_reports_what_is_withheld_and_what_is_derived() -> None:
    rule_set = effective_rules(
        [
            rule("subjects[].full_name", "redact"),
            rule("subjects[].full_name", "pseudonymise"),
            rule("vehicles[].registration", "pseudonymise"),
            rule("location", "generalise", "country"),
        ]
    )

    assert rule_set.withheld == ("subjects[].full_name",)
    assert {r.field for r in rule_set.derived} == {"vehicles[].registration", "location"}
    assert rule_set.pseudonymises
    assert not effective_rules([rule("location", "redact")]).pseudonymises


# Rules that fit the report schema, as agreements may combine them.
_TEXT_FIELDS = ["subjects[].full_name", "subjects[].travel_documents[].number",
                "vehicles[].registration", "indicators[].value"]  # fmt: skip
_GENERALISABLE = {"observed_at": "timestamp", "subjects[].date_of_birth": "date",
                  "location": "location"}  # fmt: skip
SCHEMA_VALID_RULES: list[FieldRule] = [
    *(rule(f, "redact") for f in [*_TEXT_FIELDS, *_GENERALISABLE]),
    *(rule(f, "pseudonymise") for f in _TEXT_FIELDS),
    *(
        rule(f, "generalise", to)
        for f, kind in _GENERALISABLE.items()
        for to in GENERALISATIONS[kind]
    ),
    *(FieldRule(action=FieldAction.EMBARGO, after=after) for after in (60, 7200, 21_600)),
]


def _rank(one: FieldRule) -> tuple[int, int]:
    """Strictness, then coarseness: an oracle written from the documented order."""
    coarseness = next(
        (targets.index(one.to) for targets in GENERALISATIONS.values() if one.to in targets), -1
    )
    return (one.action.strictness, coarseness)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(SCHEMA_VALID_RULES), max_size=12).flatmap(
        lambda rules: st.tuples(st.just(rules), st.permutations(rules))
    )
)
def test_the_effective_rules_do_not_depend_on_the_order_of_the_rules(
    drawn: tuple[list[FieldRule], list[FieldRule]],
) -> None:
    rules, shuffled = drawn

    rule_set = effective_rules(rules)

    assert effective_rules(shuffled) == rule_set
    fields = [r.field for r in rule_set.rules]
    assert len(fields) == len(set(fields))
    assert set(fields) == {r.field for r in rules if r.field is not None}
    for kept in rule_set.rules:
        rivals = [r for r in rules if r.field == kept.field]
        assert kept in rivals
        assert _rank(kept) == max(_rank(r) for r in rivals)
    actions = [r.action for r in rule_set.rules]
    assert actions == sorted(actions, key=lambda a: a is not FieldAction.REDACT)
    assert FieldAction.EMBARGO not in actions


def test_a_yaml_boolean_is_not_a_duration() -> None:
    with pytest.raises(ValidationError, match="a duration is a whole number"):
        FieldRule.model_validate({"action": "embargo", "after": True})


def _typed_nation(annotation: object) -> bool:
    """Annotated[str, Field(pattern=NATION_PATTERN)], possibly inside a union."""
    for field_info in getattr(annotation, "__metadata__", ()):
        constraints = getattr(field_info, "metadata", ())
        if any(getattr(c, "pattern", None) == NATION_PATTERN for c in constraints):
            return True
    return any(_typed_nation(arg) for arg in typing.get_args(annotation))


def test_the_country_code_fields_are_exactly_the_fields_typed_nation() -> None:
    models = (report.ThreatReport, report.Location, report.TravelDocument, report.Subject)
    typed_nation = {
        name
        for model in (*models, report.Vehicle, report.Indicator)
        for name, info in model.model_fields.items()
        if any(getattr(m, "pattern", None) == NATION_PATTERN for m in info.metadata)
        or _typed_nation(info.annotation)
    }

    assert typed_nation == COUNTRY_CODE_FIELDS
