"""Selective disclosure: what the originator signs, what the broker withholds, what verifies."""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.domain.fields import FieldPath, FieldPathError, withhold
from broker.errors import ConfigurationError
from broker.trust.sd.disclosure import (
    DISCLOSURE_SCHEMA,
    HEADER_FIELDS,
    SD_REPORT_SCHEMA,
    Disclosure,
    DisclosureError,
    Provenance,
)
from broker.trust.sd.issue import Issued, issue
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.select import select
from broker.trust.sd.verify import verify_disclosures
from broker.wire.codec import SchemaCatalog
from broker.wire.report import REPORT_SCHEMA, encode_report, record_to_report
from tests.factories import make_report

NUMBERS = "subjects[].travel_documents[].number"


@pytest.fixture(scope="module")
def layout(catalog: SchemaCatalog) -> ReportLayout:
    return ReportLayout.from_catalog(catalog)


def decoded(catalog: SchemaCatalog, **overrides: Any) -> dict[str, Any]:
    """A report record exactly as the codec decodes it from the wire."""
    return catalog.decode(encode_report(catalog, make_report(**overrides)), REPORT_SCHEMA)


def over_the_wire(
    catalog: SchemaCatalog, sd_record: dict[str, Any], disclosures: Iterable[Disclosure]
) -> tuple[dict[str, Any], list[Disclosure]]:
    """Encode and decode both parts, so verification sees only what bytes can carry."""
    sd = catalog.decode(catalog.encode(SD_REPORT_SCHEMA, sd_record), SD_REPORT_SCHEMA)
    received = [
        Disclosure.from_record(
            catalog.decode(catalog.encode(DISCLOSURE_SCHEMA, d.to_record()), DISCLOSURE_SCHEMA)
        )
        for d in disclosures
    ]
    return sd, received


def signed_by_originator(issued: Issued, extra: Disclosure) -> dict[str, Any]:
    """The sd payload a (careless or hostile) originator would sign with ``extra`` listed.

    ``extra`` takes a decoy's place, so every real disclosure stays signed.
    """
    real = {d.digest() for d in issued.disclosures.values()}
    digests = list(issued.sd_payload_record["digests"])
    decoy = next(i for i, d in enumerate(digests) if d not in real)
    digests[decoy] = extra.digest()
    return issued.sd_payload_record | {"digests": sorted(digests)}


def refusal(
    layout: ReportLayout, sd_record: dict[str, Any], disclosures: Iterable[Disclosure]
) -> DisclosureError:
    with pytest.raises(DisclosureError) as caught:
        verify_disclosures(layout, sd_record, disclosures)
    return caught.value


def four_by_two_report(catalog: SchemaCatalog) -> dict[str, Any]:
    document = {"document_type": "passport", "number": "P0000001", "issuing_country": "HU"}
    subject = {"role": "suspect", "full_name": "A Person", "travel_documents": [document] * 2}
    return decoded(
        catalog,
        subjects=[subject] * 4,
        vehicles=[{"kind": "van", "registration": "AB-12-CD"}] * 3,
        indicators=[{"kind": "email", "value": "x@example.org"}] * 5,
    )


# --- round trips -------------------------------------------------------------


def test_a_report_with_nothing_withheld_is_rebuilt_exactly(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    record = decoded(catalog)
    issued = issue(layout, record)

    sd, received = over_the_wire(
        catalog, issued.sd_payload_record, select(layout, issued.disclosures.values(), [])
    )
    disclosed = verify_disclosures(layout, sd, received)

    assert disclosed.record == record
    assert record_to_report(disclosed.record) == record_to_report(record)
    assert disclosed.holes == ()


def test_every_disclosed_value_and_the_header_are_marked_signed(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))

    disclosed = verify_disclosures(layout, issued.sd_payload_record, issued.disclosures.values())

    assert set(disclosed.provenance) == {*HEADER_FIELDS, *issued.disclosures}
    assert set(disclosed.provenance.values()) == {Provenance.SIGNED}
    assert "subjects[0].travel_documents[1].number" in disclosed.provenance


