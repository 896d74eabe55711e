"""The pre-decode Avro guard: valid bodies pass unchanged, hostile ones are refused by reason."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import struct
import traceback
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from broker.errors import ConfigurationError
from broker.wire.codec import HEADER_LEN, SchemaCatalog
from broker.wire.guard import (
    MAX_DEPTH_CEILING,
    REASONS,
    AvroGuard,
    AvroGuardError,
    Limits,
    check,
)
from broker.wire.report import REPORT_SCHEMA, encode_report, record_to_report
from tests.factories import make_report

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
RAW_REPORT_SCHEMA = json.loads((SCHEMAS / "threat_report.avsc").read_text())
RAW_ENVELOPE_SCHEMA = json.loads((SCHEMAS / "signed_envelope.avsc").read_text())

NODE = {
    "type": "record",
    "name": "Node",
    "fields": [{"name": "next", "type": ["null", "Node"]}],
}
ZOO: dict[str, Any] = {
    "type": "record",
    "name": "Zoo",
    "namespace": "test.zoo",
    "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "precise", "type": "double"},
        {"name": "blob", "type": "bytes"},
        {"name": "text", "type": "string"},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {
            "name": "colour",
            "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN", "BLUE"]},
        },
        {"name": "tags", "type": {"type": "map", "values": "long"}},
        {"name": "nothing", "type": {"type": "array", "items": "null"}},
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {
            "name": "chain",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Link",
                    "fields": [
                        {"name": "value", "type": "int"},
                        {"name": "next", "type": ["null", "Link"]},
                    ],
                },
            ],
        },
        {
            "name": "choice",
            "type": [
                "null",
                "string",
                "Colour",
                "test.zoo.Digest",
                {"type": "array", "items": "double"},
            ],
        },
    ],
}


# --- encoding helpers: written here, independent of the guard ----------------


def zz(value: int) -> bytes:
    """``value`` as an Avro long: zig-zag, then base-128 little-endian."""
    raw = (value << 1) ^ (value >> 63) if value < 0 else value << 1
    out = bytearray()
    while raw > 0x7F:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def text(value: str) -> bytes:
    data = value.encode()
    return zz(len(data)) + data


def write(schema: Any, record: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def read(schema: Any, body: bytes) -> tuple[Any, int]:
    """fastavro's value for ``body`` and how many bytes it consumed."""
    stream = io.BytesIO(body)
    value = fastavro.schemaless_reader(stream, fastavro.parse_schema(schema), None)
    return value, stream.tell()


def refusal(schema: Any, body: bytes, limits: Limits | None = None) -> AvroGuardError:
    with pytest.raises(AvroGuardError) as caught:
        check(schema, body, limits)
    return caught.value


def zoo_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "flag": True,
        "small": -7,
        "big": 1 << 40,
        "ratio": 0.5,
        "precise": 3.25,
        "blob": b"\x00\xff",
        "text": "grüße",
        "digest": b"abcd",
        "colour": "GREEN",
        "tags": {"a": 1, "b": -2},
        "nothing": [None, None],
        "when": dt.datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
        "day": dt.date(2024, 2, 29),
        "chain": {"value": 1, "next": {"value": 2, "next": None}},
        "choice": [1.5, 2.5],
    }
    record.update(changes)
    return record


@pytest.fixture(params=["parsed", "raw"])
def report_schema(request: pytest.FixtureRequest, catalog: SchemaCatalog) -> Any:
    """The report schema both as fastavro parsed it and as the JSON on disk."""
    if request.param == "parsed":
        return catalog.schema(REPORT_SCHEMA).parsed
    return RAW_REPORT_SCHEMA


def report_body(catalog: SchemaCatalog, **overrides: Any) -> bytes:
    return encode_report(catalog, make_report(**overrides))[HEADER_LEN:]


# --- valid bodies pass, and decode the same ----------------------------------

