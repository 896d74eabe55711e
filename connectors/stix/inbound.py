"""STIX 2.1 bundles as ixb reports: the inverse of :mod:`connectors.stix.outbound`.

An agency adapter publishes what its own tools export (a bundle file, or
what :func:`connectors.stix.taxii_source.poll_collection` fetches). Each
``report`` in the bundle becomes one :class:`~broker.ThreatReport`, built from
the objects it refers to. Nothing is dropped quietly: an object or a property
ixb has no field for refuses the bundle with :class:`Unmappable`, naming the
object and the property, unless the adapter said it may be dropped
(``ignore_properties``, e.g. ``labels`` or ``x_opencti_*``). What a bundle
does not say (a handling code, the 4x4 grading, a marking) comes from the
adapter's :class:`InboundDefaults` or the bundle is refused: ixb never
guesses a restriction.

A report's id is the one the ixb extension names or, for a third-party
report, one derived from its STIX id: publishing the same bundle twice gives
the same report ids, which the broker's replay guard refuses the second time.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from broker import (
    HandlingCode,
    Marking,
    ReportType,
    SourceReliability,
    ThreatReport,
    describe_validation_error,
)
from connectors.stix.inbound_objects import ObjectMapper, Unmappable, ext_of
from connectors.stix.vocabulary import (
    IXB_EXTENSION_ID,
    IXB_NAMESPACE,
    SIENA_BY_ID,
    TLP2_EXTENSION_ID,
    TLP_BY_ID,
    parse_timestamp,
)

__all__ = ["InboundDefaults", "Unmappable", "bundle_to_reports"]

_SUPPORT_TYPES = frozenset({"marking-definition", "extension-definition"})
_REPORT_PROPERTIES = frozenset(
    {"name", "description", "published", "report_types", "object_refs", "created_by_ref"}
)
_TLP2_LEVELS = {m.value.removeprefix("TLP:").lower(): m for m in Marking}


@dataclass(frozen=True, slots=True)
class InboundDefaults:
    """What the adapter says for reports whose bundle does not say it.

    ``origin`` is the publishing nation (its key signs); the others stay
    ``None`` unless the agency decided them for everything it publishes.
    """

    origin: str
    agency: str | None = None  # for a report that names no creator
    report_type: ReportType | None = None
    marking: Marking | None = None
    handling_code: HandlingCode | None = None
    source_reliability: SourceReliability | None = None
    information_credibility: int | None = None
    ignore_properties: frozenset[str] = field(default_factory=frozenset)


def bundle_to_reports(
    bundle: Any, defaults: InboundDefaults, *, now: dt.datetime | None = None
) -> list[ThreatReport]:
    """Every report of ``bundle`` as an ixb report; :class:`Unmappable` names what is not."""
    objects = _objects(bundle)
    reports = [o for o in objects.values() if o["type"] == "report"]
    bundle_id = str(bundle.get("id", "bundle"))
    if not reports:
        raise Unmappable(bundle_id, "objects", "holds no report: ixb publishes reports")
    _check_accounted_for(objects, reports)
    issued = now or dt.datetime.now(dt.UTC)
    return [_Report(objects, report, defaults).build(issued) for report in reports]


def _objects(bundle: Any) -> dict[str, dict[str, Any]]:
    """The bundle's objects by id; of several versions of one object, the newest."""
    if not isinstance(bundle, Mapping) or bundle.get("type") != "bundle":
        raise Unmappable("bundle", "type", "not a STIX bundle")
    items = bundle.get("objects")
    if not isinstance(items, list):
        raise Unmappable(str(bundle.get("id", "bundle")), "objects", "must be a list")
    objects: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise Unmappable(str(bundle.get("id", "bundle")), "objects", "an object has no id")
        if not isinstance(item.get("type"), str) or not item["id"].startswith(f"{item['type']}--"):
            raise Unmappable(item["id"], "type", "does not match the id")
        known = objects.get(item["id"])
        if known is None or str(item.get("modified", "")) > str(known.get("modified", "")):
            objects[item["id"]] = item
    return objects


def _check_accounted_for(
    objects: Mapping[str, dict[str, Any]], reports: Iterable[dict[str, Any]]
) -> None:
    """Every object is a report, referred to by one, or a marking or definition it uses."""
    used: set[str] = set()
    for report in reports:
        used.add(report["id"])
        used.update(_string_list(report, "object_refs"))
        if isinstance(report.get("created_by_ref"), str):
            used.add(report["created_by_ref"])
    for obj in objects.values():
        if obj["id"] not in used and obj["type"] not in _SUPPORT_TYPES:
            if obj["type"] == "identity" and _is_creator_of_something(obj["id"], objects):
                continue
            raise Unmappable(obj["id"], None, "no report refers to it, so it would be lost")


def _is_creator_of_something(identity: str, objects: Mapping[str, dict[str, Any]]) -> bool:
    return any(o.get("created_by_ref") == identity for o in objects.values())


def _string_list(obj: Mapping[str, Any], name: str) -> list[str]:
    value = obj.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Unmappable(str(obj.get("id")), name, "must be a list of ids")
    return value


