"""The objects a STIX report refers to, as an ixb report's location, subjects, vehicles, indicators.

Per object type, the properties that carry a value ixb keeps are mapped and
the STIX bookkeeping properties are accepted; any other property refuses
the bundle (:class:`Unmappable`), unless the adapter allowed dropping it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker import IndicatorKind, RejectedInput
from connectors.stix.vocabulary import (
    INDICATOR_TYPE,
    IXB_EXTENSION_ID,
    SUBJECT_TYPE,
    TRAVEL_DOCUMENT_TYPE,
    VEHICLE_TYPE,
)

# What every STIX object may carry without it being content ixb would lose.
BOOKKEEPING = frozenset(
    {
        "type",
        "spec_version",
        "id",
        "created",
        "modified",
        "created_by_ref",
        "object_marking_refs",
        "extensions",
        "revoked",
        "lang",
        "defanged",
    }
)
_INDICATOR_SCOS = {
    "email-addr": IndicatorKind.EMAIL,
    "ipv4-addr": IndicatorKind.IP_ADDRESS,
    "ipv6-addr": IndicatorKind.IP_ADDRESS,
    "url": IndicatorKind.URL,
}
_INDICATOR_TYPES = frozenset({*_INDICATOR_SCOS, INDICATOR_TYPE, "attack-pattern", "indicator"})
# The objects that only say when and how things relate, and the properties they may have.
_STRUCTURE: dict[str, frozenset[str]] = {
    "incident": frozenset({"name", "description"}),
    "sighting": frozenset(
        {"first_seen", "last_seen", "count", "sighting_of_ref", "where_sighted_refs"}
    ),
    "relationship": frozenset({"relationship_type", "source_ref", "target_ref", "description"}),
    "marking-definition": frozenset({"name", "definition_type", "definition"}),
    "extension-definition": frozenset(
        {"name", "description", "schema", "version", "extension_types", "extension_properties"}
    ),
}
_PATTERN_INDICATOR = frozenset({"pattern", "pattern_type", "valid_from", "indicator_types", "name"})
_SUBJECT_FACTS = ("role", "date_of_birth", "nationality")
_DOCUMENT_FIELDS = ("document_type", "number", "issuing_country")
# ``[email-addr:value = 'a@b.example']``: the one pattern shape that is a plain value.
_SIMPLE_PATTERN = re.compile(
    r"^\[(?P<type>email-addr|ipv4-addr|ipv6-addr|url):value\s*=\s*'(?P<value>(?:[^'\\]|\\.)*)'\]$"
)
_PATH_INDEX = re.compile(r"^(?P<list>subjects|vehicles|indicators)\[(?P<i>\d+)\]$")
_DOCUMENT_PATH = re.compile(r"^subjects\[(?P<s>\d+)\]\.travel_documents\[(?P<d>\d+)\]$")


class Unmappable(RejectedInput):
    """A STIX object or property ixb has no field for; nothing of the bundle is published.

    The detail names the object's id and the property, never a value.
    """

    def __init__(self, object_id: str, prop: str | None, why: str) -> None:
        where = f"{object_id} property {prop!r}" if prop else object_id
        super().__init__("stix_unmappable", f"{where}: {why}", stage="stix_in")
        self.object_id = object_id
        self.property = prop


def ext_of(obj: Mapping[str, Any], ignore: Iterable[str]) -> dict[str, Any]:
    """The object's ixb extension (empty if none); any other extension refuses it."""
    extensions = obj.get("extensions", {})
    if not isinstance(extensions, dict):
        raise Unmappable(str(obj.get("id")), "extensions", "must be a dictionary")
    for name in extensions:
        if name != IXB_EXTENSION_ID and not _ignored(f"extensions.{name}", ignore):
            if name.startswith("extension-definition--60a3c5c5"):
                continue  # the TLP 2.0 extension, on a marking-definition
            raise Unmappable(str(obj.get("id")), f"extensions.{name}", "an extension ixb lacks")
    ours = extensions.get(IXB_EXTENSION_ID, {})
    return {k: v for k, v in ours.items() if k != "extension_type"}


