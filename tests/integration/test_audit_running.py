"""The decision log as the running broker keeps it: releases, periodic checkpoints, receipts.

Each test runs real enforcers (with their embargo releaser and checkpoint
task) against the session's broker, with checkpoints due every half second,
and never calls ``ixb audit checkpoint``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from broker.app.auditing import audit_source
from broker.app.settings import Settings
from broker.auditlog.checkpoints import Checkpoint, checkpoint_verifier, decode_checkpoint
from broker.auditlog.entries import AuditEntry, Outcome, decode_entry
from broker.auditlog.receipts import receipt_from_json, receipt_to_json, verify_receipt
from broker.auditor.use_cases import issue_receipt, verify_audit
from broker.cli.audit import audit_app
from broker.kafka.admin import TopicAdmin
from broker.kafka.reader import read_topic
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from broker.wire.topics import TopicNames
from tests.factories import make_report
from tests.integration.conftest import enforcer
from tests.integration.rules_support import (
    RULES,
    feed_until,
    rules_settings,
    verified,
    write_agreement,
)

pytestmark = pytest.mark.integration

WAIT_S = 30.0
CATALOG = SchemaCatalog.load()


@pytest.fixture
async def settings(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> Settings:
    settings = await rules_settings(tmp_path, kafka_bootstrap, policies_dir)
    return settings.model_copy(update={"audit_checkpoint_interval_s": 0.5})


async def _read(settings: Settings, topic: str) -> list[bytes]:
    assert settings.kafka_bootstrap is not None
    return [
        r.value or b""
        async for r in read_topic(settings.kafka_bootstrap, topic, idle_timeout_s=1.5)
    ]


async def _entries(settings: Settings) -> list[AuditEntry]:
    topics = TopicNames(settings.topic_namespace)
    return [decode_entry(CATALOG, v) for v in await _read(settings, topics.audit)]


async def _checkpoints(settings: Settings) -> list[Checkpoint]:
    topics = TopicNames(settings.topic_namespace)
    return [decode_checkpoint(CATALOG, v) for v in await _read(settings, topics.audit_checkpoints)]


async def _until_signed(settings: Settings, entries: int) -> list[Checkpoint]:
    """Wait until the running broker's checkpoints cover ``entries`` entries in all."""
    deadline = time.monotonic() + WAIT_S
    while True:
        checkpoints = await _checkpoints(settings)
        largest: dict[str, int] = defaultdict(int)
        for c in checkpoints:
            largest[c.log_id] = max(largest[c.log_id], c.tree_size)
        if sum(largest.values()) >= entries or time.monotonic() > deadline:
            return checkpoints
        await asyncio.sleep(0.5)


async def test_an_embargoed_delivery_is_logged_held_then_released_with_the_same_digest(
    settings: Settings,
) -> None:
    report = make_report("NL", report_type="terrorism", observed_at=dt.datetime.now(dt.UTC))
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(report)])
        await exchange.wait_completed(1)
        [delivery] = await feed_until(exchange, "BE", 1, timeout_s=WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            entries = await _entries(settings)
            if sum(e.event.outcome is Outcome.RELEASED for e in entries) == 2:
                break
            await asyncio.sleep(0.5)
    reports, _ = await verify_audit(audit_source(settings))

    to_be = [e for e in entries if e.event.recipient == "BE"]
    assert sorted(e.event.outcome for e in to_be) == [Outcome.HELD, Outcome.RELEASED]
    held, released = sorted(to_be, key=lambda e: e.event.outcome != Outcome.HELD)
    assert released.event.delivery_id == held.event.delivery_id == delivery.delivery_id
    assert released.event.delivery_sha256 == held.event.delivery_sha256
    assert released.event.agreement_id == "rules-nl-be"
    assert released.event.policy_bundle_hash == held.event.policy_bundle_hash
    # The release names the report and its submission as the held entry does (issue 18).
    assert released.event.report_id == held.event.report_id == str(report.report_id)
    assert released.event.submission == held.event.submission
    assert held.event.submission is not None
    assert held.event.submission.topic == exchange.topics.submit("NL")
    assert released.writer != held.writer  # the releaser keeps a chain of its own
    assert [r.problem for r in reports] == [None] * len(reports)


async def test_a_release_refused_after_an_agreement_change_is_refused_and_logged_with_reasons(
    settings: Settings,
) -> None:
    report = make_report("NL", report_type="terrorism", observed_at=dt.datetime.now(dt.UTC))
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(report)])
        await exchange.wait_completed(1)
        # The parties tighten the agreement during the embargo: names now redacted.
        stricter = RULES.replace(
            '{field: "subjects[].full_name", action: pseudonymise}',
            '{field: "subjects[].full_name", action: redact}',
        )
        write_agreement(settings.policies_dir, version=2, rules=stricter)
        deadline = time.monotonic() + WAIT_S
        refused: list[AuditEntry] = []
        refusals: list[dict[str, object]] = []
        while (len(refused) < 2 or len(refusals) < 2) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            entries = await _entries(settings)
            refused = [e for e in entries if e.event.outcome is Outcome.RELEASE_REFUSED]
            refusals = await exchange.rejections("NL")
        assert verified(await exchange.feed("BE")) == []
    reports, _ = await verify_audit(audit_source(settings))

    # Told to the origin on its rejected topic ...
    assert [r["reason"] for r in refusals] == ["embargo_release_refused"] * 2
    assert {r["stage"] for r in refusals} == {"embargo"}
    assert all("agreement_or_rules_changed" in str(r["detail"]) for r in refusals)
    # ... and in the decision log, against the digest that was held.
    assert sorted(e.event.recipient or "" for e in refused) == ["BE", "DE"]
    assert {e.event.reasons for e in refused} == {("agreement_or_rules_changed",)}
    held = {e.event.delivery_id: e for e in entries if e.event.outcome is Outcome.HELD}
    for entry in refused:
        assert entry.event.delivery_sha256 == held[entry.event.delivery_id].event.delivery_sha256
        assert entry.event.report_id == str(report.report_id)
        assert entry.event.submission == held[entry.event.delivery_id].event.submission
    assert not [e for e in entries if e.event.outcome is Outcome.RELEASED]
    assert [r.problem for r in reports] == [None] * len(reports)


