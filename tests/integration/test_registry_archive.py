"""The running enforcer archives the registry versions it uses; replay judges by them.

A key revoked after the decisions, with its revocation backdated to before
them (a compromise found later), turns right decisions into differences
when replayed against today's registry; against the archived version each
entry names, they replay as decided.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from broker.app.auditing import audit_source, intake_window
from broker.app.settings import Settings
from broker.auditlog.entries import decode_entry
from broker.auditlog.registry_archive import decode_registry_archive
from broker.auditor.replay import ReplayFilter
from broker.auditor.use_cases import replay_audit
from broker.kafka.reader import read_topic
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole, KeyUse, RevocationReason
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from tests.factories import make_report
from tests.integration.conftest import enforcer, nl_be_settings

pytestmark = pytest.mark.integration


async def values(settings: Settings, topic: str) -> list[bytes]:
    assert settings.kafka_bootstrap is not None
    return [
        r.value or b""
        async for r in read_topic(settings.kafka_bootstrap, topic, idle_timeout_s=1.5)
    ]


async def test_decisions_made_before_a_backdated_revocation_replay_as_decided(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path, catalog: SchemaCatalog
) -> None:
    settings = await nl_be_settings(tmp_path, kafka_bootstrap, policies_dir)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(make_report("NL")) for _ in range(2)])
        await exchange.wait_completed(2)
        topics = exchange.topics
    file = RegistryFile(settings.registry_path, keystore=Keystore(settings.keystore_dir))
    used = file.document()
    assert used is not None
    registry = file.current()
    [nl] = [
        k
        for k in registry.records()
        if k.role is KeyRole.AGENCY and k.nation == "NL" and k.use is KeyUse.SIGNING
    ]
    file.save(
        registry.revoking(nl.key_id, since - dt.timedelta(hours=1), RevocationReason.KEY_COMPROMISE)
    )
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)

    report = await replay_audit(
        audit_source(settings),
        ReplayFilter(since, until),
        intake_window(settings),
        keys=Keystore(settings.keystore_dir),  # NL's authority's among them
    )

    archived = [
        decode_registry_archive(catalog, v) for v in await values(settings, topics.registry)
    ]
    named = {
        decode_entry(catalog, v).event.registry_hash for v in await values(settings, topics.audit)
    }
    assert {a.version for a in archived} == {used.version}
    assert named == {a.content_hash for a in archived}
    assert report.replayed, "nothing was replayed"
    assert report.ok, [(r.finding, r.differences) for r in report.findings]
