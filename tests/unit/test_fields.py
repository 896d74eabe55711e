"""Field paths: parsed strictly, checked against the report schema, withheld on a copy."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any

import pytest

from broker.domain.fields import FieldPath, FieldPathError, Step, check_withholdable, withhold
from broker.wire.codec import SchemaCatalog
from broker.wire.report import REPORT_SCHEMA, record_to_report


@pytest.fixture(scope="module")
def report_schema() -> Any:
    return SchemaCatalog.load().schema(REPORT_SCHEMA).parsed


def decoded_record() -> dict[str, Any]:
    """A report record shaped as the codec decodes it (lists, not tuples)."""
    return {
        "report_id": uuid.UUID("2b3c63c4-3d5f-4f51-9d7e-5a8d3c1e0f42"),
        "issued_at": dt.datetime(2025, 5, 1, 8, 0, tzinfo=dt.UTC),
        "observed_at": dt.datetime(2025, 5, 1, 7, 0, tzinfo=dt.UTC),
        "origin": "BE",
        "agency": "Federale Politie",
        "report_type": "document_fraud",
        "marking": "AMBER",
        "handling_code": "H1",
        "source_reliability": "A",
        "information_credibility": 1,
        "title": "Forged passports on the Eurostar",
        "summary": "Two travellers with altered data pages.",
        "location": {
            "latitude": 50.8355,
            "longitude": 4.3363,
            "precision_m": 10,
            "country": "BE",
            "border_sector": None,
            "crossing_point": "Bruxelles-Midi",
        },
        "subjects": [
            {
                "role": "suspect",
                "full_name": "A. Traveller",
                "date_of_birth": dt.date(1990, 1, 1),
                "nationality": "FR",
                "travel_documents": [
                    {"document_type": "passport", "number": "FR0001", "issuing_country": "FR"},
                    {"document_type": "visa", "number": None, "issuing_country": "GB"},
                    {"document_type": "id_card", "number": "FR0003", "issuing_country": "FR"},
                ],
            },
            {
                "role": "traveller",
                "full_name": None,
                "date_of_birth": None,
                "nationality": None,
                "travel_documents": [],
            },
            {
                "role": "suspect",
                "full_name": "B. Traveller",
                "date_of_birth": None,
                "nationality": "FR",
                "travel_documents": [
                    {"document_type": "passport", "number": "FR0004", "issuing_country": "FR"},
                ],
            },
        ],
        "vehicles": [
            {"kind": "train", "registration": "EST-9114", "flag": "GB", "description": None},
            {"kind": "car", "registration": None, "flag": None, "description": "taxi"},
        ],
        "indicators": [],
        "related_report_ids": [],
    }


# --- parsing ---------------------------------------------------------------


def test_a_path_parses_into_steps_marking_each_list_step() -> None:
    path = FieldPath.parse("subjects[].travel_documents[].number")

    assert path.text == "subjects[].travel_documents[].number"
    assert path.steps == (
        Step("subjects", each=True),
        Step("travel_documents", each=True),
        Step("number", each=False),
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "subjects.",
        ".subjects",
        "subjects..number",
        "Subjects",
        "subjects[0]",
        "subjects[]]",
        "subjects[][]",
        "[]",
        "1st_field",
        "subjects[].travel-documents",
        "subjects []",
        "location/latitude",
        "*",
    ],
)
def test_a_malformed_path_is_refused_when_parsed(text: str) -> None:
    with pytest.raises(FieldPathError):
        FieldPath.parse(text)


def test_a_path_error_is_a_value_error_naming_the_path() -> None:
    with pytest.raises(ValueError, match="subjects\\[0\\]"):
        FieldPath.parse("subjects[0].number")


# --- checking against the schema -------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "subjects[].travel_documents[].number",
        "subjects[].travel_documents",
        "subjects[].full_name",
        "subjects[].date_of_birth",
        "location",
        "location.latitude",
        "location.crossing_point",
        "subjects",
        "summary",
        "vehicles[].registration",
        "indicators[].value",
        "related_report_ids",
    ],
)
def test_a_nullable_or_list_field_can_be_withheld(text: str, report_schema: Any) -> None:
    check_withholdable(FieldPath.parse(text), report_schema)


def test_a_field_the_schema_lacks_is_refused_naming_where_it_was_looked_for(
    report_schema: Any,
) -> None:
    with pytest.raises(FieldPathError, match="subjects has no field 'passport'"):
        check_withholdable(FieldPath.parse("subjects[].passport"), report_schema)


def test_an_unknown_top_level_field_is_refused(report_schema: Any) -> None:
    with pytest.raises(FieldPathError, match="the report has no field 'passport_number'"):
        check_withholdable(FieldPath.parse("passport_number"), report_schema)


@pytest.mark.parametrize("text", ["location[]", "summary[]", "subjects[].full_name[]"])
def test_stepping_into_a_field_that_is_not_a_list_is_refused(text: str, report_schema: Any) -> None:
    with pytest.raises(FieldPathError, match="is not a list"):
        check_withholdable(FieldPath.parse(text), report_schema)


@pytest.mark.parametrize("text", ["subjects.full_name", "vehicles.registration"])
def test_a_list_field_cannot_be_entered_without_brackets(text: str, report_schema: Any) -> None:
    with pytest.raises(FieldPathError):
        check_withholdable(FieldPath.parse(text), report_schema)


@pytest.mark.parametrize("text", ["location.latitude.degrees", "summary.text"])
def test_stepping_into_a_field_that_is_not_a_record_is_refused(
    text: str, report_schema: Any
) -> None:
    with pytest.raises(FieldPathError, match="has no field"):
        check_withholdable(FieldPath.parse(text), report_schema)


@pytest.mark.parametrize(
    "text",
    [
        "title",
        "origin",
        "report_id",
        "marking",
        "information_credibility",
        "subjects[].role",
        "subjects[].travel_documents[].document_type",
        "vehicles[].kind",
    ],
)
def test_a_required_field_cannot_be_withheld(text: str, report_schema: Any) -> None:
    with pytest.raises(FieldPathError, match="required"):
        check_withholdable(FieldPath.parse(text), report_schema)


# --- withholding -----------------------------------------------------------


def test_withholding_a_nested_list_field_nulls_every_occurrence_and_counts_the_present_ones() -> (
    None
):
    original = decoded_record()
    record = copy.deepcopy(original)

    count = withhold(record, FieldPath.parse("subjects[].travel_documents[].number"))

    assert count == 3  # FR0001, FR0003, FR0004; the visa had no number
    numbers = [d["number"] for s in record["subjects"] for d in s["travel_documents"]]
    assert numbers == [None, None, None, None]
    assert original == decoded_record()


def test_withholding_leaves_everything_else_as_it_was() -> None:
    record = decoded_record()

    withhold(record, FieldPath.parse("subjects[].travel_documents[].number"))

    expected = decoded_record()
    for subject in expected["subjects"]:
        for document in subject["travel_documents"]:
            document["number"] = None
    assert record == expected


def test_withholding_a_list_empties_it_and_counts_one_when_it_had_items() -> None:
    original = decoded_record()
    record = copy.deepcopy(original)

    count = withhold(record, FieldPath.parse("subjects"))

    assert count == 1
    assert record["subjects"] == []
    assert len(original["subjects"]) == 3


def test_withholding_an_empty_list_counts_nothing() -> None:
    record = decoded_record()

    assert withhold(record, FieldPath.parse("indicators")) == 0
    assert record["indicators"] == []


def test_withholding_a_record_nulls_it() -> None:
    record = decoded_record()

    assert withhold(record, FieldPath.parse("location")) == 1
    assert record["location"] is None


def test_withholding_a_field_inside_a_record_nulls_only_that_field() -> None:
    record = decoded_record()

    assert withhold(record, FieldPath.parse("location.latitude")) == 1
    assert record["location"]["latitude"] is None
    assert record["location"]["longitude"] == 4.3363


def test_withholding_inside_an_absent_record_counts_nothing() -> None:
    record = decoded_record()
    record["location"] = None

    assert withhold(record, FieldPath.parse("location.latitude")) == 0
    assert record["location"] is None


def test_withholding_an_absent_value_counts_nothing() -> None:
    record = decoded_record()
    record["summary"] = None

    assert withhold(record, FieldPath.parse("summary")) == 0


def test_withholding_a_list_of_records_field_counts_only_present_values() -> None:
    record = decoded_record()

    count = withhold(record, FieldPath.parse("vehicles[].registration"))

    assert count == 1
    assert [v["registration"] for v in record["vehicles"]] == [None, None]
    assert [v["description"] for v in record["vehicles"]] == [None, "taxi"]


def test_withholding_nested_lists_empties_each_one() -> None:
    record = decoded_record()

    count = withhold(record, FieldPath.parse("subjects[].travel_documents"))

    assert count == 2  # the second subject had no documents
    assert [s["travel_documents"] for s in record["subjects"]] == [[], [], []]


def test_withholding_twice_counts_nothing_the_second_time() -> None:
    record = decoded_record()
    path = FieldPath.parse("subjects[].full_name")

    assert withhold(record, path) == 2
    assert withhold(record, path) == 0


@pytest.mark.parametrize(
    "text",
    [
        "subjects[].travel_documents[].number",
        "subjects[].travel_documents",
        "subjects[].full_name",
        "subjects[].date_of_birth",
        "location",
        "location.latitude",
        "subjects",
        "summary",
        "vehicles[].registration",
    ],
)
def test_a_record_with_a_withholdable_field_withheld_is_still_a_valid_report(
    text: str, report_schema: Any
) -> None:
    path = FieldPath.parse(text)
    check_withholdable(path, report_schema)
    record = decoded_record()

    withhold(record, path)

    record_to_report(record)  # raises DecodeError if withholding broke the report
