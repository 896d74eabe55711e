"""Threat reports to and from Avro, validated on the way in.

The only mapping between the typed domain value and the Avro record is the
TLP marking: Avro enum symbols cannot contain ``:`` or ``+``, so
``TLP:AMBER+STRICT`` travels as ``AMBER_STRICT``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from broker.domain.report import Marking, ThreatReport
from broker.errors import DecodeError
from broker.wire.codec import SchemaCatalog

REPORT_SCHEMA = "ixb.v1.ThreatReport"

_MARKING_TO_AVRO = {m: m.name for m in Marking}
_MARKING_FROM_AVRO = {m.name: m for m in Marking}


def report_to_record(report: ThreatReport) -> dict[str, Any]:
    """The Avro record for ``report`` (a fresh dict; the report is untouched)."""
    record = report.model_dump(mode="python")
    record["marking"] = _MARKING_TO_AVRO[report.marking]
    return record


def record_to_report(record: dict[str, Any]) -> ThreatReport:
    """Validate an Avro record as a report; errors name fields, never values."""
    fields = dict(record)
    fields["marking"] = _MARKING_FROM_AVRO.get(str(fields.get("marking")), fields.get("marking"))
    try:
        return ThreatReport.model_validate(fields)
    except ValidationError as exc:
        raise DecodeError(
            "invalid_report", describe_validation_error(exc), stage="validate"
        ) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """Field locations and rule messages only: the input values are left out."""
    problems = [
        f"{'.'.join(str(p) for p in err['loc']) or '<report>'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False, include_context=False)
    ]
    shown = "; ".join(problems[:5])
    more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"{shown}{more}"


def encode_report(catalog: SchemaCatalog, report: ThreatReport) -> bytes:
    return catalog.encode(REPORT_SCHEMA, report_to_record(report))


def decode_report(catalog: SchemaCatalog, data: bytes) -> ThreatReport:
    return record_to_report(catalog.decode(data, REPORT_SCHEMA))
