"""The in-process Rego decision point: allows, denies with reasons, and fails closed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.domain.agreements import Facet, FieldAction, FieldRule
from broker.domain.decisions import AgreementRef, DecisionInput
from broker.domain.report import HandlingCode, Marking, ReportType
from broker.errors import ConfigurationError, PolicyUndecided
from broker.policy.bundle import PolicyBundle, load_bundle
from broker.policy.rego import RegoDecisionPoint
from broker.wire.codec import SchemaCatalog

SHARING_REGO = Path(__file__).resolve().parents[2] / "policies" / "ixb" / "sharing.rego"


def epoch(year: int, month: int, day: int) -> int:
    return int(dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp())


NOW = epoch(2025, 6, 1)
VALID_FROM = epoch(2024, 1, 1)
VALID_UNTIL = epoch(2030, 1, 1)


def agreement(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "nl-be-border",
        "version": 4,
        "title": "Benelux border cooperation",
        "purpose": "Prevention of migrant smuggling across the NL-BE border.",
        "parties": ["NL", "BE"],
        "valid_from": "2024-01-01T00:00:00Z",
        "valid_until": "2030-01-01T00:00:00Z",
        "report_types": ["migrant_smuggling", "document_fraud"],
        "max_marking": "TLP:AMBER",
        "field_rules": {
            "*": [
                {"field": "subjects[].travel_documents[].number", "action": "redact"},
                {"field": "indicators", "action": "redact"},
            ],
            "document_fraud": [{"field": "location", "action": "redact"}],
            "migrant_smuggling": [{"field": "subjects[].full_name", "action": "redact"}],
        },
    }
    document.update(changes)
    return document


def decision_point(
    directory: Path, catalog: SchemaCatalog, *agreements: dict[str, Any]
) -> RegoDecisionPoint:
    for document in agreements:
        path = directory / "agreements" / f"{document['id']}.yaml"
        path.write_text(yaml.safe_dump(document))
    return RegoDecisionPoint(load_bundle(directory, catalog))


def ask(
    origin: str = "NL",
    recipient: str = "BE",
    report_type: ReportType = ReportType.DOCUMENT_FRAUD,
    marking: Marking = Marking.AMBER,
    now_s: int = NOW,
) -> DecisionInput:
    return DecisionInput(
        origin=origin,
        recipient=recipient,
        report_type=report_type,
        marking=marking,
        handling_code=HandlingCode.H1,
        now_s=now_s,
    )


def redact(field: str) -> FieldRule:
    return FieldRule(field=field, action=FieldAction.REDACT)


def module_point(source: str) -> RegoDecisionPoint:
    """A decision point over one custom module and no agreements."""
    return RegoDecisionPoint(PolicyBundle({"ixb/custom.rego": source}, (), "sha256:custom"))


# --- allow ---------------------------------------------------------------------


def test_a_covered_pair_is_allowed_naming_the_agreement_and_its_version(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(ask())

    assert decision.allow is True
    assert decision.reasons == ()
    assert decision.agreement == AgreementRef(id="nl-be-border", version=4)


def test_an_allow_carries_the_general_and_the_report_type_rules_sorted(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(ask(report_type=ReportType.DOCUMENT_FRAUD))

    assert decision.field_rules == (
        redact("indicators"),
        redact("location"),
        redact("subjects[].travel_documents[].number"),
    )


def test_rules_for_another_report_type_do_not_apply(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(ask(report_type=ReportType.MIGRANT_SMUGGLING))

    assert decision.field_rules == (
        redact("indicators"),
        redact("subjects[].full_name"),
        redact("subjects[].travel_documents[].number"),
    )


def test_an_agreement_without_field_rules_allows_with_none(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement(field_rules={}))

    decision = point.decide(ask())

    assert decision.allow is True
    assert decision.field_rules == ()


def test_a_mutual_agreement_allows_both_directions(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    assert point.decide(ask(origin="NL", recipient="BE")).allow is True
    assert point.decide(ask(origin="BE", recipient="NL")).allow is True


@pytest.mark.parametrize("marking", [Marking.CLEAR, Marking.GREEN, Marking.AMBER])
def test_markings_up_to_the_limit_are_allowed(
    policies_dir: Path, catalog: SchemaCatalog, marking: Marking
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    assert point.decide(ask(marking=marking)).allow is True


def test_every_decision_names_the_bundle_that_made_it(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())
    bundle_hash = load_bundle(policies_dir, catalog).content_hash

    assert point.bundle_hash == bundle_hash
    assert point.decide(ask()).bundle_hash == bundle_hash
    assert point.decide(ask(recipient="DE")).bundle_hash == bundle_hash


# --- deny ------------------------------------------------------------------------


def test_a_pair_no_agreement_covers_is_denied_with_no_agreement(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(ask(origin="NL", recipient="DE"))

    assert decision.allow is False
    assert decision.reasons == ("no_agreement",)
    assert decision.agreement is None
    assert decision.field_rules == ()


def test_a_report_to_its_own_origin_is_denied_with_no_agreement(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(ask(origin="NL", recipient="NL"))

    assert decision.allow is False
    assert decision.reasons == ("no_agreement",)


def test_a_bundle_without_agreements_denies_everything_with_no_agreement(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog)

    decision = point.decide(ask())

    assert decision.allow is False
    assert decision.reasons == ("no_agreement",)


def test_a_report_type_the_agreement_does_not_list_is_denied(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(ask(report_type=ReportType.TERRORISM))

    assert decision.allow is False
    assert decision.reasons == ("nl-be-border:report_type_not_covered",)
    assert decision.agreement is None
    assert decision.field_rules == ()


@pytest.mark.parametrize("marking", [Marking.AMBER_STRICT, Marking.RED])
def test_a_marking_above_the_limit_is_denied(
    policies_dir: Path, catalog: SchemaCatalog, marking: Marking
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(ask(marking=marking))

    assert decision.allow is False
    assert decision.reasons == ("nl-be-border:marking_above_limit",)


def test_an_agreement_is_expired_from_the_second_it_ends(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    assert point.decide(ask(now_s=VALID_UNTIL - 1)).allow is True
    decision = point.decide(ask(now_s=VALID_UNTIL))

    assert decision.allow is False
    assert decision.reasons == ("nl-be-border:agreement_expired",)


def test_an_agreement_is_not_yet_valid_until_the_second_it_starts(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(ask(now_s=VALID_FROM - 1))

    assert decision.allow is False
    assert decision.reasons == ("nl-be-border:agreement_not_yet_valid",)
    assert point.decide(ask(now_s=VALID_FROM)).allow is True


def test_an_evaluation_time_past_64_bits_is_expired_not_wrapped_back_into_validity(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    """regopy.Input wraps ints modulo 2**64: 2**64 + NOW arrived as NOW and allowed."""
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(ask(now_s=2**64 + NOW))

    assert decision.allow is False
    assert decision.reasons == ("nl-be-border:agreement_expired",)


def test_an_evaluation_time_before_minus_2_to_the_63_is_not_yet_valid(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(ask(now_s=NOW - 2**64))

    assert decision.allow is False
    assert decision.reasons == ("nl-be-border:agreement_not_yet_valid",)


def test_an_agreement_without_an_end_never_expires(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    document = agreement()
    del document["valid_until"]
    point = decision_point(policies_dir, catalog, document)

    assert point.decide(ask(now_s=epoch(2999, 1, 1))).allow is True


def test_every_reason_an_agreement_does_not_cover_a_report_is_given_and_none_of_its_prohibitions(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(policies_dir, catalog, agreement())

    decision = point.decide(
        ask(report_type=ReportType.TERRORISM, marking=Marking.RED, now_s=VALID_UNTIL + 1)
    )

    assert decision.allow is False
    assert decision.reasons == (
        "nl-be-border:agreement_expired",
        "nl-be-border:report_type_not_covered",
    )
    assert decision.not_covering == decision.reasons
    assert decision.governing == ()


def test_every_prohibition_of_a_covering_agreement_is_given_sorted(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(
        policies_dir, catalog, agreement(handling_codes=["H0"], excluded_facets=["victims"])
    )

    decision = point.decide(
        ask(marking=Marking.RED).model_copy(update={"facets": (Facet.VICTIMS,)})
    )

    assert decision.allow is False
    assert decision.reasons == (
        "nl-be-border:facet_excluded",
        "nl-be-border:handling_code_not_covered",
        "nl-be-border:marking_above_limit",
    )
    assert decision.governing == (AgreementRef(id="nl-be-border", version=4),)
    assert decision.not_covering == ()


def test_a_covering_agreement_refuses_with_its_reasons_and_one_that_does_not_cover_is_named_apart(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(
        policies_dir,
        catalog,
        agreement(id="zz-benelux", max_marking="TLP:GREEN"),
        agreement(id="aa-border", report_types=["smuggling"]),
    )

    decision = point.decide(ask(report_type=ReportType.DOCUMENT_FRAUD, marking=Marking.AMBER))

    assert decision.allow is False
    assert decision.reasons == ("zz-benelux:marking_above_limit",)
    assert decision.not_covering == ("aa-border:report_type_not_covered",)


# --- direction and several agreements --------------------------------------------


def test_a_one_way_agreement_allows_its_senders_to_its_receivers_only(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(
        policies_dir,
        catalog,
        agreement(
            id="fr-to-de",
            version=1,
            parties=["FR", "DE", "LU"],
            direction="one_way",
            senders=["FR"],
            receivers=["DE", "LU"],
        ),
    )

    allowed = point.decide(ask(origin="FR", recipient="DE"))

    assert allowed.allow is True
    assert allowed.agreement == AgreementRef(id="fr-to-de", version=1)
    assert point.decide(ask(origin="FR", recipient="LU")).allow is True
    for origin, recipient in [("DE", "FR"), ("LU", "FR"), ("DE", "LU"), ("LU", "DE")]:
        back = point.decide(ask(origin=origin, recipient=recipient))
        assert back.allow is False
        assert back.reasons == ("no_agreement",)


def test_when_two_agreements_allow_the_first_by_id_authorises_and_both_rule_sets_apply(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(
        policies_dir,
        catalog,
        agreement(
            id="zz-benelux",
            version=9,
            parties=["NL", "BE", "LU"],
            field_rules={"*": [{"field": "summary", "action": "redact"}]},
        ),
        agreement(
            id="aa-border",
            version=2,
            field_rules={
                "document_fraud": [{"field": "vehicles[].registration", "action": "redact"}]
            },
        ),
    )

    decision = point.decide(ask(report_type=ReportType.DOCUMENT_FRAUD))

    assert decision.allow is True
    assert decision.agreement == AgreementRef(id="aa-border", version=2)
    assert decision.field_rules == (redact("summary"), redact("vehicles[].registration"))


def test_a_rule_named_by_two_allowing_agreements_is_given_once(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    rules = {"*": [{"field": "location", "action": "redact"}]}
    point = decision_point(
        policies_dir,
        catalog,
        agreement(id="aa-border", field_rules=rules),
        agreement(id="bb-border", field_rules=rules),
    )

    assert point.decide(ask()).field_rules == (redact("location"),)


def test_an_agreement_that_refuses_neither_authorises_nor_adds_rules(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(
        policies_dir,
        catalog,
        agreement(
            id="aa-expired",
            valid_until="2025-01-01T00:00:00Z",
            field_rules={"*": [{"field": "summary", "action": "redact"}]},
        ),
        agreement(id="bb-current", version=7, field_rules={}),
    )

    decision = point.decide(ask())

    assert decision.allow is True
    assert decision.agreement == AgreementRef(id="bb-current", version=7)
    assert decision.field_rules == ()


def test_an_agreement_between_other_parties_does_not_interfere(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    point = decision_point(
        policies_dir,
        catalog,
        agreement(),
        agreement(id="aa-pl-de", parties=["PL", "DE"], max_marking="TLP:CLEAR"),
    )

    decision = point.decide(ask())

    assert decision.allow is True
    assert decision.agreement == AgreementRef(id="nl-be-border", version=4)


# --- fail closed -------------------------------------------------------------------

_PROBE_DENY = '{"allow": false, "reasons": ["probe"], "agreement": null, "field_rules": []}'


def test_a_decision_left_undefined_is_undecided_never_a_deny() -> None:
    point = module_point(
        "package ixb.sharing\n"
        "import rego.v1\n"
        f"decision := {_PROBE_DENY} if {{\n"
        '\tinput.origin in {"NL", "ZZ"}\n'
        "}\n"
    )

    assert point.decide(ask(origin="NL", recipient="DE")).reasons == ("probe",)
    with pytest.raises(PolicyUndecided, match="undefined"):
        point.decide(ask(origin="BE", recipient="DE"))


def test_undecided_is_retriable() -> None:
    assert PolicyUndecided.retriable is True


def test_a_module_that_never_defines_a_decision_is_refused_when_loaded() -> None:
    with pytest.raises(ConfigurationError, match="does not produce a decision"):
        module_point('package ixb.sharing\nimport rego.v1\ndecision := 1 if input.origin == "NL"\n')


def test_a_module_in_another_package_is_refused_when_loaded() -> None:
    with pytest.raises(ConfigurationError, match="does not produce a decision"):
        module_point(f"package ixb.other\nimport rego.v1\ndecision := {_PROBE_DENY}\n")


def _shaped(shape: str) -> str:
    """A module whose decision is well formed for the self-check probe and ``shape`` otherwise."""
    return (
        "package ixb.sharing\n"
        "import rego.v1\n"
        f'decision := {_PROBE_DENY} if input.origin == "ZZ"\n'
        f'decision := {shape} if input.origin != "ZZ"\n'
    )


@pytest.mark.parametrize(
    "shape",
    [
        "false",
        "true",
        "null",
        '"allow"',
        "[]",
        "{}",
        '{"allow": "maybe"}',
        '{"permit": true}',
        '{"allow": false, "reasons": "no_agreement"}',
        '{"allow": false, "reasons": ["no_agreement"], "because": "x"}',
        '{"allow": true, "agreement": {"id": "x"}}',
        '{"allow": true, "agreement": {"id": "x", "version": 1},'
        ' "field_rules": [{"field": "location", "action": "blur"}]}',
    ],
)
def test_a_malformed_decision_is_undecided(shape: str) -> None:
    point = module_point(_shaped(shape))

    with pytest.raises(PolicyUndecided, match="malformed decision"):
        point.decide(ask())


@pytest.mark.parametrize("allow", ['"yes"', '"true"', "1"])
def test_an_allow_that_is_not_a_boolean_is_undecided(allow: str) -> None:
    point = module_point(_shaped(f'{{"allow": {allow}, "agreement": {{"id": "x", "version": 1}}}}'))

    with pytest.raises(PolicyUndecided, match="malformed decision"):
        point.decide(ask())


def test_an_allow_that_names_no_agreement_is_undecided() -> None:
    point = module_point(
        _shaped('{"allow": true, "reasons": [], "agreement": null, "field_rules": []}')
    )

    with pytest.raises(PolicyUndecided, match="malformed decision"):
        point.decide(ask())


def test_a_decision_with_conflicting_values_is_undecided() -> None:
    point = module_point(
        "package ixb.sharing\n"
        "import rego.v1\n"
        f"decision := {_PROBE_DENY}\n"
        'decision := {"allow": false, "reasons": ["other"], "agreement": null,'
        ' "field_rules": []} if input.origin == "BE"\n'
    )

    with pytest.raises(PolicyUndecided):
        point.decide(ask(origin="BE"))


def test_a_module_that_fails_at_evaluation_is_refused_when_loaded() -> None:
    with pytest.raises(ConfigurationError, match="does not produce a decision"):
        module_point('package ixb.sharing\nimport rego.v1\ndecision := {"allow": nosuch(1)}\n')


@pytest.mark.parametrize(
    "source",
    [
        "package ixb.sharing\nimport rego.v1\ndecision := {\n",
        'package ixb.sharing\nimport rego.v1\ndecision := {"allow": true} if { input.origin == }\n',
    ],
    ids=["unclosed_brace", "missing_operand"],
)
def test_a_module_with_a_syntax_error_is_refused_when_loaded(source: str) -> None:
    with pytest.raises(ConfigurationError):
        module_point(source)


def test_a_bundle_with_a_broken_module_is_refused_when_loaded(
    policies_dir: Path, catalog: SchemaCatalog
) -> None:
    (policies_dir / "ixb" / "extra.rego").write_text(
        "package ixb.sharing\n"
        "import rego.v1\n"
        'decision := "not a decision" if input.origin == "ZZ"\n'
    )

    with pytest.raises(ConfigurationError):
        decision_point(policies_dir, catalog, agreement())
