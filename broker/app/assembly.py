"""Assembly: build the enforcer and the publisher from settings.

This is where configuration turns into objects; the CLI, the demo and the
tests all go through it, so they run the same enforcer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog

from broker.app.observability.metrics import EnforcerMetrics, Watched
from broker.app.observability.server import Readiness, serving
from broker.app.observability.start_up import StartUpWatch, unless_stopped
from broker.app.settings import Settings, split_host_port
from broker.auditlog.checkpoints import checkpoint_verifier
from broker.auditlog.entries import AuditWriter
from broker.enforcer.processor import BatchProcessor, Clock, EnforcerStats, utc_now
from broker.enforcer.runtime.backoff import PartitionBackoff
from broker.enforcer.runtime.checkpoint_publisher import CheckpointPublisher
from broker.enforcer.runtime.embargo import EmbargoReleaser
from broker.enforcer.runtime.runner import Enforcer
from broker.enforcer.stages.fanout import FanOut
from broker.enforcer.stages.intake import Intake
from broker.enforcer.stages.replay_guard import ReplayGuard
from broker.errors import ConfigurationError, TransportError
from broker.kafka.admin import TopicAdmin
from broker.kafka.consumer import SubmissionConsumer
from broker.kafka.producer import OutputProducer
from broker.kafka.reader import read_topic
from broker.parties.agency import Publisher
from broker.policy import PolicyDecisionPoint
from broker.policy.bundle import PolicyBundle
from broker.policy.cache import CachedDecisionPoint
from broker.policy.opa import OpaDecisionPoint
from broker.policy.rego import RegoDecisionPoint
from broker.policy.source import ReloadingPolicy
from broker.trust.attestation import BatchAttester
from broker.trust.envelopes import Signer
from broker.trust.keystore import Keystore
from broker.trust.pseudonyms import PseudonymSecrets
from broker.trust.records import KeyRole, PartnerRegistry
from broker.trust.registry_file import RegistryFile
from broker.trust.sd.layout import ReportLayout
from broker.trust.sealing.envelope import Opener
from broker.trust.sealing.keys import X25519
from broker.trust.sealing.parties import BROKER_PARTY, newest_sealing_key
from broker.trust.signatures import SigningKey
from broker.wire.codec import SchemaCatalog
from broker.wire.records import Partition
from broker.wire.topics import TopicNames, ledger_retention

log = structlog.get_logger("ixb.service")


def resolve_bootstrap(settings: Settings) -> str:
    """IXB_KAFKA_BOOTSTRAP, else the address `ixb kafka up` wrote, else a clear error."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    path = settings.embedded_bootstrap_file
    if path.exists():
        return path.read_text().strip()
    raise ConfigurationError(
        "no Kafka to talk to: set IXB_KAFKA_BOOTSTRAP=host:port, "
        "or start the embedded broker with `ixb kafka up` in another terminal"
    )


def provision_keys(
    settings: Settings, nations: list[str], *, sealing_algorithm: str = X25519
) -> PartnerRegistry:
    """Generate every key a federation of ``nations`` needs, and register them all.

    The broker's signing and sealing keys; for each nation its agency's
    signing and sealing keys and a sealing key of its data-protection
    authority (which replays that nation's submissions). The sealing keys
    use ``sealing_algorithm``.
    """
    keystore = Keystore(settings.keystore_dir)
    registry_file = RegistryFile(settings.registry_path, keystore=keystore)
    registry = registry_file.current()
    parties = [(KeyRole.BROKER, None), *((KeyRole.AGENCY, n) for n in nations)]
    for role, nation in parties:
        record, _ = keystore.generate(role=role, nation=nation)
        registry = registry.with_key(record)
    for role, nation in [*parties, *((KeyRole.AUDITOR, n) for n in nations)]:
        sealing, _ = keystore.generate_sealing(
            role=role, nation=nation, algorithm=sealing_algorithm
        )
        registry = registry.with_key(sealing)
    registry_file.save(registry)
    return registry


def load_catalog(settings: Settings) -> SchemaCatalog:
    return SchemaCatalog.load(max_message_bytes=settings.max_message_bytes)


def newest_key(
    settings: Settings, *, role: KeyRole, nation: str | None
) -> tuple[SigningKey, PartnerRegistry]:
    """This host's newest usable key for ``role``, and the registry it was chosen by."""
    keystore = Keystore(settings.keystore_dir)
    registry = RegistryFile(settings.registry_path).current()
    record = keystore.newest_usable(registry, role=role, nation=nation)
    return keystore.private_key(record.key_id), registry


def signer_for(
    settings: Settings, catalog: SchemaCatalog, *, role: KeyRole, nation: str | None
) -> Signer:
    key, _ = newest_key(settings, role=role, nation=nation)
    return Signer(key.key_id, key, catalog)


def attester_for(settings: Settings, catalog: SchemaCatalog) -> BatchAttester:
    """The broker's batch attester, with its newest usable broker key."""
    key, _ = newest_key(settings, role=KeyRole.BROKER, nation=None)
    return BatchAttester(key, catalog)


def decision_point_for(settings: Settings, bundle: PolicyBundle) -> CachedDecisionPoint:
    """The configured engine for ``bundle``, behind the decision cache.

    ``IXB_OPA_URL`` set: an OPA server, to which the bundle is pushed (or on
    which it is verified); otherwise Rego evaluated in-process by regopy.
    Both go through the same decision contract (broker/policy/contract.py).
    """
    engine: PolicyDecisionPoint
    if settings.opa_url:
        engine = OpaDecisionPoint(
            bundle, settings.opa_url, manage=settings.opa_manage, timeout_s=settings.opa_timeout_s
        )
    else:
        engine = RegoDecisionPoint(bundle)
    return CachedDecisionPoint(engine, bundle.time_boundaries_s())