def test_withholding_document_numbers_nulls_them_and_keeps_everything_else(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    record = decoded(catalog)
    issued = issue(layout, record)

    passed_on = select(layout, issued.disclosures.values(), [NUMBERS])
    sd, received = over_the_wire(catalog, issued.sd_payload_record, passed_on)
    disclosed = verify_disclosures(layout, sd, received)

    expected = copy.deepcopy(record)
    for subject in expected["subjects"]:
        for document in subject["travel_documents"]:
            document["number"] = None
    assert record["subjects"][0]["travel_documents"][0]["number"] is not None
    assert disclosed.record == expected
    assert disclosed.holes == (
        "subjects[0].travel_documents[0].number",
        "subjects[0].travel_documents[1].number",
    )
    assert "subjects[0].travel_documents[0].number" not in disclosed.provenance
    assert disclosed.unexplained_holes(layout, [NUMBERS]) == ()


@pytest.mark.parametrize("stated", ["marking", "subjects..full_name", "no_such_field"])
def test_a_statement_naming_no_disclosable_field_is_a_refusal_not_a_crash(
    catalog: SchemaCatalog, layout: ReportLayout, stated: str
) -> None:
    """The patterns come from the broker: a bad one refuses that delivery, nothing more."""
    issued = issue(layout, decoded(catalog))
    sd, received = over_the_wire(catalog, issued.sd_payload_record, issued.disclosures.values())
    disclosed = verify_disclosures(layout, sd, received)

    with pytest.raises(DisclosureError) as withheld:
        disclosed.unexplained_holes(layout, [stated])
    with pytest.raises(DisclosureError) as derived:
        verify_disclosures(layout, sd, received, derived_fields=[stated])

    assert withheld.value.reason == derived.value.reason == "bad_field_pattern"


def test_withholding_a_whole_list_hides_its_length(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))

    passed_on = select(layout, issued.disclosures.values(), ["subjects[]"])
    disclosed = verify_disclosures(layout, issued.sd_payload_record, passed_on)

    assert disclosed.record["subjects"] == []
    assert disclosed.holes == ("subjects",)
    assert not any(d.path.startswith("subjects") for d in passed_on)


def test_a_broker_withholding_more_than_it_states_is_caught_by_the_holes(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))

    passed_on = select(layout, issued.disclosures.values(), [NUMBERS, "subjects[].full_name"])
    disclosed = verify_disclosures(layout, issued.sd_payload_record, passed_on)

    assert disclosed.unexplained_holes(layout, [NUMBERS]) == (
        "subjects[0].full_name",
        "subjects[1].full_name",
    )


def test_a_withheld_required_field_is_null_until_something_replaces_it(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))

    passed_on = select(layout, issued.disclosures.values(), ["title"])
    disclosed = verify_disclosures(layout, issued.sd_payload_record, passed_on)

    assert disclosed.record["title"] is None
    assert disclosed.holes == ("title",)


# --- salts, digests and decoys ----------------------------------------------


def test_every_disclosure_has_its_own_salt_of_at_least_128_bits(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, four_by_two_report(catalog))
    salts = [d.salt for d in issued.disclosures.values()]

    assert all(len(s) >= 16 for s in salts)
    assert len(set(salts)) == len(salts)


def test_equal_values_at_different_paths_get_unrelated_digests(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, four_by_two_report(catalog))
    numbers = [d for p, d in issued.disclosures.items() if p.endswith(".number")]

    assert len({d.value for d in numbers}) == 1
    assert len({d.digest() for d in numbers}) == len(numbers) == 8


def test_issuing_the_same_report_twice_gives_disjoint_digests(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    record = decoded(catalog)

    first = issue(layout, record).sd_payload_record["digests"]
    second = issue(layout, record).sd_payload_record["digests"]

    assert set(first).isdisjoint(second)


def test_the_signed_digests_are_sorted_and_include_every_disclosure(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))
    digests = issued.sd_payload_record["digests"]

    assert digests == sorted(digests)
    assert {d.digest() for d in issued.disclosures.values()} <= set(digests)
    assert len(digests) > len(issued.disclosures)  # 40 disclosures, padded to 48


