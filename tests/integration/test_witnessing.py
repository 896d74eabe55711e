"""Partners' witnesses over HTTP cosign the running broker's checkpoints; verify counts them.

Real parts throughout: the enforcer on the session's broker, two witnesses
served by ixb's tlog-witness HTTP server (and one ``ixb witness`` process),
the HTTP client the broker and the auditor use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from broker.app.auditing import audit_source
from broker.app.settings import Settings
from broker.app.witnessing import build_witness, witness_key, witness_vkey
from broker.auditlog.checkpoints import decode_checkpoint
from broker.auditlog.log_notes import origin_of
from broker.auditlog.witness_client import WitnessClient
from broker.auditlog.witnessed import WitnessKeys
from broker.auditor.use_cases import Witnessing, verify_audit
from broker.cli.audit import audit_app
from broker.kafka.reader import read_topic
from broker.parties.witness_http import WitnessServer
from broker.trust.keystore import Keystore
from broker.trust.note import parse_note
from broker.trust.records import KeyRole
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from broker.wire.topics import TopicNames
from tests.factories import make_report
from tests.integration.conftest import enforcer, nl_be_settings

pytestmark = pytest.mark.integration

WAIT_S = 30.0
CATALOG = SchemaCatalog.load()


def provision_witnesses(settings: Settings, nations: list[str]) -> None:
    keystore = Keystore(settings.keystore_dir)
    registry_file = RegistryFile(settings.registry_path, keystore=keystore)
    registry = registry_file.current()
    for nation in nations:
        record, _ = keystore.generate(role=KeyRole.WITNESS, nation=nation)
        registry = registry.with_key(record)
    registry_file.save(registry)


@contextlib.asynccontextmanager
async def serving_witnesses(settings: Settings, nations: list[str]) -> AsyncIterator[list[str]]:
    servers = [WitnessServer(build_witness(settings, n), "127.0.0.1", 0) for n in nations]
    for server in servers:
        await server.start()
    try:
        yield [f"http://127.0.0.1:{s.address[1]}" for s in servers]
    finally:
        for server in servers:
            await server.close()


async def cosigners_on_topic(settings: Settings) -> list[tuple[int, set[str]]]:
    assert settings.kafka_bootstrap is not None
    keys = WitnessKeys(RegistryFile(settings.registry_path).current())
    topic = TopicNames(settings.topic_namespace).audit_checkpoints
    found = []
    async for record in read_topic(settings.kafka_bootstrap, topic, idle_timeout_s=1.0):
        checkpoint = decode_checkpoint(CATALOG, record.value or b"")
        found.append((checkpoint.tree_size, set(keys.cosigners(parse_note(checkpoint.note)))))
    return found


def env(settings: Settings, **extra: str) -> dict[str, str]:
    assert settings.kafka_bootstrap is not None
    return {
        "IXB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "IXB_HOME": str(settings.home),
        "IXB_TOPIC_NAMESPACE": settings.topic_namespace,
        "IXB_POLICIES_DIR": str(settings.policies_dir),
        **extra,
    }


async def cli(settings: Settings, *args: str, **extra: str) -> Result:
    return await asyncio.to_thread(
        CliRunner().invoke, audit_app, list(args), env=env(settings, **extra)
    )


async def test_the_running_broker_gets_its_checkpoints_cosigned_and_verify_counts_a_quorum(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> None:
    settings = await nl_be_settings(tmp_path, kafka_bootstrap, policies_dir)
    provision_witnesses(settings, ["NL", "BE"])
    async with serving_witnesses(settings, ["NL", "BE"]) as urls:
        running = settings.model_copy(
            update={"witnesses": ",".join(urls), "audit_checkpoint_interval_s": 0.5}
        )
        async with enforcer(running) as exchange:
            await exchange.publish("NL", [exchange.seal(make_report("NL")) for _ in range(3)])
            await exchange.wait_completed(3)
            deadline = time.monotonic() + WAIT_S
            cosigned: list[int] = []
            while not cosigned and time.monotonic() < deadline:
                found = await cosigners_on_topic(running)
                cosigned = [size for size, nations in found if nations == {"NL", "BE"}]
                await asyncio.sleep(0.5)
            assert cosigned, "no checkpoint was cosigned by both witnesses"
        witnessing = Witnessing(witnesses=[WitnessClient(u) for u in urls], quorum=2)
        [report], _ = await verify_audit(audit_source(running), witnessing)
        asked = [flag for u in urls for flag in ("--witness", u)]
        three = await cli(running, "verify", "--quorum", "3", *asked)
        two = await cli(running, "verify", "--quorum", "2", *asked)
        kept = tmp_path / "kept.note"  # what an auditor keeps of a witness's latest
        latest = await WitnessClient(urls[0]).latest(origin_of(report.log_id))
        assert latest is not None
        kept.write_bytes(latest)
        from_file = await cli(
            running, "verify", "--trusted-checkpoint", str(kept), "--witness", urls[0]
        )

    assert report.ok, report.problem
    assert report.cosigners == ("BE", "NL")
    assert report.witnessed_size == report.entries
    assert report.held == 2  # each witness's latest, fetched from it
    assert two.exit_code == 0, two.output
    assert "witnessed to size" in two.output
    assert "by BE, NL (quorum 2)" in two.output
    assert three.exit_code == 1, three.output
    assert "no_quorum" in three.output
    assert from_file.exit_code == 0, from_file.output
    assert "2 held elsewhere" in from_file.output


async def test_ixb_witness_serves_tlog_witness_and_its_latest_checkpoint(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> None:
    settings = await nl_be_settings(tmp_path, kafka_bootstrap, policies_dir)
    provision_witnesses(settings, ["BE"])
    environment = {k: v for k, v in os.environ.items() if not k.startswith("IXB_")}
    environment.update(env(settings))
    command = [str(Path(sys.executable).parent / "ixb"), "witness", "--nation", "BE"]
    printing = await asyncio.create_subprocess_exec(
        *command, "--vkey", env=environment, stdout=asyncio.subprocess.PIPE
    )
    vkey = (await asyncio.wait_for(printing.communicate(), WAIT_S))[0].decode().strip()
    process = await asyncio.create_subprocess_exec(
        *command, "--listen", "127.0.0.1:0", env=environment, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), WAIT_S)).decode()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match is not None, line
        client = WitnessClient(match.group(1))
        pushing = settings.model_copy(
            update={"witnesses": match.group(1), "audit_checkpoint_interval_s": 0.5}
        )
        async with enforcer(pushing) as exchange:
            await exchange.publish("NL", [exchange.seal(make_report("NL"))])
            await exchange.wait_completed(1)
            origins = [origin_of(f"{exchange.topics.audit}/{p}") for p in range(8)]
            deadline = time.monotonic() + WAIT_S
            latest = None
            while latest is None and time.monotonic() < deadline:
                for origin in origins:
                    latest = latest or await client.latest(origin)
                await asyncio.sleep(0.3)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), WAIT_S)

    assert vkey == witness_vkey(witness_key(settings, "BE"))
    assert latest is not None, "the witness never cosigned"
    note = parse_note(latest)
    keys = WitnessKeys(RegistryFile(settings.registry_path).current())
    assert set(keys.cosigners(note)) == {"BE"}
    assert process.returncode in (0, -15)  # stopped by SIGTERM, as asked
