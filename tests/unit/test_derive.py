"""Derived records: rules applied on a copy, and the result is still a valid report."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.domain.agreements import FieldAction, FieldRule
from broker.domain.fields import FieldPath
from broker.domain.report import ThreatReport
from broker.enforcer.stages.derive import Deriver, RuleSet, effective_rules
from broker.policy.bundle import load_bundle
from broker.resources import POLICIES_DIR
from broker.trust.pseudonyms import PREFIX, Pseudonymiser, PseudonymSecrets
from broker.wire.codec import SchemaCatalog
from broker.wire.report import REPORT_SCHEMA, encode_report, record_to_report
from tests.factories import make_report

SECRET = bytes(range(32))
OBSERVED = dt.datetime(2026, 5, 17, 13, 47, 29, 123_000, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def deriver(catalog: SchemaCatalog) -> Deriver:
    return Deriver(catalog.schema(REPORT_SCHEMA).parsed)


def record_of(catalog: SchemaCatalog, report: ThreatReport) -> dict[str, Any]:
    """The record as the enforcer has it: decoded from the originator's bytes."""
    return catalog.decode(encode_report(catalog, report), REPORT_SCHEMA)


def reencoded(catalog: SchemaCatalog, record: dict[str, Any]) -> ThreatReport:
    """Encode a derived record and read it back as a validated report."""
    return record_to_report(catalog.decode(catalog.encode(REPORT_SCHEMA, record), REPORT_SCHEMA))


def rules(*specs: tuple[str, str] | tuple[str, str, str]) -> RuleSet:
    return effective_rules(
        FieldRule(field=s[0], action=FieldAction(s[1]), to=s[2] if len(s) == 3 else None)
        for s in specs
    )


def values_at(record: Any, path: str) -> list[Any]:
    """Every value ``path`` reaches in ``record``, absent ones as None."""
    nodes = [record]
    for step in FieldPath.parse(path).steps:
        nodes = [None if node is None else node.get(step.name) for node in nodes]
        if step.each:
            nodes = [item for node in nodes for item in (node or [])]
    return nodes


def subject(name: str | None, *numbers: str, role: str = "suspect") -> dict[str, Any]:
    return {
        "role": role,
        "full_name": name,
        "date_of_birth": "1984-06-02",
        "nationality": "HU",
        "travel_documents": [
            {"document_type": "passport", "number": n, "issuing_country": "HU"} for n in numbers
        ],
    }


# --- the original is never touched ------------------------------------------

EVERY_ACTION = {
    "redact": rules(("subjects[].travel_documents[].number", "redact"), ("location", "redact")),
    "pseudonymise": rules(
        ("subjects[].full_name", "pseudonymise"), ("vehicles[].registration", "pseudonymise")
    ),
    "generalise": rules(
        ("observed_at", "generalise", "day"),
        ("subjects[].date_of_birth", "generalise", "year"),
        ("location", "generalise", "0.1deg"),
    ),
    "all": rules(
        ("subjects[].travel_documents[].number", "redact"),
        ("subjects[].full_name", "pseudonymise"),
        ("location", "generalise", "border_sector"),
        ("observed_at", "generalise", "hour"),
    ),
}


@pytest.mark.parametrize("name", list(EVERY_ACTION))
def test_the_original_record_is_never_modified(
    name: str, catalog: SchemaCatalog, deriver: Deriver
) -> None:
    record = record_of(catalog, make_report(observed_at=OBSERVED))
    before = copy.deepcopy(record)

    derived = deriver.derive(record, EVERY_ACTION[name], Pseudonymiser(SECRET))

    assert record == before
    assert derived != before  # every rule set here changes something


# --- redaction --------------------------------------------------------------


def test_redacting_document_numbers_nulls_every_number_of_every_subject(
    catalog: SchemaCatalog, deriver: Deriver
) -> None:
    report = make_report(
        subjects=[subject("A", "N1", "N2"), subject("B"), subject(None, "N3", "N4", "N5")]
    )
    record = record_of(catalog, report)

    derived = deriver.derive(
        record, rules(("subjects[].travel_documents[].number", "redact")), None
    )

    assert values_at(derived, "subjects[].travel_documents[].number") == [None] * 5
    kept = ["subjects[].travel_documents[].document_type", "subjects[].full_name", "vehicles"]
    for path in kept:
        assert values_at(derived, path) == values_at(record, path)
    reencoded(catalog, derived)


