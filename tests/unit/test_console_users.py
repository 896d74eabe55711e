"""The console's interim login: scrypt hashes in a 0600 file, sessions, throttling."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from broker.console.pages.login import _safe_next
from broker.console.sessions import LOCKOUT_S, MAX_FAILURES, LoginThrottle, Sessions
from broker.console.users import PasswordFile, Principal, Role, hash_password, verify_password
from broker.errors import ConfigurationError

BE_ANALYST = Principal("be-analyst", Role.ANALYST, "BE")
PASSWORD = "a long enough password"


def test_a_password_verifies_against_its_scrypt_hash_and_another_does_not() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "!", stored)
    assert hash_password(PASSWORD) != stored  # a fresh salt every time


def test_a_malformed_or_overpriced_hash_never_verifies() -> None:
    good = hash_password(PASSWORD).split("$")
    assert not verify_password(PASSWORD, "plain-text")
    assert not verify_password(PASSWORD, "$".join([*good[:1], str(2**30), *good[2:]]))
    assert not verify_password(PASSWORD, "$".join([*good[:4], "not base64!", good[5]]))


def test_the_user_file_is_written_0600_with_hashes_and_no_password(tmp_path: Path) -> None:
    path = tmp_path / "console" / "users.json"
    PasswordFile(path).add(BE_ANALYST, PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PASSWORD not in path.read_text()
    [user] = json.loads(path.read_text())["users"]
    assert user["role"] == "analyst"
    assert user["nation"] == "BE"
    assert PasswordFile(path).authenticate("be-analyst", PASSWORD) == BE_ANALYST


def test_a_user_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    PasswordFile(path).add(BE_ANALYST, PASSWORD)
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="must be 0600"):
        PasswordFile(path)


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(tmp_path: Path) -> None:
    users = PasswordFile(tmp_path / "users.json")
    users.add(BE_ANALYST, PASSWORD)
    assert users.authenticate("be-analyst", "wrong password") is None
    assert users.authenticate("nl-analyst", PASSWORD) is None


def test_roles_that_act_for_a_nation_name_one_and_the_others_do_not(tmp_path: Path) -> None:
    users = PasswordFile(tmp_path / "users.json")
    with pytest.raises(ConfigurationError, match="acts for a nation"):
        users.add(Principal("x", Role.LIAISON), PASSWORD)
    with pytest.raises(ConfigurationError, match="no single nation"):
        users.add(Principal("y", Role.AUDITOR, "NL"), PASSWORD)
    with pytest.raises(ConfigurationError, match="at least 12"):
        users.add(Principal("z", Role.OPERATOR), "short")
    assert users.principals == []


def test_a_session_ends_when_it_expires_or_is_closed() -> None:
    now = [1000.0]
    sessions = Sessions(ttl_s=60, clock=lambda: now[0])
    session = sessions.open(BE_ANALYST)
    assert sessions.get(session.token) == session
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches("forged")
    now[0] += 61
    assert sessions.get(session.token) is None
    other = sessions.open(BE_ANALYST)
    sessions.close(other.token)
    assert sessions.get(other.token) is None


def test_a_name_is_locked_for_a_while_after_too_many_wrong_passwords() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(MAX_FAILURES - 1):
        throttle.failed("be-analyst")
    assert not throttle.locked("be-analyst")
    throttle.failed("be-analyst")
    assert throttle.locked("be-analyst")
    assert not throttle.locked("nl-analyst")
    now[0] += LOCKOUT_S + 1
    assert not throttle.locked("be-analyst")


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        ("/analyst/BE", "/analyst/BE"),
        ("//elsewhere.example/x", ""),
        ("https://elsewhere.example/", ""),
        ("/\\elsewhere.example", ""),
        (None, ""),
    ],
)
def test_after_login_only_a_path_on_this_console_is_followed(asked: str | None, kept: str) -> None:
    assert _safe_next(asked) == kept
