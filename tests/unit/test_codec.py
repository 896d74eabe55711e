"""The Avro codec and the report codec: exact round trips, and every refusal by reason."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from broker.errors import DecodeError, RejectedInput
from broker.wire.codec import HEADER_LEN, MAGIC, SchemaCatalog
from broker.wire.report import (
    REPORT_SCHEMA,
    decode_report,
    encode_report,
    record_to_report,
    report_to_record,
)

ENVELOPE_SCHEMA = "ixb.v1.SignedEnvelope"


def full_report(**changes: Any) -> ThreatReport:
    """A report with every optional part filled in, at the most restrictive usual marking."""
    fields: dict[str, Any] = {
        "report_id": uuid.UUID("5d1c1a52-8d0b-4b8e-9a43-0b8c6f4b2e11"),
        "issued_at": dt.datetime(2025, 3, 14, 9, 26, 53, 589_000, tzinfo=dt.UTC),
        "observed_at": dt.datetime(2025, 3, 13, 22, 0, tzinfo=dt.UTC),
        "origin": "NL",
        "agency": "KMar",
        "report_type": ReportType.HUMAN_TRAFFICKING,
        "marking": Marking.AMBER_STRICT,
        "handling_code": HandlingCode.H2,
        "source_reliability": SourceReliability.B,
        "information_credibility": 2,
        "title": "Van with concealed compartment at Hazeldonk",
        "summary": "Six persons found in a modified cargo space.",
        "location": Location(
            latitude=51.4897,
            longitude=4.7631,
            precision_m=250,
            country="NL",
            border_sector="Zuid",
            crossing_point="Hazeldonk A16",
        ),
        "subjects": (
            Subject(
                role=SubjectRole.FACILITATOR,
                full_name="Jan Jansen",
                date_of_birth=dt.date(1981, 7, 4),
                nationality="NL",
                travel_documents=(
                    TravelDocument(
                        document_type=DocumentType.PASSPORT,
                        number="NX1234567",
                        issuing_country="NL",
                    ),
                    TravelDocument(document_type=DocumentType.ID_CARD, number="IDNL998877"),
                ),
            ),
            Subject(role=SubjectRole.VICTIM, nationality="ER"),
        ),
        "vehicles": (
            Vehicle(
                kind=VehicleKind.VAN,
                registration="VX-123-B",
                flag="BE",
                description="white, false floor",
            ),
        ),
        "indicators": (
            Indicator(kind=IndicatorKind.PHONE_NUMBER, value="+31600000000"),
            Indicator(kind=IndicatorKind.ROUTE, value="Antwerpen - Breda"),
        ),
        "related_report_ids": (uuid.UUID("0f6b2c36-8e61-4f0e-a2b8-7a0f5f3f0c9a"),),
    }
    fields.update(changes)
    return ThreatReport.model_validate(fields)


# --- round trips -----------------------------------------------------------


def test_a_full_report_round_trips_exactly(catalog: SchemaCatalog) -> None:
    report = full_report()

    assert decode_report(catalog, encode_report(catalog, report)) == report


@pytest.mark.parametrize("marking", list(Marking))
def test_every_marking_round_trips_including_amber_strict(
    catalog: SchemaCatalog, marking: Marking
) -> None:
    report = full_report(marking=marking)

    decoded = decode_report(catalog, encode_report(catalog, report))

    assert decoded.marking is marking


def test_amber_strict_travels_as_the_avro_symbol_amber_strict(catalog: SchemaCatalog) -> None:
    report = full_report(marking=Marking.AMBER_STRICT)

    record = catalog.decode(encode_report(catalog, report), REPORT_SCHEMA)

    assert record["marking"] == "AMBER_STRICT"


def test_a_minimal_report_round_trips_exactly(catalog: SchemaCatalog) -> None:
    report = full_report(
        summary=None, location=None, subjects=(), vehicles=(), indicators=(), related_report_ids=()
    )

    assert decode_report(catalog, encode_report(catalog, report)) == report


def test_report_to_record_leaves_the_report_untouched() -> None:
    report = full_report()
    before = report.model_dump()

    record = report_to_record(report)
    record["title"] = "changed"

    assert report.model_dump() == before


def test_an_encoded_report_starts_with_the_single_object_header_of_its_schema(
    catalog: SchemaCatalog,
) -> None:
    data = encode_report(catalog, full_report())

    assert data[:2] == b"\xc3\x01"
    assert data[:2] == MAGIC
    assert len(catalog.schema(REPORT_SCHEMA).fingerprint) == 8
    assert data[2:HEADER_LEN] == catalog.schema(REPORT_SCHEMA).fingerprint
    assert catalog.schema_of(data).name == REPORT_SCHEMA


def test_every_schema_has_a_distinct_fingerprint(catalog: SchemaCatalog) -> None:
    names = [REPORT_SCHEMA, ENVELOPE_SCHEMA, "ixb.v1.DeliveryStatement", "ixb.v1.Rejection"]

    fingerprints = {catalog.schema(name).fingerprint for name in names}

    assert len(fingerprints) == len(names)


# --- refusals --------------------------------------------------------------


def test_an_unknown_fingerprint_is_refused_as_unknown_schema(catalog: SchemaCatalog) -> None:
    data = encode_report(catalog, full_report())
    forged = MAGIC + bytes(8) + data[HEADER_LEN:]

    with pytest.raises(DecodeError) as caught:
        decode_report(catalog, forged)

    assert caught.value.reason == "unknown_schema"
    assert caught.value.stage == "decode"


def test_a_message_missing_its_last_byte_is_refused_as_truncated(catalog: SchemaCatalog) -> None:
    data = encode_report(catalog, full_report())

    with pytest.raises(DecodeError) as caught:
        decode_report(catalog, data[:-1])

    assert caught.value.reason == "truncated"


def test_a_message_cut_after_its_header_is_refused_as_truncated(catalog: SchemaCatalog) -> None:
    data = encode_report(catalog, full_report())

    with pytest.raises(DecodeError) as caught:
        decode_report(catalog, data[:HEADER_LEN])

    assert caught.value.reason == "truncated"


def test_a_message_cut_anywhere_after_its_header_is_refused(catalog: SchemaCatalog) -> None:
    data = encode_report(catalog, full_report())

    for length in range(HEADER_LEN, len(data)):
        with pytest.raises(DecodeError):
            decode_report(catalog, data[:length])


def test_a_message_cut_anywhere_after_its_header_is_refused_as_truncated(
    catalog: SchemaCatalog,
) -> None:
    data = encode_report(catalog, full_report())
    reasons: dict[int, str] = {}

    for length in range(HEADER_LEN, len(data)):
        with pytest.raises(DecodeError) as caught:
            decode_report(catalog, data[:length])
        reasons[length] = caught.value.reason

    assert {length: r for length, r in reasons.items() if r != "truncated"} == {}


def test_bytes_after_the_body_are_refused_as_trailing_bytes(catalog: SchemaCatalog) -> None:
    data = encode_report(catalog, full_report())

    with pytest.raises(DecodeError) as caught:
        decode_report(catalog, data + b"\x00")

    assert caught.value.reason == "trailing_bytes"


def test_a_message_over_the_size_limit_is_refused_at_the_size_stage(
    catalog: SchemaCatalog,
) -> None:
    data = encode_report(catalog, full_report())
    tight = SchemaCatalog.load(max_message_bytes=len(data) - 1)

    with pytest.raises(DecodeError) as caught:
        decode_report(tight, data)

    assert caught.value.reason == "message_too_large"
    assert caught.value.stage == "size"


def test_a_message_exactly_at_the_size_limit_is_accepted(catalog: SchemaCatalog) -> None:
    report = full_report()
    data = encode_report(catalog, report)
    exact = SchemaCatalog.load(max_message_bytes=len(data))

    assert decode_report(exact, data) == report


def test_the_size_is_checked_before_the_header(catalog: SchemaCatalog) -> None:
    oversize = b"\x00" * (catalog.max_message_bytes + 1)

    with pytest.raises(DecodeError) as caught:
        catalog.schema_of(oversize)

    assert caught.value.reason == "message_too_large"
    assert caught.value.stage == "size"


def test_a_body_without_the_single_object_header_is_refused(catalog: SchemaCatalog) -> None:
    data = encode_report(catalog, full_report())

    with pytest.raises(DecodeError) as caught:
        decode_report(catalog, data[HEADER_LEN:])

    assert caught.value.reason == "not_single_object"


@pytest.mark.parametrize("data", [b"", b"\xc3", b"\xc3\x01\x00", b"\xc3\x02" + bytes(8)])
def test_a_message_shorter_than_or_unlike_the_header_is_refused(
    catalog: SchemaCatalog, data: bytes
) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_report(catalog, data)

    assert caught.value.reason == "not_single_object"


def test_a_message_of_another_schema_is_refused_as_unexpected_schema(
    catalog: SchemaCatalog,
) -> None:
    envelope = catalog.encode(
        ENVELOPE_SCHEMA,
        {"signer_key_id": "NL-key", "algorithm": "ed25519", "payload": b"x", "signature": b"y"},
    )

    with pytest.raises(DecodeError) as caught:
        decode_report(catalog, envelope)

    assert caught.value.reason == "unexpected_schema"


def test_an_enum_index_outside_the_schema_is_refused_before_decoding(
    catalog: SchemaCatalog,
) -> None:
    envelope = catalog.encode(
        ENVELOPE_SCHEMA,
        {"signer_key_id": "NL-key", "algorithm": "ed25519", "payload": b"", "signature": b""},
    )
    # body: key id (length 6 as zig-zag 0x0c, then 6 bytes), then the algorithm's enum index
    index_at = HEADER_LEN + 1 + len("NL-key")
    assert envelope[index_at] == 0
    forged = envelope[:index_at] + b"\x04" + envelope[index_at + 1 :]  # index 2 of 2 symbols

    with pytest.raises(DecodeError) as caught:
        catalog.decode(forged, ENVELOPE_SCHEMA)

    assert caught.value.reason == "bad_enum_index"
    assert "algorithm" in caught.value.detail


def test_a_negative_enum_index_is_refused_not_read_as_the_last_symbol(
    catalog: SchemaCatalog,
) -> None:
    """fastavro indexes symbols with a Python index: -1 would read as the last one."""
    envelope = catalog.encode(
        ENVELOPE_SCHEMA,
        {"signer_key_id": "NL-key", "algorithm": "ed25519", "payload": b"", "signature": b""},
    )
    index_at = HEADER_LEN + 1 + len("NL-key")
    forged = envelope[:index_at] + b"\x01" + envelope[index_at + 1 :]

    with pytest.raises(DecodeError) as caught:
        catalog.decode(forged, ENVELOPE_SCHEMA)

    assert caught.value.reason == "bad_enum_index"


def test_a_negative_union_index_is_refused_not_read_as_the_last_branch(
    catalog: SchemaCatalog,
) -> None:
    encoded = encode_report(catalog, full_report())
    summary_at = encoded.index(b"Six persons") - 2  # union index, then the string length
    assert encoded[summary_at] == 0x02  # branch 1: string
    forged = encoded[:summary_at] + b"\x01" + encoded[summary_at + 1 :]  # zig-zag -1

    with pytest.raises(DecodeError) as caught:
        catalog.decode(forged, REPORT_SCHEMA)

    assert caught.value.reason == "bad_union_index"
    assert caught.value.detail.endswith("summary")


def test_decode_errors_are_rejected_input() -> None:
    assert issubclass(DecodeError, RejectedInput)


# --- validation: names the field, never the value --------------------------


def _decode_invalid(catalog: SchemaCatalog, **changes: Any) -> DecodeError:
    record = report_to_record(full_report())
    record.update(changes)
    data = catalog.encode(REPORT_SCHEMA, record)
    with pytest.raises(DecodeError) as caught:
        decode_report(catalog, data)
    return caught.value


def test_a_lowercase_origin_is_refused_as_invalid_report_at_the_validate_stage(
    catalog: SchemaCatalog,
) -> None:
    error = _decode_invalid(catalog, origin="nl")

    assert error.reason == "invalid_report"
    assert error.stage == "validate"
    assert "origin" in error.detail


def test_an_invalid_origin_is_named_but_its_value_is_not_repeated(
    catalog: SchemaCatalog,
) -> None:
    canary = "xq-canary-origin-7d1f"

    error = _decode_invalid(catalog, origin=canary)

    assert error.reason == "invalid_report"
    assert "origin" in error.detail
    assert canary not in str(error)
    assert canary not in error.detail


def test_a_credibility_of_seven_is_refused_as_invalid_report(catalog: SchemaCatalog) -> None:
    error = _decode_invalid(catalog, information_credibility=7)

    assert error.reason == "invalid_report"
    assert error.stage == "validate"
    assert "information_credibility" in error.detail


def test_an_out_of_range_credibility_is_named_but_its_value_is_not_repeated(
    catalog: SchemaCatalog,
) -> None:
    canary = 918_273_645

    error = _decode_invalid(catalog, information_credibility=canary)

    assert "information_credibility" in error.detail
    assert str(canary) not in str(error)


def test_an_invalid_nested_field_is_named_by_its_path_but_its_value_is_not_repeated(
    catalog: SchemaCatalog,
) -> None:
    canary = "zz-canary-nationality-41c0"
    record = report_to_record(full_report())
    record["subjects"][1]["nationality"] = canary
    data = catalog.encode(REPORT_SCHEMA, record)

    with pytest.raises(DecodeError) as caught:
        decode_report(catalog, data)

    assert caught.value.reason == "invalid_report"
    assert "subjects.1.nationality" in caught.value.detail
    assert canary not in str(caught.value)


def test_an_overlong_title_is_named_but_its_text_is_not_repeated(catalog: SchemaCatalog) -> None:
    canary = "canary-title-" + "q" * 400

    error = _decode_invalid(catalog, title=canary)

    assert "title" in error.detail
    assert "canary-title" not in str(error)


def test_an_unknown_marking_symbol_is_refused_as_invalid_report() -> None:
    record = report_to_record(full_report())
    record["marking"] = "PURPLE"

    with pytest.raises(DecodeError) as caught:
        record_to_report(record)

    assert caught.value.reason == "invalid_report"
    assert "marking" in caught.value.detail


# --- property: generated reports round-trip exactly ------------------------

_nations = st.sampled_from(["NL", "BE", "DE", "FR", "LU", "PL", "ER", "SY"])
_short = st.text(min_size=1, max_size=24)
_offsets = st.builds(
    dt.timezone,
    st.timedeltas(min_value=dt.timedelta(hours=-12), max_value=dt.timedelta(hours=14)).map(
        lambda d: dt.timedelta(minutes=d // dt.timedelta(minutes=1))
    ),
)
_times = st.datetimes(
    min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1), timezones=_offsets
)

_locations = st.builds(
    Location,
    latitude=st.none() | st.floats(-90, 90, allow_nan=False),
    longitude=st.none() | st.floats(-180, 180, allow_nan=False),
    precision_m=st.none() | st.integers(0, 1_000_000),
    country=st.none() | _nations,
    border_sector=st.none() | _short,
    crossing_point=st.none() | _short,
)
_documents = st.builds(
    TravelDocument,
    document_type=st.sampled_from(DocumentType),
    number=st.none() | st.text(min_size=1, max_size=16),
    issuing_country=st.none() | _nations,
)
_subjects = st.builds(
    Subject,
    role=st.sampled_from(SubjectRole),
    full_name=st.none() | _short,
    date_of_birth=st.none() | st.dates(dt.date(1900, 1, 1), dt.date(2025, 1, 1)),
    nationality=st.none() | _nations,
    travel_documents=st.lists(_documents, max_size=3).map(tuple),
)
_vehicles = st.builds(
    Vehicle,
    kind=st.sampled_from(VehicleKind),
    registration=st.none() | st.text(min_size=1, max_size=12),
    flag=st.none() | _nations,
    description=st.none() | st.text(max_size=40),
)
_indicators = st.builds(
    Indicator,
    kind=st.sampled_from(IndicatorKind),
    value=st.none() | st.text(min_size=1, max_size=40),
)
_reports = st.builds(
    ThreatReport,
    report_id=st.uuids(),
    issued_at=_times,
    observed_at=_times,
    origin=_nations,
    agency=_short,
    report_type=st.sampled_from(ReportType),
    marking=st.sampled_from(Marking),
    handling_code=st.sampled_from(HandlingCode),
    source_reliability=st.sampled_from(SourceReliability),
    information_credibility=st.integers(1, 4),
    title=st.text(min_size=1, max_size=40),
    summary=st.none() | st.text(max_size=80),
    location=st.none() | _locations,
    subjects=st.lists(_subjects, max_size=3).map(tuple),
    vehicles=st.lists(_vehicles, max_size=2).map(tuple),
    indicators=st.lists(_indicators, max_size=3).map(tuple),
    related_report_ids=st.lists(st.uuids(), max_size=2).map(tuple),
)


@settings(max_examples=50, deadline=None)
@given(report=_reports)
def test_generated_reports_round_trip_exactly(catalog: SchemaCatalog, report: ThreatReport) -> None:
    data = encode_report(catalog, report)

    assert data[:HEADER_LEN] == catalog.schema(REPORT_SCHEMA).header
    assert decode_report(catalog, data) == report


@settings(max_examples=50, deadline=None)
@given(report=_reports)
def test_generated_reports_encode_to_the_same_bytes_twice(
    catalog: SchemaCatalog, report: ThreatReport
) -> None:
    data = encode_report(catalog, report)

    assert encode_report(catalog, decode_report(catalog, data)) == data