# --- pseudonyms -------------------------------------------------------------

NAMES = rules(("subjects[].full_name", "pseudonymise"))


def pseudonymised_names(
    catalog: SchemaCatalog, deriver: Deriver, pseudonymiser: Pseudonymiser, *names: str | None
) -> list[Any]:
    record = record_of(catalog, make_report(subjects=[subject(n) for n in names]))
    return values_at(deriver.derive(record, NAMES, pseudonymiser), "subjects[].full_name")


def test_every_name_is_replaced_by_a_pseudonym_and_absent_names_stay_absent(
    catalog: SchemaCatalog, deriver: Deriver
) -> None:
    names = ["Adrian Varga", None, "Mira Okafor", "Adrian Varga"]

    pseudonyms = pseudonymised_names(catalog, deriver, Pseudonymiser(SECRET), *names)

    assert [p is None for p in pseudonyms] == [n is None for n in names]
    present = [p for p in pseudonyms if p is not None]
    assert all(p.startswith(PREFIX) for p in present)
    assert not set(present) & set(names)
    assert pseudonyms[0] == pseudonyms[3] != pseudonyms[2]


def test_one_name_in_two_reports_gets_one_pseudonym_under_one_agreement(
    catalog: SchemaCatalog, deriver: Deriver, tmp_path: Path
) -> None:
    pseudonymiser = PseudonymSecrets(tmp_path).for_agreement("schengen-frontier-cooperation")

    first = pseudonymised_names(catalog, deriver, pseudonymiser, "Adrian Varga")
    second = pseudonymised_names(catalog, deriver, pseudonymiser, "Mira Okafor", "Adrian Varga")

    assert first[0] == second[1] != second[0]


def test_another_agreements_secret_gives_another_pseudonym(
    catalog: SchemaCatalog, deriver: Deriver, tmp_path: Path
) -> None:
    secrets = PseudonymSecrets(tmp_path)

    one = pseudonymised_names(catalog, deriver, secrets.for_agreement("agreement-one"), "A Varga")
    two = pseudonymised_names(catalog, deriver, secrets.for_agreement("agreement-two"), "A Varga")

    assert one != two


@pytest.mark.parametrize(
    "variant",
    ["adrian varga", "ADRIAN VARGA", "  Adrian   Varga ", "Adrian\tVarga", "Adrian\u00a0Varga",
     "\uff21drian Varga"],  # no-break space and a full-width A: NFKC folds both
)  # fmt: skip
def test_case_and_white_space_variants_of_a_name_get_the_same_pseudonym(
    variant: str, catalog: SchemaCatalog, deriver: Deriver
) -> None:
    pseudonyms = pseudonymised_names(
        catalog, deriver, Pseudonymiser(SECRET), "Adrian Varga", variant
    )

    assert pseudonyms[0] == pseudonyms[1]


def test_the_same_value_in_two_fields_gets_two_pseudonyms() -> None:
    pseudonymiser = Pseudonymiser(SECRET)

    assert pseudonymiser.pseudonym("subjects[].full_name", "HU1234") != pseudonymiser.pseudonym(
        "vehicles[].registration", "HU1234"
    )


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_a_pseudonym_never_contains_the_value(value: str) -> None:
    pseudonym = Pseudonymiser(SECRET).pseudonym("subjects[].full_name", value)

    assert pseudonym.startswith(PREFIX)
    digest = pseudonym.removeprefix(PREFIX)
    if len(value.strip()) >= 6:  # shorter strings could occur by chance in 26 base32 chars
        assert value not in digest
        assert value.casefold().strip() not in digest


