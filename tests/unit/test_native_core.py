"""The native core answers as the Python reference does: same values, same refusals.

broker/trust/sd/_native.py runs the Rust core (native/) in place of four
per-field loops of the reference: reading the disclosure array, the
verifier's loop over disclosures, selecting what a rule set lets through,
and splicing the selection into a statement. Each test here runs both on
the same input, valid, mangled or arbitrary, and requires the same result
or the same refusal: the same class, reason code and detail (STYLE.md 13).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ixb_native
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import native as switch
from broker.app.settings import Settings
from broker.errors import DecodeError
from broker.trust import attestation, merkle
from broker.trust.envelopes import Signer
from broker.trust.sd import _native, select, statement, verify
from broker.trust.sd.disclosure import (
    SD_REPORT_SCHEMA,
    Disclosure,
    DisclosureError,
    disclosure_digest,
)
from broker.trust.sd.issue import issue
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import open_submission, seal_submission
from broker.trust.sd.wire import WireError, read_disclosures, write_bytes, write_long
from broker.trust.signatures import SigningKey
from broker.wire.codec import HEADER_LEN, SchemaCatalog
from broker.wire.report import REPORT_SCHEMA, encode_report
from tests.factories import make_report
from tests.support.submissions import _layout

LIMITS = {"max_items": 10_000, "max_field_bytes": 1 << 20}
PATHS = sorted(_layout().slots())
LEAVES = [p for p in PATHS if _layout().slots()[p].reader is not None]


def outcome(run: Callable[[], Any]) -> tuple[Any, ...]:
    """What a call made of its input: its result, or the refusal as (class, reason, detail)."""
    try:
        return ("ok", run())
    except (WireError, DisclosureError, DecodeError) as exc:
        return ("refused", type(exc).__name__, exc.reason, exc.detail)
    except IndexError:
        return ("ends early",)


def same(a: Any, b: Any) -> bool:
    """Equal, of the same type, a NaN to the bit and a datetime in the same zone."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dt.datetime):
        return a == b and a.tzinfo is b.tzinfo
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@contextmanager
def running(native: bool) -> Iterator[None]:
    """Every call site runs the native core, or the Python reference, while inside."""
    before, switch.ACTIVE = switch.ACTIVE, native
    try:
        yield
    finally:
        switch.ACTIVE = before


# --- the choice -------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "active"), [(None, "True"), ("1", "True"), ("0", "False")])
def test_the_native_core_is_built_and_runs_unless_the_reference_is_asked_for(
    setting: str | None, active: str
) -> None:
    """`make install` builds it; only IXB_NATIVE=0 makes a process run the reference."""
    env = {k: v for k, v in os.environ.items() if k != "IXB_NATIVE"}
    if setting is not None:
        env["IXB_NATIVE"] = setting
    probe = "from broker import native; print(native.BUILT, native.ACTIVE)"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", active]


def test_a_subprocess_given_exactly_the_settings_still_inherits_the_choice_of_core() -> None:
    """The bench and the tests start `ixb run` with ``Settings.environment``: IXB_ settings
    are replaced, but IXB_NATIVE=0 must reach the enforcer, or a comparison compares nothing."""
    env = Settings().environment({"IXB_NATIVE": "0", "IXB_GROUP_ID": "stale", "HOME": "/h"})
    assert env["IXB_NATIVE"] == "0"
    assert env["HOME"] == "/h"
    assert env["IXB_GROUP_ID"] == Settings().group_id


def test_the_core_raises_the_reference_s_own_error_classes() -> None:
    with pytest.raises(WireError) as caught:
        ixb_native.read_disclosures(b"\x01", 0, **LIMITS)
    assert caught.value.reason == "non_canonical"


# --- reading the disclosure array -------------------------------------------------


@pytest.fixture(scope="module")
def submission(catalog: SchemaCatalog) -> bytes:
    record = catalog.decode(encode_report(catalog, make_report()), REPORT_SCHEMA)
    signer = Signer("NL-test", SigningKey.generate("ed25519", prefix="NL"), catalog)
    return seal_submission(catalog, _layout(), signer, record)