async def test_the_running_broker_checkpoints_the_log_and_carries_on_consistently_after_a_restart(
    settings: Settings,
) -> None:
    # One partition, so that both processes' writers append to the same log.
    assert settings.kafka_bootstrap is not None
    admin = TopicAdmin(settings.kafka_bootstrap, partitions=1)
    await admin.start()
    await admin.ensure([TopicNames(settings.topic_namespace).audit])
    await admin.close()
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(make_report("NL"))])
        await exchange.wait_completed(1)
        before = await _until_signed(settings, 2)  # delivered to BE and to DE

    async with enforcer(settings) as restarted:
        await restarted.publish("NL", [restarted.seal(make_report("NL"))])
        await restarted.wait_completed(1)
        after = await _until_signed(settings, 4)
    [report], logs = await verify_audit(audit_source(settings))

    assert max(c.tree_size for c in before) == 2
    assert [len(records) for records in logs.values()] == [4]
    assert max(c.tree_size for c in after) == 4
    assert report.problem is None
    assert report.consistency_steps == report.checkpoints - 1  # each proven from the last
    assert report.checkpoints == len(after)


async def test_a_delivery_receipt_issued_from_the_running_log_verifies_offline(
    settings: Settings, tmp_path: Path
) -> None:
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(make_report("NL"))])
        await exchange.wait_completed(1)
        [delivery] = await feed_until(exchange, "BE", 1, timeout_s=WAIT_S)
        await _until_signed(settings, 2)

    issued = await issue_receipt(audit_source(settings), delivery.delivery_id)
    held = receipt_from_json(receipt_to_json(issued))  # what the recipient keeps

    assert held.entry is not None
    verify_receipt(held, None, checkpoint_verifier(RegistryFile(settings.registry_path).current()))
    entry = decode_entry(CATALOG, held.entry)
    assert (entry.event.outcome, entry.event.recipient) == (Outcome.DELIVERED, "BE")
    assert entry.event.delivery_id == delivery.delivery_id

    # The same through the command line: written by one command, checked by another.
    path = tmp_path / "receipt.json"
    wrote = await _ixb(
        settings, "receipt", "--delivery-id", delivery.delivery_id, "--out", str(path)
    )
    checked = await _ixb(settings, "check-receipt", str(path))
    assert wrote.exit_code == 0, wrote.output
    assert checked.exit_code == 0, checked.output
    assert f"delivered: NL -> BE, delivery {delivery.delivery_id}" in checked.output


async def _ixb(settings: Settings, *args: str) -> Result:
    """``ixb audit ...`` under ``settings``, in a thread: the command runs its own loop."""
    env = {**settings.environment({}), "COLUMNS": "300"}
    return await asyncio.to_thread(CliRunner().invoke, audit_app, list(args), env=env)