@pytest.mark.parametrize(
    "field", ["subjects[].full_name", "vehicles[].registration",
              "subjects[].travel_documents[].number", "indicators[].value", "summary", "title"],
)  # fmt: skip
def test_a_pseudonymised_report_still_encodes_and_fits_the_length_limits(
    field: str, catalog: SchemaCatalog, deriver: Deriver
) -> None:
    long_registration = "R" * 32  # vehicles[].registration allows at most 32 characters
    report = make_report(vehicles=[{"kind": "van", "registration": long_registration}])
    record = record_of(catalog, report)

    derived = deriver.derive(record, rules((field, "pseudonymise")), Pseudonymiser(SECRET))

    assert all(v is None or v.startswith(PREFIX) for v in values_at(derived, field))
    again = reencoded(catalog, derived)
    assert again.report_id == report.report_id


def test_pseudonymising_without_a_pseudonymiser_is_an_error(
    catalog: SchemaCatalog, deriver: Deriver
) -> None:
    record = record_of(catalog, make_report())

    with pytest.raises(ValueError, match="pseudonymiser"):
        deriver.derive(record, NAMES, None)


# --- generalisation ---------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "expected"),
    [("minute", OBSERVED.replace(second=0, microsecond=0)),
     ("hour", dt.datetime(2026, 5, 17, 13, tzinfo=dt.UTC)),
     ("day", dt.datetime(2026, 5, 17, tzinfo=dt.UTC))],
)  # fmt: skip
def test_the_observation_time_is_generalised_to_the_start_of_its_minute_hour_or_day(
    to: str, expected: dt.datetime, catalog: SchemaCatalog, deriver: Deriver
) -> None:
    record = record_of(catalog, make_report(observed_at=OBSERVED))

    derived = deriver.derive(record, rules(("observed_at", "generalise", to)), None)

    assert derived["observed_at"] == expected
    assert derived["issued_at"] == record["issued_at"]
    assert reencoded(catalog, derived).observed_at == expected


@pytest.mark.parametrize(
    ("to", "expected"), [("year", dt.date(1984, 1, 1)), ("month", dt.date(1984, 6, 1))]
)
def test_a_date_of_birth_is_generalised_to_its_year_or_month(
    to: str, expected: dt.date, catalog: SchemaCatalog, deriver: Deriver
) -> None:
    record = record_of(catalog, make_report(subjects=[subject("A"), subject("B")]))

    derived = deriver.derive(record, rules(("subjects[].date_of_birth", "generalise", to)), None)

    assert values_at(derived, "subjects[].date_of_birth") == [expected, expected]
    reencoded(catalog, derived)


LOCATION = {
    "latitude": 51.4925,
    "longitude": 4.7461,
    "precision_m": 50,
    "country": "NL",
    "border_sector": "A16 Hazeldonk",
    "crossing_point": "Hazeldonk-Meer",
}


def derived_location(
    catalog: SchemaCatalog, deriver: Deriver, to: str, location: dict[str, Any] | None = LOCATION
) -> dict[str, Any] | None:
    record = record_of(catalog, make_report(location=location))
    derived = deriver.derive(record, rules(("location", "generalise", to)), None)
    reencoded(catalog, derived)
    result: dict[str, Any] | None = derived["location"]
    return result


def test_a_location_generalised_to_its_border_sector_keeps_only_country_and_sector(
    catalog: SchemaCatalog, deriver: Deriver
) -> None:
    location = derived_location(catalog, deriver, "border_sector")

    assert location is not None
    kept = {k for k, v in location.items() if v is not None}
    assert kept == {"country", "border_sector"}
    assert location["border_sector"] == LOCATION["border_sector"]


def test_a_location_generalised_to_its_country_keeps_only_the_country(
    catalog: SchemaCatalog, deriver: Deriver
) -> None:
    location = derived_location(catalog, deriver, "country")

    assert location is not None
    assert {k: v for k, v in location.items() if v is not None} == {"country": "NL"}


