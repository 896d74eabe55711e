"""The enforcer writes one decision-log entry per outcome; checkpoints sign it; verify checks it.

That moving an entry is caught (a writer's sequence going back) is shown on
logs built in memory: tests/unit/test_audit_verify.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.app.auditing import audit_source
from broker.auditlog.checkpoints import Checkpoint, encode_checkpoint, sign_checkpoint
from broker.auditlog.entries import Outcome, decode_entry
from broker.auditor.use_cases import sign_checkpoints, verify_audit
from broker.errors import VerificationError
from broker.trust.keystore import Keystore
from broker.wire.records import OutboundRecord
from tests.factories import make_report
from tests.integration.conftest import Exchange
from tests.support.audit import edited
from tests.support.submissions import tamper_signed_payload

pytestmark = pytest.mark.integration


async def _sign_checkpoints(exchange: Exchange) -> list[Checkpoint]:
    """What ``ixb audit checkpoint`` does, with the exchange's settings."""
    settings = exchange.settings
    return await sign_checkpoints(audit_source(settings), Keystore(settings.keystore_dir))


async def test_every_outcome_is_logged_checkpointed_and_verified_a_repeat_tolerated_a_forgery_named(
    exchange: Exchange, tmp_path: Path
) -> None:
    good = exchange.seal(make_report("NL"))
    bad = exchange.resealed(good, lambda s: tamper_signed_payload(exchange.catalog, s))
    await exchange.publish("NL", [good, bad])
    await exchange.wait_completed(2)

    signed = await _sign_checkpoints(exchange)
    reports, logs = await verify_audit(audit_source(exchange.settings))

    assert [r.problem for r in reports] == [None] * len(reports)
    assert sum(c.tree_size for c in signed) == sum(r.entries for r in reports)
    outcomes = sorted(
        (str(e.event.outcome), e.event.recipient or "-")
        for records in logs.values()
        for e in (decode_entry(exchange.catalog, v) for _, v in records)
    )
    assert outcomes == [
        (str(Outcome.DELIVERED), "BE"),  # the NL-BE agreement
        (str(Outcome.REFUSED), "-"),  # the tampered copy, refused at intake
        (str(Outcome.WITHHELD), "DE"),  # no agreement
    ]

    # The producer re-sends a batch Kafka had partly acknowledged (or someone appends an
    # exact copy): the same bytes under the same writer and number are harmless noise.
    [(log_id, records)] = [(k, v) for k, v in logs.items() if v]
    first = decode_entry(exchange.catalog, records[0][1])
    key = first.writer.encode()
    await exchange.publish("NL", [OutboundRecord(exchange.topics.audit, key, records[0][1])])
    reports, _ = await verify_audit(audit_source(exchange.settings))

    [report] = [r for r in reports if r.log_id == log_id]
    assert report.problem is None
    assert (report.duplicates, report.entries) == (1, len(records) + 1)

    # Another entry under a number the writer already used is named where it appears.
    forged = edited(exchange.catalog, records[0][1], lambda r: r.update(origin="DE"))
    await exchange.publish("NL", [OutboundRecord(exchange.topics.audit, key, forged)])
    reports, _ = await verify_audit(audit_source(exchange.settings))

    [report] = [r for r in reports if r.log_id == log_id]
    assert report.problem is not None
    assert (report.problem.reason, report.problem.offset) == ("sequence_reorder", len(records) + 1)


async def test_checkpointing_from_the_cli_refuses_a_log_that_is_not_what_was_signed(
    exchange: Exchange,
) -> None:
    """A signed checkpoint whose root the log no longer has: signing on would sign a fork."""
    await exchange.publish("NL", [exchange.seal(make_report("NL"))])
    await exchange.wait_completed(1)
    [first] = [c for c in await _sign_checkpoints(exchange) if c.tree_size]
    keystore = Keystore(exchange.settings.keystore_dir)
    signer = keystore.private_key(first.signer_key_id)
    other_root = sign_checkpoint(signer, first.log_id, first.tree_size, b"\x07" * 32, first.at)
    await exchange.publish(
        "NL",
        [
            OutboundRecord(
                exchange.topics.audit_checkpoints,
                first.log_id.encode(),
                encode_checkpoint(exchange.catalog, other_root),
            )
        ],
    )

    with pytest.raises(VerificationError) as refused:
        await _sign_checkpoints(exchange)

    assert refused.value.reason == "checkpoint_root_mismatch"
