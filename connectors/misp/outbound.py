"""A verified delivery as a MISP event in the core format, built with pymisp (docs/STIX.md, "MISP").

- the event: ``info`` is the title, ``date`` the day observed, ``Orgc`` the
  originating agency, ``distribution`` 0 ("your organisation only": ixb has
  already decided who may see it, and MISP must not share it further),
  ``analysis`` 2 (the agency issued a finished report), ``threat_level_id``
  4 (undefined: ixb reports carry no threat level);
- tags: the MISP ``tlp`` taxonomy for TLP 2.0 (``tlp:amber+strict`` and
  ``tlp:clear`` are in it), and ``ixb:`` machine tags for the SIENA handling
  code, the 4x4 grading, the report type, origin, agreement and every
  withheld field (named, never a placeholder value);
- MISP objects where a template fits: ``person`` for a subject (passport and
  identity-card numbers in its own relations), ``vehicle``, ``geolocation``
  for the location; plain attributes for the summary, the observation time
  and the indicators (``phone-number``, ``email``, ``ip-dst``, ``url``,
  ``iban``, ``text``).

Every attribute's comment starts with ``ixb:`` and the report path it comes
from, then its provenance, so the inverse mapping is exact and an analyst
sees who vouches for each value. UUIDs are deterministic, so exporting the
same delivery twice gives the same event.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pymisp import MISPAttribute, MISPEvent, MISPObject, MISPOrganisation

from broker import (
    DocumentType,
    FieldProvenance,
    Indicator,
    IndicatorKind,
    Subject,
    VerifiedDelivery,
)
from connectors.stix.vocabulary import ixb_id

TLP_TAGS = {
    "TLP:CLEAR": "tlp:clear",
    "TLP:GREEN": "tlp:green",
    "TLP:AMBER": "tlp:amber",
    "TLP:AMBER+STRICT": "tlp:amber+strict",
    "TLP:RED": "tlp:red",
}
INDICATOR_TYPES = {
    IndicatorKind.PHONE_NUMBER: "phone-number",
    IndicatorKind.EMAIL: "email",
    IndicatorKind.IBAN: "iban",
    IndicatorKind.IP_ADDRESS: "ip-dst",
    IndicatorKind.URL: "url",
}
# The person template's role list; a facilitator is its "Accomplice". Other
# roles (traveller, unknown) have no entry and travel as a "text" relation.
ROLE_VALUES = {
    "suspect": "Suspect",
    "victim": "Victim",
    "witness": "Witness",
    "facilitator": "Accomplice",
}


Value = str | int | float | dt.date


def _plain(value: Value) -> str | int | float:
    """What pymisp takes as a value: dates and times in ISO 8601."""
    return value.isoformat() if isinstance(value, dt.date) else value


def misp_uuid(delivery_id: str, path: str) -> str:
    return ixb_id("misp", f"{delivery_id}/{path}").removeprefix("misp--")


def machine_tag(name: str, value: object) -> str:
    return f'ixb:{name}="{value}"'


def delivery_to_event(delivery: VerifiedDelivery) -> MISPEvent:
    """The MISP event for one verified delivery."""
    return _EventBuilder(delivery).build()


def delivery_to_misp_json(delivery: VerifiedDelivery) -> dict[str, Any]:
    """The event as MISP's REST API and JSON export write it: ``{"Event": {...}}``."""
    event: dict[str, Any] = json.loads(delivery_to_event(delivery).to_json())
    return {"Event": event}


