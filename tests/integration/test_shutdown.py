"""Graceful shutdown: SIGTERM finishes the batch in flight, commits it, and exits 0.

``ixb run`` runs as the operator runs it, a subprocess configured by
``IXB_*`` variables, while an agency keeps publishing faster than it can
keep up, so it is always in the middle of a batch when SIGTERM arrives.
What it committed and what it delivered must then be exactly the same
submissions: a batch delivered but left uncommitted would be delivered again
by the next owner, and a batch committed but not delivered would be lost.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO

import pytest

from bench.kafka import GroupProbe
from broker.app.assembly import open_publisher, provision_keys
from broker.app.settings import Settings
from broker.kafka.admin import TopicAdmin
from broker.kafka.reader import read_topic
from broker.parties.derivations import PartyAgreements
from broker.parties.recipient import VerifiedDelivery, read_feed
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from broker.wire.topics import TopicNames
from tests.factories import make_report
from tests.support.kafka import SESSION_TIMEOUT_MS, subprocess_env

pytestmark = pytest.mark.integration

IXB = Path(sys.executable).parent / "ixb"
EXIT_BOUND_S = 10.0
BURST = 200
AGREEMENT = """
id: test-shutdown
version: 1
title: NL to BE, every smuggling report
purpose: integration tests
parties: [NL, BE]
valid_from: 2020-01-01T00:00:00Z
report_types: [smuggling]
max_marking: TLP:AMBER
field_rules: {}
"""


def _start_enforcer(settings: Settings, output: IO[bytes]) -> subprocess.Popen[bytes]:
    run = settings.model_copy(
        update={
            "metrics_addr": "127.0.0.1:0",  # tests run side by side: no fixed port
            "batch_max_records": BURST,
        }
    )
    return subprocess.Popen(
        [str(IXB), "run"], env=subprocess_env(run), stdout=output, stderr=subprocess.STDOUT
    )


def _stopped_summary(log: Path) -> dict[str, object]:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"enforcer_stopped"' in line:
            event: dict[str, object] = json.loads(line)
            return event
    raise AssertionError(f"no enforcer_stopped event in the log:\n{log.read_text()[-2000:]}")


async def test_sigterm_mid_stream_exits_0_in_bounded_time_having_committed_just_what_it_delivered(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> None:
    (policies_dir / "agreements" / "test-shutdown.yaml").write_text(AGREEMENT)
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        home=tmp_path / "home",
        policies_dir=policies_dir,
        topic_namespace=f"t{uuid.uuid4().hex[:12]}",
        group_id=f"g{uuid.uuid4().hex[:8]}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
    )
    provision_keys(settings, ["NL", "BE"])
    topics = TopicNames(settings.topic_namespace)
    admin = TopicAdmin(kafka_bootstrap, partitions=1)  # one partition: offsets are publish order
    await admin.start()
    await admin.ensure([topics.submit("NL"), topics.submit("BE")])
    await admin.close()
    probe = GroupProbe(kafka_bootstrap, settings.group_id)
    await probe.start()
    submit = await probe.partitions([topics.submit("NL")])
    log = tmp_path / "enforcer.log"
    published = 0
    publishing = True

    async def agency() -> None:
        nonlocal published
        async with open_publisher(settings, kafka_bootstrap, "NL") as publisher:
            while publishing:
                await publisher.publish([make_report("NL") for _ in range(BURST)])
                published += BURST

    with log.open("wb") as output:
        enforcer = _start_enforcer(settings, output)
        feeding = asyncio.create_task(agency())
        try:
            deadline = time.monotonic() + 60
            while await probe.committed_total(submit) < 2 * BURST:
                assert enforcer.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "the enforcer committed nothing in 60 s"
                await asyncio.sleep(0.05)
            enforcer.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            code = await asyncio.to_thread(enforcer.wait, EXIT_BOUND_S)
            exit_s = time.monotonic() - signalled
        finally:
            publishing = False
            await feeding
            if enforcer.poll() is None:
                enforcer.kill()
                enforcer.wait()
    committed = await probe.committed_total(submit)
    await probe.stop()

    assert code == 0
    assert exit_s < EXIT_BOUND_S
    offsets = {
        (r.key or b"").decode(): r.offset
        async for r in read_topic(kafka_bootstrap, topics.submit("NL"), idle_timeout_s=2)
    }
    assert len(offsets) == published
    assert committed < published, "SIGTERM came after the enforcer had caught up"
    registry = RegistryFile(settings.registry_path)
    delivered = [
        item
        async for item in read_feed(
            bootstrap=kafka_bootstrap,
            topics=topics,
            nation="BE",
            catalog=SchemaCatalog.load(),
            registry=registry.current,
            agreements=PartyAgreements.from_directory(settings.policies_dir / "agreements"),
            keys=Keystore(settings.keystore_dir),
            idle_timeout_s=2,
            deduplicate=False,
        )
    ]
    assert all(isinstance(d, VerifiedDelivery) for d in delivered)
    delivered_ids = [str(d.report.report_id) for d in delivered if isinstance(d, VerifiedDelivery)]
    committed_ids = {report_id for report_id, offset in offsets.items() if offset < committed}
    assert set(delivered_ids) == committed_ids
    assert len(delivered_ids) == len(committed_ids), "a single process repeated a delivery"
    summary = _stopped_summary(log)
    assert summary["submissions"] == committed, "processed work was left uncommitted"
