"""Closing an aiokafka consumer even when its own close trips over a dead broker."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer

log = structlog.get_logger("ixb.transport")


async def close_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, finished when aiokafka's fetcher raises a cancellation out of it.

    aiokafka 0.14's fetcher cancels its fetch tasks at close and awaits each
    without catching the cancellation; a task cancelled in the back-off after
    a failed fetch (the partition's leader just died) raises CancelledError
    out of ``stop()``, before the other tasks are cancelled and the
    connections closed. Measured on the three-node cluster: every time, for
    a consumer stopped 1.5 s after its partition's leader was SIGKILLed; seen
    as an enforcer exiting 1 instead of 0 on SIGTERM in ``make resilience``.
    Unless this task is being cancelled itself, that cancellation is not
    ours: the rest of the close is done here.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.info("consumer_close_finished_after_fetch_cancellation")
        fetcher: Any = consumer._fetcher  # aiokafka private: finishing its own close
        pending = [t for t in getattr(fetcher, "_pending_tasks", ()) if not t.done()]
        for left in pending:
            left.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await consumer._client.close()  # the step its close did not reach
