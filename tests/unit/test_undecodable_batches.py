"""A batch the consumer could not decode is refused in its place, and nothing else changes.

The processing is pure, so this runs the real stages (intake, fan-out,
attestation, Rego) on a batch holding an :class:`UndecodableBatch` as the
consumer hands it over; tests/integration/test_codecs.py makes one on a real
broker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.app.assembly import build_stages, provision_keys
from broker.app.settings import Settings
from broker.auditlog.entries import decode_entry
from broker.enforcer.processor import BatchProcessor
from broker.enforcer.stages.rejections import REJECTION_SCHEMA
from broker.kafka.undecodable import bad_batch
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, UndecodableBatch, offsets_after
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames
from tests.factories import make_report
from tests.integration.conftest import NL_BE_AGREEMENT
from tests.support.submissions import seal_record

SUBMIT = TopicNames().submit("NL")


@pytest.fixture
def processor(tmp_path: Path, policies_dir: Path) -> BatchProcessor:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = Settings(home=tmp_path, policies_dir=policies_dir)
    provision_keys(settings, ["NL", "BE"])
    return build_stages(settings).processor()


def _submission(
    processor: BatchProcessor, tmp_path: Path, partition: int, offset: int
) -> InboundRecord:
    """NL's report signed and sealed as NL's agency sends it."""
    sealed = seal_record(
        Settings(home=tmp_path),
        processor.catalog,
        report_to_record(make_report("NL")),
        key_nation="NL",
    )
    return InboundRecord(SUBMIT, partition, offset, b"key", sealed, (), 0)


def _undecodable(partition: int, first: int, last: int) -> UndecodableBatch:
    return UndecodableBatch(
        SUBMIT,
        partition,
        last,
        None,
        None,
        (),
        -1,
        first_offset=first,
        reason="unsupported_codec",
        detail=f"record batch at offsets {first}..{last} (snappy) could not be decoded: X",
    )


async def test_an_undecodable_batch_is_refused_in_its_place_and_committing_it_moves_past_it(
    processor: BatchProcessor, tmp_path: Path, catalog: SchemaCatalog
) -> None:
    topics = processor.topics
    batch = [
        _submission(processor, tmp_path, 0, 10),
        _undecodable(0, 11, 14),
        _submission(processor, tmp_path, 0, 15),
        _submission(processor, tmp_path, 1, 3),
    ]

    processed = processor.process(batch)

    [refusal] = [o for o in processed.outputs if o.topic == topics.rejected("NL")]
    rejection = catalog.decode(refusal.value, REJECTION_SCHEMA)
    assert (rejection["reason"], rejection["stage"], rejection["retriable"]) == (
        "unsupported_codec",
        "fetch",
        True,
    )
    assert (rejection["source_topic"], rejection["source_partition"]) == (SUBMIT, 0)
    assert rejection["source_offset"] == 11
    assert dict(refusal.headers)["ixb-source-last-offset"] == b"14"
    assert (rejection["original_key"], rejection["original_value"]) == (None, b"")
    assert len([o for o in processed.outputs if o.topic == topics.deliver("BE")]) == 3
    assert processed.stalled == {}
    assert offsets_after(processed.done(batch)) == {(SUBMIT, 0): 16, (SUBMIT, 1): 4}
    assert processor.stats.rejected == {"unsupported_codec": 1}
    # Nothing of it was read, so no decision on it is logged.
    audited = {
        entry.event.submission.offset
        for entry in (
            decode_entry(catalog, o.value) for o in processed.outputs if o.topic == topics.audit
        )
        if entry.event.submission is not None
    }
    assert audited == {10, 15, 3}


def test_an_error_raised_outside_the_kafka_clients_decoder_is_not_taken_for_a_bad_batch() -> None:
    with pytest.raises(ValueError, match="not from a record batch") as raised:
        raise ValueError("not from a record batch")
    assert bad_batch(raised.value) is None
