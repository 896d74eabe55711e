"""STIX 2.1 bundles published as ixb reports: ixb's own round-trip, and a partner's bundle."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from broker.domain.report import HandlingCode, Marking, ReportType, SourceReliability
from broker.wire.codec import SchemaCatalog
from connectors.stix import InboundDefaults, Unmappable, bundle_to_reports, delivery_to_bundle
from tests.factories import make_report
from tests.support.deliveries import DeliveryFactory

PARTNER_BUNDLE = Path(__file__).resolve().parents[1] / "data" / "stix" / "partner-report.json"
AGENCY_DEFAULTS = InboundDefaults(
    origin="NL",
    report_type=ReportType.DOCUMENT_FRAUD,
    handling_code=HandlingCode.H1,
    source_reliability=SourceReliability.B,
    information_credibility=3,
)


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory, catalog: SchemaCatalog) -> DeliveryFactory:
    return DeliveryFactory(tmp_path_factory.mktemp("stix-in"), catalog)


def partner_bundle() -> dict[str, Any]:
    bundle = json.loads(PARTNER_BUNDLE.read_text())
    assert isinstance(bundle, dict)
    return bundle


def first(bundle: dict[str, Any], stix_type: str) -> dict[str, Any]:
    return next(o for o in bundle["objects"] if o["type"] == stix_type)


@pytest.mark.parametrize("report_type", ["smuggling", "watchlist_hit", "other"])
def test_a_whole_delivery_maps_back_to_the_report_that_was_published(
    factory: DeliveryFactory, report_type: str
) -> None:
    report = make_report(
        "NL",
        report_type=report_type,
        indicators=[
            {"kind": "email", "value": "fixer@mail.example"},
            {"kind": "ip_address", "value": "192.0.2.7"},
            {"kind": "modus_operandi", "value": "false floor"},
            {"kind": "route", "value": "Budapest - Vienna - Antwerp"},
        ],
    )
    bundle = json.loads(json.dumps(delivery_to_bundle(factory.deliver(report, "DE"))))
    assert bundle_to_reports(bundle, InboundDefaults(origin="NL"), now=report.issued_at) == [report]


def test_a_redacted_delivery_maps_back_to_what_the_recipient_was_given(
    factory: DeliveryFactory,
) -> None:
    delivery = factory.deliver(make_report("NL"), "BE")
    [back] = bundle_to_reports(
        delivery_to_bundle(delivery), InboundDefaults(origin="NL"), now=delivery.report.issued_at
    )
    assert back == delivery.report
    assert back.summary is None


def test_republishing_a_bundle_gives_the_same_report_ids_so_the_broker_refuses_the_copy() -> None:
    once = bundle_to_reports(partner_bundle(), AGENCY_DEFAULTS)
    twice = bundle_to_reports(partner_bundle(), AGENCY_DEFAULTS)
    assert [r.report_id for r in once] == [r.report_id for r in twice]


def test_a_partner_bundle_maps_with_the_agencys_defaults() -> None:
    now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    [report] = bundle_to_reports(partner_bundle(), AGENCY_DEFAULTS, now=now)
    assert report.origin == "NL"
    assert report.agency == "Koninklijke Marechaussee"
    assert report.marking is Marking.GREEN
    assert report.handling_code is HandlingCode.H1
    assert (report.source_reliability, report.information_credibility) == ("B", 3)
    assert report.issued_at == now
    assert report.observed_at == dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    assert report.location is not None
    assert (report.location.country, report.location.crossing_point) == ("NL", "Schiphol")
    assert report.location.precision_m == 2000
    assert [s.full_name for s in report.subjects] == ["Jonas Keller"]
    assert [(i.kind.value, i.value) for i in report.indicators] == [
        ("email", "broker@mail.example"),
        ("url", "https://permits.example/order"),
    ]


def test_a_bundle_without_a_handling_code_or_default_is_refused_naming_the_markings() -> None:
    defaults = InboundDefaults(
        origin="NL", source_reliability=SourceReliability.B, information_credibility=3
    )
    with pytest.raises(Unmappable) as refused:
        bundle_to_reports(partner_bundle(), defaults)
    assert refused.value.object_id == first(partner_bundle(), "report")["id"]
    assert refused.value.property == "object_marking_refs"
    assert "SIENA" in refused.value.detail


def test_a_grading_that_is_neither_given_nor_defaulted_is_refused_not_guessed() -> None:
    defaults = InboundDefaults(origin="NL", handling_code=HandlingCode.H0)
    with pytest.raises(Unmappable) as refused:
        bundle_to_reports(partner_bundle(), defaults)
    assert refused.value.property is not None
    assert refused.value.property.endswith(".source_reliability")


def test_a_property_ixb_has_no_field_for_is_refused_unless_the_adapter_drops_it() -> None:
    bundle = partner_bundle()
    first(bundle, "report")["labels"] = ["document-fraud"]
    with pytest.raises(Unmappable) as refused:
        bundle_to_reports(bundle, AGENCY_DEFAULTS)
    assert (refused.value.object_id, refused.value.property) == (
        first(bundle, "report")["id"],
        "labels",
    )
    dropping = dataclasses.replace(AGENCY_DEFAULTS, ignore_properties=frozenset({"labels"}))
    [report] = bundle_to_reports(bundle, dropping)
    assert report.title == first(bundle, "report")["name"]


def test_an_object_type_ixb_has_no_field_for_is_refused_naming_the_object() -> None:
    bundle = partner_bundle()
    malware = {
        "type": "malware",
        "spec_version": "2.1",
        "id": f"malware--{uuid.uuid4()}",
        "created": "2026-11-30T08:00:00.000Z",
        "modified": "2026-11-30T08:00:00.000Z",
        "name": "permit-stealer",
        "is_family": False,
    }
    bundle["objects"].append(malware)
    first(bundle, "report")["object_refs"].append(malware["id"])
    with pytest.raises(Unmappable) as refused:
        bundle_to_reports(bundle, AGENCY_DEFAULTS)
    assert refused.value.object_id == malware["id"]
    assert "malware" in refused.value.detail


def test_an_object_no_report_refers_to_is_refused_rather_than_lost() -> None:
    bundle = partner_bundle()
    email = first(bundle, "email-addr")
    first(bundle, "report")["object_refs"].remove(email["id"])
    first(bundle, "report")["object_refs"].remove(first(bundle, "relationship")["id"])
    bundle["objects"].remove(first(bundle, "relationship"))
    with pytest.raises(Unmappable) as refused:
        bundle_to_reports(bundle, AGENCY_DEFAULTS)
    assert refused.value.object_id == email["id"]
    assert "lost" in refused.value.detail


def test_an_indicator_pattern_that_is_not_a_plain_value_is_refused_naming_the_pattern() -> None:
    bundle = partner_bundle()
    first(bundle, "indicator")["pattern"] = (
        "[url:value = 'https://permits.example/order'] OR [domain-name:value = 'permits.example']"
    )
    with pytest.raises(Unmappable) as refused:
        bundle_to_reports(bundle, AGENCY_DEFAULTS)
    assert (refused.value.object_id, refused.value.property) == (
        first(bundle, "indicator")["id"],
        "pattern",
    )


def test_a_bundle_without_a_report_is_refused() -> None:
    bundle = partner_bundle()
    bundle["objects"] = [o for o in bundle["objects"] if o["type"] != "report"]
    with pytest.raises(Unmappable, match="holds no report"):
        bundle_to_reports(bundle, AGENCY_DEFAULTS)


def test_refusals_name_the_object_and_property_never_a_value() -> None:
    bundle = partner_bundle()
    first(bundle, "identity")["sectors"] = ["government-national"]
    with pytest.raises(Unmappable) as refused:
        bundle_to_reports(bundle, AGENCY_DEFAULTS)
    assert "government-national" not in str(refused.value)
    assert "'sectors'" in str(refused.value)


def test_a_report_naming_no_creator_takes_the_adapters_agency_or_is_refused() -> None:
    bundle = partner_bundle()
    for obj in bundle["objects"]:
        obj.pop("created_by_ref", None)
    bundle["objects"] = [o for o in bundle["objects"] if o.get("identity_class") != "organization"]
    with pytest.raises(Unmappable) as refused:
        bundle_to_reports(bundle, AGENCY_DEFAULTS)
    assert refused.value.property == "created_by_ref"
    named = dataclasses.replace(AGENCY_DEFAULTS, agency="Koninklijke Marechaussee")
    [report] = bundle_to_reports(bundle, named)
    assert report.agency == "Koninklijke Marechaussee"


def test_an_object_marked_more_strictly_than_its_report_makes_the_report_that_strict() -> None:
    bundle = partner_bundle()
    red = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
    person = next(o for o in bundle["objects"] if o.get("identity_class") == "individual")
    person["object_marking_refs"] = [red]
    [report] = bundle_to_reports(bundle, AGENCY_DEFAULTS)
    assert report.marking is Marking.RED