FACTORY_VARIANTS: dict[str, dict[str, Any]] = {
    "as made": {},
    "minimal": {
        "summary": None,
        "location": None,
        "subjects": [],
        "vehicles": [],
        "indicators": [],
        "related_report_ids": [],
    },
    "non-ascii and long": {
        "title": "Zigaretten in einem Kühlauflieger — ÄÖÜ ß € 🚚",
        "summary": "Фальшивая накладная CMR; " * 40,
        "subjects": [{"role": "victim", "full_name": f"Ωmega {i}"} for i in range(30)],
        "indicators": [{"kind": "route", "value": "Budapest → Wien"}] * 20,
        "related_report_ids": [uuid.uuid4() for _ in range(20)],
    },
}


@pytest.mark.parametrize("variant", list(FACTORY_VARIANTS))
def test_every_factory_report_passes_the_guard_and_decodes_to_the_same_report(
    catalog: SchemaCatalog, report_schema: Any, variant: str
) -> None:
    report = make_report(**FACTORY_VARIANTS[variant])
    body = encode_report(catalog, report)[HEADER_LEN:]

    check(report_schema, body)
    record, consumed = read(report_schema, body)

    assert consumed == len(body)
    assert record_to_report(record) == report


_names = st.text(min_size=1, max_size=30)


_report_overrides: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "title": st.text(min_size=1, max_size=60),
        "summary": st.none() | st.text(max_size=300),
        "subjects": st.lists(
            st.builds(dict, role=st.just("witness"), full_name=st.none() | _names), max_size=6
        ),
        "indicators": st.lists(
            st.builds(dict, kind=st.just("other"), value=st.none() | st.text(min_size=1)),
            max_size=6,
        ),
        "related_report_ids": st.lists(st.uuids(), max_size=4),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=_report_overrides)
def test_generated_reports_pass_the_guard_and_decode_to_the_same_report(
    catalog: SchemaCatalog, overrides: dict[str, Any]
) -> None:
    report = make_report(**overrides)
    body = encode_report(catalog, report)[HEADER_LEN:]
    schema = catalog.schema(REPORT_SCHEMA).parsed

    check(schema, body)

    assert record_to_report(read(schema, body)[0]) == report


def test_a_record_of_every_avro_type_passes_and_decodes_the_same() -> None:
    record = zoo_record()
    body = write(ZOO, record)

    check(ZOO, body)
    check(fastavro.parse_schema(ZOO), body)

    assert read(ZOO, body) == (record, len(body))


def _chain(values: list[int]) -> dict[str, Any] | None:
    link: dict[str, Any] | None = None
    for value in reversed(values):
        link = {"value": value, "next": link}
    return link


_zoo_records = st.builds(
    zoo_record,
    flag=st.booleans(),
    small=st.integers(-(2**31), 2**31 - 1),
    big=st.integers(-(2**63), 2**63 - 1),
    ratio=st.floats(width=32, allow_nan=False),
    precise=st.floats(allow_nan=False),
    blob=st.binary(max_size=40),
    text=st.text(max_size=40),
    colour=st.sampled_from(["RED", "GREEN", "BLUE"]),
    tags=st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1), max_size=5),
    nothing=st.lists(st.none(), max_size=200),
    when=st.datetimes(timezones=st.just(dt.UTC)),
    day=st.dates(),
    chain=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=10).map(_chain),
    choice=st.none() | st.text(max_size=5) | st.just("BLUE") | st.lists(st.floats(), max_size=4),
)


@settings(max_examples=60, deadline=None)
@given(record=_zoo_records)
def test_generated_records_of_every_type_pass_and_are_read_to_their_end(
    record: dict[str, Any],
) -> None:
    body = write(ZOO, record)

    check(ZOO, body)

    assert read(ZOO, body)[1] == len(body)


def test_the_longest_and_most_negative_numbers_pass() -> None:
    schema = {
        "type": "record",
        "name": "N",
        "fields": [{"name": "i", "type": "int"}, {"name": "l", "type": "long"}],
    }
    for small, big in [(-(2**31), -(2**63)), (2**31 - 1, 2**63 - 1)]:
        body = write(schema, {"i": small, "l": big})
        assert len(body) == 5 + 10

        check(schema, body)

        assert read(schema, body)[0] == {"i": small, "l": big}


def test_a_number_in_more_bytes_than_needed_is_accepted_as_avro_allows() -> None:
    body = b"\x80\x80\x00"  # zero, in three bytes

    check("long", body)

    assert read("long", body) == (0, 3)