class _Report:
    """One STIX report and the objects it refers to, mapped to one ThreatReport."""

    def __init__(
        self,
        objects: Mapping[str, dict[str, Any]],
        report: dict[str, Any],
        defaults: InboundDefaults,
    ) -> None:
        self.objects = objects
        self.report = report
        self.defaults = defaults
        self.ext = ext_of(report, defaults.ignore_properties)
        self.mapper = ObjectMapper(objects, report, defaults.ignore_properties)

    def build(self, issued: dt.datetime) -> ThreatReport:
        report, ext = self.report, self.ext
        self.mapper.check_properties(report, _REPORT_PROPERTIES)
        agency, agency_nation = self._agency()
        marking, handling = self._markings()
        content = self.mapper.content(_string_list(report, "object_refs"))
        fields: dict[str, Any] = {
            "report_id": self._report_id(),
            "issued_at": issued,
            "observed_at": ext.get("observed_at") or content.observed_at or report.get("published"),
            "origin": ext.get("origin") or agency_nation or self.defaults.origin,
            "agency": agency,
            "report_type": self._given("report_type", self.defaults.report_type)
            or ReportType.OTHER,
            "marking": marking,
            "handling_code": handling,
            "source_reliability": self._required("source_reliability"),
            "information_credibility": self._required("information_credibility"),
            "title": report.get("name"),
            "summary": report.get("description"),
            "location": content.location or ext.get("location"),
            "subjects": content.subjects,
            "vehicles": content.vehicles,
            "indicators": content.indicators,
            "related_report_ids": ext.get("related_report_ids", []),
        }
        if fields["observed_at"] is None:
            raise Unmappable(report["id"], "published", "no time the events were observed")
        if isinstance(fields["observed_at"], str):
            fields["observed_at"] = _time(report["id"], "observed_at", fields["observed_at"])
        try:
            return ThreatReport.model_validate(fields)
        except ValidationError as exc:
            raise Unmappable(report["id"], None, describe_validation_error(exc)) from exc

    def _report_id(self) -> str:
        given = self.ext.get("report_id")
        if isinstance(given, str):
            return given
        return str(uuid.uuid5(IXB_NAMESPACE, f"stix-report/{self.report['id']}"))

    def _given(self, name: str, default: Any) -> Any:
        return self.ext.get(name, default)

    def _required(self, name: str) -> Any:
        value = self.ext.get(name, getattr(self.defaults, name))
        if value is None:
            raise Unmappable(
                self.report["id"],
                f"extensions.{IXB_EXTENSION_ID}.{name}",
                "not given, and the adapter set no default (ixb never guesses a grading)",
            )
        return value

    def _agency(self) -> tuple[str, str | None]:
        creator_id = self.report.get("created_by_ref")
        creator = self.objects.get(creator_id) if isinstance(creator_id, str) else None
        if creator_id is None and self.defaults.agency is not None:
            return self.defaults.agency, None  # the bundle names no creator: the adapter's agency
        if creator is None or creator.get("type") != "identity":
            raise Unmappable(
                self.report["id"], "created_by_ref", "names no identity in the bundle (the agency)"
            )
        self.mapper.check_properties(creator, {"name", "identity_class"})
        name = creator.get("name")
        if not isinstance(name, str):
            raise Unmappable(creator["id"], "name", "the agency has no name")
        nation = ext_of(creator, self.defaults.ignore_properties).get("nation")
        return name, nation if isinstance(nation, str) else None

    def _markings(self) -> tuple[Marking, HandlingCode]:
        """The report's TLP level and handling code, from its markings, extension or defaults.

        An ixb report has one marking, so it takes the most restrictive TLP
        level of the report and of every object it refers to: a RED identity
        in a GREEN report makes the report RED, never the identity GREEN.
        """
        tlp: list[Marking] = []
        handling: set[HandlingCode] = set()
        marked = [self.report] + [
            self.objects[ref]
            for ref in _string_list(self.report, "object_refs")
            if ref in self.objects and self.objects[ref]["type"] != "marking-definition"
        ]
        for obj in marked:
            for ref in _string_list(obj, "object_marking_refs"):
                if ref in TLP_BY_ID:
                    tlp.append(TLP_BY_ID[ref])
                elif ref in SIENA_BY_ID:
                    handling.add(SIENA_BY_ID[ref])
                elif (level := self._tlp2_in_bundle(ref)) is not None:
                    tlp.append(level)
                else:
                    raise Unmappable(
                        obj["id"], "object_marking_refs", f"{ref} is no TLP or SIENA marking"
                    )
        if self.report.get("granular_markings"):
            raise Unmappable(
                self.report["id"], "granular_markings", "ixb marks whole reports, not parts"
            )
        marking = max(tlp, key=lambda m: m.rank) if tlp else self.defaults.marking
        if marking is None:
            raise Unmappable(
                self.report["id"], "object_marking_refs", "no TLP marking and no default given"
            )
        if len(handling) > 1:
            raise Unmappable(
                self.report["id"], "object_marking_refs", "several SIENA codes; a report has one"
            )
        code = next(iter(handling), None) or self.ext.get("handling_code")
        code = code or self.defaults.handling_code
        if code is None:
            raise Unmappable(
                self.report["id"], "object_marking_refs", "no SIENA handling code, no default"
            )
        return marking, HandlingCode(code)

    def _tlp2_in_bundle(self, ref: str) -> Marking | None:
        """A TLP 2.0 marking carried in the bundle under another id than the published one."""
        marking = self.objects.get(ref)
        if marking is None:
            return None
        level = marking.get("extensions", {}).get(TLP2_EXTENSION_ID, {}).get("tlp_2_0")
        return _TLP2_LEVELS.get(str(level)) if level is not None else None


def _time(object_id: str, name: str, value: str) -> dt.datetime:
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise Unmappable(object_id, name, "not a STIX timestamp") from exc