def read_both(data: bytes, pos: int, **limits: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    return (
        outcome(lambda: read_disclosures(data, pos, **limits)),
        outcome(lambda: ixb_native.read_disclosures(data, pos, **limits)),
    )


@settings(max_examples=600, deadline=None)
@given(
    data=st.binary(max_size=200),
    max_items=st.integers(0, 8),
    max_field_bytes=st.integers(0, 300),
)
def test_arbitrary_bytes_are_read_or_refused_alike(
    data: bytes, max_items: int, max_field_bytes: int
) -> None:
    reference, native = read_both(data, 0, max_items=max_items, max_field_bytes=max_field_bytes)
    assert same(native, reference)


@st.composite
def arrays(draw: st.DrawFn) -> bytes:
    """Disclosure arrays near the valid ones: odd counts, lengths, bytes, block ends."""
    items = draw(
        st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=12), st.binary(max_size=20)))
    )
    count = draw(st.sampled_from([len(items), -len(items), len(items) + 1, 0]))
    body = write_long(count) + b"".join(
        write_bytes(salt) + write_bytes(path) + write_bytes(value) for salt, path, value in items
    )
    return body + draw(st.sampled_from([b"\x00", b"\x02", b"", b"\x80\x00"]))


@settings(max_examples=600, deadline=None)
@given(data=arrays())
def test_arrays_near_the_valid_ones_are_read_or_refused_alike(data: bytes) -> None:
    reference, native = read_both(data, 0, max_items=50, max_field_bytes=16)
    assert same(native, reference)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0), flip=st.integers(1, 255), cut=st.booleans())
def test_a_mangled_submission_is_opened_or_refused_alike(
    catalog: SchemaCatalog,
    submission: bytes,
    position: int,
    flip: int,
    cut: bool,
) -> None:
    data = bytearray(submission)
    at = HEADER_LEN + position % (len(data) - HEADER_LEN)
    if cut:
        del data[at:]
    else:
        data[at] ^= flip
    mangled = bytes(data)
    with running(native=True):
        native = outcome(lambda: open_submission(catalog, mangled).disclosures)
    with running(native=False):
        reference = outcome(lambda: open_submission(catalog, mangled).disclosures)
    assert same(native, reference)


# --- the verifier's loop ------------------------------------------------------------


def take_both(
    layout: ReportLayout, disclosures: list[Disclosure], signed: set[bytes]
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    def run(take: Callable[..., int]) -> tuple[Any, ...]:
        values: dict[str, Any] = {}
        digests: dict[str, bytes] = {}
        return outcome(
            lambda: (take(layout, disclosures, signed, values, digests), values, digests)
        )

    def native(*args: Any) -> int:
        return _native.take_signed(*args, decode=verify._decode)

    return run(verify._take_signed), run(native)


def concrete(path: str) -> str:
    return path.replace("[]", "[0]")


@settings(max_examples=1500, deadline=None)
@given(path=st.sampled_from(LEAVES), value=st.binary(max_size=24))
def test_arbitrary_value_bytes_at_every_path_are_read_or_refused_alike(
    path: str, value: bytes
) -> None:
    """Every disclosure type of the report, fed any bytes that are signed as they are."""
    disclosure = Disclosure(b"s" * 16, concrete(path), value)
    reference, native = take_both(_layout(), [disclosure], {disclosure.digest()})
    assert same(native, reference)


@settings(max_examples=300, deadline=None)
@given(
    path=st.sampled_from(LEAVES),
    number=st.one_of(st.integers(-(1 << 63), (1 << 63) - 1), st.sampled_from([0, -1, 1 << 40])),
    branch=st.sampled_from([b"", b"\x00", b"\x02", b"\x01", b"\x03"]),
)
def test_numbers_dates_and_timestamps_at_their_limits_are_read_alike(
    path: str, number: int, branch: bytes
) -> None:
    """Valid numbers at every path: dates and timestamps out of range, ints over 32 bits."""
    disclosure = Disclosure(b"s" * 16, concrete(path), branch + write_long(number))
    reference, native = take_both(_layout(), [disclosure], {disclosure.digest()})
    assert same(native, reference)


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.uuids().map(str), st.text(max_size=40)), upper=st.booleans())
def test_uuid_texts_are_read_or_refused_alike(text: str, upper: bool) -> None:
    raw = (text.upper() if upper else text).encode()
    disclosure = Disclosure(b"s" * 16, "related_report_ids[3]", write_bytes(raw))
    reference, native = take_both(_layout(), [disclosure], {disclosure.digest()})
    assert same(native, reference)


