"""The ``ixb`` command line, run as operators run it: the console script in subprocesses.

Every command gets its settings from ``IXB_*`` variables only, so these tests
also show that configuration is read at the edge and nowhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.app.settings import Settings
from broker.wire.topics import TopicNames
from connectors.json_file import dump_report
from tests.factories import make_report
from tests.integration.conftest import NL_BE_AGREEMENT
from tests.support.kafka import SESSION_TIMEOUT_MS, subprocess_env

pytestmark = pytest.mark.integration

IXB = Path(sys.executable).parent / "ixb"
COMMAND_TIMEOUT_S = 60.0


def _outer_env() -> dict[str, str]:
    """The test run's environment without any ``IXB_*`` setting of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("IXB_")}


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
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        home=tmp_path / "home",
        topic_namespace=f"c{uuid.uuid4().hex[:12]}",
        policies_dir=policies_dir,
        group_id=f"g{uuid.uuid4().hex[:8]}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
        metrics_addr="127.0.0.1:0",  # tests run side by side: no fixed port
    )
    return Cli(subprocess_env(settings))


@pytest.fixture(scope="session")
def keyed_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home where the operator generated, with ``ixb keys generate``, the broker's, NL's and
    BE's signing and sealing keys: once per session (six commands, about 10 s), then copied."""
    home = tmp_path_factory.mktemp("keyed") / "home"
    generating = Cli(subprocess_env(Settings(home=home)))
    for who in (["--broker"], ["--nation", "NL"], ["--nation", "BE"]):
        for use in ([], ["--sealing"]):
            done = generating("keys", "generate", *who, *use)
            assert done.returncode == 0, done.stderr
            assert "registered in" in done.stdout
    return home


@pytest.fixture
def keyed_cli(cli: Cli, keyed_home: Path) -> Cli:
    """``cli`` with a copy of ``keyed_home``'s keys and registry (modes kept: keys stay 0600)."""
    shutil.copytree(keyed_home, cli.home, dirs_exist_ok=True)
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
    assert published.stdout.splitlines() == [
        f"published {report_id} to {keyed_cli.topics.submit('NL')}"
    ]

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
    [line] = [line for line in refused.stderr.splitlines() if report_id in line]
    assert "origin" in line
    assert refused.stdout == ""


def test_agreements_check_accepts_a_valid_policy_directory(cli: Cli, policies_dir: Path) -> None:
    checked = cli("agreements", "check", str(policies_dir))

    assert checked.returncode == 0, checked.stderr
    lines = checked.stdout.splitlines()
    assert (
        f"ok test-nl-be v4: NL-BE test agreement (NL, BE) "
        f"{policies_dir / 'agreements' / 'test-nl-be.yaml'}"
    ) in lines
    assert lines[-1].startswith("bundle sha256:")
    assert len(lines[-1]) == len("bundle sha256:") + 64


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
    [line] = [line for line in checked.stderr.splitlines() if named in line]
    assert line.startswith(f"{broken}:")  # the whole path on the line, unbroken
    assert ": error: " in line


def test_publishing_without_a_configured_kafka_fails_pointing_to_ixb_kafka_bootstrap(
    tmp_path: Path,
) -> None:
    home = tmp_path / "no-kafka-home"
    home.mkdir()
    path, _ = _report_file(tmp_path, "NL")
    cli = Cli({**_outer_env(), "IXB_HOME": str(home)})

    refused = cli("publish", "--as", "NL", str(path))

    assert refused.returncode != 0
    assert "IXB_KAFKA_BOOTSTRAP" in refused.stderr


# --- output for scripts: piped, nothing wraps; --json parses ------------------------


def _deep(directory: Path) -> Path:
    """A directory whose path is far longer than 80 columns."""
    deep = directory / ("long-directory-name-" * 4) / ("and-deeper-still-" * 3)
    deep.mkdir(parents=True)
    return deep


