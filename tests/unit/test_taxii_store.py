"""The TAXII server's store and its authentication, without a network."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.app.settings import Settings
from broker.cli.main import app
from broker.cli.taxii import store_file
from broker.errors import ConfigurationError
from connectors.taxii.auth import Credentials, UserFile, add_user
from connectors.taxii.server import collection_id
from connectors.taxii.store import Query, Store

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def sdo(n: int, modified: str = "2026-12-01T10:00:00.000Z") -> dict[str, str]:
    return {
        "type": "incident",
        "spec_version": "2.1",
        "id": f"incident--{n:08d}-0000-4000-8000-000000000000",
        "created": "2026-12-01T10:00:00.000Z",
        "modified": modified,
        "name": f"incident {n}",
    }


def basic(user: str, secret: str) -> Credentials:
    return Credentials("Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode())


def test_a_delivery_is_added_once_however_often_it_is_offered(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    assert store.add_delivery("c", "d1", 0, [sdo(1), sdo(2)], now=T0) == 2
    assert store.add_delivery("c", "d1", 0, [sdo(1), sdo(2)], now=T0) == 0
    store.close()
    reopened = Store(tmp_path / "s.sqlite3")
    assert reopened.has_delivery("c", "d1")
    assert reopened.add_delivery("c", "d1", 0, [sdo(1)], now=T0) == 0
    assert reopened.count("c") == 2


def test_date_added_strictly_increases_even_when_the_clock_goes_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.add_delivery("c", "d1", 0, [sdo(1), sdo(2)], now=T0)
    store.add_delivery("c", "d2", 1, [sdo(3)], now=T0 - dt.timedelta(hours=1))
    rows, more = store.query("c", Query())
    stamps = [r.date_added for r in rows]
    assert stamps == sorted(set(stamps))
    assert more is False


def test_the_same_object_version_from_two_deliveries_is_stored_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.add_delivery("c", "d1", 0, [sdo(1)], now=T0)
    assert store.add_delivery("c", "d2", 1, [sdo(1), sdo(2)], now=T0) == 1


def test_versions_filter_by_first_last_all_and_by_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.add_delivery("c", "d1", 0, [sdo(1, "2026-12-01T10:00:00.000Z")], now=T0)
    store.add_delivery("c", "d2", 1, [sdo(1, "2026-12-01T11:00:00Z")], now=T0)

    def versions(*wanted: str) -> list[str]:
        return [r.version for r in store.query("c", Query(versions=wanted))[0]]

    assert versions("last") == ["2026-12-01T11:00:00Z"]
    assert versions("first") == ["2026-12-01T10:00:00.000Z"]
    assert versions("all") == ["2026-12-01T10:00:00.000Z", "2026-12-01T11:00:00Z"]
    assert versions("2026-12-01T10:00:00.000000Z") == ["2026-12-01T10:00:00.000Z"]


def test_a_page_says_whether_more_follow_and_the_cursor_continues_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.add_delivery("c", "d1", 0, [sdo(n) for n in range(5)], now=T0)
    first, more = store.query("c", Query(limit=3))
    rest, more_after = store.query("c", Query(limit=3, after_seq=first[-1].seq))
    assert (len(first), more, len(rest), more_after) == (3, True, 2, False)


def test_collections_do_not_see_each_others_objects(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.add_delivery("nl", "d1", 0, [sdo(1)], now=T0)
    assert store.query("be", Query())[0] == []


def test_a_user_authenticates_by_basic_or_bearer_and_reads_only_its_nation(
    tmp_path: Path,
) -> None:
    users = tmp_path / "users.json"
    nl_secret = add_user(users, "nl", "NL")
    be_secret = add_user(users, "be-analyst", "BE")
    file = UserFile(users)
    nl = file.authenticate(basic("nl", nl_secret))
    assert nl is not None
    assert nl.nations == {"NL"}
    be = file.authenticate(Credentials(f"Bearer {be_secret}"))
    assert be is not None
    assert (be.name, be.nations) == ("be-analyst", frozenset({"BE"}))
    assert file.authenticate(basic("nl", be_secret)) is None
    assert file.authenticate(Credentials("Basic !!!")) is None
    assert file.authenticate(Credentials(None)) is None
    assert nl_secret not in users.read_text()
    assert users.stat().st_mode & 0o077 == 0


def test_one_nation_has_one_user_and_a_malformed_file_is_refused(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    add_user(users, "nl", "NL")
    with pytest.raises(ConfigurationError, match="already has"):
        add_user(users, "nl-2", "NL")
    users.write_text(json.dumps({"nl": {"nation": "Netherlands", "secret_sha256": "00"}}))
    with pytest.raises(ConfigurationError, match="nation"):
        UserFile(users)


def test_problems_are_kept_once_per_offset_and_listed_by_the_cli(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    store = Store(store_file(settings))
    store.add_problem(collection_id("BE"), 7, "unknown_key", "no key BE-1 in the registry")
    store.add_problem(collection_id("BE"), 7, "unknown_key", "no key BE-1 in the registry")
    store.add_problem(collection_id("NL"), 3, "stix_invalid", "report--x: SchemaError")
    store.close()
    shown = CliRunner().invoke(app, ["taxii", "problems", "BE"], env={"IXB_HOME": str(tmp_path)})
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == ["7\tunknown_key\tno key BE-1 in the registry"]
