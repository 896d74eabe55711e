"""Tansu, the no-JVM fallback: ``ixb kafka up --engine tansu`` and the commands that use it.

Tansu cannot serve the idempotent producer. ``ixb kafka up`` writes which
engine it runs into the home it shares with the other commands, and they
send without idempotence there: a report published with ``ixb publish``
reaches its partner through ``ixb run``, as on Apache Kafka (test_cli.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from broker.app.settings import Settings
from broker.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS
from tests.integration.conftest import NL_BE_AGREEMENT
from tests.integration.test_cli import Cli, _report_file, _wait_for_first_delivery
from tests.support.kafka import subprocess_env

pytestmark = pytest.mark.integration


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
        raise


def test_on_tansu_a_report_published_with_the_cli_reaches_the_partner_through_ixb_run(
    tmp_path: Path, policies_dir: Path
) -> None:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = Settings(
        client_config=None,  # Tansu has no TLS: not the session's operator credentials
        kafka_engine="tansu",
        home=tmp_path / "home",
        topic_namespace=f"c{uuid.uuid4().hex[:12]}",
        policies_dir=policies_dir,
        group_id=f"g{uuid.uuid4().hex[:8]}",
        consumer_session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS,
        metrics_addr="127.0.0.1:0",
    )
    env = subprocess_env(settings)
    assert "IXB_KAFKA_BOOTSTRAP" not in env  # the commands find Tansu through the home
    cli = Cli(env)
    up = cli.start("kafka", "up", log_dir=tmp_path)
    enforcer = None
    try:
        deadline = time.monotonic() + 30
        while not settings.embedded_bootstrap_file.exists():
            assert up.poll() is None, (tmp_path / "kafka-up.stderr").read_text()
            assert time.monotonic() < deadline, "ixb kafka up wrote no address"
            time.sleep(0.1)
        assert settings.embedded_engine_file.read_text().strip() == "tansu"
        for who in (["--broker"], ["--nation", "NL"], ["--nation", "BE"]):
            for use in ([], ["--sealing"]):
                assert cli("keys", "generate", *who, *use).returncode == 0
        path, report_id = _report_file(tmp_path, "NL")
        published = cli("publish", "--as", "NL", str(path))
        assert published.returncode == 0, published.stderr

        enforcer = cli.start("run", log_dir=tmp_path)
        delivery = json.loads(_wait_for_first_delivery(cli, "BE", enforcer))
        assert _stop(enforcer) == 0
    finally:
        if enforcer is not None:
            _stop(enforcer)
        assert _stop(up) == 0

    assert delivery["report"]["report_id"] == report_id
    assert delivery["recipient"] == "BE"
    assert not settings.embedded_bootstrap_file.exists()