def test_piped_agreements_check_prints_every_long_path_on_one_line(
    cli: Cli, policies_dir: Path, tmp_path: Path
) -> None:
    deep = _deep(tmp_path)
    shutil.copytree(policies_dir, deep / "policies")
    agreements = deep / "policies" / "agreements"
    first = agreements / "overlap-first-with-a-rather-long-agreement-file-name.yaml"
    first.write_text(NL_BE_AGREEMENT.replace("id: test-nl-be", "id: overlap-first"))
    (agreements / "broken-one.yaml").write_text("id: [\n")
    (agreements / "broken-two.yaml").write_text(NL_BE_AGREEMENT.replace("TLP:AMBER", "TLP:NONE"))

    broken = cli("agreements", "check", str(deep / "policies"))

    assert broken.returncode == 2
    lines = broken.stderr.splitlines()
    assert sum(line.startswith(f"{agreements / 'broken-one.yaml'}:") for line in lines) == 1
    assert sum(line.startswith(f"{agreements / 'broken-two.yaml'}:") for line in lines) == 1
    assert "\x1b[" not in broken.stderr  # no colour into a pipe

    (agreements / "broken-one.yaml").unlink()
    (agreements / "broken-two.yaml").unlink()
    checked = cli("agreements", "check", str(deep / "policies"))

    assert checked.returncode == 0, checked.stderr
    [overlap] = [line for line in checked.stdout.splitlines() if "both cover" in line]
    assert overlap.startswith(f"{first} + {agreements / 'test-nl-be.yaml'}: warning: ")
    assert overlap.endswith("on the same terms: overlap-first authorises them (first by id)")


def test_agreements_check_as_json_is_one_parseable_document(cli: Cli, policies_dir: Path) -> None:
    checked = cli("agreements", "check", "--json", str(policies_dir))

    assert checked.returncode == 0, checked.stderr
    [document] = [json.loads(line) for line in checked.stdout.splitlines()]
    assert document["ok"] is True
    assert [a["id"] for a in document["agreements"]] == ["test-nl-be"]
    assert document["findings"] == []


def test_keys_list_as_json_gives_every_key_once(keyed_cli: Cli) -> None:
    listed = keyed_cli("keys", "list", "--json")

    assert listed.returncode == 0, listed.stderr
    documents = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted((d["role"], d["nation"], d["algorithm"]) for d in documents) == [
        ("agency", "BE", "ed25519"),
        ("agency", "BE", "x25519"),
        ("agency", "NL", "ed25519"),
        ("agency", "NL", "x25519"),
        ("broker", None, "ed25519"),
        ("broker", None, "x25519"),
        ("governance", None, "ed25519"),
    ]


def test_every_command_that_prints_data_gives_json_lines_and_plain_unbroken_lines(
    keyed_cli: Cli, tmp_path: Path
) -> None:
    path, report_id = _report_file(tmp_path, "NL")
    published = keyed_cli("publish", "--as", "NL", "--json", str(path))
    assert published.returncode == 0, published.stderr
    assert [json.loads(line) for line in published.stdout.splitlines()] == [
        {"report_id": report_id, "topic": keyed_cli.topics.submit("NL")}
    ]
    enforcer = keyed_cli.start("run", log_dir=tmp_path)
    try:
        json.loads(_wait_for_first_delivery(keyed_cli, "BE", enforcer))
    finally:
        enforcer.send_signal(signal.SIGTERM)
        enforcer.wait(timeout=15)

    plain = keyed_cli("subscribe", "--nation", "BE", "--idle-timeout", "1")
    assert plain.returncode == 0, plain.stderr
    [head] = [line for line in plain.stdout.splitlines() if f"id {report_id}" in line]
    assert head.startswith("smuggling TLP:AMBER H1 from NL ")
    assert "\x1b[" not in plain.stdout

    rejected = keyed_cli("rejected", "--nation", "NL", "--json", "--idle-timeout", "1")
    assert rejected.returncode == 0, rejected.stderr
    assert [json.loads(line) for line in rejected.stdout.splitlines()] == []

    signed = keyed_cli("audit", "checkpoint", "--json")
    assert signed.returncode == 0, signed.stderr
    checkpoints = [json.loads(line) for line in signed.stdout.splitlines()]
    assert checkpoints
    assert all(len(c["root_hash"]) == 64 for c in checkpoints)

    verified = keyed_cli("audit", "verify", "--json")
    assert verified.returncode == 0, verified.stdout
    logs = [json.loads(line) for line in verified.stdout.splitlines()]
    assert {log["log_id"] for log in logs} == {c["log_id"] for c in checkpoints}
    assert all(log["ok"] and log["problem"] is None for log in logs)
    assert sum(log["entries"] for log in logs) >= 1