_shapes = st.fixed_dictionaries(
    {
        "subjects": st.lists(st.integers(0, 4), max_size=6),
        "vehicles": st.integers(0, 4),
        "indicators": st.integers(0, 6),
        "related": st.integers(0, 3),
    }
)


def shaped_record(catalog: SchemaCatalog, shape: dict[str, Any]) -> dict[str, Any]:
    document = {"document_type": "visa", "number": "V1", "issuing_country": "FR"}
    return decoded(
        catalog,
        subjects=[
            {"full_name": "N", "travel_documents": [document] * n} for n in shape["subjects"]
        ],
        vehicles=[{"kind": "car"}] * shape["vehicles"],
        indicators=[{"kind": "url", "value": "u"}] * shape["indicators"],
        related_report_ids=[uuid.uuid4() for _ in range(shape["related"])],
    )


@settings(max_examples=60, deadline=None)
@given(shape=_shapes, bucket=st.integers(1, 40))
def test_the_number_of_digests_is_always_a_multiple_of_the_bucket(
    catalog: SchemaCatalog, layout: ReportLayout, shape: dict[str, Any], bucket: int
) -> None:
    issued = issue(layout, shaped_record(catalog, shape), decoys_bucket=bucket)
    count = len(issued.sd_payload_record["digests"])

    assert count % bucket == 0
    assert len(issued.disclosures) <= count < len(issued.disclosures) + bucket


def test_reports_of_different_sizes_in_one_bucket_sign_the_same_number_of_digests(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    one_document = issue(
        layout,
        shaped_record(catalog, {"subjects": [1], "vehicles": 0, "indicators": 0, "related": 0}),
    )
    two_documents = issue(
        layout,
        shaped_record(catalog, {"subjects": [2], "vehicles": 0, "indicators": 0, "related": 0}),
    )

    assert len(one_document.disclosures) != len(two_documents.disclosures)
    assert len(one_document.sd_payload_record["digests"]) == len(
        two_documents.sd_payload_record["digests"]
    )


def test_a_random_source_that_repeats_itself_is_refused_at_issue(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    with pytest.raises(ConfigurationError, match="random source"):
        issue(layout, decoded(catalog), random_bytes=lambda n: b"\x07" * n)


# --- refusals ----------------------------------------------------------------


def test_a_disclosure_from_another_report_is_refused(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    ours = issue(layout, decoded(catalog))
    theirs = issue(layout, decoded(catalog, title="Another report"))

    swapped = {**ours.disclosures, "title": theirs.disclosures["title"]}
    error = refusal(layout, ours.sd_payload_record, swapped.values())

    assert error.reason == "disclosure_not_signed"
    assert "title" in error.detail


def test_a_duplicate_digest_in_the_signed_list_is_refused(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))
    digests = list(issued.sd_payload_record["digests"])
    digests[1] = digests[0]

    error = refusal(layout, issued.sd_payload_record | {"digests": digests}, [])

    assert error.reason == "duplicate_digest"


def test_the_same_disclosure_given_twice_is_refused(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))
    title = issued.disclosures["title"]

    error = refusal(layout, issued.sd_payload_record, [*issued.disclosures.values(), title])

    assert error.reason == "duplicate_path"


def test_two_signed_disclosures_for_one_path_are_refused(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))
    second_title = issued.disclosures["title"]._replace(salt=b"\x01" * 16)
    sd = signed_by_originator(issued, second_title)

    error = refusal(layout, sd, [*issued.disclosures.values(), second_title])

    assert error.reason == "duplicate_path"


def avro_long(n: int) -> bytes:
    zigzag, out = (n << 1) ^ (n >> 63), bytearray()
    while zigzag > 0x7F:
        out.append(zigzag & 0x7F | 0x80)
        zigzag >>= 7
    return bytes([*out, zigzag])


def flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