def policy_source(settings: Settings, catalog: SchemaCatalog) -> ReloadingPolicy:
    return ReloadingPolicy(
        settings.policies_dir,
        catalog,
        lambda bundle: decision_point_for(settings, bundle),
        request_file=settings.reload_request_file,
        check_every_s=settings.policy_check_interval_s,
    )


@dataclass(frozen=True, slots=True)
class Stages:
    """The enforcer's processing stages and what they consult, built from settings."""

    catalog: SchemaCatalog
    topics: TopicNames
    policy: ReloadingPolicy
    registry: RegistryFile
    intake: Intake
    fanout: FanOut
    attester: BatchAttester
    opener: Opener  # the broker's: submissions and held deliveries are sealed to it

    def processor(
        self, *, clock: Clock = utc_now, stats: EnforcerStats | None = None
    ) -> BatchProcessor:
        """The enforcer's batch processing over these stages; it needs no Kafka."""
        return BatchProcessor(
            intake=self.intake,
            fanout=self.fanout,
            attester=self.attester,
            catalog=self.catalog,
            topics=self.topics,
            registry=self.registry,
            policy=self.policy,
            clock=clock,
            stats=stats,
        )


def build_stages(settings: Settings) -> Stages:
    """One assembly for the enforcer and anything that measures it (bench/)."""
    catalog = load_catalog(settings)
    topics = TopicNames(settings.topic_namespace)
    layout = ReportLayout.from_catalog(catalog)
    keystore = Keystore(settings.keystore_dir)
    opener = Opener(keystore, BROKER_PARTY)
    registry = RegistryFile(settings.registry_path)
    _require_broker_sealing_key(registry.current(), keystore)
    return Stages(
        catalog=catalog,
        topics=topics,
        policy=policy_source(settings, catalog),
        registry=registry,
        intake=Intake(
            catalog,
            topics,
            max_clock_skew=dt.timedelta(seconds=settings.max_clock_skew_s),
            replay=ReplayGuard(dt.timedelta(seconds=settings.max_report_age_s)),
            openers=lambda _origin: opener,  # the broker opens every origin's submissions
            layout=layout,
        ),
        fanout=FanOut(catalog, topics, PseudonymSecrets(settings.pseudonym_secrets_dir), layout),
        attester=attester_for(settings, catalog),
        opener=opener,
    )


def _require_broker_sealing_key(registry: PartnerRegistry, keystore: Keystore) -> None:
    """Refuse to start an enforcer that could not open what agencies seal to it now."""
    key = newest_sealing_key(registry, role=KeyRole.BROKER, nation=None, at=dt.datetime.now(dt.UTC))
    if keystore.decryption_key(key.key_id) is None:
        raise ConfigurationError(
            f"the broker's newest sealing key {key.key_id} is not in {keystore.directory}: "
            "agencies seal to it, so this enforcer could open nothing"
        )


def checkpoint_publisher(
    settings: Settings, bootstrap: str, producer: OutputProducer, catalog: SchemaCatalog
) -> CheckpointPublisher:
    """The task that signs decision-log checkpoints, with the newest usable broker key."""
    topics = TopicNames(settings.topic_namespace)
    key, registry = newest_key(settings, role=KeyRole.BROKER, nation=None)
    return CheckpointPublisher(
        read_log=lambda read_from: read_topic(
            bootstrap, topics.audit, idle_timeout_s=5.0, follow=True, start=read_from
        ),
        read_checkpoints=lambda: read_topic(
            bootstrap, topics.audit_checkpoints, idle_timeout_s=2.0
        ),
        producer=producer,
        catalog=catalog,
        topics=topics,
        signer=key,
        verify=checkpoint_verifier(registry),
        clock=utc_now,
        every_entries=settings.audit_checkpoint_every,
        every_s=settings.audit_checkpoint_interval_s,
    )


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
    producer = OutputProducer(bootstrap, admin, client_id="ixb-enforcer")
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
                clients, watch, processor=processor, policy=policy, topics=topics
            )
            if not await unless_stopped(begun, stop):
                log.info("stopped_during_start_up", step=watch.step)
                return enforcer.stats
        finally:
            watching.cancel()
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
) -> None:
    """Start the Kafka clients, naming each step to ``watch``.

    The order matters: the bundle is archived before the first decision made
    under it, and the submission group is joined last. A member of a group
    holds the partitions it is given whether or not it fetches yet; held
    deliveries wait for their embargo anyway, submissions should not wait
    while this process joins another group.
    """
    watch.at("reaching Kafka")
    await clients.admin.start()
    await clients.admin.ensure(
        [topics.held, topics.accepted, topics.audit, topics.audit_checkpoints, topics.bundles]
    )
    await _warn_of_drift(
        clients.admin, [topics.accepted, topics.audit, topics.audit_checkpoints, topics.bundles]
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


@asynccontextmanager
async def open_publisher(
    settings: Settings, bootstrap: str, nation: str
) -> AsyncIterator[Publisher]:
    catalog = load_catalog(settings)
    admin = TopicAdmin(bootstrap)
    producer = OutputProducer(bootstrap, admin, client_id=f"ixb-publisher-{nation}")
    await admin.start()
    await producer.start()
    try:
        yield Publisher(
            nation=nation,
            catalog=catalog,
            signer=signer_for(settings, catalog, role=KeyRole.AGENCY, nation=nation),
            producer=producer,
            topics=TopicNames(settings.topic_namespace),
            registry=RegistryFile(settings.registry_path).current,
        )
    finally:
        await producer.stop()
        await admin.close()