@pytest.fixture(scope="module")
def issued(catalog: SchemaCatalog) -> tuple[list[Disclosure], list[bytes]]:
    """A real report's disclosures and signed digests."""
    record = catalog.decode(encode_report(catalog, make_report()), REPORT_SCHEMA)
    done = issue(_layout(), record)
    return list(done.disclosures.values()), done.sd_payload_record["digests"]


@st.composite
def tampered(draw: st.DrawFn, disclosures: list[Disclosure]) -> list[Disclosure]:
    """Drop, repeat, reorder; change a salt, a path or a value; paths of any shape."""
    out = list(draw(st.permutations(disclosures)) if draw(st.booleans()) else disclosures)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(out) - 1))
        salt, path, value, _wire = out[at]
        change = draw(st.sampled_from(["drop", "repeat", "salt", "path", "value", "any path"]))
        if change == "drop":
            del out[at]
        elif change == "repeat":
            out.insert(draw(st.integers(0, len(out))), out[at])
        elif change == "salt":
            out[at] = Disclosure(draw(st.binary(max_size=70)), path, value)
        elif change == "path":
            out[at] = Disclosure(salt, draw(st.sampled_from(disclosures)).path, value)
        elif change == "value":
            out[at] = Disclosure(salt, path, draw(st.binary(max_size=30)))
        else:
            out[at] = Disclosure(salt, draw(st.text(max_size=30)), value)
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), sign_all=st.booleans())
def test_tampered_disclosures_are_taken_or_refused_alike(
    issued: tuple[list[Disclosure], list[bytes]], data: st.DataObject, sign_all: bool
) -> None:
    """Against the signed digests, or against digests of whatever was given (decoding then)."""
    disclosures, digests = issued
    given_ = data.draw(tampered(disclosures))
    signed = {d.digest() for d in given_} if sign_all else set(digests)
    reference, native = take_both(_layout(), given_, signed)
    assert same(native, reference)


def test_an_untampered_report_is_taken_whole_by_both(
    issued: tuple[list[Disclosure], list[bytes]],
) -> None:
    disclosures, digests = issued
    reference, native = take_both(_layout(), disclosures, set(digests))
    assert reference[0] == "ok"
    assert len(reference[1][1]) == len(disclosures)
    assert same(native, reference)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0), flip=st.integers(1, 255))
def test_a_submission_with_a_byte_changed_is_verified_or_refused_alike(
    catalog: SchemaCatalog,
    submission: bytes,
    position: int,
    flip: int,
) -> None:
    """The whole of intake's disclosure check, from the bytes, native then reference."""
    data = bytearray(submission)
    data[HEADER_LEN + position % (len(data) - HEADER_LEN)] ^= flip
    mangled = bytes(data)

    def verified() -> Any:
        opened = open_submission(catalog, mangled)
        signed = catalog.decode(opened.envelope.payload, SD_REPORT_SCHEMA)
        done = verify.verify_disclosures(_layout(), signed, opened.disclosures)
        return done.record, done.holes, done.digests

    with running(native=True):
        native = outcome(verified)
    with running(native=False):
        reference = outcome(verified)
    assert same(native, reference)


# --- selecting and splicing ------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_selection_and_its_statement_array_are_made_alike(
    issued: tuple[list[Disclosure], list[bytes]],
    data: st.DataObject,
) -> None:
    disclosures, _ = issued
    received = [
        d._replace(wire=d.encoded()) if data.draw(st.booleans()) else d for d in disclosures
    ]
    withheld = data.draw(st.lists(st.sampled_from(PATHS), max_size=4))
    with running(native=True):
        native = select.select(_layout(), received, withheld)
        array = statement.disclosures_array(native)
    with running(native=False):
        reference = select.select(_layout(), received, withheld)
        assert statement.disclosures_array(reference) == array
    assert all(a is b for a, b in zip(native, reference, strict=True))
    assert len(native) == len(reference)


@settings(max_examples=300, deadline=None)
@given(paths=st.lists(st.text(max_size=20)), patterns=st.lists(st.sampled_from(PATHS), max_size=3))
def test_paths_of_any_shape_are_selected_alike(paths: list[str], patterns: list[str]) -> None:
    coverage = _layout().coverage(patterns)
    assert coverage is not None or not patterns
    given_ = [Disclosure(b"s" * 16, p, b"\x00") for p in paths]
    native = ixb_native.uncovered(given_, coverage.patterns if coverage else ())
    reference = [d for d in given_ if not coverage(d.path)] if coverage else given_
    assert native == reference


