"""A verified delivery as a STIX 2.1 bundle (docs/STIX.md has the mapping and its reasons).

The bundle holds exactly what the recipient was given: a withheld value is
absent (never a placeholder), a derived one is there with its provenance
saying the broker derived it under which agreement, and the location is at
the precision the recipient received. Ids are deterministic
(:mod:`connectors.stix.vocabulary`), so the same delivery always gives the
same bundle, byte for byte.

Objects made, per report:

- ``report`` for the report itself (every type): what the agency issued,
  with ``object_refs`` to everything below;
- ``incident`` for a report about an event (smuggling, trafficking, crossings,
  fraud, terrorism, maritime incidents, stolen vehicles), so subjects,
  vehicles and the place have something to be related to; ``sighting`` for a
  watchlist hit, which is what a hit is (the listed subject was seen, there,
  then); nothing more for ``other``;
- ``identity`` (class ``organization``) for the originating agency, the
  ``created_by_ref`` of every object; ``identity`` (class ``individual``) for
  a subject whose name the recipient was given, ``x-ixb-subject`` for one
  whose name was withheld (an identity must have a name);
- ``location`` for the location, ``x-ixb-travel-document`` and
  ``x-ixb-vehicle`` (STIX has no such objects), ``email-addr``, ``ipv4-addr``,
  ``ipv6-addr``, ``url`` and ``attack-pattern`` (a modus operandi) for the
  indicators that have a STIX type, ``x-ixb-indicator`` for the others;
- ``relationship`` objects linking subjects to their documents and every
  party and place to the incident.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from broker import (
    FieldProvenance,
    Indicator,
    IndicatorKind,
    ReportType,
    Subject,
    ThreatReport,
    TravelDocument,
    Vehicle,
    VerifiedDelivery,
)
from connectors.stix.vocabulary import (
    INDICATOR_TYPE,
    IXB_EXTENSION_DEFINITION,
    IXB_EXTENSION_ID,
    IXB_IDENTITY,
    SIENA_IDS,
    SPEC_VERSION,
    SUBJECT_TYPE,
    TLP2_IDS,
    TRAVEL_DOCUMENT_TYPE,
    VEHICLE_TYPE,
    ixb_id,
    sco_id,
    siena_marking,
    timestamp,
    tlp2_marking,
)

# The report types that are events, and so get an ``incident`` to hang the parties on.
SIGHTING_TYPES = frozenset({ReportType.WATCHLIST_HIT})
PLAIN_TYPES = frozenset({ReportType.OTHER})


def agency_identity_id(origin: str, agency: str) -> str:
    """The same agency is the same identity in every bundle."""
    return ixb_id("identity", f"agency/{origin}/{agency}")


def delivery_to_bundle(delivery: VerifiedDelivery) -> dict[str, Any]:
    """The STIX 2.1 bundle for one verified delivery (a JSON-ready dict)."""
    return _Mapper(delivery).bundle()


class _Mapper:
    """Builds one bundle; the state is the objects made so far and their paths."""

    __slots__ = ("_by_path", "_created", "_delivery", "_markings", "_objects", "_report")

    def __init__(self, delivery: VerifiedDelivery) -> None:
        self._delivery = delivery
        self._report: ThreatReport = delivery.report
        self._created = timestamp(self._report.issued_at)
        self._markings = [TLP2_IDS[self._report.marking], SIENA_IDS[self._report.handling_code]]
        self._objects: dict[str, dict[str, Any]] = {}
        self._by_path: list[dict[str, str]] = []

    def _id(self, stix_type: str, path: str) -> str:
        return ixb_id(stix_type, f"{self._delivery.delivery_id}/{path}")

    def _sdo(
        self, stix_type: str, path: str, *, record: bool = True, **properties: Any
    ) -> dict[str, Any]:
        """A domain or relationship object; ``record`` lists it under its report path."""
        obj = {
            "type": stix_type,
            "spec_version": SPEC_VERSION,
            "id": self._id(stix_type, path),
            "created_by_ref": agency_identity_id(self._report.origin, self._report.agency),
            "created": self._created,
            "modified": self._created,
            **{k: v for k, v in properties.items() if v is not None},
            "object_marking_refs": self._markings,
        }
        return self._add(obj, path if record else None)

    def _new_sdo(self, stix_type: str, path: str, **properties: Any) -> dict[str, Any]:
        obj = self._sdo(stix_type, path, **properties)
        obj["extensions"] = {IXB_EXTENSION_ID: {"extension_type": "new-sdo"}}
        return obj

    def _add(self, obj: dict[str, Any], path: str | None) -> dict[str, Any]:
        self._objects.setdefault(obj["id"], obj)
        if path is not None:
            self._by_path.append({"path": path, "object_ref": obj["id"]})
        return self._objects[obj["id"]]

    def _relate(self, source: str, target: str, kind: str = "related-to") -> None:
        self._sdo(
            "relationship",
            f"relationship/{source}/{kind}/{target}",
            record=False,
            relationship_type=kind,
            source_ref=source,
            target_ref=target,
        )

    def bundle(self) -> dict[str, Any]:
        report = self._report
        agency = {
            "type": "identity",
            "spec_version": SPEC_VERSION,
            "id": agency_identity_id(report.origin, report.agency),
            "created": IXB_IDENTITY["created"],
            "modified": IXB_IDENTITY["created"],
            "name": report.agency,
            "identity_class": "organization",
            "extensions": {
                IXB_EXTENSION_ID: {"extension_type": "property-extension", "nation": report.origin}
            },
        }
        self._add(agency, None)
        anchor = self._anchor()
        location = self._location()
        subjects = [self._subject(i, s) for i, s in enumerate(report.subjects)]
        vehicles = [self._vehicle(i, v) for i, v in enumerate(report.vehicles)]
        indicators = [self._indicator(i, x) for i, x in enumerate(report.indicators)]
        if anchor is not None:
            for ref in [location, *subjects, *vehicles, *indicators]:
                if ref is not None:
                    self._relate(ref, anchor)
        sighted = [*subjects, *vehicles]
        if report.report_type in SIGHTING_TYPES and sighted:
            self._sighting(sighted[0], location)
        content = [o["id"] for o in self._objects.values() if o["id"] != agency["id"]]
        main = self._sdo(
            "report",
            "report",
            record=False,
            name=report.title,
            description=report.summary,
            published=self._created,
            report_types=["threat-report"],
            object_refs=[agency["id"], *content],
        )
        main["extensions"] = {IXB_EXTENSION_ID: self._report_extension()}
        fixed = [
            IXB_IDENTITY,
            IXB_EXTENSION_DEFINITION,
            tlp2_marking(report.marking),
            siena_marking(report.handling_code),
        ]
        return {
            "type": "bundle",
            "id": ixb_id("bundle", self._delivery.delivery_id),
            "objects": [*fixed, agency, main, *content_objects(self._objects, agency["id"], main)],
        }

    def _anchor(self) -> str | None:
        """The incident a report of an event is about (none for a hit or ``other``)."""
        report = self._report
        if report.report_type in SIGHTING_TYPES | PLAIN_TYPES:
            return None
        incident = self._sdo(
            "incident", "incident", record=False, name=report.title, description=report.summary
        )
        incident["extensions"] = {
            IXB_EXTENSION_ID: {
                "extension_type": "property-extension",
                "report_type": report.report_type.value,
                "observed_at": timestamp(report.observed_at),
            }
        }
        return str(incident["id"])

    def _sighting(self, subject_ref: str, location_ref: str | None) -> None:
        observed = timestamp(self._report.observed_at)
        self._sdo(
            "sighting",
            "sighting",
            record=False,
            first_seen=observed,
            last_seen=observed,
            count=1,
            sighting_of_ref=subject_ref,
            where_sighted_refs=[location_ref] if location_ref else None,
        )

    def _location(self) -> str | None:
        where = self._report.location
        if where is None:
            return None
        has_point = where.latitude is not None and where.longitude is not None
        if where.country is None and not has_point:
            return None  # not a STIX location: the report's extension carries it
        location = self._sdo(
            "location",
            "location",
            name=where.crossing_point or where.border_sector,
            country=where.country,
            latitude=where.latitude if has_point else None,
            longitude=where.longitude if has_point else None,
            precision=float(where.precision_m)
            if has_point and where.precision_m is not None
            else None,
        )
        extra = {"border_sector": where.border_sector, "crossing_point": where.crossing_point}
        if any(v is not None for v in extra.values()):
            location["extensions"] = {
                IXB_EXTENSION_ID: {
                    "extension_type": "property-extension",
                    **{k: v for k, v in extra.items() if v is not None},
                }
            }
        return str(location["id"])

    def _subject(self, index: int, subject: Subject) -> str:
        path = f"subjects[{index}]"
        facts = {
            "role": subject.role.value,
            "date_of_birth": subject.date_of_birth.isoformat() if subject.date_of_birth else None,
            "nationality": subject.nationality,
        }
        if subject.full_name is not None:
            obj = self._sdo("identity", path, name=subject.full_name, identity_class="individual")
            obj["extensions"] = {
                IXB_EXTENSION_ID: {
                    "extension_type": "property-extension",
                    **{k: v for k, v in facts.items() if v is not None},
                }
            }
        else:
            obj = self._new_sdo(SUBJECT_TYPE, path, **facts)
        for number, document in enumerate(subject.travel_documents):
            self._relate(obj["id"], self._document(f"{path}.travel_documents[{number}]", document))
        return str(obj["id"])

    def _document(self, path: str, document: TravelDocument) -> str:
        obj = self._new_sdo(
            TRAVEL_DOCUMENT_TYPE,
            path,
            document_type=document.document_type.value,
            number=document.number,
            issuing_country=document.issuing_country,
        )
        return str(obj["id"])

    def _vehicle(self, index: int, vehicle: Vehicle) -> str:
        obj = self._new_sdo(
            VEHICLE_TYPE,
            f"vehicles[{index}]",
            kind=vehicle.kind.value,
            registration=vehicle.registration,
            flag=vehicle.flag,
            description=vehicle.description,
        )
        return str(obj["id"])

    def _indicator(self, index: int, indicator: Indicator) -> str:
        path = f"indicators[{index}]"
        value = indicator.value
        sco_type = _sco_type(indicator)
        if value is not None and sco_type is not None:
            sco = {
                "type": sco_type,
                "spec_version": SPEC_VERSION,
                "id": sco_id(sco_type, {"value": value}),
                "value": value,
                "object_marking_refs": self._markings,
            }
            return str(self._add(sco, path)["id"])
        if value is not None and indicator.kind is IndicatorKind.MODUS_OPERANDI:
            return str(self._sdo("attack-pattern", path, name=value)["id"])
        obj = self._new_sdo(INDICATOR_TYPE, path, kind=indicator.kind.value, value=value)
        return str(obj["id"])

    def _report_extension(self) -> dict[str, Any]:
        report, delivery = self._report, self._delivery
        where = report.location
        extension: dict[str, Any] = {
            "extension_type": "property-extension",
            "report_id": str(report.report_id),
            "report_type": report.report_type.value,
            "origin": report.origin,
            "observed_at": timestamp(report.observed_at),
            "handling_code": report.handling_code.value,
            "source_reliability": report.source_reliability.value,
            "information_credibility": report.information_credibility,
            "related_report_ids": [str(r) for r in report.related_report_ids],
            "object_paths": self._by_path,
            "delivery": _delivery_facts(delivery),
            "field_provenance": [
                _provenance(path, mark) for path, mark in sorted(delivery.provenance.items())
            ],
        }
        if where is not None and not any(p["path"] == "location" for p in self._by_path):
            extension["location"] = where.model_dump(mode="json", exclude_none=True)
        if not extension["related_report_ids"]:
            del extension["related_report_ids"]
        return extension


def content_objects(
    objects: dict[str, dict[str, Any]], agency_id: str, main: dict[str, Any]
) -> list[dict[str, Any]]:
    """The objects made from the report, in the order they were made, without the two heads."""
    return [o for o in objects.values() if o["id"] not in (agency_id, main["id"])]


def _sco_type(indicator: Indicator) -> str | None:
    if indicator.kind is IndicatorKind.EMAIL:
        return "email-addr"
    if indicator.kind is IndicatorKind.URL:
        return "url"
    if indicator.kind is IndicatorKind.IP_ADDRESS and indicator.value is not None:
        try:
            address = ipaddress.ip_address(indicator.value)
        except ValueError:
            return None  # not an address STIX can type: kept as an x-ixb-indicator
        return "ipv4-addr" if address.version == 4 else "ipv6-addr"
    return None


def _delivery_facts(delivery: VerifiedDelivery) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "delivery_id": delivery.delivery_id,
        "recipient": delivery.recipient,
        "agreement_id": delivery.agreement_id,
        "agreement_version": delivery.agreement_version,
        "policy_bundle_hash": delivery.policy_bundle_hash,
        "verified_by_broker_key": delivery.broker_key_id,
        "originator_key": delivery.originator_key_id,
        "original_sha256": delivery.original_sha256.hex(),
        "withheld_fields": list(delivery.withheld_fields),
        "derived_fields": [
            {k: v for k, v in (("field", d.field), ("action", d.action), ("to", d.to)) if v}
            for d in delivery.derived_fields
        ],
    }
    if delivery.not_before is not None:
        facts["not_before"] = timestamp(delivery.not_before)
    return facts


def _provenance(path: str, mark: FieldProvenance) -> dict[str, str]:
    entry = {"path": path, "kind": mark.kind}
    if mark.by:
        entry["by"] = mark.by
    if mark.action:
        entry["action"] = mark.action
    return entry
