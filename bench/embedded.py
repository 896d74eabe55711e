"""The Kafka a bench run measures on: a cluster named by IXB_KAFKA_BOOTSTRAP, or an embedded one.

The embedded engine is the settings' (``IXB_KAFKA_ENGINE``, or ``--engine``):
Apache Kafka by default, Tansu for comparison. Whichever it is, its
consumer groups get the one session-timeout rule of broker/kafka/embedded,
and its producers ask for idempotence only where the broker serves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from broker.app.settings import Settings
from broker.kafka.embedded import embedded_broker, group_session_timeout_ms


@dataclass(frozen=True, slots=True)
class Kafka:
    """Where to connect, what it is, and what it allows."""

    bootstrap: str
    description: str
    pids: tuple[int, ...]  # the embedded engine's processes (none for an external cluster)
    idempotence: bool

    @property
    def embedded(self) -> bool:
        return bool(self.pids)

    def settings(self, base: Settings) -> Settings:
        """``base`` for clients of this Kafka: its address, session timeout and idempotence."""
        return base.model_copy(
            update={
                "kafka_bootstrap": self.bootstrap,
                "consumer_session_timeout_ms": group_session_timeout_ms(embedded=self.embedded),
                "kafka_idempotence": base.kafka_idempotence and self.idempotence,
            }
        )


@asynccontextmanager
async def kafka_for(
    base: Settings, say: Callable[[str], None] = lambda _: None
) -> AsyncIterator[Kafka]:
    """``base.kafka_bootstrap``, or a fresh embedded engine until the block ends."""
    if base.kafka_bootstrap:
        yield Kafka(base.kafka_bootstrap, f"the cluster at {base.kafka_bootstrap}", (), True)
        return
    broker = embedded_broker(base.kafka_engine, cache=base.engine_cache, say=say)
    await asyncio.to_thread(broker.start)  # it waits for the engine on its own event loop
    try:
        yield Kafka(broker.bootstrap, broker.description, tuple(broker.pids), broker.idempotence)
    finally:
        await asyncio.to_thread(broker.stop)
