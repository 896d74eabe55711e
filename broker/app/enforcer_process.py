"""The enforcer process: its Kafka clients, its three tasks, its start-up and its stop.

:func:`run_enforcer` is what ``ixb run`` (and the demo, the tests and the
resilience run's subprocesses) runs: the batch runner, the embargo releaser
and the checkpoint publisher over clients started in a set order, with
``/metrics``, ``/healthz`` and ``/readyz`` served beside them. Building the
pieces from settings is :mod:`broker.app.assembly`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from broker.app.assembly import (
    build_stages,
    checkpoint_publisher,
    output_producer,
)
from broker.app.observability.metrics import EnforcerMetrics, Watched
from broker.app.observability.server import Readiness, serving
from broker.app.observability.start_up import StartUpWatch, unless_stopped
from broker.app.settings import Settings, split_host_port
from broker.auditlog.entries import AuditWriter
from broker.enforcer.processor import BatchProcessor, EnforcerStats, utc_now
from broker.enforcer.runtime.backoff import PartitionBackoff
from broker.enforcer.runtime.checkpoint_publisher import CheckpointPublisher
from broker.enforcer.runtime.embargo import EmbargoReleaser
from broker.enforcer.runtime.runner import Enforcer
from broker.errors import TransportError
from broker.kafka.admin import TopicAdmin
from broker.kafka.consumer import SubmissionConsumer
from broker.kafka.producer import OutputProducer
from broker.kafka.reader import read_topic
from broker.policy.cache import CachedDecisionPoint
from broker.policy.source import ReloadingPolicy
from broker.wire.records import Partition
from broker.wire.topics import TopicNames, ledger_retention

log = structlog.get_logger("ixb.service")


async def run_enforcer(
    settings: Settings,
    bootstrap: str,
    stop: asyncio.Event,
    *,
    started: asyncio.Event | None = None,
    stats: EnforcerStats | None = None,
    on_listening: Callable[[tuple[str, int]], None] | None = None,
    own_process: bool = False,
) -> EnforcerStats:
    """Run one enforcer process (its embargo releaser, its checkpoints) until ``stop`` is set.

    ``own_process``: nothing else runs in this process (``ixb run``), so what
    was built at start-up lives as long as it does and is frozen out of the
    garbage collector's full scans (:func:`_freeze_start_up_heap`).

    The enforcer and the releaser chain their decision-log entries with
    writers of their own (broker/enforcer/runtime/embargo.py says why). Unless
    ``IXB_METRICS_ADDR`` is empty, ``/metrics``, ``/healthz`` and ``/readyz``
    are served from before the Kafka clients start until they stopped;
    ``on_listening`` learns the address (with the port chosen when asked
    for port 0).
    """
    stages = build_stages(settings)
    catalog, topics, policy = stages.catalog, stages.topics, stages.policy
    processor = stages.processor(stats=stats)
    stats = processor.stats
    retention = ledger_retention(
        dt.timedelta(seconds=settings.max_report_age_s),
        dt.timedelta(seconds=settings.max_clock_skew_s),
    )
    admin = TopicAdmin(bootstrap, ledger_retention=retention)
    producer = output_producer(settings, bootstrap, admin, client_id="ixb-enforcer")
    consumer = SubmissionConsumer(
        bootstrap,
        group_id=settings.group_id,
        pattern=topics.submit_pattern,
        max_poll_records=settings.batch_max_records,
        session_timeout_ms=settings.consumer_session_timeout_ms,
    )

    async def forget_revoked(revoked: frozenset[Partition]) -> None:
        await releaser.forget(revoked)  # built below, before the consumer starts

    held_consumer = SubmissionConsumer(
        bootstrap,
        group_id=f"{settings.group_id}.embargo",
        pattern="^" + re.escape(topics.held) + "$",
        max_poll_records=settings.batch_max_records,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        on_revoke=forget_revoked,
    )
    releaser = EmbargoReleaser(
        consumer=held_consumer,
        producer=producer,
        catalog=catalog,
        topics=topics,
        policy=policy,
        clock=utc_now,
        audit=AuditWriter(catalog),
        archiver=processor.archiver,  # whichever decides first under a bundle archives it
        opener=stages.opener,
        registry=stages.registry.current,
    )
    metrics = EnforcerMetrics(
        Watched(
            stats=stats,
            embargo=releaser.stats,
            held=lambda: releaser.waiting,
            decision_point=lambda: policy.active.point,
            consumers=(consumer, held_consumer),
        )
    )
    enforcer = Enforcer(
        consumer=consumer,
        producer=producer,
        processor=processor,
        batch_max_records=settings.batch_max_records,
        ledger=lambda: read_topic(
            bootstrap, topics.accepted, idle_timeout_s=5.0, since=utc_now() - retention
        ),
        on_acknowledged=metrics.batch_acknowledged,
        policy_backoff=PartitionBackoff(
            initial_s=settings.policy_retry_initial_s, max_s=settings.policy_retry_max_s
        ),
    )
    readiness = Readiness(stop=stop)
    checkpoints = checkpoint_publisher(settings, bootstrap, producer, catalog)
    async with contextlib.AsyncExitStack() as exits:
        if settings.metrics_addr:
            host, port = split_host_port(settings.metrics_addr)
            address = await exits.enter_async_context(
                serving(host, port, metrics=metrics, readiness=readiness)
            )
            if address is not None and on_listening is not None:
                on_listening(address)
        watch = StartUpWatch(warn_after_s=START_UP_WARN_S)
        watching = asyncio.create_task(watch.watch())
        try:
            clients = _Clients(admin, producer, consumer, held_consumer)
            exits.push_async_callback(clients.close)
            begun = _start_clients(
                clients,
                watch,
                processor=processor,
                policy=policy,
                topics=topics,
                submitters=stages.registry.current().nations(),
            )
            if not await unless_stopped(begun, stop):
                log.info("stopped_during_start_up", step=watch.step)
                return enforcer.stats
        finally:
            watching.cancel()
        readiness.joined = lambda: consumer.joined
        readiness.partitions = lambda: len(consumer.assignment())
        if own_process:
            _freeze_start_up_heap()
        try:
            if started is not None:
                started.set()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(enforcer.run(stop))
                tasks.create_task(releaser.run(stop))
                tasks.create_task(checkpoints.run(stop))
        finally:
            _log_summaries(policy, releaser, checkpoints)
    return enforcer.stats


ADMIN_START_TIMEOUT_S = 20.0  # longer than a cluster takes to fence a dead node
START_UP_WARN_S = 10.0  # a step waited on this long is named in the log (start_up_slow)


@dataclass(frozen=True, slots=True)
class _Clients:
    """An enforcer's Kafka clients: started in order, closed together."""

    admin: TopicAdmin
    producer: OutputProducer
    consumer: SubmissionConsumer
    held_consumer: SubmissionConsumer

    async def close(self) -> None:
        """Close every client, whether it started, is half-way or never began."""
        # Each group's leave waits out a join round on the embedded broker: in parallel.
        await asyncio.gather(self.held_consumer.stop(), self.consumer.stop())
        await self.producer.stop()
        await self.admin.close()


