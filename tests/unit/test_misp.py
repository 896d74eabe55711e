"""Deliveries as MISP events, loaded by pymisp; MISP events published as ixb reports."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
from pymisp import MISPEvent

from broker.domain.report import HandlingCode, Marking, SourceReliability
from broker.wire.codec import SchemaCatalog
from connectors.misp import delivery_to_misp_json, events_to_reports
from connectors.stix import InboundDefaults, Unmappable
from tests.factories import make_report
from tests.support.deliveries import DeliveryFactory

INDICATORS = [
    {"kind": "phone_number", "value": "+36 30 555 0101"},
    {"kind": "email", "value": "fixer@mail.example"},
    {"kind": "ip_address", "value": "192.0.2.7"},
    {"kind": "iban", "value": "HU42117730161111101800000000"},
    {"kind": "route", "value": "Budapest - Vienna - Antwerp"},
]
DEFAULTS = InboundDefaults(
    origin="NL",
    handling_code=HandlingCode.H1,
    source_reliability=SourceReliability.C,
    information_credibility=3,
)

# An event as a partner's MISP exports it: no ixb comments or tags.
PARTNER_EVENT: dict[str, Any] = {
    "Event": {
        "uuid": "5e6b7c8d-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
        "info": "Facilitator arranging crossings near Zelezna Ruda",
        "date": "2026-11-29",
        "distribution": "1",
        "analysis": "1",
        "threat_level_id": "2",
        "Orgc": {"name": "Policie CR", "uuid": "6f7a8b9c-2b3c-4d4e-9f0a-1b2c3d4e5f6a"},
        "Tag": [{"name": "tlp:amber"}],
        "Attribute": [
            {"type": "phone-number", "category": "Person", "value": "+420 555 010 203"},
            {"type": "email-src", "category": "Payload delivery", "value": "guide@mail.example"},
        ],
        "Object": [
            {
                "name": "person",
                "meta-category": "misc",
                "template_uuid": "a15b0477-e9d1-4b9c-9546-abe78a4f4248",
                "template_version": "21",
                "Attribute": [
                    {"object_relation": "full-name", "type": "full-name", "value": "Petr Novak"},
                    {"object_relation": "role", "type": "text", "value": "Suspect"},
                    {"object_relation": "nationality", "type": "nationality", "value": "CZ"},
                ],
            },
            {
                "name": "geolocation",
                "meta-category": "misc",
                "template_uuid": "cd6f2238-ba55-4888-82c4-104e6e1acf21",
                "template_version": "8",
                "Attribute": [
                    {"object_relation": "latitude", "type": "float", "value": "49.14"},
                    {"object_relation": "longitude", "type": "float", "value": "13.23"},
                    {"object_relation": "countrycode", "type": "text", "value": "CZ"},
                    {"object_relation": "accuracy-radius", "type": "float", "value": "5"},
                ],
            },
        ],
    }
}


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory, catalog: SchemaCatalog) -> DeliveryFactory:
    return DeliveryFactory(tmp_path_factory.mktemp("misp"), catalog)


def loaded(document: dict[str, Any]) -> MISPEvent:
    event = MISPEvent()
    event.load(copy.deepcopy(json.loads(json.dumps(document))))
    return event


def test_a_delivery_exports_as_an_event_pymisp_loads(factory: DeliveryFactory) -> None:
    delivery = factory.deliver(make_report("NL", indicators=INDICATORS), "DE")
    event = loaded(delivery_to_misp_json(delivery))
    assert event.info == delivery.report.title
    assert int(event.distribution) == 0  # your organisation only: ixb chose the audience
    assert event.Orgc.name == delivery.report.agency
    tags = {t.name for t in event.tags}
    assert {"tlp:amber", 'ixb:handling-code="H1"', 'ixb:source-reliability="B"'} <= tags
    assert {o.name for o in event.objects} == {"person", "vehicle", "geolocation"}
    types = {a.type for a in event.attributes}
    assert {"phone-number", "email", "ip-dst", "iban", "datetime"} <= types


@pytest.mark.parametrize("recipient", ["DE", "BE"])
def test_an_exported_delivery_maps_back_to_what_the_recipient_was_given(
    factory: DeliveryFactory, recipient: str
) -> None:
    report = make_report("NL", indicators=INDICATORS)
    delivery = factory.deliver(report, recipient)
    document = json.loads(json.dumps(delivery_to_misp_json(delivery)))
    [back] = events_to_reports(document, InboundDefaults(origin="NL"), now=report.issued_at)
    assert back == delivery.report


def test_withheld_fields_are_named_in_tags_and_their_values_absent(
    factory: DeliveryFactory,
) -> None:
    report = make_report("NL")
    delivery = factory.deliver(report, "BE")
    text = json.dumps(delivery_to_misp_json(delivery))
    assert report.summary is not None
    assert report.summary not in text
    assert "HX1234567" not in text
    tags = {t.name for t in loaded(delivery_to_misp_json(delivery)).tags}
    assert 'ixb:withheld="summary"' in tags
    assert 'ixb:withheld="subjects[].travel_documents[].number"' in tags


def test_each_value_says_who_vouches_for_it_and_exports_are_deterministic(
    factory: DeliveryFactory,
) -> None:
    delivery = factory.deliver(make_report("NL"), "BE")
    assert delivery_to_misp_json(delivery) == delivery_to_misp_json(delivery)
    event = loaded(delivery_to_misp_json(delivery))
    [first_person] = [o for o in event.objects if o.comment == "ixb:subjects[0]"]
    name = next(a for a in first_person.attributes if a.object_relation == "full-name")
    assert name.value.startswith("ps1-")
    assert name.comment == (
        "ixb:subjects[0].full_name; pseudonymise by the broker under nl-be-connectors v2"
    )


def test_a_partner_event_maps_with_the_agencys_defaults() -> None:
    [report] = events_to_reports(PARTNER_EVENT, DEFAULTS)
    assert (report.agency, report.marking, report.handling_code) == (
        "Policie CR",
        Marking.AMBER,
        HandlingCode.H1,
    )
    assert [(s.full_name, s.role.value, s.nationality) for s in report.subjects] == [
        ("Petr Novak", "suspect", "CZ")
    ]
    assert report.location is not None
    assert (report.location.country, report.location.precision_m) == ("CZ", 5000)
    assert [(i.kind.value, i.value) for i in report.indicators] == [
        ("phone_number", "+420 555 010 203"),
        ("email", "guide@mail.example"),
    ]
    assert events_to_reports(PARTNER_EVENT, DEFAULTS)[0].report_id == report.report_id


def test_an_attribute_type_ixb_has_no_field_for_is_refused_unless_dropped() -> None:
    event = copy.deepcopy(PARTNER_EVENT)
    event["Event"]["Attribute"].append(
        {"uuid": "7a8b9c0d-3c4d-4e5f-8a1b-2c3d4e5f6a7b", "type": "md5", "value": "0" * 32}
    )
    with pytest.raises(Unmappable) as refused:
        events_to_reports(event, DEFAULTS)
    assert refused.value.object_id == "attribute 7a8b9c0d-3c4d-4e5f-8a1b-2c3d4e5f6a7b"
    assert "md5" in refused.value.detail
    assert "0" * 32 not in str(refused.value)
    dropping = dataclasses.replace(DEFAULTS, ignore_properties=frozenset({"type:md5"}))
    assert len(events_to_reports(event, dropping)[0].indicators) == 2


def test_a_tag_ixb_cannot_keep_is_refused_and_a_missing_grading_is_not_guessed() -> None:
    event = copy.deepcopy(PARTNER_EVENT)
    event["Event"]["Tag"].append({"name": 'osint:source-type="blog-post"'})
    with pytest.raises(Unmappable, match="osint"):
        events_to_reports(event, DEFAULTS)
    with pytest.raises(Unmappable, match="source_reliability"):
        events_to_reports(
            PARTNER_EVENT, InboundDefaults(origin="NL", handling_code=HandlingCode.H0)
        )


def test_an_object_template_ixb_has_no_field_for_is_refused_naming_it() -> None:
    event = copy.deepcopy(PARTNER_EVENT)
    event["Event"]["Object"].append(
        {
            "name": "domain-ip",
            "uuid": "8b9c0d1e-4d5e-4f6a-9b2c-3d4e5f6a7b8c",
            "meta-category": "network",
            "template_uuid": "43b3b146-77eb-4931-b4cc-b66c60f28734",
            "template_version": "9",
            "Attribute": [{"object_relation": "domain", "type": "domain", "value": "x.example"}],
        }
    )
    with pytest.raises(Unmappable) as refused:
        events_to_reports(event, DEFAULTS)
    assert refused.value.object_id == "object 8b9c0d1e-4d5e-4f6a-9b2c-3d4e5f6a7b8c"


def test_an_attribute_tagged_more_strictly_than_its_event_makes_the_report_that_strict() -> None:
    event = copy.deepcopy(PARTNER_EVENT)
    event["Event"]["Attribute"][0]["Tag"] = [{"name": "tlp:red"}]
    event["Event"]["Tag"].append({"name": "tlp:green"})
    [report] = events_to_reports(event, DEFAULTS)
    assert report.marking is Marking.RED