def test_blocks_announcing_their_byte_size_pass_and_decode_the_same() -> None:
    schema = {"type": "array", "items": "string"}
    items = text("ab") + text("c")
    body = zz(-2) + zz(len(items)) + items + zz(1) + text("d") + zz(0)

    check(schema, body)

    assert read(schema, body) == (["ab", "c", "d"], len(body))


def test_named_types_are_found_by_short_and_full_name_across_namespaces() -> None:
    schema = {
        "type": "record",
        "name": "Outer",
        "namespace": "a.b",
        "fields": [
            {"name": "inner", "type": {"type": "record", "name": "x.y.Inner", "fields": []}},
            {"name": "again", "type": "x.y.Inner"},
            {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["A", "B"]}},
            {"name": "short", "type": "Colour"},
            {"name": "full", "type": "a.b.Colour"},
        ],
    }
    body = write(schema, {"inner": {}, "again": {}, "colour": "A", "short": "B", "full": "A"})

    check(schema, body)
    check(fastavro.parse_schema(schema), body)

    assert refusal(schema, body[:-1] + zz(2)).reason == "bad_enum_index"


def test_an_unknown_type_name_is_a_configuration_error_not_a_refusal() -> None:
    with pytest.raises(ConfigurationError):
        AvroGuard({"type": "record", "name": "R", "fields": [{"name": "x", "type": "Nowhere"}]})


# --- hostile bodies: one refusal per reason ----------------------------------

STRING_FIELD = {"type": "record", "name": "S", "fields": [{"name": "name", "type": "string"}]}
BYTES_FIELD = {"type": "record", "name": "B", "fields": [{"name": "blob", "type": "bytes"}]}
ENUM = {"type": "enum", "name": "E", "symbols": ["a", "b", "c"]}
UNION = ["null", "string"]
INTS = {"type": "array", "items": "int"}
NULLS = {"type": "array", "items": "null"}
MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}
DATE = {"type": "int", "logicalType": "date"}
TIME_MILLIS = {"type": "int", "logicalType": "time-millis"}
LAST_MILLIS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
FIRST_MILLIS = -62_135_596_800_000  # 0001-01-01T00:00:00Z