async def _start_clients(
    clients: _Clients,
    watch: StartUpWatch,
    *,
    processor: BatchProcessor,
    policy: ReloadingPolicy,
    topics: TopicNames,
    submitters: Iterable[str],
) -> None:
    """Start the Kafka clients, naming each step to ``watch``.

    The order matters: the bundle is archived before the first decision made
    under it, and the submission group is joined last. A member of a group
    holds the partitions it is given whether or not it fetches yet; held
    deliveries wait for their embargo anyway, submissions should not wait
    while this process joins another group.

    Every nation with an agency key in the registry (``submitters``) has its
    submit topic created before the join: a topic that appears later makes
    the group rebalance (broker/kafka/consumer.py), and a first publish is
    the moment it would otherwise appear. It also gives the group partitions
    to own before anyone publishes.
    """
    watch.at("reaching Kafka")
    # A cluster that has just lost a node may name it for some seconds more.
    await clients.admin.start(timeout_s=ADMIN_START_TIMEOUT_S)
    await clients.admin.ensure(
        [
            *(topics.submit(nation) for nation in sorted(submitters)),
            topics.held,
            topics.accepted,
            topics.audit,
            topics.audit_checkpoints,
            topics.bundles,
            topics.registry,
        ]
    )
    await _warn_of_drift(
        clients.admin,
        [topics.accepted, topics.audit, topics.audit_checkpoints, topics.bundles, topics.registry],
    )
    watch.at("starting the producer")
    await clients.producer.start()
    watch.at("archiving the policy bundle")
    active = policy.current()  # archived before the first decision made under it
    archived = processor.archiver.records(active.bundle.content_hash, active.archive)
    await clients.producer.send_all(archived)
    processor.archiver.acknowledged(archived)
    watch.at("joining the embargo group")
    await clients.held_consumer.start()
    watch.at("joining the submission group")
    await clients.consumer.start()
    watch.at("started")


async def _warn_of_drift(admin: TopicAdmin, shaped: list[str]) -> None:
    """Say so at start if a topic ixb shapes was made otherwise (broker/wire/topics.py).

    The audit evidence may be deleted by the cluster's retention; an intake
    ledger kept too briefly weakens replay protection, one kept too long
    slows every start and rebalance. Not fatal: the topics are the
    operator's to change (``kafka-configs``), and a cluster may not let ixb
    read topic settings at all.
    """
    for topic in shaped:
        try:
            drift = await admin.drift(topic)
        except TransportError as exc:
            log.warning("topic_settings_unread", topic=topic, error=str(exc))
            continue
        if drift:
            log.warning("topic_settings_differ", topic=topic, held=drift)


def _log_summaries(
    policy: ReloadingPolicy, releaser: EmbargoReleaser, checkpoints: CheckpointPublisher
) -> None:
    """What the enforcer's companions did, logged once as it stops."""
    cache = policy.current().point
    if isinstance(cache, CachedDecisionPoint):
        log.info(
            "decision_cache",
            hits=cache.hits,
            misses=cache.misses,
            hit_rate=round(cache.hit_rate, 4),
            bundle_hash=cache.bundle_hash,
            reloads=policy.reloads,
        )
    log.info("embargo", waiting=releaser.waiting, **dataclasses.asdict(releaser.stats))
    log.info("audit_checkpoints", **dataclasses.asdict(checkpoints.stats))


def _freeze_start_up_heap() -> None:
    """Take what start-up built (schemas, policy engine, registry, clients) out of full scans.

    Each full collection of the cyclic garbage collector walks every object
    it tracks. Scanning start-up's objects, which live as long as the
    process, paused the enforcer for about 50 ms each time: several times a
    minute under load, and those pauses were the tail of the end-to-end
    latency (``make bench``). Frozen objects are still freed by reference
    counting; only a reference cycle among them would outlive its use, and
    start-up's objects are never dropped. Objects made later are collected
    as before.
    """
    gc.collect()
    gc.freeze()
    log.info("start_up_heap_frozen", objects=gc.get_freeze_count())