@settings(max_examples=60, deadline=None)
@given(part=st.sampled_from(["salt", "path", "value"]), which=st.integers(0), bit=st.integers(0))
def test_a_disclosure_with_any_bit_flipped_is_refused(
    catalog: SchemaCatalog, layout: ReportLayout, part: str, which: int, bit: int
) -> None:
    issued = issue(layout, decoded(catalog))
    paths = list(issued.disclosures)
    target = issued.disclosures[paths[which % len(paths)]]
    if part == "path":
        raw = target.path.encode()
        tampered = target._replace(path=flip(raw, bit % (len(raw) * 8)).decode("latin-1"))
    elif part == "salt":
        tampered = target._replace(salt=flip(target.salt, bit % (len(target.salt) * 8)))
    else:
        tampered = target._replace(value=flip(target.value, bit % (len(target.value) * 8)))
    given_on = [tampered if d is target else d for d in issued.disclosures.values()]

    error = refusal(layout, issued.sd_payload_record, given_on)

    expected = (
        {"disclosure_not_signed", "malformed_path"} if part == "path" else {"disclosure_not_signed"}
    )
    assert error.reason in expected


def test_refusals_name_the_path_never_the_value(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog, title="Operation Nightjar"))
    bad_title = issued.disclosures["title"]._replace(value=b"\x24Operation Nightowl")

    error = refusal(layout, issued.sd_payload_record, [bad_title])

    assert "title" in error.detail
    assert "Night" not in str(error)
    assert "Night" not in repr(bad_title)
    assert repr(bad_title.salt) not in repr(bad_title)


def test_bytes_of_another_type_at_a_path_are_refused_even_when_signed(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))
    # A string in a ["null", "string"] union, disclosed where the schema has ["null", "double"].
    confused = Disclosure(b"\x05" * 16, "location.latitude", b"\x02\x12Amsterdam")
    sd = signed_by_originator(issued, confused)

    error = refusal(layout, sd, [confused])

    assert error.reason == "undecodable_value"
    assert error.detail.startswith("location.latitude")


def test_a_value_with_more_than_one_reading_is_refused(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))
    # Enum index -1: fastavro reads the last symbol, a stricter decoder refuses it.
    ambiguous = Disclosure(b"\x06" * 16, "subjects[0].role", b"\x01")
    sd = signed_by_originator(issued, ambiguous)

    error = refusal(layout, sd, [ambiguous])

    assert error.reason == "non_canonical_value"


def test_a_disclosure_whose_parent_was_withheld_is_refused(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))
    given_on = [d for p, d in issued.disclosures.items() if p != "subjects"]

    error = refusal(layout, issued.sd_payload_record, given_on)

    assert error.reason == "orphan_disclosure"
    assert "subjects[0].full_name" in error.detail


def test_a_signed_length_beyond_the_signed_digests_is_refused(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))
    # One item more than there are digests: small enough that believing it fails cleanly.
    claimed = len(issued.sd_payload_record["digests"]) + 1
    huge = Disclosure(b"\x08" * 16, "vehicles", avro_long(claimed))
    sd = signed_by_originator(issued, huge)

    error = refusal(layout, sd, [huge])

    assert error.reason == "implausible_count"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("subjects[01].full_name", "malformed_path"),
        ("title\n", "malformed_path"),
        ("subjects[0].passport", "unknown_path"),
        ("marking", "unknown_path"),
    ],
)
def test_paths_that_are_not_one_canonical_disclosable_field_are_refused(
    catalog: SchemaCatalog, layout: ReportLayout, path: str, reason: str
) -> None:
    issued = issue(layout, decoded(catalog))
    odd = Disclosure(b"\x09" * 16, path, b"\x00")

    error = refusal(layout, signed_by_originator(issued, odd), [odd])

    assert error.reason == reason


def test_a_short_salt_is_refused(catalog: SchemaCatalog, layout: ReportLayout) -> None:
    issued = issue(layout, decoded(catalog))
    salty = Disclosure(b"\x0a" * 8, "summary", b"\x00")

    assert refusal(layout, signed_by_originator(issued, salty), [salty]).reason == "bad_salt"


