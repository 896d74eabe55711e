"""Each nation's verified feed, kept up to date while the console runs.

A :class:`NationFeed` reads ``ixb.deliver.<NATION>`` from its start through
the recipient's own :func:`~broker.parties.recipient.read_feed` (so the
console trusts exactly what ``ixb subscribe`` trusts, and follows that
library when deliveries change shape), then keeps following the topic.
A record that does not verify is a :class:`FeedProblem`, shown as a warning
and never as a report. Deliveries are at least once: a repeated delivery id
is kept once.

Readers wait on :meth:`NationFeed.wait_newer` for the next change, which is
what the live page's server-sent events are made of. The feed holds at most
:data:`MAX_KEPT` deliveries per nation in memory (the newest).

:class:`FeedFilter` is what an analyst narrows the list with.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from broker.console.sources import ConsoleSources
from broker.errors import IxbError
from broker.parties.recipient import FeedProblem, VerifiedDelivery, read_feed

__all__ = ["FeedFilter", "FeedHub", "NationFeed"]

log = structlog.get_logger("ixb.console")

MAX_KEPT = 5000
_RETRY_S = 1.0
_CLOSE_S = 5.0


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """What an analyst asked to see; an empty value means any."""

    report_type: str = ""
    origin: str = ""
    marking: str = ""
    handling_code: str = ""
    since: dt.datetime | None = None  # issued at or after
    until: dt.datetime | None = None  # issued before

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> FeedFilter:
        return cls(
            report_type=query.get("report_type", "").strip(),
            origin=query.get("origin", "").strip().upper(),
            marking=query.get("marking", "").strip(),
            handling_code=query.get("handling_code", "").strip(),
            since=_instant(query.get("since", "")),
            until=_instant(query.get("until", "")),
        )

    def admits(self, delivery: VerifiedDelivery) -> bool:
        report = delivery.report
        return (
            (not self.report_type or report.report_type.value == self.report_type)
            and (not self.origin or delivery.origin == self.origin)
            and (not self.marking or report.marking.value == self.marking)
            and (not self.handling_code or report.handling_code.value == self.handling_code)
            and (self.since is None or report.issued_at >= self.since)
            and (self.until is None or report.issued_at < self.until)
        )

    def query(self) -> dict[str, str]:
        """The filter as form values (what the page's inputs show)."""
        return {
            "report_type": self.report_type,
            "origin": self.origin,
            "marking": self.marking,
            "handling_code": self.handling_code,
            "since": _local(self.since),
            "until": _local(self.until),
        }


def _instant(text: str) -> dt.datetime | None:
    """An ``<input type=datetime-local>`` value (taken as UTC) or ISO 8601; None if empty or bad."""
    text = text.strip()
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _local(when: dt.datetime | None) -> str:
    return "" if when is None else when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")


class NationFeed:
    """One nation's deliveries, verified, newest last; follows the topic until closed."""

    __slots__ = (
        "_by_id",
        "_caught_up",
        "_changed",
        "_dropped",
        "_problems_seen",
        "_sources",
        "_stop",
        "_task",
        "deliveries",
        "error",
        "nation",
        "problems",
        "version",
    )

    def __init__(self, nation: str, sources: ConsoleSources) -> None:
        self.nation = nation
        self._sources = sources
        self.deliveries: list[VerifiedDelivery] = []
        self.problems: list[FeedProblem] = []
        self._by_id: dict[str, VerifiedDelivery] = {}
        self._dropped: set[str] = set()  # ids let go past MAX_KEPT, not to come back on a re-read
        self._problems_seen: set[FeedProblem] = set()
        self._stop = asyncio.Event()
        self.version = 0  # grows with every change; live pages compare it
        self.error: str | None = None  # the transport's complaint, shown until it reads again
        self._changed = asyncio.Condition()
        self._caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, wait_s: float = 15.0) -> None:
        """Start following (once), and wait until what the topic held at first is read."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name=f"console-feed-{self.nation}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), wait_s)

    async def close(self) -> None:
        """Stop following: the read ends at its next poll and closes its consumer."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):  # wait_for has cancelled it then
                await asyncio.wait_for(self._task, _CLOSE_S)

    def find(self, delivery_id: str) -> VerifiedDelivery | None:
        return self._by_id.get(delivery_id)

    def select(self, wanted: FeedFilter) -> list[VerifiedDelivery]:
        """Deliveries the filter admits, newest first."""
        return [d for d in reversed(self.deliveries) if wanted.admits(d)]

    async def wait_newer(self, version: int, timeout_s: float) -> int:
        """The version once it is past ``version``, or as it is after ``timeout_s``."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version > version), timeout_s
                )
            return self.version

    async def _follow(self) -> None:
        """Read to the end, say so, then follow; a failed read is tried again.

        The reading and verifying is the recipient library's
        :func:`~broker.parties.recipient.read_feed`, as ``ixb subscribe``
        does it (the broker's derivations judged by the bundles it archived),
        so the console trusts exactly what the command trusts. Every pass
        reads from the feed's start (``read_feed`` cannot resume by
        partition); what was already kept is dropped by delivery id, a
        problem already shown by what it says.
        """
        sources = self._sources
        while not self._stop.is_set():
            try:
                async for item in read_feed(
                    bootstrap=sources.bootstrap,
                    topics=sources.topics,
                    nation=self.nation,
                    catalog=sources.catalog,
                    registry=sources.registry,
                    keys=sources.keys,
                    idle_timeout_s=sources.read_idle_s,
                    follow=self._caught_up.is_set(),
                    stop=self._stop,
                ):
                    await self._take(item)
                if self.error is not None:
                    self.error = None
                    await self._notify()
            except IxbError as exc:
                self.error = "the feed cannot be read from Kafka just now; retrying"
                log.warning(
                    "console_feed_unreadable", nation=self.nation, error_kind=type(exc).__name__
                )
                await self._notify()
            if not self._caught_up.is_set():
                self._caught_up.set()
                await self._notify()
            # The topic does not exist yet, or a read failed: wait, then read again.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), _RETRY_S)

    async def _take(self, item: VerifiedDelivery | FeedProblem) -> None:
        if isinstance(item, FeedProblem):
            if item in self._problems_seen:
                return
            self._problems_seen.add(item)
            self.problems.append(item)
            del self.problems[:-100]
            await self._notify()
            return
        if item.delivery_id in self._by_id or item.delivery_id in self._dropped:
            return
        self._by_id[item.delivery_id] = item
        self.deliveries.append(item)
        if len(self.deliveries) > MAX_KEPT:
            dropped = self.deliveries.pop(0)
            self._by_id.pop(dropped.delivery_id, None)
            self._dropped.add(dropped.delivery_id)
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self.version += 1
            self._changed.notify_all()


class FeedHub:
    """The feeds of every nation an analyst has opened, started on first use."""

    __slots__ = ("_feeds", "_sources")

    def __init__(self, sources: ConsoleSources) -> None:
        self._sources = sources
        self._feeds: dict[str, NationFeed] = {}

    async def feed(self, nation: str) -> NationFeed:
        feed = self._feeds.get(nation)
        if feed is None:
            feed = self._feeds[nation] = NationFeed(nation, self._sources)
        await feed.start()
        return feed

    async def close(self) -> None:
        await asyncio.gather(*(f.close() for f in self._feeds.values()))
        self._feeds.clear()

    def opened(self) -> Iterable[str]:
        return list(self._feeds)
