"""Statements written by splicing are exactly what fastavro writes for the whole record."""

from __future__ import annotations

import datetime as dt
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.trust.sd.disclosure import Disclosure
from broker.trust.sd.statement import (
    DELIVERY_SCHEMA,
    StatementWriter,
    derived_array,
    disclosures_array,
)
from broker.wire.codec import SchemaCatalog

paths = st.from_regex(r"[a-z_]{1,12}(\[[0-9]\])?(\.[a-z_]{1,8})?", fullmatch=True)
disclosures = st.lists(
    st.builds(
        Disclosure,
        st.binary(min_size=16, max_size=16),
        paths,
        st.binary(max_size=40),
        wire=st.just(b""),  # built here: written now, as a derived view's would be
    ),
    max_size=30,
)
derived = st.lists(
    st.tuples(paths, st.binary(max_size=40), st.none() | st.binary(min_size=32, max_size=32)),
    max_size=5,
)


@settings(max_examples=150, deadline=None)
@given(
    given_on=disclosures,
    derived_values=derived,
    withheld=st.lists(st.text(max_size=30), max_size=4),
    not_before=st.none() | st.integers(0, 2**40),
)
def test_a_spliced_statement_is_the_statement_fastavro_writes(
    catalog: SchemaCatalog,
    given_on: list[Disclosure],
    derived_values: list[tuple[str, bytes, bytes | None]],
    withheld: list[str],
    not_before: int | None,
) -> None:
    head = {
        "delivery_id": "d" * 32,
        "recipient": "BE",
        "origin": "NL",
        "report_id": "2b1f4a8e-1c52-4bd4-9b7a-0c3e5a1f2d11",
        "agreement_id": "nl-be",
        "agreement_version": 3,
        "policy_bundle_hash": "sha256:" + "ab" * 32,
        "withheld_fields": withheld,
        "derived_fields": [{"field": "subjects[].full_name", "action": "pseudonymise", "to": None}],
        "original_sha256": hashlib.sha256(b"payload").digest(),
        "originator_key_id": "NL-1",
        "decided_at": dt.datetime(2026, 11, 22, tzinfo=dt.UTC),
        "received_at": dt.datetime(2026, 11, 21, 23, 59, tzinfo=dt.UTC),
        "not_before": None
        if not_before is None
        else dt.datetime.fromtimestamp(not_before / 1000, dt.UTC),
        "originator_envelope": b"envelope bytes",
    }
    spliced = StatementWriter(catalog).write(
        head, disclosures_array(given_on), derived_array(derived_values)
    )
    whole = catalog.encode(
        DELIVERY_SCHEMA,
        head
        | {
            "disclosures": [d.to_record() for d in given_on],
            "derived_values": [
                {"path": p, "value": v, "original_digest": o} for p, v, o in derived_values
            ],
        },
    )
    assert spliced == whole
    assert catalog.decode(spliced, DELIVERY_SCHEMA)["disclosures"] == [
        d.to_record() for d in given_on
    ]
