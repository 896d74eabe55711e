"""The enforcer writes one decision-log entry per outcome; checkpoints sign it; verify checks it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from broker.audit.entries import Outcome, decode_entry
from broker.cli_audit import sign_checkpoints, verify_audit
from broker.transport import OutboundRecord
from tests.factories import make_report
from tests.integration.conftest import Exchange
from tests.support.submissions import tamper_signed_payload

pytestmark = pytest.mark.integration


async def test_every_outcome_is_logged_checkpointed_and_verified_and_a_forged_entry_is_named(
    exchange: Exchange, tmp_path: Path
) -> None:
    good = exchange.seal(make_report("NL"))
    bad = dataclasses.replace(good, value=tamper_signed_payload(exchange.catalog, good.value))
    await exchange.publish("NL", [good, bad])
    await exchange.wait_completed(2)

    signed = await sign_checkpoints(exchange.settings)
    reports, logs = await verify_audit(exchange.settings)

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

    # Someone with write access to the topic appends a copy of the first entry
    # (same key, so the same partition): its writer's chain does not go back.
    [(log_id, records)] = [(k, v) for k, v in logs.items() if v]
    first = decode_entry(exchange.catalog, records[0][1])
    copy = OutboundRecord(exchange.topics.audit, first.writer.encode(), records[0][1])
    await exchange.publish("NL", [copy])
    reports, _ = await verify_audit(exchange.settings)

    [report] = [r for r in reports if r.log_id == log_id]
    assert report.problem is not None
    assert (report.problem.reason, report.problem.offset) == ("sequence_reorder", len(records))
