"""The hand-written readers agree with fastavro: same values, same refusals.

Each reader in broker/trust/sd/wire.py replaces "fastavro reads it, then it
must re-encode to the same bytes". These tests run both on the same bytes,
valid and arbitrary, for every disclosure type of the report schema and for
whole submissions, and require the same answer.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.errors import DecodeError
from broker.trust.envelopes import Signer, open_envelope
from broker.trust.sd.submission import SUBMISSION_SCHEMA, open_submission, seal_submission
from broker.trust.sd.wire import (
    WireError,
    leaf_reader,
    read_long,
    write_array,
    write_bytes,
    write_long,
)
from broker.trust.signatures import SigningKey
from broker.wire.codec import HEADER_LEN, SchemaCatalog
from broker.wire.report import REPORT_SCHEMA, encode_report
from tests.factories import make_report
from tests.support.submissions import _layout

INT32 = (-(1 << 31), (1 << 31) - 1)


def reference(schema: Any, data: bytes) -> tuple[bool, Any]:
    """What the verifier did before: fastavro reads, and the value must re-encode to ``data``."""
    body = io.BytesIO(data)
    try:
        value = fastavro.schemaless_reader(body, schema, None)
    except Exception:  # noqa: BLE001 - any failure is a refusal, as in the verifier
        return False, None
    if body.tell() != len(data):
        return False, None
    out = io.BytesIO()
    try:
        fastavro.schemaless_writer(out, schema, value)
    except Exception:  # noqa: BLE001
        return False, None
    if out.getvalue() != data:
        return False, None
    return True, value


def fast(schema: Any, data: bytes) -> tuple[bool, Any]:
    reader = leaf_reader(schema)
    assert reader is not None, f"no hand-written reader for {schema}"
    try:
        return True, reader(data)
    except WireError:
        return False, None


def slot_schemas() -> list[Any]:
    layout = _layout()
    return [slot.schema for slot in layout._slots.values()]


SCHEMAS = slot_schemas()


def outside_int32(schema: Any, data: bytes) -> bool:
    """fastavro reads an Avro int as a long; the hand reader holds it to 32 bits."""
    kinds = [schema] if not isinstance(schema, list) else schema
    ints = any(k == "int" or (isinstance(k, dict) and k.get("type") == "int") for k in kinds)
    if not ints:
        return False
    try:
        start = read_long(data, 0)[1] if isinstance(schema, list) else 0
        value, _ = read_long(data, start)
    except (WireError, IndexError):
        return False
    return not INT32[0] <= value <= INT32[1]


def test_every_disclosure_type_of_the_report_has_a_hand_written_reader() -> None:
    missing = [s for s in SCHEMAS if leaf_reader(s) is None]
    assert missing == []


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=st.sampled_from(SCHEMAS), data=st.binary(max_size=14))
def test_arbitrary_bytes_are_read_as_fastavro_reads_them_or_refused_as_it_refuses(
    schema: Any, data: bytes
) -> None:
    ok, value = fast(schema, data)
    expected_ok, expected = reference(schema, data)
    if expected_ok and not ok:
        assert outside_int32(schema, data), f"refused what fastavro reads canonically: {schema}"
        return
    assert ok == expected_ok
    assert type(value) is type(expected)
    both_nan = isinstance(value, float) and math.isnan(value) and math.isnan(expected)
    assert value == expected or both_nan


@settings(max_examples=1500, deadline=None)
@given(data=st.data())
def test_every_valid_value_is_read_back_exactly(data: st.DataObject) -> None:
    schema = data.draw(st.sampled_from(SCHEMAS))
    value = data.draw(values_of(schema))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, value)
    ok, read = fast(schema, out.getvalue())
    assert ok
    assert read == reference(schema, out.getvalue())[1]


def values_of(schema: Any) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.one_of(*(values_of(s) for s in schema))
    kind = schema if isinstance(schema, str) else schema["type"]
    logical = None if isinstance(schema, str) else schema.get("logicalType")
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if logical == "timestamp-millis":
        return st.integers(-(10**13), 10**13).map(_epoch_ms)
    if logical == "date":
        return st.dates()
    if logical == "uuid":
        return st.uuids()
    simple: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(*INT32),
        "long": st.integers(-(1 << 63), (1 << 63) - 1),
        "double": st.floats(allow_nan=False),
        "string": st.text(max_size=200),
    }
    return simple[kind]


def _epoch_ms(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)


@given(st.integers(-(1 << 63), (1 << 63) - 1))
def test_longs_round_trip_and_match_fastavro(value: int) -> None:
    encoded = write_long(value)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, "long", value)
    assert encoded == out.getvalue()
    assert read_long(encoded, 0) == (value, len(encoded))


def test_an_over_long_number_is_refused_as_non_canonical() -> None:
    with pytest.raises(WireError) as caught:
        read_long(b"\x82\x00", 0)  # 1, padded with an empty continuation byte
    assert caught.value.reason == "non_canonical"


def test_a_number_over_ten_bytes_is_refused() -> None:
    with pytest.raises(WireError) as caught:
        read_long(b"\xff" * 11, 0)
    assert caught.value.reason == "varint_too_long"  # the decode guard's code


# --- whole submissions --------------------------------------------------------


@pytest.fixture(scope="module")
def submission(catalog: SchemaCatalog) -> bytes:
    """A real submission: a report's disclosures and a signed envelope over its digests."""
    record = catalog.decode(encode_report(catalog, make_report()), REPORT_SCHEMA)
    signer = Signer("NL-test", SigningKey.generate("ed25519", prefix="NL"), catalog)
    return seal_submission(catalog, _layout(), signer, record)