@pytest.mark.parametrize(("to", "step"), [("0.1deg", 0.1), ("0.01deg", 0.01), ("1deg", 1.0)])
def test_a_location_generalised_to_a_grid_snaps_its_coordinates_and_widens_its_precision(
    to: str, step: float, catalog: SchemaCatalog, deriver: Deriver
) -> None:
    location = derived_location(catalog, deriver, to)

    assert location is not None
    for axis in ("latitude", "longitude"):
        cells = location[axis] / step
        assert abs(cells - round(cells)) < 1e-6
        assert abs(location[axis] - LOCATION[axis]) <= step / 2 + 1e-9
    assert location["precision_m"] >= step * 110_000  # a degree of latitude is ~111 km
    assert location["crossing_point"] is None
    assert location["country"] == LOCATION["country"]


@pytest.mark.parametrize("to", ["border_sector", "country", "0.1deg"])
def test_an_absent_location_is_left_absent(
    to: str, catalog: SchemaCatalog, deriver: Deriver
) -> None:
    assert derived_location(catalog, deriver, to, location=None) is None


# --- property: any report, any mix of the real agreements' rules ------------


def _real_rules() -> list[FieldRule]:
    agreements = load_bundle(POLICIES_DIR, SchemaCatalog.load()).agreements
    found = {r for a in agreements for rs in a.field_rules.values() for r in rs}
    return sorted(found, key=FieldRule.sort_key)


REAL_RULES = _real_rules()
CANARY_FIELDS = {  # the text fields the real agreements withhold or pseudonymise
    "subjects[].full_name",
    "subjects[].travel_documents[].number",
    "vehicles[].registration",
}


def canary(kind: str, *indexes: int) -> str:
    """Text that appears once in a report: upper case, so no pseudonym can contain it."""
    return f"CANARY#{kind}#" + "#".join(map(str, indexes))


@st.composite
def canary_reports(draw: st.DrawFn) -> ThreatReport:
    documents = st.integers(min_value=0, max_value=3)
    subjects = [
        {
            "role": draw(st.sampled_from(["suspect", "victim", "witness"])),
            "full_name": canary("NAME", i) if draw(st.booleans()) else None,
            "date_of_birth": draw(st.none() | st.dates(dt.date(1900, 1, 1), dt.date(2025, 1, 1))),
            "nationality": "HU",
            "travel_documents": [
                {"document_type": "passport", "number": canary("DOC", i, j)}
                for j in range(draw(documents))
            ],
        }
        for i in range(draw(st.integers(min_value=0, max_value=4)))
    ]
    vehicles = [
        {"kind": "van", "registration": canary("REG", i)}
        for i in range(draw(st.integers(min_value=0, max_value=3)))
    ]
    location = draw(
        st.none()
        | st.fixed_dictionaries(
            {
                "latitude": st.none() | st.floats(-90, 90),
                "longitude": st.none() | st.floats(-180, 180),
                "precision_m": st.none() | st.integers(0, 1_000_000),
                "country": st.just("NL"),
                "border_sector": st.none() | st.just("A16 Hazeldonk"),
                "crossing_point": st.none() | st.just("Hazeldonk-Meer"),
            }
        )
    )
    observed_at = draw(
        st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1), timezones=st.just(dt.UTC))
    )
    return make_report(
        subjects=subjects, vehicles=vehicles, location=location, observed_at=observed_at
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(report=canary_reports(), chosen=st.lists(st.sampled_from(REAL_RULES), max_size=8))
def test_a_derived_report_always_encodes_and_never_carries_a_withheld_value(
    report: ThreatReport, chosen: list[FieldRule], catalog: SchemaCatalog, deriver: Deriver
) -> None:
    record = record_of(catalog, report)
    rule_set = effective_rules(chosen)

    derived = deriver.derive(record, rule_set, Pseudonymiser(SECRET))
    data = catalog.encode(REPORT_SCHEMA, derived)

    again = record_to_report(catalog.decode(data, REPORT_SCHEMA))
    assert again.report_id == report.report_id
    hidden = [r.field for r in rule_set.rules if r.action is not FieldAction.GENERALISE]
    for field in hidden:
        assert field is not None
        for value in values_at(record, field):
            if field in CANARY_FIELDS and value is not None:
                assert value.encode() not in data
    decoded = catalog.decode(data, REPORT_SCHEMA)
    for field in rule_set.withheld:
        assert all(v is None for v in values_at(decoded, field))
