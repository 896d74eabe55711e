"""The JSON-file connector: threat reports written as JSON, one per file.

The file's shape is the report's (``schemas/threat_report.avsc``), with
times as ISO 8601 strings and the marking as ``TLP:AMBER`` etc. A file may
also hold a list of reports. A report without ``issued_at`` is issued now,
by this adapter, which is what a file dropped by a case-management system
usually means. Errors name the file and the field, never a value.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pydantic import ValidationError

from broker import ConfigurationError, ThreatReport, describe_validation_error


def load_reports(path: Path, *, now: dt.datetime | None = None) -> list[ThreatReport]:
    """Every report in ``path``, validated; a missing ``issued_at`` becomes ``now``."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read JSON: {type(exc).__name__}") from exc
    issued = (now or dt.datetime.now(dt.UTC)).isoformat()
    items = raw if isinstance(raw, list) else [raw]
    try:
        return [
            ThreatReport.model_validate({"issued_at": issued, **item})
            if isinstance(item, dict)
            else ThreatReport.model_validate(item)
            for item in items
        ]
    except ValidationError as exc:
        raise ConfigurationError(
            f"{path}: invalid report: {describe_validation_error(exc)}"
        ) from exc


def dump_report(report: ThreatReport) -> str:
    """The JSON form of ``report`` (what ``load_reports`` reads back)."""
    return report.model_dump_json(indent=2, exclude_defaults=True)
