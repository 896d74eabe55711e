"""The whole flow with every party on its own credentials, none a super user.

The rest of the suite speaks as the operator (a Kafka super user), which
proves nothing about the ACLs. Here the operator only applies the plan
(``ixb acl apply``) and issues credentials (``ixb credentials issue``); the
enforcer runs as ``User:enforcer``, NL's adapter publishes as
``User:NL.agency`` and BE's analyst reads as ``User:BE.analyst``, each an
``ixb`` subprocess with ``--client-config``. The report arrives; BE's
attempt to read NL's feed and to publish in NL's name are refused by Kafka.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from broker.app.settings import Settings
from broker.kafka.embedded.secure import SecureCluster
from tests.integration.conftest import NL_BE_AGREEMENT
from tests.integration.test_cli import Cli, _report_file
from tests.support.kafka import EXTERNAL, SECURED, SESSION_TIMEOUT_MS, subprocess_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        EXTERNAL is not None or not SECURED, reason="needs the session's secured embedded Kafka"
    ),
]


@pytest.fixture
def cli(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path, suite_pki: SecureCluster) -> Cli:
    """The operator's ``ixb``, on a fresh namespace, with the broker's, NL's and BE's keys.

    Signing and sealing keys, as the CLI tests make them.
    """
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        home=tmp_path / "home",
        pki_dir=suite_pki.pki.directory,
        topic_namespace=f"c{uuid.uuid4().hex[:12]}",
        policies_dir=policies_dir,
        group_id=f"g{uuid.uuid4().hex[:8]}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
        metrics_addr="127.0.0.1:0",
    )
    operator = Cli(subprocess_env(settings))
    for who in (["--broker"], ["--nation", "NL"], ["--nation", "BE"]):
        for use in ([], ["--sealing"]):
            done = operator("keys", "generate", *who, *use)
            assert done.returncode == 0, done.stderr
    return operator


def test_each_party_does_its_part_on_its_own_credentials_and_nothing_else(
    cli: Cli, tmp_path: Path
) -> None:
    applied = cli("acl", "apply")  # as the operator: the session's IXB_CLIENT_CONFIG
    assert applied.returncode == 0, applied.stderr
    credentials = {}
    for name, who in {
        "enforcer": ["--role", "enforcer"],
        "nl-agency": ["--role", "agency", "--nation", "NL"],
        "be-analyst": ["--role", "analyst", "--nation", "BE"],
    }.items():
        path = tmp_path / f"{name}.properties"
        issued = cli("credentials", "issue", *who, "--out", str(path))
        assert issued.returncode == 0, issued.stderr
        credentials[name] = str(path)

    def as_party(name: str) -> Cli:
        return Cli({**cli.env, "IXB_CLIENT_CONFIG": credentials[name]})

    enforcer = as_party("enforcer").start("run", log_dir=tmp_path)
    try:
        report, report_id = _report_file(tmp_path, "NL")
        published = as_party("nl-agency")("publish", "--as", "NL", str(report))
        assert published.returncode == 0, published.stderr

        analyst = as_party("be-analyst")
        deadline = time.monotonic() + 40
        shown = ""
        while report_id not in shown:
            assert enforcer.poll() is None, (tmp_path / "run.stderr").read_text()[-2000:]
            assert time.monotonic() < deadline, (tmp_path / "run.stderr").read_text()[-2000:]
            done = analyst("subscribe", "--nation", "BE", "--json", "--idle-timeout", "1")
            assert done.returncode == 0, done.stderr
            shown = done.stdout

        refused = analyst("subscribe", "--nation", "NL", "--json", "--idle-timeout", "1")
        assert refused.returncode == 2
        assert "Kafka refused access" in refused.stderr
        assert "TopicAuthorizationFailed" in refused.stderr

        impersonating = analyst("publish", "--as", "NL", str(report))
        assert impersonating.returncode != 0
        assert "AuthorizationFailed" in impersonating.stderr
    finally:
        enforcer.terminate()
        try:
            enforcer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            enforcer.kill()
            enforcer.wait(timeout=5)