Items = list[tuple[bytes, str, bytes]]


def outer_reference(catalog: SchemaCatalog, data: bytes) -> Items | None:
    """fastavro's reading of the outer record, accepted only if canonical; None if refused."""
    try:
        record = catalog.decode_canonical(data, SUBMISSION_SCHEMA, stage="envelope")
        open_envelope(catalog, record["envelope"])
    except DecodeError:
        return None
    return [(d["salt"], d["path"], d["value"]) for d in record["disclosures"]]


def outer_fast(catalog: SchemaCatalog, data: bytes) -> Items | None:
    try:
        opened = open_submission(catalog, data)
    except DecodeError:
        return None
    return [(d.salt, d.path, d.value) for d in opened.disclosures]


def test_a_real_submission_is_read_as_fastavro_reads_it(
    catalog: SchemaCatalog, submission: bytes
) -> None:
    items = outer_fast(catalog, submission)
    assert items is not None
    assert len(items) > 20
    assert items == outer_reference(catalog, submission)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0), flip=st.integers(1, 255), cut=st.booleans())
def test_a_mangled_submission_is_read_as_fastavro_reads_it_or_refused(
    catalog: SchemaCatalog, submission: bytes, position: int, flip: int, cut: bool
) -> None:
    """Any byte changed or the bytes cut short: lengths, counts, block ends, paths, values."""
    data = bytearray(submission)
    at = HEADER_LEN + position % (len(data) - HEADER_LEN)
    if cut:
        del data[at:]
    else:
        data[at] ^= flip
    mangled = bytes(data)
    assert outer_fast(catalog, mangled) == outer_reference(catalog, mangled)


def test_an_array_written_in_sized_blocks_is_refused(catalog: SchemaCatalog) -> None:
    """Avro allows a negative count followed by a byte size; fastavro never writes it."""
    item = write_long(1) + b"s" + write_long(4) + b"path" + write_long(0)
    body = write_long(0) + write_long(-1) + write_long(len(item)) + item + b"\x00"
    with pytest.raises(DecodeError) as caught:
        open_submission(catalog, catalog.schema(SUBMISSION_SCHEMA).header + body)
    assert caught.value.reason == "non_canonical"


def test_received_disclosures_are_spliced_byte_for_byte_as_fastavro_writes_them(
    catalog: SchemaCatalog, submission: bytes
) -> None:
    disclosures = open_submission(catalog, submission).disclosures
    assert all(d.wire for d in disclosures)
    schema = catalog.schema(SUBMISSION_SCHEMA).parsed["fields"][1]["type"]
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, [d.to_record() for d in disclosures])
    assert write_array([d.encoded() for d in disclosures]) == out.getvalue()


def test_only_optional_unions_get_a_hand_written_reader() -> None:
    """["null", "int", "long"] reads b"\\x04\\x0a" as 5 where fastavro writes b"\\x02\\x0a"."""
    assert leaf_reader(fastavro.parse_schema(["null", "int", "long"])) is None
    assert leaf_reader(fastavro.parse_schema(["null", "string", "boolean"])) is None
    assert leaf_reader(fastavro.parse_schema(["null", "long"])) is not None


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("salt over the field limit", "bytes_too_long"),
        ("path not UTF-8", "invalid_utf8"),
        ("envelope over the field limit", "bytes_too_long"),
        ("length negative", "negative_length"),
        ("number over ten bytes", "varint_too_long"),
    ],
)
def test_a_refusal_reads_the_same_as_the_decode_guard_s(
    catalog: SchemaCatalog, case: str, reason: str
) -> None:
    """Refusal codes are logged and replayed: one defect, one code, whichever reader met it."""
    header = catalog.schema(SUBMISSION_SCHEMA).header
    big = catalog.guard_limits.max_bytes_field + 1

    def one(salt: bytes, path: bytes) -> bytes:
        item = write_bytes(salt) + write_bytes(path) + write_bytes(b"\x02a")
        return header + write_bytes(b"e") + write_long(1) + item + b"\x00"

    data = {
        "salt over the field limit": one(b"s" * big, b"title"),
        "path not UTF-8": one(b"s" * 16, b"\xff\xfe"),
        "envelope over the field limit": header + write_bytes(b"e" * big) + b"\x00",
        "length negative": header + write_long(-3) + b"e",
        "number over ten bytes": header + b"\xff" * 11 + b"\x00",
    }[case]
    with pytest.raises(DecodeError) as guarded:
        catalog.decode_canonical(data, SUBMISSION_SCHEMA, stage="envelope")
    with pytest.raises(DecodeError) as by_hand:
        open_submission(catalog, data)

    assert (guarded.value.reason, by_hand.value.reason) == (reason, reason)
