"""What the TAXII server serves: verified STIX objects per collection, in SQLite.

Why SQLite: the store must survive a restart without serving anything twice
and must never show half a delivery. One SQLite transaction adds every
object of a delivery together with the delivery's id, so after a crash a
delivery is either wholly there or wholly absent (and is added when the
feed is read again), and a delivery id already there is skipped. TAXII's
queries (by id, type, version, time added, a page after a cursor) are plain
SQL over one table; it is in the standard library and needs no server.

``date_added`` is the server's, strictly increasing within a collection
(microseconds, one step per object even within one transaction), so
``added_after`` and the ``next`` cursor are exact: a page boundary never
splits objects sharing a time. An object's version is its ``modified``,
else its ``created``, else (an SCO) the time it was first added; a second
copy of an object version already held is not stored again.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    version TEXT NOT NULL,
    version_key TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    date_added TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (collection, id, version_key)
);
CREATE INDEX IF NOT EXISTS objects_by_time ON objects (collection, date_added);
CREATE TABLE IF NOT EXISTS deliveries (
    collection TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    feed_offset INTEGER NOT NULL,
    date_added TEXT NOT NULL,
    PRIMARY KEY (collection, delivery_id)
);
CREATE TABLE IF NOT EXISTS problems (
    collection TEXT NOT NULL,
    feed_offset INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (collection, feed_offset)
);
"""


def taxii_time(value: dt.datetime) -> str:
    """TAXII 2.1 timestamps: UTC, microsecond precision, ``Z``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def version_key(version: str) -> str:
    """A version timestamp in one form, so versions compare as times, not as spellings."""
    return taxii_time(dt.datetime.fromisoformat(version.replace("Z", "+00:00")))


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    id: str
    type: str
    version: str
    spec_version: str
    date_added: str
    body: str

    def object(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


@dataclass(frozen=True, slots=True)
class Query:
    """A TAXII filter, already checked by the server (``version`` is last, first, all or times)."""

    added_after: str | None = None
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    versions: tuple[str, ...] = ("last",)
    spec_versions: tuple[str, ...] = ()
    after_seq: int = 0
    limit: int = 100


class Store:
    """One SQLite file; safe to call from the event loop and from worker threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def has_delivery(self, collection: str, delivery_id: str) -> bool:
        with self._lock:
            found = self._db.execute(
                "SELECT 1 FROM deliveries WHERE collection = ? AND delivery_id = ?",
                (collection, delivery_id),
            ).fetchone()
        return found is not None

    def add_delivery(
        self,
        collection: str,
        delivery_id: str,
        feed_offset: int,
        objects: Iterable[dict[str, Any]],
        *,
        now: dt.datetime | None = None,
    ) -> int:
        """Add a delivery's objects at once; returns how many were new (0: known delivery)."""
        with self._transaction() as db:
            if db.execute(
                "SELECT 1 FROM deliveries WHERE collection = ? AND delivery_id = ?",
                (collection, delivery_id),
            ).fetchone():
                return 0
            clock = self._next_time(db, collection, now or dt.datetime.now(dt.UTC))
            added = 0
            for obj in objects:
                stamp = taxii_time(clock)
                version = obj.get("modified") or obj.get("created") or stamp
                body = json.dumps(obj, sort_keys=True, separators=(",", ":"))
                cursor = db.execute(
                    "INSERT OR IGNORE INTO objects"
                    " (collection, id, type, version, version_key, spec_version, date_added, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        collection,
                        obj["id"],
                        obj["type"],
                        version,
                        version_key(version),
                        obj.get("spec_version", "2.1"),
                        stamp,
                        body,
                    ),
                )
                if cursor.rowcount:
                    added += 1
                    clock += dt.timedelta(microseconds=1)
            db.execute(
                "INSERT INTO deliveries (collection, delivery_id, feed_offset, date_added)"
                " VALUES (?, ?, ?, ?)",
                (collection, delivery_id, feed_offset, taxii_time(clock)),
            )
            return added

    @staticmethod
    def _next_time(db: sqlite3.Connection, collection: str, now: dt.datetime) -> dt.datetime:
        """``now``, or just after the newest object if the clock went back."""
        newest = db.execute(
            "SELECT MAX(date_added) FROM objects WHERE collection = ?", (collection,)
        ).fetchone()[0]
        if newest is None:
            return now
        after = dt.datetime.fromisoformat(newest.replace("Z", "+00:00")) + dt.timedelta(
            microseconds=1
        )
        return max(now, after)

    def add_problem(self, collection: str, feed_offset: int, reason: str, detail: str) -> None:
        """A feed record that did not verify or map: kept for the operator, never served."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO problems VALUES (?, ?, ?, ?, ?)",
                (collection, feed_offset, reason, detail, taxii_time(dt.datetime.now(dt.UTC))),
            )

    def problems(self, collection: str) -> list[tuple[int, str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT feed_offset, reason, detail FROM problems WHERE collection = ?"
                " ORDER BY feed_offset",
                (collection,),
            ).fetchall()
        return [(int(o), str(r), str(d)) for o, r, d in rows]

    def query(self, collection: str, query: Query) -> tuple[list[Row], bool]:
        """One page of matching rows in the order they were added, and whether more follow."""
        where, params = self._filters(collection, query)
        # The clauses are this module's own text; every value is a bound parameter.
        columns = "seq, id, type, version, spec_version, date_added, body"
        sql = f"SELECT {columns} FROM objects o WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"  # noqa: S608
        with self._lock:
            rows = self._db.execute(sql, [*params, query.limit + 1]).fetchall()
        page = [Row(*row) for row in rows[: query.limit]]
        return page, len(rows) > query.limit

    @staticmethod
    def _filters(collection: str, query: Query) -> tuple[list[str], list[Any]]:
        where = ["collection = ?", "seq > ?"]
        params: list[Any] = [collection, query.after_seq]
        if query.added_after is not None:
            where.append("date_added > ?")
            params.append(query.added_after)
        for column, values in (
            ("id", query.ids),
            ("type", query.types),
            ("spec_version", query.spec_versions),
        ):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        versions = [v for v in query.versions if v not in ("first", "last", "all")]
        if "all" not in query.versions:
            alternatives = []
            same = (
                "SELECT {}(version_key) FROM objects p"
                " WHERE p.collection = o.collection AND p.id = o.id"
            )
            if "last" in query.versions:
                alternatives.append(f"version_key = ({same.format('MAX')})")
            if "first" in query.versions:
                alternatives.append(f"version_key = ({same.format('MIN')})")
            if versions:
                alternatives.append(f"version_key IN ({','.join('?' * len(versions))})")
                params.extend(versions)
            where.append(f"({' OR '.join(alternatives)})")
        return where, params

    def count(self, collection: str) -> int:
        with self._lock:
            found = self._db.execute(
                "SELECT COUNT(*) FROM objects WHERE collection = ?", (collection,)
            ).fetchone()
        return int(found[0])
