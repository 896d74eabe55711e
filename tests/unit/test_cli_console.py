"""``ixb console``: its user commands, and its refusal to listen beyond loopback."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.cli.main import app
from broker.console.app import require_loopback
from broker.errors import ConfigurationError

PASSWORD = "a long enough password"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IXB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_users_are_added_listed_without_hashes_and_removed(home: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "console",
            "user",
            "add",
            "be-analyst",
            "--role",
            "analyst",
            "--nation",
            "be",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    path = home / "console" / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = runner.invoke(app, ["console", "user", "list", "--json"])
    assert [json.loads(line) for line in listed.output.splitlines()] == [
        {"name": "be-analyst", "role": "analyst", "nation": "BE"}
    ]
    assert "scrypt" not in listed.output
    assert runner.invoke(app, ["console", "user", "remove", "be-analyst"]).exit_code == 0
    assert runner.invoke(app, ["console", "user", "remove", "be-analyst"]).exit_code == 1


def test_an_analyst_without_a_nation_is_refused(home: Path) -> None:
    refused = CliRunner().invoke(
        app,
        ["console", "user", "add", "someone", "--role", "analyst", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert refused.exit_code == 2
    assert "acts for a nation" in refused.output


def test_the_console_will_not_listen_beyond_loopback(home: Path) -> None:
    refused = CliRunner().invoke(app, ["console", "--host", "0.0.0.0"])
    assert refused.exit_code == 2
    assert "loopback only" in refused.output


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_addresses_are_accepted(host: str) -> None:
    require_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.org", "::"])
def test_other_addresses_are_refused(host: str) -> None:
    with pytest.raises(ConfigurationError, match="loopback only"):
        require_loopback(host)