@given(salt=st.binary(max_size=70), path=st.binary(max_size=40), value=st.binary(max_size=90))
def test_digests_are_computed_alike(salt: bytes, path: bytes, value: bytes) -> None:
    assert ixb_native.disclosure_digest(salt, path, value) == disclosure_digest(salt, path, value)


def test_a_nan_latitude_keeps_its_bits_whichever_reader_met_it() -> None:
    nan = struct.pack("<d", math.nan)
    disclosure = Disclosure(b"s" * 16, "location.latitude", b"\x02" + nan)
    reference, native = take_both(_layout(), [disclosure], {disclosure.digest()})
    assert reference[0] == "ok"
    assert same(native, reference)


# --- statement heads ------------------------------------------------------------------

TEXT = st.text(max_size=12)
MOMENT = st.one_of(
    st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5))])),
    st.integers(-(1 << 62), 1 << 62),
)
VALID = {
    "delivery_id": TEXT,
    "recipient": TEXT,
    "origin": TEXT,
    "report_id": st.uuids().map(str),
    "agreement_id": TEXT,
    "agreement_version": st.integers(-(1 << 31), (1 << 31) - 1),
    "policy_bundle_hash": TEXT,
    "withheld_fields": st.lists(TEXT, max_size=3),
    "derived_fields": st.lists(
        st.fixed_dictionaries(
            {
                "field": TEXT,
                "action": st.sampled_from(["pseudonymise", "generalise"]),
                "to": st.one_of(st.none(), TEXT),
            }
        ),
        max_size=2,
    ),
    "original_sha256": st.binary(min_size=32, max_size=32),
    "originator_key_id": TEXT,
    "decided_at": MOMENT,
    "not_before": st.one_of(st.none(), MOMENT),
    "originator_envelope": st.binary(max_size=40),
}
ODD = st.one_of(  # values fastavro may coerce, fill in or refuse
    st.just("\ud800"),
    st.integers(-(1 << 70), 1 << 70),
    st.booleans(),
    st.floats(allow_nan=False),
    st.none(),
    st.datetimes(),  # naive: fastavro's own rule decides
    st.uuids(),
    st.binary(max_size=40),
    st.tuples(TEXT),
    st.just([{"field": "f", "action": "other"}]),
    st.just([{"field": "f", "action": "generalise"}]),  # "to" left to the schema's default
    st.just(bytearray(b"x")),
)


@st.composite
def heads(draw: st.DrawFn) -> dict[str, Any]:
    """Statement heads as fan-out writes them; half of them with one odd value."""
    head = {name: draw(values) for name, values in VALID.items()}
    if draw(st.booleans()):
        head[draw(st.sampled_from(sorted(VALID)))] = draw(ODD)
    return head


@pytest.fixture(scope="module")
def writer(catalog: SchemaCatalog) -> statement.StatementWriter:
    return statement.StatementWriter(catalog)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=heads())
def test_a_statement_head_is_written_as_fastavro_writes_it_or_refused_alike(
    writer: statement.StatementWriter, head: dict[str, Any]
) -> None:
    """The core writes what it can byte for byte; anything else is fastavro's to write or refuse."""
    with running(native=True):
        native = outcome_of_writing(lambda: writer.write(head, b"\x00", b"\x02\x00"))
    with running(native=False):
        reference = outcome_of_writing(lambda: writer.write(head, b"\x00", b"\x02\x00"))
    assert native == reference


def test_the_core_writes_the_heads_fan_out_makes(writer: statement.StatementWriter) -> None:
    """Not only equal: written natively, without falling back to fastavro."""
    head = {
        "delivery_id": "d" * 32,
        "recipient": "DE",
        "origin": "NL",
        "report_id": "8f5b3c1e-0d1a-4c1b-9d2e-3f4a5b6c7d8e",
        "agreement_id": "nl-de",
        "agreement_version": 3,
        "policy_bundle_hash": "f" * 64,
        "withheld_fields": ["subjects[].full_name"],
        "derived_fields": [{"field": "location", "action": "generalise", "to": "country"}],
        "original_sha256": b"\x01" * 32,
        "originator_key_id": "NL-1",
        "decided_at": dt.datetime(2026, 12, 3, 12, 0, 0, 123_456, tzinfo=dt.UTC),
        "received_at": dt.datetime(2026, 12, 3, 11, 59, 59, 987_000, tzinfo=dt.UTC),
        "not_before": None,
        "originator_envelope": b"envelope",
    }
    assert writer._native is not None
    body = writer._native.write(head)
    assert body is not None
    with running(native=False):
        assert writer.write(head, b"\x00", b"\x00") == writer._header + body + b"\x00\x00"


