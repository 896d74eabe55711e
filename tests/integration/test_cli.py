"""The ``ixb`` command line, run as operators run it: the console script in subprocesses.

Every command gets its settings from ``IXB_*`` variables only, so these tests
also show that configuration is read at the edge and nowhere else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.wire.topics import TopicNames
from connectors.json_file import dump_report
from tests.factories import make_report
from tests.integration.conftest import NL_BE_AGREEMENT

pytestmark = pytest.mark.integration

IXB = Path(sys.executable).parent / "ixb"
COMMAND_TIMEOUT_S = 60.0


def _outer_env() -> dict[str, str]:
    """The test run's environment without any ``IXB_*`` setting of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("IXB_")}


def _unwrapped(text: str) -> str:
    """rich wraps long lines at 80 columns off a terminal; keep the words, drop the breaks."""
    return text.replace("\n", "")


@dataclass
class Cli:
    """``ixb`` with a fixed environment: one home, one topic namespace, one broker."""

    env: dict[str, str]

    @property
    def home(self) -> Path:
        return Path(self.env["IXB_HOME"])

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.env.get("IXB_TOPIC_NAMESPACE", ""))

    def __call__(
        self, *args: str, timeout: float = COMMAND_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: PLW1510 - callers assert on the return code
            [str(IXB), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self, *args: str, log_dir: Path) -> subprocess.Popen[bytes]:
        """A long-running command, its output in files (a full pipe would block it)."""
        name = "-".join(args)
        with (
            (log_dir / f"{name}.stdout").open("wb") as stdout,
            (log_dir / f"{name}.stderr").open("wb") as stderr,
        ):
            return subprocess.Popen([str(IXB), *args], env=self.env, stdout=stdout, stderr=stderr)


@pytest.fixture
def cli(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> Cli:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    external = bool(os.environ.get("IXB_KAFKA_BOOTSTRAP"))
    return Cli(
        {
            **_outer_env(),
            "IXB_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "IXB_HOME": str(tmp_path / "home"),
            "IXB_TOPIC_NAMESPACE": f"c{uuid.uuid4().hex[:12]}",
            "IXB_POLICIES_DIR": str(policies_dir),
            "IXB_GROUP_ID": f"g{uuid.uuid4().hex[:8]}",
            # See tests/integration/conftest.make_settings.
            "IXB_CONSUMER_SESSION_TIMEOUT_MS": "6000" if external else "2000",
            "IXB_METRICS_ADDR": "127.0.0.1:0",  # tests run side by side: no fixed port
        }
    )


@pytest.fixture
def keyed_cli(cli: Cli) -> Cli:
    """``cli`` after the operator generated the broker's, NL's and BE's signing and sealing keys."""
    for who in (["--broker"], ["--nation", "NL"], ["--nation", "BE"]):
        for use in ([], ["--sealing"]):
            done = cli("keys", "generate", *who, *use)
            assert done.returncode == 0, done.stderr
            assert "registered in" in done.stdout
    return cli


def _report_file(directory: Path, origin: str) -> tuple[Path, str]:
    report = make_report(origin)
    path = directory / f"report-{origin}.json"
    path.write_text(dump_report(report))
    return path, str(report.report_id)


def _wait_for_first_delivery(cli: Cli, nation: str, enforcer: subprocess.Popen[bytes]) -> str:
    """Poll ``ixb subscribe`` until it prints a delivery; give up after about 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert enforcer.poll() is None, f"ixb run exited early with {enforcer.returncode}"
        shown = cli("subscribe", "--nation", nation, "--json", "--idle-timeout", "1")
        assert shown.returncode == 0, shown.stderr
        lines = [line for line in shown.stdout.splitlines() if line.strip()]
        if lines:
            return lines[0]
    raise AssertionError(f"no delivery for {nation} within 30 s")


def _json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines in ``text`` (aiokafka's own warnings are plain text)."""
    documents: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict):
            documents.append(document)
    return documents


def test_keys_generated_with_the_cli_are_all_listed_in_the_registry(keyed_cli: Cli) -> None:
    listed = keyed_cli("keys", "list")

    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines() if line.strip()]
    assert sorted((row[1], row[2], row[3], row[7]) for row in rows) == [
        ("agency", "BE", "ed25519", "active"),
        ("agency", "BE", "x25519", "active"),  # BE's sealing key: its feed is sealed to it
        ("agency", "NL", "ed25519", "active"),
        ("agency", "NL", "x25519", "active"),
        ("broker", "-", "ed25519", "active"),
        ("broker", "-", "x25519", "active"),
        ("governance", "-", "ed25519", "active"),  # created on first use: it signs the registry
    ]  # the defaults: ed25519 to sign, x25519 to seal


