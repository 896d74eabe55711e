"""A realistic, deterministic multi-nation scenario for the demo and the tests.

Seven nations under four agreements (policies/agreements/): a Schengen-style
multilateral group (NL, BE, DE, FR), a Benelux joint patrol (NL-BE), a
three-nation North American exchange (US, CA, MX) and a one-way Canada to US
watchlist notification. Every name, document number and plate here is
invented.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass

from broker.domain.report import (
    DocumentType,
    HandlingCode,
    Indicator,
    IndicatorKind,
    Location,
    Marking,
    ReportType,
    SourceReliability,
    Subject,
    SubjectRole,
    ThreatReport,
    TravelDocument,
    Vehicle,
    VehicleKind,
)

NATIONS = ("NL", "BE", "DE", "FR", "US", "CA", "MX")

AGENCIES = {
    "NL": "Koninklijke Marechaussee",
    "BE": "Federale Politie",
    "DE": "Bundespolizei",
    "FR": "Police aux frontieres",
    "US": "Customs and Border Protection",
    "CA": "Canada Border Services Agency",
    "MX": "Instituto Nacional de Migracion",
}

# nation -> (sector, latitude, longitude, neighbouring nation or None)
SECTORS: dict[str, list[tuple[str, float, float, str | None]]] = {
    "NL": [
        ("NL-BE A16 Hazeldonk", 51.4925, 4.7461, "BE"),
        ("Port of Rotterdam Maasvlakte", 51.9536, 4.0442, None),
    ],
    "BE": [
        ("BE-FR E17 Rekkem", 50.7836, 3.1553, "FR"),
        ("Port of Zeebrugge", 51.3300, 3.2000, None),
    ],
    "DE": [
        ("DE-NL A3 Elten", 51.8715, 6.1547, "NL"),
        ("DE-FR Kehl Europabruecke", 48.5740, 7.8000, "FR"),
    ],
    "FR": [("Calais port", 50.9660, 1.8620, None), ("FR-BE A22 Rekkem", 50.7800, 3.1600, "BE")],
    "US": [
        ("San Ysidro POE", 32.5422, -117.0295, "MX"),
        ("Champlain-Lacolle POE", 45.0108, -73.4514, "CA"),
    ],
    "CA": [
        ("Lacolle POE", 45.0080, -73.3730, "US"),
        ("Pacific Highway POE", 49.0030, -122.7570, "US"),
    ],
    "MX": [
        ("Tijuana El Chaparral", 32.5418, -117.0300, "US"),
        ("Ciudad Juarez Paso del Norte", 31.7487, -106.4850, "US"),
    ],
}

TYPES_BY_REGION = {
    "eu": [
        ReportType.IRREGULAR_CROSSING,
        ReportType.MIGRANT_SMUGGLING,
        ReportType.DOCUMENT_FRAUD,
        ReportType.HUMAN_TRAFFICKING,
        ReportType.STOLEN_VEHICLE,
        ReportType.DRUG_TRAFFICKING,
        ReportType.WATCHLIST_HIT,
    ],
    "na": [
        ReportType.SMUGGLING,
        ReportType.MIGRANT_SMUGGLING,
        ReportType.HUMAN_TRAFFICKING,
        ReportType.DRUG_TRAFFICKING,
        ReportType.WEAPONS_TRAFFICKING,
        ReportType.WATCHLIST_HIT,
    ],
}

TITLES = {
    ReportType.IRREGULAR_CROSSING: "Group of {n} persons crossed away from a crossing point",
    ReportType.MIGRANT_SMUGGLING: "Network moving {n} migrants in a concealed compartment",
    ReportType.DOCUMENT_FRAUD: "Counterfeit {doc} series detected at first-line check",
    ReportType.HUMAN_TRAFFICKING: "Suspected trafficking of {n} persons for labour exploitation",
    ReportType.STOLEN_VEHICLE: "Vehicle reported stolen detected crossing the border",
    ReportType.DRUG_TRAFFICKING: "{n} kg of cocaine concealed in a refrigerated load",
    ReportType.WATCHLIST_HIT: "Watchlist hit on a traveller at the first-line booth",
    ReportType.SMUGGLING: "Undeclared cash and electronics in a cross-border shipment",
    ReportType.WEAPONS_TRAFFICKING: "{n} firearms concealed in a commercial vehicle",
    ReportType.TERRORISM: "Alert on a person linked to a terrorist network",
}

GIVEN = ["Adrian", "Mira", "Jonas", "Lea", "Karim", "Sofia", "Pavel", "Ines", "Tomas", "Amara"]
FAMILY = [
    "Varga",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Haddad",
    "Novak",
    "Reyes",
    "Dubois",
    "Kowal",
    "Sato",
]


@dataclass(frozen=True, slots=True)
class Scenario:
    reports: dict[str, list[ThreatReport]]  # by publishing nation
    unshareable: ThreatReport  # allowed to no one by any agreement
    embargoed: ThreatReport  # allowed to NL, but only two hours after it was observed


def build(*, seed: int = 7, per_nation: int = 5, now: dt.datetime | None = None) -> Scenario:
    """``per_nation`` varied reports for each of the seven nations, plus one nobody may get."""
    rng = random.Random(seed)
    now = now or dt.datetime.now(dt.UTC)
    reports = {
        nation: [_report(rng, nation, now, i) for i in range(per_nation)] for nation in NATIONS
    }
    unshareable = _report(rng, "NL", now, 99).model_copy(
        update={
            "report_type": ReportType.TERRORISM,
            "marking": Marking.RED,
            "handling_code": HandlingCode.H2,
            "title": "TLP:RED alert for named recipients only",
        }
    )
    embargoed = _report(rng, "BE", now, 98).model_copy(
        update={
            "report_type": ReportType.TERRORISM,
            "marking": Marking.AMBER,
            "handling_code": HandlingCode.H2,  # BE consents to NL under the Benelux agreement
            "observed_at": now - dt.timedelta(minutes=15),
            "title": "Alert on a person linked to a terrorist network (embargoed 2 h)",
        }
    )
    return Scenario(reports, unshareable, embargoed)


def _report(rng: random.Random, nation: str, now: dt.datetime, index: int) -> ThreatReport:
    region = "na" if nation in ("US", "CA", "MX") else "eu"
    report_type = TYPES_BY_REGION[region][index % len(TYPES_BY_REGION[region])]
    sector, lat, lon, neighbour = rng.choice(SECTORS[nation])
    n = rng.randint(2, 40)
    subjects = tuple(_subject(rng, nation, neighbour) for _ in range(rng.randint(1, 4)))
    return ThreatReport(
        report_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        issued_at=now - dt.timedelta(seconds=rng.randint(1, 120)),
        observed_at=now - dt.timedelta(hours=rng.randint(1, 48)),
        origin=nation,
        agency=AGENCIES[nation],
        report_type=report_type,
        marking=rng.choice([Marking.GREEN, Marking.AMBER, Marking.AMBER, Marking.AMBER_STRICT])
        if report_type is ReportType.WATCHLIST_HIT
        else rng.choice([Marking.GREEN, Marking.AMBER]),
        handling_code=rng.choice([HandlingCode.H0, HandlingCode.H1]),
        source_reliability=rng.choice(list(SourceReliability)[:3]),
        information_credibility=rng.randint(1, 3),
        title=TITLES[report_type].format(n=n, doc="passport"),
        summary=f"Observed at {sector}. Follow-up by the reporting agency is ongoing.",
        location=Location(
            latitude=round(lat + rng.uniform(-0.01, 0.01), 5),
            longitude=round(lon + rng.uniform(-0.01, 0.01), 5),
            precision_m=rng.choice([10, 50, 250]),
            country=nation,
            border_sector=sector,
        ),
        subjects=subjects,
        vehicles=(
            Vehicle(
                kind=rng.choice([VehicleKind.VAN, VehicleKind.TRUCK, VehicleKind.CAR]),
                registration=_plate(rng, nation),
                flag=neighbour or nation,
            ),
        ),
        indicators=(
            Indicator(
                kind=IndicatorKind.PHONE_NUMBER,
                value=f"+{rng.randint(30, 52)} 6{rng.randint(1000000, 9999999)}",
            ),
            Indicator(kind=IndicatorKind.ROUTE, value=f"{sector} via secondary roads at night"),
        ),
    )


def _subject(rng: random.Random, nation: str, neighbour: str | None) -> Subject:
    nationality = rng.choice(["SY", "AF", "AL", "MA", "VE", "HN", "UA", "TR", nation])
    return Subject(
        role=rng.choice(
            [
                SubjectRole.SUSPECT,
                SubjectRole.FACILITATOR,
                SubjectRole.VICTIM,
                SubjectRole.TRAVELLER,
            ]
        ),
        full_name=f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}",
        date_of_birth=dt.date(rng.randint(1960, 2005), rng.randint(1, 12), rng.randint(1, 28)),
        nationality=nationality,
        travel_documents=(
            TravelDocument(
                document_type=DocumentType.PASSPORT,
                number=f"X{rng.randint(10_000_000, 99_999_999)}",
                issuing_country=nationality,
            ),
        ),
    )


def _plate(rng: random.Random, nation: str) -> str:
    letters = "BDFGHJKLNPRSTXZ"
    pair = rng.choice(letters) + rng.choice(letters)
    return f"{nation}-{rng.randint(10, 99)}-{pair}-{rng.randint(1, 9)}"
