"""ixb publish and subscribe with --format, and ixb taxii serve, as operators run them."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from pymisp import MISPEvent
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Server

from tests.integration.test_cli import (  # noqa: F401 - the fixtures these tests share
    Cli,
    cli,
    keyed_cli,
    keyed_home,
)

pytestmark = pytest.mark.integration

PARTNER_BUNDLE = Path(__file__).resolve().parents[1] / "data" / "stix" / "partner-report.json"
ADAPTER_DEFAULTS = ["--handling-code", "H1", "--grading", "B3", "--report-type", "document_fraud"]


def _first_line(ixb: Cli, *args: str) -> str:
    """Poll ``ixb subscribe`` until it prints a line; give up after about 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = ixb("subscribe", *args, "--idle-timeout", "1")
        assert shown.returncode == 0, shown.stderr
        lines = [line for line in shown.stdout.splitlines() if line.strip()]
        if lines:
            return lines[0]
    raise AssertionError(f"nothing from subscribe {args} within 30 s")


def _listening_url(log: Path) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(r"(https?://\S+/taxii2/)", log.read_text() if log.exists() else "")
        if found:
            return found[1]
        time.sleep(0.2)
    raise AssertionError("ixb taxii serve did not say where it listens")


def _stop(process: Any) -> None:
    process.terminate()
    try:
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def test_a_partners_stix_bundle_is_published_and_reaches_the_partner_in_every_format(
    keyed_cli: Cli,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    published = keyed_cli(
        "publish", "--as", "NL", "--format", "stix", *ADAPTER_DEFAULTS, str(PARTNER_BUNDLE)
    )
    assert published.returncode == 0, published.stderr
    enforcer = keyed_cli.start("run", log_dir=tmp_path)
    try:
        bundle = json.loads(_first_line(keyed_cli, "--nation", "BE", "--format", "stix"))
        event_line = _first_line(keyed_cli, "--nation", "BE", "--format", "misp")
        for nation in ("NL", "BE"):
            added = keyed_cli("taxii", "add-user", nation)
            assert added.returncode == 0, added.stderr
        secret = added.stdout.strip().splitlines()[-1]
        serve = ("taxii", "serve", "--port", "0")
        server = keyed_cli.start(*serve, log_dir=tmp_path)
        try:
            url = _listening_url(tmp_path / f"{'-'.join(serve)}.stdout")
            [collection] = Server(url, user="be", password=secret).api_roots[0].collections
            deadline = time.monotonic() + 20
            served: list[dict[str, Any]] = []
            while not served and time.monotonic() < deadline:
                served = collection.get_objects(type="report").get("objects", [])
                time.sleep(0.3)
        finally:
            _stop(server)
    finally:
        _stop(enforcer)

    result = validate_instance(bundle, ValidationOptions(version="2.1"))
    assert result.errors == []
    [report] = [o for o in bundle["objects"] if o["type"] == "report"]
    assert report["name"] == "Forged residence permits offered through a messaging channel"
    event = MISPEvent()
    event.load(json.loads(event_line))
    assert event.info == report["name"]
    assert [o["id"] for o in served] == [report["id"]]


def test_a_bundle_with_something_ixb_cannot_keep_is_refused_whole_and_named(
    keyed_cli: Cli,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    bundle = json.loads(PARTNER_BUNDLE.read_text())
    [report] = [o for o in bundle["objects"] if o["type"] == "report"]
    report["labels"] = ["forgery"]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    refused = keyed_cli("publish", "--as", "NL", "--format", "stix", *ADAPTER_DEFAULTS, str(path))
    assert refused.returncode == 2
    message = refused.stderr.replace("\n", "")
    assert report["id"] in message
    assert "'labels'" in message
    assert "forgery" not in message
    dropped = keyed_cli(
        "publish",
        "--as",
        "NL",
        "--format",
        "stix",
        *ADAPTER_DEFAULTS,
        "--ignore",
        "labels",
        str(path),
    )
    assert dropped.returncode == 0, dropped.stderr
