"""MISP events as ixb reports: the inverse of :mod:`connectors.misp.outbound`, and partners' events.

Events come as MISP's REST API or JSON export writes them (``{"Event":
{...}}``, a list of those, or ``{"response": [...]}``) and are loaded with
pymisp's :class:`~pymisp.MISPEvent`. An attribute whose comment names an ixb
path (``ixb:subjects[0].full_name; ...``) goes exactly there; others map by
type (``phone-number``, ``email*``, ``ip-*``, ``url``/``link``, ``iban``) and
by object template (``person``, ``vehicle``, ``geolocation``). Anything else,
an unknown tag, template or attribute type, refuses the event with
:class:`~connectors.stix.Unmappable` naming the attribute or tag, unless the
adapter allowed dropping it (``ignore_properties``: ``type:comment``,
``tag:osint:*``, ``object:*``). What the event does not say (TLP, handling
code, grading) comes from the adapter's defaults or the event is refused.
"""

from __future__ import annotations

import copy
import datetime as dt
import fnmatch
import re
import uuid
from typing import Any

from pydantic import ValidationError
from pymisp import MISPAttribute, MISPEvent, MISPObject

from broker import Marking, ThreatReport, describe_validation_error
from connectors.misp.outbound import TLP_TAGS
from connectors.stix import InboundDefaults, Unmappable
from connectors.stix.vocabulary import IXB_NAMESPACE

_TLP = {tag: marking for marking, tag in TLP_TAGS.items()} | {"tlp:white": "TLP:CLEAR"}
_MACHINE_TAG = re.compile(r'^ixb:(?P<name>[a-z-]+)="(?P<value>[^"]*)"$')
_STEP = re.compile(r"^(?P<name>[a-z_]+)(?:\[(?P<index>\d+)\])?$")
_INDICATOR_BY_TYPE = {
    "phone-number": "phone_number",
    "email": "email",
    "email-src": "email",
    "email-dst": "email",
    "ip-src": "ip_address",
    "ip-dst": "ip_address",
    "url": "url",
    "link": "url",
    "iban": "iban",
}
_ROLES = {
    "Suspect": "suspect",
    "Victim": "victim",
    "Witness": "witness",
    "Accomplice": "facilitator",
}
_OBJECTS = {"person": "subjects", "vehicle": "vehicles", "geolocation": "location"}
_RELATIONS = {
    "person": {
        "full-name": "full_name",
        "date-of-birth": "date_of_birth",
        "nationality": "nationality",
        "role": "role",
    },
    "vehicle": {
        "type": "kind",
        "license-plate-number": "registration",
        "description": "description",
    },
    "geolocation": {
        "latitude": "latitude",
        "longitude": "longitude",
        "accuracy-radius": "precision_m",
        "countrycode": "country",
        "region": "border_sector",
        "address": "crossing_point",
    },
}


def load_events(document: Any) -> list[MISPEvent]:
    """The events of an export or API answer, loaded by pymisp."""
    if isinstance(document, dict) and isinstance(document.get("response"), list):
        document = document["response"]
    items = document if isinstance(document, list) else [document]
    events = []
    for item in items:
        if not isinstance(item, dict):
            raise Unmappable("event", None, "not a MISP event object")
        event = MISPEvent()
        try:
            event.load(copy.deepcopy(item))  # pymisp pops what it reads: keep the caller's
        except Exception as exc:
            raise Unmappable(
                "event", None, f"pymisp cannot load it ({type(exc).__name__})"
            ) from exc
        events.append(event)
    return events


def event_to_report(
    event: MISPEvent, defaults: InboundDefaults, *, now: dt.datetime | None = None
) -> ThreatReport:
    """One MISP event as an ixb report; refuses what it cannot keep."""
    return _Event(event, defaults).build(now or dt.datetime.now(dt.UTC))


