"""The threat report as a typed, immutable value.

This mirrors ``schemas/threat_report.avsc`` field for field. Every optional
field is nullable so that an agreement can withhold it and the result is
still a valid report. Validation here is what makes a report acceptable to
the broker; its error messages name fields, never the offending values.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

NATION_PATTERN = r"^[A-Z]{2}$"

Nation = Annotated[str, Field(pattern=NATION_PATTERN, description="ISO 3166-1 alpha-2")]

# The text fields below typed Nation: a pseudonym would make a delivered report
# invalid, so agreements may redact them but not pseudonymise them.
# tests/unit/test_field_rules.py checks this set against the models.
COUNTRY_CODE_FIELDS = frozenset({"origin", "country", "nationality", "issuing_country", "flag"})
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


def _require_utc(value: dt.datetime) -> dt.datetime:
    """UTC, at the millisecond precision the wire format keeps (so round trips are exact)."""
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone")
    utc = value.astimezone(dt.UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


UtcTime = Annotated[dt.datetime, AfterValidator(_require_utc)]


class ReportType(StrEnum):
    SMUGGLING = "smuggling"
    HUMAN_TRAFFICKING = "human_trafficking"
    MIGRANT_SMUGGLING = "migrant_smuggling"
    IRREGULAR_CROSSING = "irregular_crossing"
    TERRORISM = "terrorism"
    DOCUMENT_FRAUD = "document_fraud"
    WATCHLIST_HIT = "watchlist_hit"
    DRUG_TRAFFICKING = "drug_trafficking"
    WEAPONS_TRAFFICKING = "weapons_trafficking"
    STOLEN_VEHICLE = "stolen_vehicle"
    MARITIME_INCIDENT = "maritime_incident"
    OTHER = "other"


class Marking(StrEnum):
    """TLP 2.0, in increasing order of restriction."""

    CLEAR = "TLP:CLEAR"
    GREEN = "TLP:GREEN"
    AMBER = "TLP:AMBER"
    AMBER_STRICT = "TLP:AMBER+STRICT"
    RED = "TLP:RED"

    @property
    def rank(self) -> int:
        return list(Marking).index(self)


class HandlingCode(StrEnum):
    """SIENA-style handling codes."""

    H0 = "H0"  # purpose-limited
    H1 = "H1"  # not for use in court without permission
    H2 = "H2"  # no onward sharing without the originator's consent
    H3 = "H3"  # other restrictions


class SourceReliability(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


class SubjectRole(StrEnum):
    SUSPECT = "suspect"
    VICTIM = "victim"
    WITNESS = "witness"
    FACILITATOR = "facilitator"
    TRAVELLER = "traveller"
    UNKNOWN = "unknown"


class DocumentType(StrEnum):
    PASSPORT = "passport"
    ID_CARD = "id_card"
    VISA = "visa"
    RESIDENCE_PERMIT = "residence_permit"
    SEAMAN_BOOK = "seaman_book"
    OTHER = "other"


class VehicleKind(StrEnum):
    CAR = "car"
    VAN = "van"
    TRUCK = "truck"
    BUS = "bus"
    MOTORCYCLE = "motorcycle"
    VESSEL = "vessel"
    AIRCRAFT = "aircraft"
    TRAIN = "train"
    OTHER = "other"


class IndicatorKind(StrEnum):
    PHONE_NUMBER = "phone_number"
    EMAIL = "email"
    IBAN = "iban"
    IP_ADDRESS = "ip_address"
    URL = "url"
    MODUS_OPERANDI = "modus_operandi"
    ROUTE = "route"
    OTHER = "other"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class Location(_Value):
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    precision_m: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    country: Nation | None = None
    border_sector: ShortText | None = None
    crossing_point: ShortText | None = None


class TravelDocument(_Value):
    document_type: DocumentType = DocumentType.OTHER
    number: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    issuing_country: Nation | None = None


class Subject(_Value):
    role: SubjectRole = SubjectRole.UNKNOWN
    full_name: ShortText | None = None
    date_of_birth: dt.date | None = None
    nationality: Nation | None = None
    travel_documents: Annotated[tuple[TravelDocument, ...], Field(max_length=16)] = ()


class Vehicle(_Value):
    kind: VehicleKind = VehicleKind.OTHER
    registration: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    flag: Nation | None = None
    description: Annotated[str, Field(max_length=500)] | None = None


class Indicator(_Value):
    kind: IndicatorKind = IndicatorKind.OTHER
    value: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class ThreatReport(_Value):
    """One agency's report. ``origin`` must match the signing key's nation."""

    report_id: uuid.UUID
    issued_at: UtcTime
    observed_at: UtcTime
    origin: Nation
    agency: ShortText
    report_type: ReportType
    marking: Marking
    handling_code: HandlingCode
    source_reliability: SourceReliability
    information_credibility: Annotated[int, Field(ge=1, le=4)]
    title: Annotated[str, Field(min_length=1, max_length=300)]
    summary: Annotated[str, Field(max_length=10_000)] | None = None
    location: Location | None = None
    subjects: Annotated[tuple[Subject, ...], Field(max_length=200)] = ()
    vehicles: Annotated[tuple[Vehicle, ...], Field(max_length=200)] = ()
    indicators: Annotated[tuple[Indicator, ...], Field(max_length=500)] = ()
    related_report_ids: Annotated[tuple[uuid.UUID, ...], Field(max_length=100)] = ()