class _EventBuilder:
    __slots__ = ("_delivery", "_event", "_provenance")

    def __init__(self, delivery: VerifiedDelivery) -> None:
        self._delivery = delivery
        self._provenance = delivery.provenance
        self._event = MISPEvent()

    def _comment(self, path: str) -> str:
        mark: FieldProvenance | None = self._provenance.get(path)
        return f"ixb:{path}; {mark.describe()}" if mark else f"ixb:{path}"

    def _attribute(self, misp_type: str, path: str, value: Value) -> MISPAttribute:
        attribute = self._event.add_attribute(
            misp_type,
            _plain(value),
            comment=self._comment(path),
            uuid=misp_uuid(self._delivery.delivery_id, path),
            distribution=5,
            to_ids=False,
        )
        assert isinstance(attribute, MISPAttribute)
        return attribute

    def _object(self, template: str, path: str) -> MISPObject:
        obj = MISPObject(template, standalone=False)
        obj.uuid = misp_uuid(self._delivery.delivery_id, path)
        obj.comment = f"ixb:{path}"
        obj.distribution = 5
        return obj

    def _relation(self, obj: MISPObject, relation: str, path: str, value: Value) -> None:
        """An attribute of ``obj``, or of the event when the template has no such relation."""
        template = obj._definition
        assert template is not None
        if relation not in template["attributes"]:
            self._attribute("text", path, value)
            return
        obj.add_attribute(
            relation,
            value=_plain(value),
            comment=self._comment(path),
            uuid=misp_uuid(self._delivery.delivery_id, f"{path}@{relation}"),
            distribution=5,
            to_ids=False,
        )

    def build(self) -> MISPEvent:
        delivery, event = self._delivery, self._event
        report = delivery.report
        event.uuid = misp_uuid(delivery.delivery_id, "event")
        event.info = report.title
        event.date = report.observed_at.date()
        event.distribution = 0
        event.analysis = 2
        event.threat_level_id = 4
        event.published = False
        organisation = MISPOrganisation()
        organisation.name = report.agency
        organisation.uuid = ixb_id("misp-org", f"{report.origin}/{report.agency}").split("--")[1]
        event.Orgc = organisation
        for tag in self._tags():
            event.add_tag(tag)
        self._attribute("datetime", "observed_at", report.observed_at)
        if report.summary is not None:
            self._attribute("text", "summary", report.summary)
        self._location()
        for index, subject in enumerate(report.subjects):
            self._subject(f"subjects[{index}]", subject)
        for index, vehicle in enumerate(report.vehicles):
            obj = self._object("vehicle", f"vehicles[{index}]")
            self._relation(obj, "type", f"vehicles[{index}].kind", vehicle.kind.value)
            for relation, name, value in (
                ("license-plate-number", "registration", vehicle.registration),
                ("description", "description", vehicle.description),
                ("text", "flag", vehicle.flag),
            ):
                if value is not None:
                    self._relation(obj, relation, f"vehicles[{index}].{name}", value)
            event.add_object(obj)
        for index, indicator in enumerate(report.indicators):
            self._indicator(f"indicators[{index}]", indicator)
        return event

    def _tags(self) -> list[str]:
        delivery, report = self._delivery, self._delivery.report
        tags = [
            TLP_TAGS[report.marking.value],
            machine_tag("handling-code", report.handling_code.value),
            machine_tag("source-reliability", report.source_reliability.value),
            machine_tag("information-credibility", report.information_credibility),
            machine_tag("report-type", report.report_type.value),
            machine_tag("origin", report.origin),
            machine_tag("report-id", report.report_id),
            machine_tag("agreement", f"{delivery.agreement_id} v{delivery.agreement_version}"),
            machine_tag("delivery-id", delivery.delivery_id),
        ]
        tags += [machine_tag("withheld", field) for field in delivery.withheld_fields]
        tags += [machine_tag("related-report", rid) for rid in report.related_report_ids]
        return tags

    def _location(self) -> None:
        where = self._delivery.report.location
        if where is None:
            return
        obj = self._object("geolocation", "location")
        for relation, name, value in (
            ("latitude", "latitude", where.latitude),
            ("longitude", "longitude", where.longitude),
            (
                "accuracy-radius",
                "precision_m",
                None if where.precision_m is None else where.precision_m / 1000,
            ),
            ("countrycode", "country", where.country),
            ("region", "border_sector", where.border_sector),
            ("address", "crossing_point", where.crossing_point),
        ):
            if value is not None:
                self._relation(obj, relation, f"location.{name}", value)
        if obj.attributes:
            self._event.add_object(obj)

    def _subject(self, path: str, subject: Subject) -> None:
        obj = self._object("person", path)
        role = ROLE_VALUES.get(subject.role.value)
        if role is None:
            self._relation(obj, "text", f"{path}.role", subject.role.value)
        else:
            self._relation(obj, "role", f"{path}.role", role)
        for relation, name, value in (
            ("full-name", "full_name", subject.full_name),
            ("date-of-birth", "date_of_birth", subject.date_of_birth),
            ("nationality", "nationality", subject.nationality),
        ):
            if value is not None:
                self._relation(obj, relation, f"{path}.{name}", value)
        for number, document in enumerate(subject.travel_documents):
            at = f"{path}.travel_documents[{number}]"
            self._relation(obj, "text", f"{at}.document_type", document.document_type.value)
            if document.number is not None:
                relation = {
                    DocumentType.PASSPORT: "passport-number",
                    DocumentType.ID_CARD: "identity-card-number",
                }.get(document.document_type, "text")
                self._relation(obj, relation, f"{at}.number", document.number)
            if document.issuing_country is not None:
                relation = (
                    "passport-country"
                    if document.document_type is DocumentType.PASSPORT
                    else "text"
                )
                self._relation(obj, relation, f"{at}.issuing_country", document.issuing_country)
        self._event.add_object(obj)

    def _indicator(self, path: str, indicator: Indicator) -> None:
        misp_type = INDICATOR_TYPES.get(indicator.kind, "text")
        if indicator.value is None:
            self._attribute("text", f"{path}.kind", indicator.kind.value)
            return
        self._attribute(misp_type, f"{path}.value", indicator.value)
        if misp_type == "text":
            self._attribute("text", f"{path}.kind", indicator.kind.value)
