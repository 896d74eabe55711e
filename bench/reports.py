"""Realistic, reproducible reports and the agreements they flow under.

Four nations publish with an origin-heavy mix (NL publishes most). Every
report carries 3 to 5 subjects with travel documents, vehicles and
indicators, and the free text varies in length (one in ten is a long
narrative), so messages range from under one to several kilobytes.

Each agency has a profile, as real agencies do: the four report types it
mostly files, markings mostly TLP:AMBER, handling mostly H0; victims appear
only in trafficking reports. What the policy sees (origin, type, marking,
handling code, facets) therefore recurs, which is the premise of the
decision cache (docs/ARCHITECTURE.md, decision 5); :func:`warm_up` covers every such
combination, so measurements can start with the cache warm, as in a
long-running enforcer.

Two agreements cover every report: a four-party group with redactions for
everyone, and an NL-BE agreement adding its own redaction. Every report
therefore goes to the three other nations, and a report between NL and BE
needs a second derivative (encode once per distinct rule set). Every name,
document number and plate is invented.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from pathlib import Path

from broker.cli.demo.scenario import AGENCIES, FAMILY, GIVEN, SECTORS, TITLES
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

NATIONS = ("NL", "DE", "BE", "FR")
ORIGIN_WEIGHTS = (0.4, 0.3, 0.2, 0.1)  # in the order of NATIONS
FAN_OUT = len(NATIONS) - 1  # every report is allowed to every other nation
PROFILES: dict[str, tuple[ReportType, ...]] = {
    "NL": (
        ReportType.IRREGULAR_CROSSING,
        ReportType.MIGRANT_SMUGGLING,
        ReportType.DRUG_TRAFFICKING,
        ReportType.DOCUMENT_FRAUD,
    ),
    "DE": (
        ReportType.IRREGULAR_CROSSING,
        ReportType.MIGRANT_SMUGGLING,
        ReportType.STOLEN_VEHICLE,
        ReportType.HUMAN_TRAFFICKING,
    ),
    "BE": (
        ReportType.DRUG_TRAFFICKING,
        ReportType.SMUGGLING,
        ReportType.DOCUMENT_FRAUD,
        ReportType.WATCHLIST_HIT,
    ),
    "FR": (
        ReportType.MIGRANT_SMUGGLING,
        ReportType.HUMAN_TRAFFICKING,
        ReportType.IRREGULAR_CROSSING,
        ReportType.WEAPONS_TRAFFICKING,
    ),
}
MARKINGS = ((Marking.GREEN, 0.3), (Marking.AMBER, 0.6), (Marking.AMBER_STRICT, 0.1))
HANDLING = ((HandlingCode.H0, 0.8), (HandlingCode.H1, 0.2))
REPORT_TYPES = tuple(sorted({t for types in PROFILES.values() for t in types}))
_NOT_VICTIMS = tuple(r for r in SubjectRole if r is not SubjectRole.VICTIM)

Profile = tuple[str, ReportType, Marking, HandlingCode]  # what the policy sees, but facets

_SENTENCES = (
    "The group was intercepted during a routine second-line check.",
    "Surveillance footage shows the vehicle stopping twice before the crossing point.",
    "Documents presented at the booth carried inconsistent security features.",
    "The facilitator was seen coordinating with a second vehicle by phone.",
    "Payment was reportedly made in cash at a service station near the border.",
    "Follow-up by the reporting agency is ongoing and further reports will follow.",
    "Persons on board stated they had travelled for several days without rest.",
    "The route matches a pattern reported by partner agencies last quarter.",
    "A concealed compartment behind the cargo area was found during inspection.",
    "Identity checks against national and international databases are pending.",
)
_MODUS = (
    "concealment in refrigerated cargo",
    "forged residence permits sold through messaging groups",
    "rental vans returned in another country",
    "night crossings on forest tracks",
)

AGREEMENTS = {
    "bench-frontier-group.yaml": """\
id: bench-frontier-group
version: 1
title: Benchmark frontier group (NL, DE, BE, FR)
purpose: Benchmark traffic between four neighbouring border authorities.
parties: [NL, DE, BE, FR]
valid_from: 2024-01-01T00:00:00Z
report_types: [{types}]
max_marking: TLP:AMBER+STRICT
field_rules:
  "*":
    - {{field: "subjects[].travel_documents[].number", action: redact}}
  human_trafficking:
    - {{field: "subjects[].full_name", action: redact}}
""",
    "bench-nl-be-patrol.yaml": """\
id: bench-nl-be-patrol
version: 1
title: Benchmark NL-BE joint patrol
purpose: Benchmark traffic under a second, stricter bilateral agreement.
parties: [NL, BE]
valid_from: 2024-01-01T00:00:00Z
report_types: [{types}]
max_marking: TLP:AMBER+STRICT
field_rules:
  "*":
    - {{field: "subjects[].date_of_birth", action: redact}}