HOSTILE: list[tuple[str, Any, bytes, Limits | None]] = [
    ("too_many_items", NULLS, zz(2**62) + zz(0), None),
    ("too_many_items", NULLS, zz(10_001) + zz(0), None),
    ("too_many_items", NULLS, zz(6) + zz(6) + zz(0), Limits(max_items_per_collection=10)),
    (
        "too_many_items",
        {"type": "array", "items": NULLS},
        zz(2) + zz(6) + zz(0) + zz(6) + zz(0) + zz(0),
        Limits(max_total_items=10),
    ),
    ("too_many_items", {"type": "map", "values": "null"}, zz(2**40) + zz(0), None),
    ("too_many_items", INTS, zz(-(2**62)) + zz(1) + zz(0), None),
    ("string_too_long", STRING_FIELD, text("x" * 9), Limits(max_string_bytes=8)),
    ("string_too_long", STRING_FIELD, zz(2**62), None),
    (
        "string_too_long",
        {"type": "map", "values": "null"},
        zz(1) + text("k" * 9) + zz(0),
        Limits(max_string_bytes=8),
    ),
    ("bytes_too_long", BYTES_FIELD, zz(9) + b"x" * 9, Limits(max_bytes_field=8)),
    ("bytes_too_long", BYTES_FIELD, zz(2**62), None),
    ("negative_length", STRING_FIELD, zz(-1) + b"x", None),
    ("negative_length", BYTES_FIELD, zz(-(2**40)), None),
    ("negative_length", INTS, zz(-1) + zz(-1) + zz(2) + zz(0), None),
    ("bad_enum_index", ENUM, zz(-1), None),
    ("bad_enum_index", ENUM, zz(3), None),
    ("bad_enum_index", ENUM, zz(2**31 - 1), None),
    ("bad_union_index", UNION, zz(-1), None),
    ("bad_union_index", UNION, zz(2) + text("x"), None),
    ("bad_union_index", UNION, zz(2**62), None),
    ("bad_boolean", "boolean", b"\x02", None),
    ("bad_boolean", "boolean", b"\xff", None),
    ("invalid_utf8", STRING_FIELD, zz(1) + b"\xff", None),
    ("invalid_utf8", STRING_FIELD, zz(2) + b"\xc0\xaf", None),  # an overlong "/"
    ("invalid_utf8", STRING_FIELD, zz(3) + b"\xed\xa0\x80", None),  # a lone surrogate
    ("invalid_utf8", STRING_FIELD, zz(2) + "é".encode()[:1] + b"a", None),
    ("truncated", STRING_FIELD, b"", None),
    ("truncated", STRING_FIELD, zz(5) + b"abcd", None),
    ("truncated", "double", b"\x00" * 7, None),
    ("truncated", {"type": "fixed", "name": "F", "size": 16}, b"\x00" * 15, None),
    ("truncated", "long", b"\x80\x80", None),
    ("truncated", INTS, zz(3) + zz(1) + zz(2), None),
    ("truncated", INTS, zz(5_000) + zz(1), None),
    ("truncated", INTS, zz(-2) + zz(100) + zz(1), None),
    ("truncated", INTS, zz(-2) + zz(1) + zz(1) + zz(2) + zz(0), None),
    ("trailing_bytes", STRING_FIELD, text("ok") + b"\x00", None),
    ("trailing_bytes", INTS, zz(-1) + zz(2) + zz(1) + zz(0) + zz(0), None),
    ("varint_too_long", "long", b"\xff" * 10 + b"\x01", None),
    ("varint_too_long", "long", b"\xff" * 9 + b"\x02", None),
    ("varint_too_long", "int", zz(2**31), None),
    ("varint_too_long", "int", b"\xff" * 5 + b"\x01", None),
    ("varint_too_long", INTS, b"\xff" * 10 + b"\x01", None),
    ("timestamp_out_of_range", MILLIS, zz(LAST_MILLIS + 1), None),
    ("timestamp_out_of_range", MILLIS, zz(FIRST_MILLIS - 1), None),
    ("timestamp_out_of_range", MILLIS, zz(2**63 - 1), None),
    ("timestamp_out_of_range", MICROS, zz(LAST_MILLIS * 1000 + 1000), None),
    ("timestamp_out_of_range", DATE, zz(2_932_897), None),
    ("timestamp_out_of_range", DATE, zz(-(2**31)), None),
    ("timestamp_out_of_range", TIME_MILLIS, zz(86_400_000), None),
    ("too_deep", NODE, zz(1) * 100 + zz(0), None),
    ("message_too_large", STRING_FIELD, text("x" * 100), Limits(max_bytes=50)),
]


def test_every_reason_is_exercised_by_a_hostile_body() -> None:
    assert {reason for reason, *_ in HOSTILE} == REASONS


@pytest.mark.parametrize(
    ("reason", "schema", "body", "limits"),
    HOSTILE,
    ids=[f"{reason}-{i}" for i, (reason, *_) in enumerate(HOSTILE)],
)
def test_a_hostile_body_is_refused_with_its_reason(
    reason: str, schema: Any, body: bytes, limits: Limits | None
) -> None:
    error = refusal(schema, body, limits)

    assert error.reason == reason
    assert str(error) == f"{reason}: {error.detail}"


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (MILLIS, zz(LAST_MILLIS)),
        (MILLIS, zz(FIRST_MILLIS)),
        (MICROS, zz(LAST_MILLIS * 1000 + 999)),
        (DATE, zz(2_932_896)),
        (DATE, zz(-719_162)),
        (TIME_MILLIS, zz(86_399_999)),
    ],
)
def test_the_first_and_last_representable_dates_and_times_pass_and_decode(
    schema: Any, body: bytes
) -> None:
    check(schema, body)

    assert read(schema, body)[1] == len(body)


def test_a_timestamp_just_past_the_last_representable_one_breaks_fastavro() -> None:
    """Why the guard bounds timestamps: fastavro overflows on them."""
    with pytest.raises(OverflowError):
        read(MILLIS, zz(LAST_MILLIS * 10))


