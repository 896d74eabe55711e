"""A broker holding its own key cannot pass off its own values as derived under an agreement.

Measured before this change: a broker could replace the originator's signed
``title`` with a "derived" value naming no original digest, label it derived
under an agreement that derives no such field, re-attest the statement with
its key, and the recipient accepted it as broker-attested. Each test below
is one way a broker could mislabel; the forgeries are re-attested with the
broker's real key, exactly as a misbehaving operator could.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.domain.agreements import Agreement, FieldAction, FieldRule
from broker.enforcer.stages.context import batch_context
from broker.enforcer.stages.intake import Accepted
from broker.errors import RejectedInput
from broker.parties.derivations import PartyAgreements
from broker.parties.recipient import DeliveryVerifier
from broker.trust.attestation import open_attested
from broker.trust.keystore import Keystore
from broker.trust.sd.layout import encode_value
from broker.trust.sd.statement import DELIVERY_SCHEMA
from broker.wire.codec import SchemaCatalog
from tests.unit.test_provenance_tampering import Pipeline

Statement = dict[str, Any]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, catalog: SchemaCatalog) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp("misbehave"), catalog)


@pytest.fixture(scope="module")
def genuine(pipeline: Pipeline) -> tuple[Statement, Accepted]:
    """BE's statement for one NL report under schengen-frontier-cooperation v4, and the intake."""
    submission = pipeline.submission()
    delivery = pipeline.attested(submission)["BE"]
    context = batch_context(pipeline.registry, pipeline.policy, dt.datetime.now(dt.UTC))
    accepted = pipeline.intake().check(pipeline.inbound(submission), context)
    assert isinstance(accepted, Accepted)
    catalog = pipeline.catalog
    statement = catalog.decode(open_attested(catalog, delivery).payload, DELIVERY_SCHEMA)
    assert (statement["agreement_id"], statement["agreement_version"]) == (
        "schengen-frontier-cooperation",
        4,
    )
    return statement, accepted


def forged(
    pipeline: Pipeline,
    genuine: tuple[Statement, Accepted],
    change: Callable[[Statement, Accepted], None],
    agreements: PartyAgreements | None = None,
) -> None:
    """Re-attest the changed statement with the broker's key, seal it to BE, have BE verify it."""
    statement = {**genuine[0]}
    statement["derived_fields"] = [dict(d) for d in statement["derived_fields"]]
    statement["derived_values"] = [dict(v) for v in statement["derived_values"]]
    statement["disclosures"] = list(statement["disclosures"])
    change(statement, genuine[1])
    [delivery] = pipeline.attester.attest([pipeline.catalog.encode(DELIVERY_SCHEMA, statement)])
    verifier = DeliveryVerifier(
        pipeline.catalog,
        "BE",
        agreements=agreements or pipeline.agreements,
        keys=Keystore(pipeline.settings.keystore_dir),
        topics=pipeline.topics,
    )
    verifier.verify(pipeline.registry.current(), pipeline.sealed_to("BE", delivery))


def refused(
    pipeline: Pipeline,
    genuine: tuple[Statement, Accepted],
    change: Callable[[Statement, Accepted], None],
    agreements: PartyAgreements | None = None,
) -> RejectedInput:
    with pytest.raises(RejectedInput) as caught:
        forged(pipeline, genuine, change, agreements)
    return caught.value


def title_as_derived(*, name_its_digest: bool) -> Callable[[Statement, Accepted], None]:
    def change(statement: Statement, accepted: Accepted) -> None:
        statement["disclosures"] = [d for d in statement["disclosures"] if d["path"] != "title"]
        statement["derived_fields"].append({"field": "title", "action": "pseudonymise", "to": None})
        statement["derived_values"].append(
            {
                "path": "title",
                "value": encode_value("string", "Nothing to see here", "title"),
                "original_digest": accepted.digests["title"] if name_its_digest else None,
            }
        )

    return change


