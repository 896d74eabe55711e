"""The partners' formats of ``ixb publish --format`` and ``ixb subscribe --format``.

Reading: a JSON report file (ixb's own shape), a STIX 2.1 bundle file or a
TAXII 2.1 collection, or a MISP event export, each as validated reports.
A file is all or nothing: one report that cannot be mapped refuses the
whole file (the file stays as it was, so nothing is lost), with the object
and property named. Writing: one delivery per line, as ixb JSON, a STIX
bundle or a MISP event.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from broker.cli.render import delivery_json
from broker.domain.report import (
    HandlingCode,
    Marking,
    ReportType,
    SourceReliability,
    ThreatReport,
)
from broker.errors import ConfigurationError, RejectedInput
from broker.parties.recipient import VerifiedDelivery
from connectors.json_file import load_reports
from connectors.misp import delivery_to_misp_json, events_to_reports
from connectors.stix import InboundDefaults, bundle_to_reports, delivery_to_bundle
from connectors.stix.taxii_source import poll_collection

_GRADING = re.compile(r"^(?P<reliability>[A-D])(?P<credibility>[1-4])$")


class InFormat(StrEnum):
    JSON = "json"
    STIX = "stix"
    MISP = "misp"


class OutFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    STIX = "stix"
    MISP = "misp"


def inbound_defaults(
    nation: str,
    *,
    agency: str | None = None,
    marking: str | None,
    handling_code: str | None,
    grading: str | None,
    report_type: str | None,
    ignore: list[str] | None,
) -> InboundDefaults:
    """The adapter's defaults from the command line; ``grading`` is 4x4, e.g. ``B2``."""
    reliability = credibility = None
    if grading is not None:
        match = _GRADING.match(grading.upper())
        if match is None:
            raise ConfigurationError("--grading is the 4x4 grading: A-D then 1-4, e.g. B2")
        reliability = SourceReliability(match["reliability"])
        credibility = int(match["credibility"])
    try:
        return InboundDefaults(
            origin=nation,
            agency=agency,
            marking=Marking(marking.upper()) if marking else None,
            handling_code=HandlingCode(handling_code.upper()) if handling_code else None,
            source_reliability=reliability,
            information_credibility=credibility,
            report_type=ReportType(report_type) if report_type else None,
            ignore_properties=frozenset(ignore or ()),
        )
    except ValueError as exc:
        raise ConfigurationError(f"a default is not a value ixb knows: {exc}") from exc


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read JSON: {type(exc).__name__}") from exc


def read_reports(fmt: InFormat, path: Path, defaults: InboundDefaults) -> list[ThreatReport]:
    """Every report in ``path``, or a refusal naming the file and what could not be mapped."""
    if fmt is InFormat.JSON:
        return load_reports(path)
    document = _read_json(path)
    try:
        if fmt is InFormat.STIX:
            return bundle_to_reports(document, defaults)
        return events_to_reports(document, defaults)
    except RejectedInput as exc:
        raise _named(exc, path) from exc


def _named(exc: RejectedInput, path: Path) -> RejectedInput:
    """The same refusal, saying which file it is about."""
    return RejectedInput(exc.reason, f"{path}: {exc.detail}", stage=exc.stage)


def poll_reports(
    url: str,
    defaults: InboundDefaults,
    *,
    user: str | None,
    password: str | None,
    added_after: str | None,
) -> list[ThreatReport]:
    """Every report in a TAXII 2.1 collection (added after ``added_after``)."""
    bundle = poll_collection(url, user=user, password=password, added_after=added_after)
    if not bundle["objects"]:
        return []
    return bundle_to_reports(bundle, defaults)


def render(fmt: OutFormat, delivery: VerifiedDelivery) -> str:
    """One delivery as one line of JSON in ``fmt`` (not for ``text``)."""
    if fmt is OutFormat.STIX:
        document = delivery_to_bundle(delivery)
    elif fmt is OutFormat.MISP:
        document = delivery_to_misp_json(delivery)
    else:
        document = delivery_json(delivery)
    return json.dumps(document, ensure_ascii=False)