def test_a_negative_enum_index_in_an_envelope_is_refused(catalog: SchemaCatalog) -> None:
    """The case fastavro reads as the last symbol (tests/unit/test_codec.py, strict xfail)."""
    envelope = catalog.encode(
        "ixb.v1.SignedEnvelope",
        {"signer_key_id": "NL-key", "algorithm": "ed25519", "payload": b"", "signature": b""},
    )
    body = bytearray(envelope[HEADER_LEN:])
    index_at = 1 + len("NL-key")
    assert body[index_at] == 0
    body[index_at] = 0x01  # zig-zag -1
    last_symbol = RAW_ENVELOPE_SCHEMA["fields"][1]["type"]["symbols"][-1]
    assert read(RAW_ENVELOPE_SCHEMA, bytes(body))[0]["algorithm"] == last_symbol

    error = refusal(catalog.schema("ixb.v1.SignedEnvelope").parsed, bytes(body))

    assert error.reason == "bad_enum_index"
    assert error.detail.endswith("at algorithm")


def test_a_report_cut_anywhere_is_refused_as_truncated(
    catalog: SchemaCatalog, report_schema: Any
) -> None:
    body = report_body(catalog)
    reasons = set()

    for length in range(len(body)):
        reasons.add(refusal(report_schema, body[:length]).reason)

    assert reasons == {"truncated"}


# --- where a refusal happened, never what was there --------------------------


def test_the_detail_names_the_field_path_of_a_nested_failure(catalog: SchemaCatalog) -> None:
    body = report_body(catalog, subjects=[{"role": "victim", "full_name": "x" * 60}] * 4)
    limits = Limits(max_string_bytes=59)

    error = refusal(catalog.schema(REPORT_SCHEMA).parsed, body, limits)

    assert error.reason == "string_too_long"
    assert error.detail.endswith("at subjects[0].full_name")


def test_a_count_beyond_the_bytes_left_is_refused_before_any_item_is_read() -> None:
    error = refusal(INTS, zz(5_000) + zz(1) * 10)

    assert error.reason == "truncated"
    assert error.detail.endswith("at the top level")  # not at an item, e.g. [10]


def test_the_detail_names_the_item_that_is_cut_short(catalog: SchemaCatalog) -> None:
    body = report_body(catalog)
    schema = catalog.schema(REPORT_SCHEMA).parsed
    docs = body.index(b"ID7654321")

    error = refusal(schema, body[: docs + 3])

    assert error.reason == "truncated"
    assert error.detail.endswith("at subjects[0].travel_documents[1].number")


def test_a_map_entry_is_named_by_position_never_by_its_key() -> None:
    schema = {"type": "map", "values": "string"}
    canary_key = "canary-key-4c1d"
    body = zz(2) + text(canary_key) + text("ok") + text("k2") + zz(1) + b"\xff" + zz(0)

    error = refusal(schema, body)

    assert error.reason == "invalid_utf8"
    assert error.detail.endswith("at {1}")
    assert canary_key not in str(error)


CANARY = "canary-7d1f-é"


@pytest.mark.parametrize(
    ("body", "limits", "where"),
    [
        (text(CANARY) + b"\x00", None, "after the body"),
        (zz(len(CANARY.encode())) + CANARY.encode()[:-1] + b"\xff", None, "at name"),
        (text(CANARY), Limits(max_string_bytes=8), "at name"),
        (text(CANARY)[:-1], None, "at name"),
    ],
    ids=["trailing", "utf8", "too long", "truncated"],
)
def test_no_refusal_repeats_a_string_from_the_body(
    body: bytes, limits: Limits | None, where: str
) -> None:
    error = refusal(STRING_FIELD, body, limits)

    assert error.detail.endswith(where)
    assert "canary" not in str(error)


def test_a_bad_enum_index_is_not_repeated_in_the_detail() -> None:
    error = refusal(ENUM, zz(918_273_645))

    assert error.reason == "bad_enum_index"
    assert "918273645" not in str(error)


# --- cost: no allocation per claimed item, no deep recursion -----------------


def peak_memory_of_refusal(guard: AvroGuard, body: bytes) -> tuple[str, int]:
    """The reason ``guard`` refuses ``body``, and the peak memory the check took."""
    tracemalloc.start()
    try:
        guard.check(body)
    except AvroGuardError as error:
        reason = error.reason
    else:
        reason = "accepted"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return reason, peak


