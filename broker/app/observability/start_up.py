"""An enforcer's start-up: which step it waits on, and a stop that does not wait for it.

Starting means reaching Kafka, creating topics, archiving the policy bundle
and joining two consumer groups. Each can wait a long time without failing:
a join on a cluster in a burst of rebalances, a broker that accepts the
connection and never answers. Without this module such a wait is silent and
a SIGTERM meanwhile is ignored until it ends.

:class:`StartUpWatch` names the step being waited on (``start_up_slow``,
every ``warn_after_s`` of waiting); :func:`unless_stopped` gives the
start-up up when ``stop`` is set, so ``ixb run`` exits on SIGTERM even then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger("ixb.start_up")


class StartUpWatch:
    """The current start-up step, and a watcher that warns while it takes long."""

    __slots__ = ("_since", "step", "warn_after_s")

    def __init__(self, warn_after_s: float) -> None:
        self.warn_after_s = warn_after_s
        self.step = "starting"
        self._since = time.monotonic()

    def at(self, step: str) -> None:
        """Start waiting on ``step`` (a fixed phrase: no data, no addresses)."""
        self.step, self._since = step, time.monotonic()

    async def watch(self) -> None:
        """Warn each ``warn_after_s`` in which the step did not change; runs until cancelled."""
        while True:
            step, since = self.step, self._since
            await asyncio.sleep(self.warn_after_s)
            if (self.step, self._since) == (step, since):
                waited = round(time.monotonic() - since, 1)
                log.warning("start_up_slow", step=step, waited_s=waited)


async def unless_stopped(start_up: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``start_up`` to its end, or cancel it once ``stop`` is set; True if it ended."""
    work = asyncio.ensure_future(start_up)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
    if work.cancelled():
        return False
    work.result()  # its exception, if it failed
    return True