def test_a_report_published_with_the_cli_reaches_the_partner_through_ixb_run_which_stops_on_sigterm(
    keyed_cli: Cli, tmp_path: Path
) -> None:
    path, report_id = _report_file(tmp_path, "NL")
    published = keyed_cli("publish", "--as", "NL", str(path))
    assert published.returncode == 0, published.stderr
    assert f"published {report_id} to {keyed_cli.topics.submit('NL')}" in _unwrapped(
        published.stdout
    )

    enforcer = keyed_cli.start("run", log_dir=tmp_path)
    try:
        delivery = json.loads(_wait_for_first_delivery(keyed_cli, "BE", enforcer))

        enforcer.send_signal(signal.SIGTERM)
        assert enforcer.wait(timeout=15) == 0
    finally:
        if enforcer.poll() is None:
            enforcer.kill()
            enforcer.wait(timeout=5)

    assert delivery["report"]["report_id"] == report_id
    assert delivery["recipient"] == "BE"
    assert delivery["origin"] == "NL"
    assert delivery["agreement"] == {"id": "test-nl-be", "version": 4}
    assert delivery["withheld_fields"] == ["subjects[].travel_documents[].number", "summary"]
    assert delivery["report"]["summary"] is None
    # The enforcer logs JSON lines off a terminal, and says goodbye with its counters.
    events = _json_lines((tmp_path / "run.stderr").read_text())
    assert [e["event"] for e in events if e["event"].startswith("enforcer_")] == [
        "enforcer_started",
        "enforcer_stopped",
    ]
    [stopped] = [e for e in events if e["event"] == "enforcer_stopped"]
    assert stopped["deliveries"] == 1
    assert stopped["withheld"] == {}  # BE is NL's only partner, and no-one else has a key
    [cache] = [e for e in events if e["event"] == "decision_cache"]
    assert (cache["hits"], cache["misses"]) == (0, 1)  # one report, one partner


def test_publishing_a_report_of_another_origin_fails_and_says_why(
    keyed_cli: Cli, tmp_path: Path
) -> None:
    path, report_id = _report_file(tmp_path, "NL")

    refused = keyed_cli("publish", "--as", "BE", str(path))

    assert refused.returncode != 0
    message = _unwrapped(refused.stderr)
    assert "origin" in message
    assert report_id in message
    assert refused.stdout == ""


def test_agreements_check_accepts_a_valid_policy_directory(cli: Cli, policies_dir: Path) -> None:
    checked = cli("agreements", "check", str(policies_dir))

    assert checked.returncode == 0, checked.stderr
    output = _unwrapped(checked.stdout)
    assert "ok test-nl-be v4" in output
    assert "bundle sha256:" in output


BROKEN_AGREEMENTS = {
    "one_way_without_senders": (
        NL_BE_AGREEMENT.replace("id: test-nl-be", "id: broken-one-way")
        + "direction: one_way\nreceivers: [BE]\n",
        "senders",
    ),
    "field_rule_on_an_unknown_field": (
        NL_BE_AGREEMENT.replace("id: test-nl-be", "id: broken-field").replace(
            "subjects[].travel_documents[].number", "subjects[].passport"
        ),
        "subjects[].passport",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_AGREEMENTS))
def test_agreements_check_fails_naming_the_file_of_a_broken_agreement(
    cli: Cli, policies_dir: Path, case: str
) -> None:
    text, named = BROKEN_AGREEMENTS[case]
    broken = policies_dir / "agreements" / f"{case}.yaml"
    broken.write_text(text)

    checked = cli("agreements", "check", str(policies_dir))

    assert checked.returncode == 2
    message = _unwrapped(checked.stderr)
    assert str(broken) in message
    assert named in message


def test_publishing_without_a_configured_kafka_fails_pointing_to_ixb_kafka_bootstrap(
    tmp_path: Path,
) -> None:
    home = tmp_path / "no-kafka-home"
    home.mkdir()
    path, _ = _report_file(tmp_path, "NL")
    cli = Cli({**_outer_env(), "IXB_HOME": str(home)})

    refused = cli("publish", "--as", "NL", str(path))

    assert refused.returncode != 0
    assert "IXB_KAFKA_BOOTSTRAP" in _unwrapped(refused.stderr)