NO_ITEM_LIMITS = Limits(max_items_per_collection=2**63, max_total_items=2**63)


@pytest.mark.parametrize(
    ("items", "limits", "reason"),
    [
        ("null", Limits(), "too_many_items"),
        ("int", Limits(), "too_many_items"),
        ("string", Limits(), "too_many_items"),
        ("Node", Limits(), "too_many_items"),
        # Without item limits the bytes left bound the count: each item needs one.
        ("int", NO_ITEM_LIMITS, "truncated"),
        ("string", NO_ITEM_LIMITS, "truncated"),
        ("Node", NO_ITEM_LIMITS, "truncated"),
        # 2**62 nulls take no bytes at all, so the 64 zero bytes are left over.
        ("null", NO_ITEM_LIMITS, "trailing_bytes"),
    ],
)
def test_a_claim_of_2_to_the_62_items_is_refused_without_allocating_for_them(
    items: str, limits: Limits, reason: str
) -> None:
    guard = AvroGuard({"type": "array", "items": NODE if items == "Node" else items}, limits)
    body = zz(2**62) + b"\x00" * 64

    refused, peak = peak_memory_of_refusal(guard, body)

    assert refused == reason
    assert peak < 2 * 1024 * 1024


def test_a_million_empty_items_within_the_limits_are_accepted_without_allocating() -> None:
    limits = Limits(max_items_per_collection=10**6, max_total_items=10**6)
    guard = AvroGuard(NULLS, limits)

    reason, peak = peak_memory_of_refusal(guard, zz(10**6) + zz(0))

    assert reason == "accepted"
    assert peak < 2 * 1024 * 1024


def test_a_recursive_record_nested_100_000_deep_is_refused_as_too_deep() -> None:
    body = zz(1) * 100_000 + zz(0)

    error = refusal(NODE, body)

    assert error.reason == "too_deep"
    assert error.detail.startswith("values nest deeper than 32 levels at next.next")


def test_arrays_nested_100_000_deep_are_refused_as_too_deep() -> None:
    tree = {
        "type": "record",
        "name": "Tree",
        "fields": [{"name": "kids", "type": {"type": "array", "items": "Tree"}}],
    }
    body = zz(1) * 100_000 + zz(0) * 100_001

    error = refusal(tree, body)

    assert error.reason == "too_deep"
    assert "kids[0].kids[0]" in error.detail


def test_the_deepest_allowed_nesting_leaves_room_below_the_recursion_limit() -> None:
    """At the ceiling depth the guard refuses by reason even when called from deep down."""
    limits = Limits(max_depth=MAX_DEPTH_CEILING)
    guard = AvroGuard(NODE, limits)
    body = zz(1) * 100_000 + zz(0)

    def nested(levels: int) -> str:
        if levels:
            return nested(levels - 1)
        return peak_memory_of_refusal(guard, body)[0]

    assert nested(600) == "too_deep"


def test_nesting_up_to_the_limit_is_accepted() -> None:
    # Node at depth 0, its union at 1, the next Node at 2, ...: 15 links reach depth 30.
    body = zz(1) * 15 + zz(0)
    check(NODE, body, Limits(max_depth=32))

    assert refusal(NODE, zz(1) * 16 + zz(0), Limits(max_depth=32)).reason == "too_deep"


@pytest.mark.parametrize(
    "changes",
    [
        {"max_depth": MAX_DEPTH_CEILING + 1},
        {"max_depth": 0},
        {"max_bytes": -1},
        {"max_total_items": 0},
    ],
)
def test_limits_outside_what_the_guard_can_honour_are_configuration_errors(
    changes: dict[str, int],
) -> None:
    with pytest.raises(ConfigurationError):
        Limits(**changes)


# --- properties: whatever passes the guard, fastavro reads safely ------------


def _raised_by_uuid(error: BaseException) -> bool:
    """Whether the standard library's UUID parser raised ``error`` (not fastavro itself)."""
    frames = traceback.extract_tb(error.__traceback__)
    return any(frame.filename.endswith(f"{os.sep}uuid.py") for frame in frames)


