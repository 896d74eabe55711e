"""Topic administration: wait for the cluster, create topics with their shape, read drift."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    NoError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    for_code,
)

from broker.errors import TransportError
from broker.kafka.security import client_options
from broker.wire.topics import shape_of

T = TypeVar("T")
_UNREACHABLE = (NodeNotReadyError, KafkaConnectionError, RequestTimedOutError)
_ATTEMPTS = 5


async def on_some_broker(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, made again when the broker aiokafka's admin client picked does not answer.

    The admin client sends each request to a broker chosen at random from its
    metadata, which still lists a broker that has just died (until the
    cluster fences it, seconds later), and tries no other. Each attempt picks
    afresh; a request that did reach the cluster is safe to repeat here
    (a topic created twice is "already exists", which counts as created).
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return await call()
        except _UNREACHABLE:
            if attempt == _ATTEMPTS:
                raise
            await asyncio.sleep(0.1 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


async def wait_until_ready(bootstrap: str, *, timeout_s: float = 30.0) -> None:
    """Return once the cluster answers a metadata request; TransportError after timeout."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    await _wait_for_listener(bootstrap, deadline)  # quietly, before aiokafka logs refusals
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, **client_options(bootstrap), request_timeout_ms=2000
        )
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.1)
        finally:
            await admin.close()
    raise TransportError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s: {last}")


async def _wait_for_listener(bootstrap: str, deadline: float) -> None:
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


class TopicAdmin:
    """Creates topics on demand (a real cluster may not auto-create them).

    ``replication`` None (the default) leaves it to the cluster's
    ``default.replication.factor`` (KIP-464): 1 on one node, what the
    operator chose on a cluster. A fixed 1 made every ixb topic a single
    copy on any cluster.
    """

    __slots__ = ("_admin", "_bootstrap", "_known", "ledger_retention", "partitions", "replication")

    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int = 3,
        replication: int | None = None,
        ledger_retention: dt.timedelta | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._admin = self._client()
        self._known: set[str] = set()
        self.partitions = partitions
        self.replication = replication
        self.ledger_retention = ledger_retention  # see broker.wire.topics.shape_of

    def _client(self) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap, **client_options(self._bootstrap)
        )

    async def start(self, *, timeout_s: float = 0.0) -> None:
        """Connect and learn the topics; a cluster with a node just lost is asked again.

        Right after a broker dies, the cluster's metadata still lists it
        until it is fenced (about 6 s with the tests' settings) and a new
        client may pick it for every request (seen: an enforcer restarted
        during a broker kill exiting with NodeNotReadyError after about a
        second). So a start that reaches no live node is made again with a
        fresh client, for up to ``timeout_s`` (0, the default: once, for a
        command whose user is waiting; the enforcer waits longer); any other
        refusal (an ACL, a bad certificate) fails at once.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await self._admin.start()
                self._known.update(await on_some_broker(self._admin.list_topics))
                return
            except _UNREACHABLE as exc:
                if time.monotonic() >= deadline:  # checked after one attempt at least
                    raise TransportError(f"cannot reach Kafka admin: {exc}") from exc
            except KafkaError as exc:
                raise TransportError(f"cannot reach Kafka admin: {exc}") from exc
            await self._admin.close()
            await asyncio.sleep(0.5)
            self._admin = self._client()

    async def close(self) -> None:
        await self._admin.close()

    async def topics(self) -> frozenset[str]:
        """Every topic the cluster has now (asked afresh, not from what ``ensure`` knows)."""
        try:
            return frozenset(await on_some_broker(self._admin.list_topics))
        except KafkaError as exc:
            raise TransportError(f"cannot list topics: {exc}") from exc

    async def ensure(self, topics: Iterable[str]) -> None:
        missing = sorted(set(topics) - self._known)
        if not missing:
            return
        new = []
        for topic in missing:
            shape = shape_of(topic, ledger_retention=self.ledger_retention)
            partitions = shape.partitions or self.partitions
            configs = dict(shape.configs)
            created = NewTopic(topic, partitions, self.replication or 1, topic_configs=configs)
            if self.replication is None:
                # The broker's default; aiokafka's constructor only takes -1 with a
                # replica assignment, the request takes it without.
                created.replication_factor = -1
            new.append(created)
        try:
            response = await on_some_broker(lambda: self._admin.create_topics(new))
        except KafkaError as exc:
            raise TransportError(f"cannot create topics {missing}: {exc}") from exc
        # aiokafka reports per-topic failures in the response, not by raising.
        failures = creation_failures(
            (entry[0], entry[1], entry[2]) for entry in response.topic_errors
        )
        if failures:
            raise TransportError(f"cannot create topics: {'; '.join(failures)}")
        await self._until_led(missing)
        self._known.update(missing)

    async def _until_led(self, topics: list[str], timeout_s: float = 10.0) -> None:
        """Wait until the cluster's metadata gives every new partition a leader.

        Kafka answers CreateTopics once the controller has recorded them; the
        brokers take a moment more to lead the partitions, and a client that
        writes or reads meanwhile is refused (NotLeaderForPartition) and
        retries. Waiting here costs one or two metadata requests and spares
        every caller its first retry. After the timeout the caller goes on
        and its client's own retries take over.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                described = await self._admin.describe_topics(topics)
            except KafkaError:
                return
            led = [
                t.get("error_code") == 0 and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ]
            if len(led) == len(topics) and all(led):
                return
            await asyncio.sleep(0.02)

    async def drift(self, topic: str) -> dict[str, str | None]:
        """The settings of :func:`broker.wire.topics.shape_of` that ``topic`` does not have.

        Each maps to what the cluster holds instead (None: not reported). A
        topic made before ixb set them, or by hand, keeps what it was made
        with; the enforcer says so at start rather than changing it.
        """
        wanted = shape_of(topic, ledger_retention=self.ledger_retention).configs
        if not wanted:
            return {}
        # All of them: Tansu drops the connection when asked for named keys.
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        try:
            responses = await on_some_broker(lambda: self._admin.describe_configs([resource]))
        except KafkaError as exc:
            raise TransportError(f"cannot describe {topic}: {exc}") from exc
        held: dict[str, str | None] = {}
        for response in responses:
            for _code, _message, _type, _name, entries in response.resources:
                held.update((entry[0], entry[1]) for entry in entries)
        return {key: held.get(key) for key, value in wanted.items() if held.get(key) != value}


def creation_failures(topic_errors: Iterable[tuple[str, int, str | None]]) -> list[str]:
    """The topics a CreateTopics response did not create, with why.

    "Already exists" is success for us: another enforcer or publisher won the race.
    """
    failures = []
    for topic, code, message in topic_errors:
        if code in (NoError.errno, TopicAlreadyExistsError.errno):
            continue
        failures.append(f"{topic}: {for_code(code).__name__} {message or ''}".rstrip())
    return failures