class _Event:
    def __init__(self, event: MISPEvent, defaults: InboundDefaults) -> None:
        self.event = event
        self.defaults = defaults
        self.ignore = defaults.ignore_properties
        self.where = f"event {event.uuid}"
        self.record: dict[str, Any] = {"subjects": [], "vehicles": [], "indicators": []}
        self.tlp: list[Marking] = []  # every TLP tag, of the event and of its attributes

    def _ignored(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.ignore)

    def build(self, now: dt.datetime) -> ThreatReport:
        event = self.event
        tags = self._tags()
        for attribute in event.attributes:
            self._top_level(attribute)
        counters: dict[str, int] = {}
        for obj in event.objects:
            self._object(obj, counters)
        for extra in ("Galaxy", "EventReport"):
            if getattr(event, extra, None):
                raise Unmappable(self.where, extra, "ixb reports have no field for it")
        organisation = getattr(event, "Orgc", None)
        agency = getattr(organisation, "name", None) or self.defaults.agency
        if not agency:
            raise Unmappable(self.where, "Orgc", "names no organisation (the agency)")
        record = self.record
        record.setdefault("observed_at", dt.datetime.combine(event.date, dt.time(), dt.UTC))
        fields = {
            **record,
            "report_id": tags.get("report-id")
            or str(uuid.uuid5(IXB_NAMESPACE, f"misp-event/{event.uuid}")),
            "issued_at": now,
            "origin": tags.get("origin") or self.defaults.origin,
            "agency": agency,
            "title": event.info,
            "report_type": tags.get("report-type") or self.defaults.report_type or "other",
            # One marking for the report: the strictest anywhere in the event.
            "marking": max(self.tlp, key=lambda m: m.rank) if self.tlp else self.defaults.marking,
            "handling_code": tags.get("handling-code") or self.defaults.handling_code,
            "source_reliability": tags.get("source-reliability")
            or self.defaults.source_reliability,
            "information_credibility": tags.get("information-credibility")
            or self.defaults.information_credibility,
            "related_report_ids": tags.get("related-report", []),
        }
        for name in ("marking", "handling_code", "source_reliability", "information_credibility"):
            if fields[name] is None:
                raise Unmappable(self.where, "Tag", f"no {name} tag and no default given")
        try:
            return ThreatReport.model_validate(fields)
        except ValidationError as exc:
            raise Unmappable(self.where, None, describe_validation_error(exc)) from exc

    def _tags(self) -> dict[str, Any]:
        found: dict[str, Any] = {"related-report": []}
        for tag in self.event.tags:
            name = str(tag.name)
            match = _MACHINE_TAG.match(name)
            if name.lower() in _TLP:
                self.tlp.append(Marking(_TLP[name.lower()]))
            elif match and match["name"] == "related-report":
                found["related-report"].append(match["value"])
            elif match and match["name"] not in ("withheld", "agreement", "delivery-id"):
                found[match["name"]] = match["value"]
            elif not match and not self._ignored(f"tag:{name}"):
                raise Unmappable(self.where, f"Tag {name}", "a tag ixb has no field for")
        return found

    def _attribute_tags(self, attribute: MISPAttribute) -> None:
        """An attribute's TLP tags count for the report; any other tag refuses it."""
        for tag in getattr(attribute, "tags", []):
            name = str(tag.name)
            if name.lower() in _TLP:
                self.tlp.append(Marking(_TLP[name.lower()]))
            elif not self._ignored(f"tag:{name}"):
                raise Unmappable(f"attribute {attribute.uuid}", f"Tag {name}", "a tag ixb lacks")

    def _top_level(self, attribute: MISPAttribute) -> None:
        self._attribute_tags(attribute)
        path = _path_of(attribute)
        kind = _INDICATOR_BY_TYPE.get(attribute.type)
        if path is not None:
            _set(self.record, path, _value(path, attribute.value))
            if kind is not None and path.endswith(".value"):  # a typed value says its kind
                _set(self.record, path.removesuffix(".value") + ".kind", kind)
            return
        if kind is not None:
            self.record["indicators"].append({"kind": kind, "value": str(attribute.value)})
        elif not self._ignored(f"type:{attribute.type}"):
            raise Unmappable(
                f"attribute {attribute.uuid}", "type", f"{attribute.type!r} has no ixb field"
            )

    def _object(self, obj: MISPObject, counters: dict[str, int]) -> None:
        target = _OBJECTS.get(obj.name)
        if target is None:
            if self._ignored(f"object:{obj.name}"):
                return
            raise Unmappable(
                f"object {obj.uuid}", "name", f"template {obj.name!r} has no ixb field"
            )
        index = counters.get(target, 0)
        counters[target] = index + 1
        base = target if target == "location" else f"{target}[{index}]"
        for attribute in obj.attributes:
            self._attribute_tags(attribute)
            path = _path_of(attribute)
            if path is None:
                field = _RELATIONS[obj.name].get(attribute.object_relation)
                if field is None:
                    if self._ignored(f"relation:{attribute.object_relation}"):
                        continue
                    raise Unmappable(
                        f"attribute {attribute.uuid}",
                        "object_relation",
                        f"{obj.name} relation {attribute.object_relation!r} has no ixb field",
                    )
                path = f"{base}.{field}"
            _set(self.record, path, _value(path, attribute.value))
        if target != "location":
            holder = _get(self.record, base)
            if isinstance(holder, dict) and target == "subjects":
                holder.setdefault("travel_documents", [])


def _path_of(attribute: MISPAttribute) -> str | None:
    comment = str(getattr(attribute, "comment", "") or "")
    if not comment.startswith("ixb:"):
        return None
    return comment.removeprefix("ixb:").split(";", 1)[0].strip()


def _value(path: str, value: Any) -> Any:
    """A MISP value in the type the report's field has."""
    last = path.rsplit(".", 1)[-1]
    if last == "precision_m":
        return round(float(value) * 1000)
    if last in ("latitude", "longitude"):
        return float(value)
    if last == "role":
        return _ROLES.get(str(value), str(value).lower())
    if last == "information_credibility":
        return int(value)
    if isinstance(value, dt.datetime | dt.date):
        return value
    return str(value)


def _steps(path: str) -> list[tuple[str, int | None]]:
    steps = []
    for segment in path.split("."):
        match = _STEP.match(segment)
        if match is None:
            raise Unmappable("attribute", "comment", "names no report path")
        steps.append((match["name"], None if match["index"] is None else int(match["index"])))
    return steps


def _set(record: dict[str, Any], path: str, value: Any) -> None:
    """Put ``value`` at ``path`` (``subjects[1].travel_documents[0].number``), growing lists."""
    node: Any = record
    steps = _steps(path)
    for position, (name, index) in enumerate(steps):
        last = position == len(steps) - 1
        if index is None:
            if last:
                node[name] = value
                return
            node = node.setdefault(name, {})
            continue
        items = node.setdefault(name, [])
        while len(items) <= index:
            items.append({"travel_documents": []} if name == "subjects" else {})
        if last:
            items[index] = value
            return
        node = items[index]


def _get(record: dict[str, Any], path: str) -> Any:
    node: Any = record
    for name, index in _steps(path):
        node = node.get(name) if isinstance(node, dict) else None
        if index is not None:
            node = node[index] if isinstance(node, list) and index < len(node) else None
    return node


def events_to_reports(
    document: Any, defaults: InboundDefaults, *, now: dt.datetime | None = None
) -> list[ThreatReport]:
    """Every event of a MISP export or API answer as an ixb report."""
    return [event_to_report(e, defaults, now=now) for e in load_events(document)]


__all__ = ["event_to_report", "events_to_reports", "load_events"]