def test_the_genuine_statement_verifies_with_its_derivations(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    forged(pipeline, genuine, lambda statement, accepted: None)


def test_a_signed_title_relabelled_as_derived_naming_no_original_is_refused(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    error = refused(pipeline, genuine, title_as_derived(name_its_digest=False))

    assert error.reason == "derivation_not_allowed"
    assert "title" in error.detail
    assert "schengen-frontier-cooperation v4" in error.detail


def test_a_signed_title_relabelled_as_derived_even_naming_its_digest_is_refused(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    error = refused(pipeline, genuine, title_as_derived(name_its_digest=True))

    assert error.reason == "derivation_not_allowed"


def test_a_derived_value_of_a_prescribed_field_that_names_no_original_is_refused(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    def change(statement: Statement, accepted: Accepted) -> None:
        for value in statement["derived_values"]:
            if value["path"] == "location.latitude":
                value["original_digest"] = None

    assert refused(pipeline, genuine, change).reason == "derived_without_original"


def test_two_derived_values_naming_one_original_are_refused(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    def change(statement: Statement, accepted: Accepted) -> None:
        by_path = {v["path"]: v for v in statement["derived_values"]}
        first = by_path["subjects[0].date_of_birth"]["original_digest"]
        by_path["subjects[1].date_of_birth"]["original_digest"] = first

    assert refused(pipeline, genuine, change).reason == "original_digest_reused"


def test_a_derivation_no_agreement_prescribes_for_the_field_is_refused(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    def change(statement: Statement, accepted: Accepted) -> None:
        for field in statement["derived_fields"]:
            if field["field"] == "subjects[].date_of_birth":
                field["to"] = "month"  # finer than the agreement's year

    error = refused(pipeline, genuine, change)

    assert error.reason == "derivation_not_allowed"
    assert "generalise to month" in error.detail


def test_a_derivation_laxer_than_the_named_agreement_is_refused_though_another_prescribes_it(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    own = list(pipeline.agreements.agreements(""))
    lax = Agreement.model_validate(
        {
            "id": "lax-nl-be",
            "version": 1,
            "title": "An overlapping agreement with a laxer rule",
            "purpose": "tests",
            "parties": ["NL", "BE"],
            "valid_from": "2020-01-01T00:00:00Z",
            "report_types": ["smuggling"],
            "max_marking": "TLP:AMBER",
            "field_rules": {
                "*": [{"field": "subjects[].date_of_birth", "action": "generalise", "to": "month"}]
            },
        }
    )

    def change(statement: Statement, accepted: Accepted) -> None:
        for field in statement["derived_fields"]:
            if field["field"] == "subjects[].date_of_birth":
                field["to"] = "month"

    error = refused(pipeline, genuine, change, PartyAgreements([*own, lax]))

    assert error.reason == "derivation_not_allowed"
    assert "less strictly than schengen-frontier-cooperation v4 requires" in error.detail


def test_a_stricter_derivation_an_overlapping_agreement_prescribes_is_accepted(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    """What the enforcer does where agreements overlap: the strictest rule per field."""
    own = list(pipeline.agreements.agreements(""))
    schengen = next(a for a in own if a.id == "schengen-frontier-cooperation")
    strict = schengen.model_copy(
        update={
            "id": "strict-nl-be",
            "field_rules": {
                "*": (FieldRule(field="location", action=FieldAction.GENERALISE, to="1deg"),)
            },
        }
    )

    def change(statement: Statement, accepted: Accepted) -> None:
        for field in statement["derived_fields"]:
            if field["field"] == "location":
                field["to"] = "1deg"

    forged(pipeline, genuine, change, PartyAgreements([*own, strict]))


def test_naming_an_agreement_version_the_recipient_does_not_know_is_refused(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    def change(statement: Statement, accepted: Accepted) -> None:
        statement["agreement_version"] = 5

    error = refused(pipeline, genuine, change)

    assert error.reason == "unknown_agreement"
    assert "schengen-frontier-cooperation v5" in error.detail


def test_naming_a_known_agreement_that_does_not_cover_the_flow_is_refused(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    def change(statement: Statement, accepted: Accepted) -> None:
        statement["agreement_id"], statement["agreement_version"] = "benelux-joint-patrol", 3

    assert refused(pipeline, genuine, change).reason == "agreement_not_covering"


def test_passing_on_the_signed_value_of_a_field_the_agreement_derives_is_refused(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    def change(statement: Statement, accepted: Accepted) -> None:
        statement["derived_fields"] = [
            f for f in statement["derived_fields"] if f["field"] != "location"
        ]
        statement["derived_values"] = [
            v for v in statement["derived_values"] if not v["path"].startswith("location")
        ]
        statement["disclosures"] += [
            d.to_record() for d in accepted.disclosures if d.path.startswith("location")
        ]

    error = refused(pipeline, genuine, change)

    assert error.reason == "rule_not_applied"
    assert "location" in error.detail


def test_passing_on_a_value_the_agreement_withholds_is_refused(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted]
) -> None:
    def change(statement: Statement, accepted: Accepted) -> None:
        statement["withheld_fields"] = []
        statement["disclosures"] += [
            d.to_record() for d in accepted.disclosures if d.path.endswith("].number")
        ]

    error = refused(pipeline, genuine, change)

    assert error.reason == "rule_not_applied"
    assert "redact subjects[].travel_documents[].number" in error.detail


def test_a_recipient_party_to_no_agreement_accepts_nothing(
    pipeline: Pipeline, genuine: tuple[Statement, Accepted], tmp_path: Path
) -> None:
    error = refused(pipeline, genuine, lambda s, a: None, PartyAgreements([]))

    assert error.reason == "unknown_agreement"