def outcome_of_writing(run: Callable[[], bytes]) -> tuple[Any, ...]:
    """The bytes, or the error: fastavro's own (an OverflowError escapes write_body) included."""
    try:
        return ("ok", run())
    except Exception as exc:  # noqa: BLE001 - whatever the reference raises, the core must too
        return ("refused", type(exc).__name__, str(exc))


# --- every record the codec writes -------------------------------------------------------


def values_of(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:  # noqa: PLR0911 - one return per Avro type
    """Values fastavro writes for ``schema`` (fastavro-parsed): what the broker encodes."""
    if isinstance(schema, list):
        return st.one_of([values_of(branch, named) for branch in schema])
    if isinstance(schema, str):
        return PRIMITIVES[schema] if schema in PRIMITIVES else values_of(named[schema], named)
    kind, logical = schema["type"], schema.get("logicalType")
    if (kind, logical) == ("long", "timestamp-millis"):
        return st.one_of(st.datetimes(timezones=st.just(dt.UTC)), PRIMITIVES["long"])
    if (kind, logical) == ("string", "uuid"):
        return st.one_of(st.uuids().map(str), st.uuids())
    if kind in ("record", "enum", "fixed"):
        named[schema["name"]] = schema
    if kind == "record":
        fields = {f["name"]: values_of(f["type"], named) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if kind == "array":
        return st.lists(values_of(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=4), values_of(schema["values"], named), max_size=2)
    return values_of(kind, named)


PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(1 << 31), (1 << 31) - 1),
    "long": st.integers(-(1 << 63), (1 << 63) - 1),
    "float": st.floats(width=32),
    "double": st.floats(),
    "bytes": st.binary(max_size=40),
    "string": st.text(max_size=12),
}


@st.composite
def records(draw: st.DrawFn, catalog: SchemaCatalog) -> tuple[str, dict[str, Any]]:
    """A record of any schema in the catalog; half of them with one top-level field odd."""
    name = draw(st.sampled_from(sorted(s for s in catalog._by_name)))
    schema = catalog.schema(name).parsed
    record: dict[str, Any] = draw(values_of(schema, {}))
    if draw(st.booleans()):
        field = draw(st.sampled_from([f["name"] for f in schema["fields"]]))
        if draw(st.booleans()):
            record[field] = draw(ODD)
        else:
            del record[field]  # fastavro fills in the default, or refuses
    return name, record


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_record_the_codec_writes_is_written_as_fastavro_writes_it_or_refused_alike(
    catalog: SchemaCatalog, data: st.DataObject
) -> None:
    name, record = data.draw(records(catalog))
    with running(native=True):
        native = outcome_of_writing(lambda: catalog.encode(name, record))
    with running(native=False):
        reference = outcome_of_writing(lambda: catalog.encode(name, record))
    assert native == reference


@pytest.mark.parametrize(
    "name",
    [
        "ixb.v1.AcceptedSubmission",
        "ixb.v1.AttestedEnvelope",
        "ixb.v1.AuditEntry",
        "ixb.v1.DeliveryStatement",
        "ixb.v1.HeldDelivery",
        "ixb.v1.Rejection",
        "ixb.v1.SignedEnvelope",
    ],
)
def test_the_core_writes_every_record_the_enforcer_produces(
    catalog: SchemaCatalog, name: str
) -> None:
    """Not left to fastavro: these are written for every report, several times over."""
    assert catalog._writers[name] is not None


# --- a batch's Merkle tree ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(st.binary(max_size=20), min_size=1, max_size=70))
def test_a_batch_tree_has_the_root_and_audit_paths_of_the_reference(
    payloads: list[bytes],
) -> None:
    """Sizes odd and even over a few levels: RFC 6962's MTH and PATH, as merkle.py has them."""
    with running(native=True):
        native = attestation.batch_tree(payloads)
    with running(native=False):
        reference = attestation.batch_tree(payloads)
    assert native == reference
    leaves = [merkle.leaf_hash(p) for p in payloads]
    assert native[0] == merkle.root(leaves)
    assert native[1] == [merkle.inclusion_proof(i, leaves) for i in range(len(leaves))]
