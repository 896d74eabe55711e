"""The enforcer's logs carry reasons and identifiers, never a value from a report."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from broker.domain.report import ThreatReport
from broker.parties.recipient import VerifiedDelivery
from broker.wire.records import OutboundRecord
from broker.wire.report import report_to_record
from tests.factories import make_report
from tests.integration.conftest import Exchange
from tests.support.submissions import seal_record, tamper_signed_payload

pytestmark = pytest.mark.integration


class Canaries:
    """Unique strings to plant in reports and look for where they must not be."""

    def __init__(self) -> None:
        self.planted: list[str] = []

    def __call__(self, prefix: str) -> str:
        value = f"{prefix}{uuid.uuid4().hex[:20]}"
        self.planted.append(value)
        return value

    def found_in(self, text: str) -> list[str]:
        return [c for c in self.planted if c in text]

    def report(self, origin: str, **overrides: Any) -> ThreatReport:
        """A valid report with a canary in every free-text field."""
        c = self
        fields: dict[str, Any] = {
            "agency": c("agency-"),
            "title": c("title-"),
            "summary": c("summary-"),
            "location": {
                "latitude": 51.4925,
                "longitude": 4.7461,
                "country": origin,
                "border_sector": c("sector-"),
                "crossing_point": c("crossing-"),
            },
            "subjects": [
                {
                    "role": "suspect",
                    "full_name": c("name-"),
                    "nationality": "HU",
                    "travel_documents": [
                        {"document_type": "passport", "number": c("doc-"), "issuing_country": "HU"}
                    ],
                },
                {"role": "facilitator", "full_name": c("name-")},
            ],
            "vehicles": [{"kind": "truck", "registration": c("R"), "description": c("vehicle-")}],
            "indicators": [
                {"kind": "phone_number", "value": c("phone-")},
                {"kind": "modus_operandi", "value": c("modus-")},
            ],
        }
        fields.update(overrides)
        return make_report(origin, **fields)


def _events(captured: list[structlog.typing.EventDict], name: str) -> list[dict[str, Any]]:
    return [dict(e) for e in captured if e.get("event") == name]


async def test_the_enforcer_logs_decisions_and_refusals_without_any_payload_value(
    exchange: Exchange,
) -> None:
    canaries = Canaries()
    shared = canaries.report("NL")  # BE gets it (redacted), DE has no agreement
    kept = canaries.report("NL", report_type="terrorism")  # not covered for BE either
    tampered = exchange.resealed(
        exchange.seal(canaries.report("NL")), lambda s: tamper_signed_payload(exchange.catalog, s)
    ).value
    invalid = report_to_record(canaries.report("NL"))
    invalid["information_credibility"] = 9  # the schema's int, the domain's 1..4
    invalid["location"]["country"] = canaries("country-")  # fails the pattern: a canary
    foreign = report_to_record(canaries.report("NL"))
    foreign["origin"] = canaries("origin-")  # not its key's nation, and not a nation at all
    topic = exchange.topics.submit("NL")

    def sealed(key: bytes, record: dict[str, object]) -> OutboundRecord:
        value = seal_record(exchange.settings, exchange.catalog, record, key_nation="NL")
        return OutboundRecord(topic, key, value)

    records = [
        exchange.seal(shared),
        exchange.seal(kept),
        dataclasses.replace(exchange.seal(shared), key=b"tampered", value=tampered),
        sealed(b"invalid", invalid),
        sealed(b"foreign", foreign),
    ]

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        await exchange.publish("NL", records)
        await exchange.wait_completed(len(records))

    assert captured, "capture_logs caught nothing: is structlog caching its loggers?"
    leaked = {canary: repr(e) for e in captured for canary in canaries.found_in(repr(e))}
    assert leaked == {}

    [delivered] = _events(captured, "delivered")
    assert delivered["report_id"] == str(shared.report_id)
    assert (delivered["origin"], delivered["recipient"]) == ("NL", "BE")
    assert (delivered["agreement"], delivered["agreement_version"]) == ("test-nl-be", 4)
    assert delivered["topic"] == topic
    withheld = {
        (e["report_id"], e["recipient"]): e["reasons"] for e in _events(captured, "withheld")
    }
    assert withheld == {
        (str(shared.report_id), "DE"): ["no_agreement"],
        (str(kept.report_id), "DE"): ["no_agreement"],
        (str(kept.report_id), "BE"): ["test-nl-be:report_type_not_covered"],
    }
    rejected = sorted(e["reason"] for e in _events(captured, "rejected"))
    assert rejected == ["bad_signature", "invalid_report", "origin_mismatch"]

    rejections = {str(r["reason"]): r for r in await exchange.rejections("NL")}
    assert set(rejections) == {"bad_signature", "invalid_report", "origin_mismatch"}
    detail = str(rejections["invalid_report"]["detail"])
    assert "information_credibility" in detail  # it names the fields
    assert "location.country" in detail
    assert canaries.found_in(detail) == []  # but not their values
    assert canaries.found_in(str(rejections["origin_mismatch"]["detail"])) == []
    assert canaries.found_in(str(rejections["bad_signature"]["detail"])) == []

    # The canaries did travel: what the agreement shares reaches BE unchanged.
    [delivery] = [d for d in await exchange.feed("BE") if isinstance(d, VerifiedDelivery)]
    assert delivery.report.title == shared.title
    assert canaries.found_in(repr(delivery.report))