def test_another_report_schema_or_digest_algorithm_is_refused(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    sd = issue(layout, decoded(catalog)).sd_payload_record

    other_schema = refusal(layout, sd | {"report_schema": b"\x00" * 8}, [])
    other_hash = refusal(layout, sd | {"digest_algorithm": "sha-1"}, [])

    assert other_schema.reason == "unknown_report_schema"
    assert other_hash.reason == "unsupported_digest_algorithm"


def test_the_digest_is_length_prefixed_and_domain_separated() -> None:
    disclosure = Disclosure(b"s" * 16, "title", b"\x02ab")
    moved = Disclosure(b"s" * 16, "titl", b"e\x02ab")  # same concatenation, other split

    expected = hashlib.sha256(
        b"ixb-disclosure-v1\x00"
        + (16).to_bytes(4, "big")
        + b"s" * 16
        + (5).to_bytes(4, "big")
        + b"title"
        + (3).to_bytes(4, "big")
        + b"\x02ab"
    ).digest()
    assert disclosure.digest() == expected
    assert moved.digest() != disclosure.digest()


# --- selecting ---------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["subjects[].passport", "marking", "report_id", "subjects..x"])
def test_a_pattern_naming_no_disclosable_field_is_an_error(
    catalog: SchemaCatalog, layout: ReportLayout, pattern: str
) -> None:
    issued = issue(layout, decoded(catalog))

    with pytest.raises(FieldPathError):
        select(layout, issued.disclosures.values(), [pattern])


def test_a_pattern_does_not_match_a_field_that_merely_shares_its_prefix(
    catalog: SchemaCatalog, layout: ReportLayout
) -> None:
    issued = issue(layout, decoded(catalog))

    passed_on = {d.path for d in select(layout, issued.disclosures.values(), ["location.country"])}

    assert "location.country" not in passed_on
    assert "location.crossing_point" in passed_on
    assert "location" in passed_on


# --- properties --------------------------------------------------------------

_nullable_text = st.none() | st.text(min_size=1, max_size=12)
_documents = st.fixed_dictionaries(
    {
        "document_type": st.sampled_from(["passport", "id_card", "visa"]),
        "number": _nullable_text,
        "issuing_country": st.none() | st.sampled_from(["HU", "NG", "NL"]),
    }
)
_subjects = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["suspect", "victim", "unknown"]),
        "full_name": _nullable_text,
        "nationality": st.none() | st.sampled_from(["HU", "NG"]),
        "travel_documents": st.lists(_documents, max_size=3),
    }
)
_overrides = st.fixed_dictionaries(
    {
        "summary": _nullable_text,
        "location": st.none() | st.fixed_dictionaries({"latitude": st.floats(-90, 90)}),
        "subjects": st.lists(_subjects, max_size=5),
        "vehicles": st.lists(st.fixed_dictionaries({"registration": _nullable_text}), max_size=3),
        "indicators": st.lists(st.fixed_dictionaries({"value": _nullable_text}), max_size=4),
        "related_report_ids": st.lists(st.uuids(), max_size=3),
    }
)


@settings(max_examples=80, deadline=None)
@given(overrides=_overrides, data=st.data())
def test_withholding_by_disclosure_equals_withholding_the_field(
    catalog: SchemaCatalog, layout: ReportLayout, overrides: dict[str, Any], data: st.DataObject
) -> None:
    record = decoded(catalog, **overrides)
    patterns = data.draw(st.lists(st.sampled_from(layout.paths()), max_size=4, unique=True))

    issued = issue(layout, record)
    sd, received = over_the_wire(
        catalog, issued.sd_payload_record, select(layout, issued.disclosures.values(), patterns)
    )
    disclosed = verify_disclosures(layout, sd, received)

    expected = copy.deepcopy(record)
    for pattern in patterns:
        withhold(expected, FieldPath.parse(pattern))
    assert disclosed.record == expected
    assert disclosed.unexplained_holes(layout, patterns) == ()
    assert len(sd["digests"]) % 16 == 0


def test_a_header_typed_differently_from_the_report_is_a_configuration_error(
    catalog: SchemaCatalog,
) -> None:
    report = catalog.schema(REPORT_SCHEMA)
    sd_schema = copy.deepcopy(catalog.schema(SD_REPORT_SCHEMA).parsed)
    marking = next(f for f in sd_schema["fields"] if f["name"] == "marking")
    marking["type"]["symbols"] = ["CLEAR", "GREEN", "AMBER", "RED"]

    with pytest.raises(ConfigurationError, match="marking"):
        ReportLayout(report.parsed, report.fingerprint, sd_schema)
