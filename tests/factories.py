"""Valid threat reports for tests, with every field populated."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from broker.domain.report import ThreatReport


def make_report(origin: str = "NL", **overrides: Any) -> ThreatReport:
    now = dt.datetime.now(dt.UTC)
    fields: dict[str, Any] = {
        "report_id": uuid.uuid4(),
        "issued_at": now - dt.timedelta(seconds=5),
        "observed_at": now - dt.timedelta(hours=3),
        "origin": origin,
        "agency": "Test Border Agency",
        "report_type": "smuggling",
        "marking": "TLP:AMBER",
        "handling_code": "H1",
        "source_reliability": "B",
        "information_credibility": 2,
        "title": "Cigarettes concealed in a refrigerated trailer",
        "summary": "Driver used a forged CMR waybill.",
        "location": {
            "latitude": 51.4925,
            "longitude": 4.7461,
            "precision_m": 50,
            "country": origin,
            "border_sector": "A16 Hazeldonk",
        },
        "subjects": [
            {
                "role": "suspect",
                "full_name": "Adrian Varga",
                "date_of_birth": "1984-06-02",
                "nationality": "HU",
                "travel_documents": [
                    {"document_type": "passport", "number": "HX1234567", "issuing_country": "HU"},
                    {"document_type": "id_card", "number": "ID7654321", "issuing_country": "HU"},
                ],
            },
            {"role": "facilitator", "full_name": "Mira Okafor", "nationality": "NG"},
        ],
        "vehicles": [{"kind": "truck", "registration": "HU-ABC-123", "flag": "HU"}],
        "indicators": [{"kind": "phone_number", "value": "+36 30 555 0101"}],
        "related_report_ids": [uuid.uuid4()],
    }
    fields.update(overrides)
    return ThreatReport.model_validate(fields)
