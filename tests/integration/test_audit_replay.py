"""``ixb audit replay`` against a real enforcer's log, across an agreement change."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.app.auditing import audit_source, intake_window
from broker.app.settings import Settings
from broker.auditor.replay import ReplayFilter
from broker.auditor.use_cases import replay_audit
from broker.cli.main import app
from broker.kafka.reader import read_topic
from broker.policy.archive import decode_archive
from broker.policy.bundle import load_bundle
from broker.policy.source import request_reload
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from tests.factories import make_report
from tests.integration.conftest import enforcer
from tests.integration.rules_support import RULES, rules_settings, write_agreement

pytestmark = pytest.mark.integration


@pytest.fixture
async def settings(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> Settings:
    return await rules_settings(tmp_path, kafka_bootstrap, policies_dir)


def _env(settings: Settings) -> dict[str, str]:
    """Overlaid on this process's environment by CliRunner: the settings' IXB_ variables."""
    assert settings.kafka_bootstrap is not None
    return settings.environment({})


async def test_a_replay_across_an_agreement_change_decides_each_side_with_its_own_bundle(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    before, after = make_report("NL"), make_report("NL")
    v1 = load_bundle(settings.policies_dir, catalog).content_hash
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(before)])
        await exchange.wait_completed(1)
        write_agreement(
            settings.policies_dir,
            version=2,
            rules=RULES + "  smuggling:\n    - {field: summary, action: redact}\n",
        )
        v2 = load_bundle(settings.policies_dir, catalog).content_hash
        request_reload(settings.reload_request_file, v2)
        await asyncio.sleep(0.5)
        await exchange.publish("NL", [exchange.seal(after)])
        await exchange.wait_completed(2)
        archives = [
            r.value
            async for r in read_topic(exchange.bootstrap, exchange.topics.bundles, idle_timeout_s=2)
        ]
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)

    report = await replay_audit(
        audit_source(settings),
        ReplayFilter(since, until),
        intake_window(settings),
        keys=Keystore(settings.keystore_dir),
    )
    cli = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["audit", "replay", "--since", since.isoformat(), "--until", until.isoformat(), "--json"],
        env=_env(settings),
    )

    assert v1 != v2
    assert {decode_archive(catalog, a or b"").content_hash for a in archives} == {v1, v2}
    assert report.ok, report.findings
    assert sorted((r.report_id, r.recipient, r.bundle_hash) for r in report.replayed) == sorted(
        [
            (str(before.report_id), "BE", v1),
            (str(before.report_id), "DE", v1),
            (str(after.report_id), "BE", v2),
            (str(after.report_id), "DE", v2),
        ]
    )
    versions = {r.report_id: r.replayed.agreement_version for r in report.replayed if r.replayed}
    assert versions == {str(before.report_id): 1, str(after.report_id): 2}
    after_view = {r.received for r in report.replayed if r.report_id == str(after.report_id)}
    assert all(v is not None and "summary" in v.withheld for v in after_view)
    assert cli.exit_code == 0, cli.output
    document = json.loads(cli.output)
    assert (document["replayed"], document["findings"]) == (4, 0)
    assert document["bundles"] == {v1: 2, v2: 2}
    assert "Adrian Varga" not in cli.output


async def test_an_entry_the_log_holds_twice_is_replayed_once_and_the_repeat_counted(
    settings: Settings,
) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(make_report("NL"))])
        await exchange.wait_completed(1)
        audit = exchange.topics.audit
        [first, *_] = [r async for r in read_topic(exchange.bootstrap, audit, idle_timeout_s=2)]
        assert first.value is not None
        # The producer re-sending an entry whose acknowledgement was lost.
        await exchange.publish("NL", [OutboundRecord(audit, first.key, first.value)])
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)

    report = await replay_audit(
        audit_source(settings),
        ReplayFilter(since, until),
        intake_window(settings),
        keys=Keystore(settings.keystore_dir),
    )

    assert report.ok, report.findings
    assert sorted(r.recipient or "" for r in report.replayed) == ["BE", "DE"]
    assert report.skipped.get("repeated_entry") == 1


async def test_a_nations_authority_replays_its_own_reports_from_a_home_holding_only_its_key(
    settings: Settings, tmp_path: Path
) -> None:
    """Issue 17 item 5: NL's data-protection authority replays NL's reports, and only those."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(make_report("NL"))])
        await exchange.publish("BE", [exchange.seal(make_report("BE"))])
        await exchange.wait_completed(2)
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    authority = tmp_path / "nl-authority"  # what NL's authority holds: the registry and its key
    (authority / "keys").mkdir(parents=True)
    shutil.copy(settings.registry_path, authority / "registry.json")
    registry = RegistryFile(settings.registry_path).document()
    assert registry is not None  # pinned, as `ixb keys export --anchor` hands it to partners
    (authority / "registry.json.anchor.json").write_text(registry.trust().model_dump_json())
    [own_key] = (settings.home / "keys").glob("auditor-NL-seal-*.pem")
    shutil.copy(own_key, authority / "keys" / own_key.name)

    cli = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["audit", "replay", "--since", since.isoformat(), "--until", until.isoformat(), "--json"],
        env={**_env(settings), "IXB_HOME": str(authority)},
    )

    assert cli.exit_code == 0, cli.output
    document = json.loads(cli.output)
    assert document["findings"] == 0
    assert {e["origin"] for e in document["entries"]} == {"NL"}
    assert document["replayed"] == 2, "NL's report, decided for BE and for DE"
    assert document["skipped"] == {"sealed_for_another_authority": 2}, "BE's, for NL and DE"