""",
}


def write_agreements(directory: Path) -> None:
    """Write the bench agreements into ``directory`` (a policies/agreements folder)."""
    directory.mkdir(parents=True, exist_ok=True)
    types = ", ".join(t.value for t in REPORT_TYPES)
    for name, template in AGREEMENTS.items():
        (directory / name).write_text(template.format(types=types))


def generate(count: int, *, seed: int = 7, now: dt.datetime | None = None) -> list[ThreatReport]:
    """``count`` distinct reports; the same seed and ``now`` give the same reports."""
    rng = random.Random(seed)  # noqa: S311 - seeded, reproducible fake data, not cryptography
    now = now or dt.datetime.now(dt.UTC)
    origins = rng.choices(NATIONS, weights=ORIGIN_WEIGHTS, k=count)
    return [_report(rng, _profile(rng, origin), now) for origin in origins]


def profiles() -> list[Profile]:
    """Every (origin, type, marking, handling code) the generator can produce."""
    return [
        (origin, report_type, marking, handling)
        for origin, types in PROFILES.items()
        for report_type in types
        for marking, _ in MARKINGS
        for handling, _ in HANDLING
    ]


def warm_up(copies: int, *, seed: int, now: dt.datetime | None = None) -> list[ThreatReport]:
    """``copies`` reports of every profile, shuffled: enough that every enforcer of a
    group sees each at least once (report ids spread them over the partitions)."""
    rng = random.Random(seed)  # noqa: S311 - seeded, reproducible fake data, not cryptography
    now = now or dt.datetime.now(dt.UTC)
    reports = [_report(rng, p, now) for p in profiles() for _ in range(copies)]
    rng.shuffle(reports)
    return reports


def _profile(rng: random.Random, origin: str) -> Profile:
    return (
        origin,
        rng.choice(PROFILES[origin]),
        rng.choices([m for m, _ in MARKINGS], weights=[w for _, w in MARKINGS])[0],
        rng.choices([h for h, _ in HANDLING], weights=[w for _, w in HANDLING])[0],
    )


def _report(rng: random.Random, profile: Profile, now: dt.datetime) -> ThreatReport:
    origin, report_type, marking, handling_code = profile
    sector, lat, lon, neighbour = rng.choice(SECTORS[origin])
    # Most summaries are short; one in ten is a long narrative, as in real bursts.
    sentences = rng.randint(20, 50) if rng.random() < 0.1 else rng.randint(1, 12)
    summary = " ".join(rng.choices(_SENTENCES, k=sentences))
    subjects = [_subject(rng, origin, _NOT_VICTIMS) for _ in range(rng.randint(3, 5))]
    if report_type is ReportType.HUMAN_TRAFFICKING:
        subjects[0] = subjects[0].model_copy(update={"role": SubjectRole.VICTIM})
    return ThreatReport(
        report_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        issued_at=now - dt.timedelta(seconds=rng.randint(1, 120)),
        observed_at=now - dt.timedelta(hours=rng.randint(1, 48)),
        origin=origin,
        agency=AGENCIES[origin],
        report_type=report_type,
        marking=marking,
        handling_code=handling_code,
        source_reliability=rng.choice(list(SourceReliability)),
        information_credibility=rng.randint(1, 4),
        title=TITLES[report_type].format(n=rng.randint(2, 40), doc="passport"),
        summary=f"Observed at {sector}. {summary}",
        location=Location(
            latitude=round(lat + rng.uniform(-0.01, 0.01), 5),
            longitude=round(lon + rng.uniform(-0.01, 0.01), 5),
            precision_m=rng.choice([10, 50, 250]),
            country=origin,
            border_sector=sector,
        ),
        subjects=tuple(subjects),
        vehicles=tuple(_vehicle(rng, origin, neighbour) for _ in range(rng.randint(1, 3))),
        indicators=tuple(_indicator(rng, sector) for _ in range(rng.randint(2, 8))),
        related_report_ids=tuple(
            uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(rng.randint(0, 3))
        ),
    )


def _subject(rng: random.Random, origin: str, roles: tuple[SubjectRole, ...]) -> Subject:
    nationality = rng.choice(["SY", "AF", "AL", "MA", "VE", "UA", "TR", "NG", origin])
    return Subject(
        role=rng.choice(roles),
        full_name=f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}",
        date_of_birth=dt.date(rng.randint(1960, 2005), rng.randint(1, 12), rng.randint(1, 28)),
        nationality=nationality,
        travel_documents=tuple(
            TravelDocument(
                document_type=rng.choice(
                    [DocumentType.PASSPORT, DocumentType.ID_CARD, DocumentType.VISA]
                ),
                number=f"X{rng.randint(10_000_000, 99_999_999)}",
                issuing_country=nationality,
            )
            for _ in range(rng.randint(1, 2))
        ),
    )


def _vehicle(rng: random.Random, origin: str, neighbour: str | None) -> Vehicle:
    letters = "BDFGHJKLNPRSTXZ"
    plate = f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(10, 99)}-{rng.randint(1, 9)}"
    return Vehicle(
        kind=rng.choice([VehicleKind.VAN, VehicleKind.TRUCK, VehicleKind.CAR, VehicleKind.BUS]),
        registration=f"{origin}-{plate}",
        flag=rng.choice([origin, neighbour or origin]),
        description=rng.choice([None, "white, roof rack, tinted rear windows", "curtain-sider"]),
    )


def _indicator(rng: random.Random, sector: str) -> Indicator:
    kind = rng.choice(
        [
            IndicatorKind.PHONE_NUMBER,
            IndicatorKind.EMAIL,
            IndicatorKind.IBAN,
            IndicatorKind.IP_ADDRESS,
            IndicatorKind.MODUS_OPERANDI,
            IndicatorKind.ROUTE,
        ]
    )
    values = {
        IndicatorKind.PHONE_NUMBER: f"+{rng.randint(30, 52)} 6{rng.randint(1000000, 9999999)}",
        IndicatorKind.EMAIL: f"contact{rng.randint(100, 999)}@example.invalid",
        IndicatorKind.IBAN: f"NL{rng.randint(10, 99)}BANK0{rng.randint(100000000, 999999999)}",
        IndicatorKind.IP_ADDRESS: f"198.51.100.{rng.randint(1, 254)}",
        IndicatorKind.MODUS_OPERANDI: rng.choice(_MODUS),
        IndicatorKind.ROUTE: f"{sector} via secondary roads at night",
    }
    return Indicator(kind=kind, value=values[kind])