def _ignored(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass
class Content:
    """What a report's referenced objects add to it."""

    observed_at: str | None = None
    location: dict[str, Any] | None = None
    subjects: list[dict[str, Any]] = field(default_factory=list)
    vehicles: list[dict[str, Any]] = field(default_factory=list)
    indicators: list[dict[str, Any]] = field(default_factory=list)


class ObjectMapper:
    """Maps the objects one report refers to; refuses any it cannot keep."""

    def __init__(
        self,
        objects: Mapping[str, dict[str, Any]],
        report: Mapping[str, Any],
        ignore: Iterable[str],
    ) -> None:
        self.objects = objects
        self.report = report
        self.ignore = frozenset(ignore)
        ext = ext_of(report, self.ignore)
        self.paths = {
            p["object_ref"]: p["path"]
            for p in ext.get("object_paths", [])
            if isinstance(p, dict) and isinstance(p.get("object_ref"), str)
        }

    def check_properties(self, obj: Mapping[str, Any], mapped: Iterable[str]) -> None:
        """Refuse ``obj`` if it has a property that is neither mapped, bookkeeping nor dropped."""
        allowed = BOOKKEEPING | set(mapped)
        for name in obj:
            if name not in allowed and not _ignored(name, self.ignore):
                raise Unmappable(str(obj["id"]), name, "ixb has no field for it")

    def content(self, refs: list[str]) -> Content:
        content = Content()
        subjects: list[tuple[tuple[int, int], str, dict[str, Any]]] = []
        documents: list[dict[str, Any]] = []
        creator = self.report.get("created_by_ref")
        for order, ref in enumerate(refs):
            obj = self.objects.get(ref)
            if obj is None:
                raise Unmappable(
                    str(self.report["id"]), "object_refs", f"{ref} is not in the bundle"
                )
            kind = obj["type"]
            if kind == "identity" and ref == creator:
                continue  # the agency: its properties are checked with the report's
            if kind in ("identity", SUBJECT_TYPE):
                subjects.append(((self._index(ref, order), order), ref, self._subject(obj)))
            elif kind == TRAVEL_DOCUMENT_TYPE:
                documents.append(obj)
            elif kind == VEHICLE_TYPE:
                content.vehicles.append(self._vehicle(obj))
            elif kind in _INDICATOR_TYPES:
                content.indicators.append(self._indicator(obj))
            elif kind == "location":
                if content.location is not None:
                    raise Unmappable(ref, None, "a second location: an ixb report has one")
                content.location = self._location(obj)
            else:
                self._structure(obj, content)
        subjects.sort(key=lambda s: s[0])
        content.subjects = [s for _, _, s in subjects]
        self._attach(documents, [ref for _, ref, _ in subjects], content.subjects)
        return content

    def _structure(self, obj: dict[str, Any], content: Content) -> None:
        """Incidents, sightings and relationships: when it happened, and what links to what."""
        kind = obj["type"]
        if kind not in _STRUCTURE:
            raise Unmappable(obj["id"], None, f"ixb reports have no field for a STIX {kind}")
        self.check_properties(obj, _STRUCTURE[kind])
        if kind == "incident":
            content.observed_at = ext_of(obj, self.ignore).get("observed_at")
        elif kind == "sighting":
            content.observed_at = content.observed_at or obj.get("first_seen")

    def _index(self, ref: str, order: int) -> int:
        match = _PATH_INDEX.match(self.paths.get(ref, ""))
        return int(match["i"]) if match else 1_000_000 + order

    def _subject(self, obj: dict[str, Any]) -> dict[str, Any]:
        facts = ext_of(obj, self.ignore)
        if obj["type"] == "identity":
            self.check_properties(obj, {"name", "identity_class"})
            if obj.get("identity_class") not in (None, "individual"):
                raise Unmappable(obj["id"], "identity_class", "only an individual is a subject")
            name = obj.get("name")
        else:
            self.check_properties(obj, {"role", "date_of_birth", "nationality"})
            facts = {
                **facts,
                **{k: obj[k] for k in ("role", "date_of_birth", "nationality") if k in obj},
            }
            name = None
        return {
            "role": facts.get("role", "unknown"),
            "full_name": name,
            "date_of_birth": facts.get("date_of_birth"),
            "nationality": facts.get("nationality"),
            "travel_documents": [],
        }

    def _attach(
        self,
        documents: list[dict[str, Any]],
        subject_refs: list[str],
        subjects: list[dict[str, Any]],
    ) -> None:
        """Each travel document goes to its subject: by its path, or by a relationship."""
        placed: list[tuple[int, int, dict[str, Any]]] = []
        for doc in documents:
            self.check_properties(doc, _DOCUMENT_FIELDS)
            value: dict[str, Any] = {k: doc[k] for k in _DOCUMENT_FIELDS if k in doc}
            match = _DOCUMENT_PATH.match(self.paths.get(doc["id"], ""))
            if match and int(match["s"]) < len(subjects):
                placed.append((int(match["s"]), int(match["d"]), value))
                continue
            owner = self._related_subject(doc["id"], subject_refs)
            if owner is None:
                raise Unmappable(doc["id"], None, "a travel document must belong to a subject")
            placed.append((owner, 1_000_000 + len(placed), value))
        for subject_index, _, value in sorted(placed, key=lambda p: (p[0], p[1])):
            subjects[subject_index]["travel_documents"].append(value)

    def _related_subject(self, doc_id: str, subject_refs: list[str]) -> int | None:
        for obj in self.objects.values():
            if obj["type"] != "relationship":
                continue
            ends = {obj.get("source_ref"), obj.get("target_ref")}
            if doc_id in ends:
                for index, ref in enumerate(subject_refs):
                    if ref in ends:
                        return index
        return None

    def _vehicle(self, obj: dict[str, Any]) -> dict[str, Any]:
        names = ("kind", "registration", "flag", "description")
        self.check_properties(obj, names)
        return {k: obj[k] for k in names if k in obj}

    def _indicator(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = obj["type"]
        if kind in _INDICATOR_SCOS:
            self.check_properties(obj, {"value"})
            return {"kind": _INDICATOR_SCOS[kind].value, "value": obj.get("value")}
        if kind == "attack-pattern":
            self.check_properties(obj, {"name"})
            return {"kind": IndicatorKind.MODUS_OPERANDI.value, "value": obj.get("name")}
        if kind == "indicator":
            self.check_properties(
                obj, {"pattern", "pattern_type", "valid_from", "indicator_types", "name"}
            )
            match = _SIMPLE_PATTERN.match(str(obj.get("pattern", "")).strip())
            if obj.get("pattern_type") != "stix" or match is None:
                raise Unmappable(obj["id"], "pattern", "only [type:value = '...'] maps to a value")
            value = re.sub(r"\\(.)", r"\1", match["value"])
            return {"kind": _INDICATOR_SCOS[match["type"]].value, "value": value}
        self.check_properties(obj, {"kind", "value"})
        return {k: obj[k] for k in ("kind", "value") if k in obj}

    def _location(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.check_properties(obj, {"name", "country", "latitude", "longitude", "precision"})
        extra = ext_of(obj, self.ignore)
        location = {
            "latitude": obj.get("latitude"),
            "longitude": obj.get("longitude"),
            "precision_m": round(obj["precision"]) if "precision" in obj else None,
            "country": obj.get("country"),
            "border_sector": extra.get("border_sector"),
            "crossing_point": extra.get("crossing_point"),
        }
        named = obj.get("name")
        if named is not None and named not in (
            location["border_sector"],
            location["crossing_point"],
        ):
            if location["crossing_point"] is not None:
                raise Unmappable(obj["id"], "name", "neither the crossing point nor the sector")
            location["crossing_point"] = named
        return location