def assert_refused_or_read_cleanly(schema: Any, body: bytes) -> None:
    """The guard refuses ``body`` by a known reason, or fastavro reads exactly all of it.

    fastavro may still refuse a guarded body with a ``ValueError`` (a report
    id that is not a UUID); anything else it raises (``MemoryError``,
    ``RecursionError``, ``OverflowError``, ``IndexError``, ``EOFError``)
    means the guard let through what it should have refused.
    """
    refused: AvroGuardError | None = None
    try:
        check(schema, body)
    except AvroGuardError as error:
        refused = error
    if refused is not None:
        assert refused.reason in REASONS
        event(f"refused: {refused.reason}")
        return
    decode_error: ValueError | None = None
    tracemalloc.start()
    try:
        consumed = read(schema, body)[1]
    except ValueError as exc:
        decode_error = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
    if decode_error is not None:
        # Only a string that is not a UUID is the decoder's to refuse; a date or time
        # out of range, or bad UTF-8, is the guard's, and getting here is its bug.
        assert _raised_by_uuid(decode_error), decode_error
        event(f"passed the guard, fastavro refused: {type(decode_error).__name__}")
        return
    event("passed the guard, fastavro read it")
    assert consumed == len(body)


@pytest.fixture(scope="module")
def report_body_and_schema() -> tuple[bytes, Any]:
    catalog = SchemaCatalog.load()
    return report_body(catalog), catalog.schema(REPORT_SCHEMA).parsed


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=300))
def test_random_bytes_are_refused_or_read_cleanly_as_a_report(
    report_body_and_schema: tuple[bytes, Any], body: bytes
) -> None:
    assert_refused_or_read_cleanly(report_body_and_schema[1], body)


NESTED = {
    "type": "map",
    "values": {"type": "array", "items": ["null", "int", "string", "boolean", NODE]},
}


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300))
@pytest.mark.parametrize(
    ("schema", "prefix"),
    [(ZOO, b"\x01"), (NESTED, b""), (NODE, b""), (RAW_ENVELOPE_SCHEMA, b"")],
    ids=["every type", "nested collections", "recursive record", "envelope"],
)
def test_random_bytes_are_refused_or_read_cleanly(schema: Any, prefix: bytes, body: bytes) -> None:
    # The prefix gets past a leading boolean, which random bytes almost never are.
    assert_refused_or_read_cleanly(schema, prefix + body)


def mutate(body: bytes, operation: str, where: int, byte: int) -> bytes:
    at = where % len(body)
    if operation == "replace":
        return body[:at] + bytes([byte]) + body[at + 1 :]
    if operation == "insert":
        return body[:at] + bytes([byte]) + body[at:]
    if operation == "delete":
        return body[:at] + body[at + 1 :]
    return body[:at]


_mutations = st.tuples(
    st.sampled_from(["replace", "insert", "delete", "truncate"]),
    st.integers(min_value=0),
    st.integers(0, 255),
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutation=_mutations)
def test_a_report_body_with_one_byte_changed_is_refused_or_read_cleanly(
    report_body_and_schema: tuple[bytes, Any], mutation: tuple[str, int, int]
) -> None:
    body, schema = report_body_and_schema

    assert_refused_or_read_cleanly(schema, mutate(body, *mutation))


@settings(max_examples=300, deadline=None)
@given(record=_zoo_records, mutations=st.lists(_mutations, min_size=1, max_size=3))
def test_a_record_of_every_type_with_bytes_changed_is_refused_or_read_cleanly(
    record: dict[str, Any], mutations: list[tuple[str, int, int]]
) -> None:
    body = write(ZOO, record)
    for mutation in mutations:
        body = mutate(body, *mutation) or b"\x00"

    assert_refused_or_read_cleanly(ZOO, body)


def test_the_body_refusal_of_fastavro_and_the_guard_agree_on_a_short_float() -> None:
    body = struct.pack("<f", 1.5)[:3]

    assert refusal("float", body).reason == "truncated"
    with pytest.raises(EOFError):
        read("float", body)


def test_check_accepts_bytearray_and_memoryview_bodies() -> None:
    body = write(ZOO, zoo_record())

    check(ZOO, bytearray(body))
    check(ZOO, memoryview(body))
