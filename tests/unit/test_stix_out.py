"""Verified deliveries as STIX 2.1 bundles, checked by stix2-validator and stix2 themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stix2
from stix2validator import ValidationOptions, validate_instance

from broker.domain.report import ReportType
from broker.wire.codec import SchemaCatalog
from connectors.stix import delivery_to_bundle
from connectors.stix.vocabulary import IXB_EXTENSION_ID, IXB_NAMESPACE
from tests.factories import make_report
from tests.support.deliveries import DeliveryFactory

INDICATORS = [
    {"kind": "phone_number", "value": "+36 30 555 0101"},
    {"kind": "email", "value": "fixer@mail.example"},
    {"kind": "ip_address", "value": "192.0.2.7"},
    {"kind": "ip_address", "value": "2001:db8::7"},
    {"kind": "url", "value": "https://market.example/route"},
    {"kind": "modus_operandi", "value": "false floor in a reefer trailer"},
    {"kind": "iban", "value": "HU42117730161111101800000000"},
]

# The TLP 2.0 marking-definitions as OASIS published them (cti-stix-common-objects).
OASIS_TLP2 = {
    "TLP:CLEAR": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "TLP:GREEN": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "TLP:AMBER": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "TLP:AMBER+STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "TLP:RED": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory, catalog: SchemaCatalog) -> DeliveryFactory:
    return DeliveryFactory(tmp_path_factory.mktemp("stix-out"), catalog)


def by_type(bundle: dict[str, Any], stix_type: str) -> list[dict[str, Any]]:
    return [o for o in bundle["objects"] if o["type"] == stix_type]


def report_extension(bundle: dict[str, Any]) -> dict[str, Any]:
    [report] = by_type(bundle, "report")
    [extension] = report["extensions"].values()
    assert isinstance(extension, dict)
    return extension


# The report types the test agreements share: an event, a hit, a withheld name, "other".
SHARED_TYPES = [
    ReportType.SMUGGLING,
    ReportType.MIGRANT_SMUGGLING,
    ReportType.WATCHLIST_HIT,
    ReportType.DOCUMENT_FRAUD,
    ReportType.OTHER,
]


@pytest.mark.parametrize("report_type", SHARED_TYPES)
@pytest.mark.parametrize("recipient", ["BE", "DE"])
def test_every_report_type_gives_a_bundle_the_validator_passes_without_a_warning(
    factory: DeliveryFactory, report_type: ReportType, recipient: str
) -> None:
    report = make_report("NL", report_type=report_type, indicators=INDICATORS)
    bundle = delivery_to_bundle(factory.deliver(report, recipient))
    result = validate_instance(json.loads(json.dumps(bundle)), ValidationOptions(version="2.1"))
    assert result.errors == []
    assert result.warnings == []
    parsed = stix2.parse(bundle, allow_custom=True)
    assert len(parsed.objects) == len(bundle["objects"])


def test_the_same_delivery_gives_the_same_bundle_and_another_recipient_other_ids(
    factory: DeliveryFactory,
) -> None:
    report = make_report("NL")
    view = {r: factory.deliver(report, r) for r in ("BE", "DE")}
    first = delivery_to_bundle(view["BE"])
    assert delivery_to_bundle(view["BE"]) == first
    be_ids = {o["id"] for o in first["objects"] if o["type"] in ("report", "location", "identity")}
    de_ids = {o["id"] for o in delivery_to_bundle(view["DE"])["objects"]}
    shared = {o["id"] for o in by_type(first, "identity") if o["identity_class"] != "individual"}
    assert len(shared) == 2  # the agency and ixb: the same in every bundle
    assert be_ids & de_ids == shared


def test_withheld_values_are_absent_and_named_only_in_the_provenance(
    factory: DeliveryFactory,
) -> None:
    report = make_report("NL")
    delivery = factory.deliver(report, "BE")
    text = json.dumps(delivery_to_bundle(delivery))
    assert report.summary is not None
    assert report.summary not in text
    for subject in report.subjects:
        for document in subject.travel_documents:
            assert document.number is not None
            assert document.number not in text
    assert "Adrian Varga" not in text  # pseudonymised for BE
    withheld = {
        p["path"]
        for p in report_extension(delivery_to_bundle(delivery))["field_provenance"]
        if p["kind"] == "withheld"
    }
    assert withheld == {
        "summary",
        "subjects[0].travel_documents[0].number",
        "subjects[0].travel_documents[1].number",
    }


def test_derived_values_carry_the_agreement_that_derived_them(factory: DeliveryFactory) -> None:
    bundle = delivery_to_bundle(factory.deliver(make_report("NL"), "BE"))
    provenance = {p["path"]: p for p in report_extension(bundle)["field_provenance"]}
    assert provenance["subjects[0].full_name"] == {
        "path": "subjects[0].full_name",
        "kind": "derived",
        "by": "nl-be-connectors v2",
        "action": "pseudonymise",
    }
    assert provenance["title"]["kind"] == "signed"
    assert provenance["title"]["by"].startswith("NL key NL-")
    individuals = [o for o in by_type(bundle, "identity") if o["identity_class"] == "individual"]
    assert individuals[0]["name"].startswith("ps1-")


def test_the_location_is_at_the_precision_the_recipient_was_given(
    factory: DeliveryFactory,
) -> None:
    report = make_report("NL")
    [be_place] = by_type(delivery_to_bundle(factory.deliver(report, "BE")), "location")
    [de_place] = by_type(delivery_to_bundle(factory.deliver(report, "DE")), "location")
    assert (de_place["latitude"], de_place["longitude"], de_place["precision"]) == (
        51.4925,
        4.7461,
        50.0,
    )
    assert (be_place["latitude"], be_place["longitude"]) == (51.5, 4.7)
    assert be_place["precision"] == 11132.0  # a 0.1-degree grid cell


def test_markings_are_the_official_tlp_2_0_objects_and_a_siena_marking(
    factory: DeliveryFactory,
) -> None:
    report = make_report("NL", marking="TLP:AMBER+STRICT", handling_code="H2")
    bundle = delivery_to_bundle(factory.deliver(report, "DE"))
    markings = {o["id"]: o for o in by_type(bundle, "marking-definition")}
    tlp = markings[OASIS_TLP2["TLP:AMBER+STRICT"]]
    assert tlp == {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        "created": "2022-10-01T00:00:00.000Z",
        "name": "TLP:AMBER+STRICT",
        "extensions": {
            "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {
                "extension_type": "property-extension",
                "tlp_2_0": "amber+strict",
            }
        },
    }
    [siena] = [m for m in markings.values() if m["name"] == "SIENA:H2"]
    for obj in bundle["objects"]:
        if obj["type"] not in ("marking-definition", "extension-definition", "identity", "bundle"):
            assert obj["object_marking_refs"] == [tlp["id"], siena["id"]], obj["type"]


def test_a_watchlist_hit_is_a_sighting_of_its_subject_where_it_was_observed(
    factory: DeliveryFactory,
) -> None:
    report = make_report("NL", report_type="watchlist_hit")
    bundle = delivery_to_bundle(factory.deliver(report, "DE"))
    [sighting] = by_type(bundle, "sighting")
    [place] = by_type(bundle, "location")
    subject = next(o for o in by_type(bundle, "identity") if o.get("name") == "Adrian Varga")
    assert sighting["sighting_of_ref"] == subject["id"]
    assert sighting["where_sighted_refs"] == [place["id"]]
    assert sighting["first_seen"] == report_extension(bundle)["observed_at"]
    assert by_type(bundle, "incident") == []


def test_a_subject_whose_name_was_withheld_is_a_subject_object_with_no_name(
    factory: DeliveryFactory,
) -> None:
    bundle = delivery_to_bundle(
        factory.deliver(make_report("NL", report_type="document_fraud"), "DE")
    )
    subjects = by_type(bundle, "x-ixb-subject")
    assert [s["role"] for s in subjects] == ["suspect", "facilitator"]
    assert all("name" not in s and "full_name" not in s for s in subjects)
    assert [o for o in by_type(bundle, "identity") if o["identity_class"] == "individual"] == []


def test_cyber_observables_have_the_ids_stix2_computes_for_them(factory: DeliveryFactory) -> None:
    bundle = delivery_to_bundle(factory.deliver(make_report("NL", indicators=INDICATORS), "DE"))
    expected = {
        stix2.EmailAddress(value="fixer@mail.example").id,
        stix2.IPv4Address(value="192.0.2.7").id,
        stix2.IPv6Address(value="2001:db8::7").id,
        stix2.URL(value="https://market.example/route").id,
    }
    made = {
        o["id"]
        for o in bundle["objects"]
        if o["type"] in ("email-addr", "ipv4-addr", "ipv6-addr", "url")
    }
    assert made == expected
    kinds = sorted(o["kind"] for o in by_type(bundle, "x-ixb-indicator"))
    assert kinds == ["iban", "phone_number"]
    [pattern] = by_type(bundle, "attack-pattern")
    assert pattern["name"] == "false floor in a reefer trailer"


def test_the_bundle_carries_the_extension_definition_its_objects_use(
    factory: DeliveryFactory,
) -> None:
    bundle = delivery_to_bundle(factory.deliver(make_report("NL"), "DE"))
    [definition] = by_type(bundle, "extension-definition")
    used = {
        name
        for obj in bundle["objects"]
        for name in obj.get("extensions", {})
        if name.startswith("extension-definition--") and not name.endswith("9e08dde9e88d")
    }
    assert used == {definition["id"]}
    creators = {o["id"] for o in by_type(bundle, "identity")}
    assert definition["created_by_ref"] in creators


def test_the_documented_identifiers_are_the_ones_the_bundles_use() -> None:
    documented = (Path(__file__).resolve().parents[2] / "docs" / "STIX.md").read_text()
    assert IXB_EXTENSION_ID in documented
    assert str(IXB_NAMESPACE) in documented
    for marking_id in OASIS_TLP2.values():
        assert marking_id in documented
