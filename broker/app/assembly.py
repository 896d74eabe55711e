"""Assembly: build the enforcer and the publisher from settings.

This is where configuration turns into objects; the CLI, the demo and the
tests all go through it, so they run the same enforcer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog

from broker.app.settings import Settings
from broker.app.witnessing import cosigner_for
from broker.auditlog.checkpoints import checkpoint_verifier
from broker.enforcer.processor import BatchProcessor, Clock, EnforcerStats, utc_now
from broker.enforcer.runtime.checkpoint_publisher import CheckpointPublisher
from broker.enforcer.stages.fanout import FanOut
from broker.enforcer.stages.intake import Intake
from broker.enforcer.stages.replay_guard import ReplayGuard
from broker.errors import ConfigurationError
from broker.kafka import security
from broker.kafka.admin import TopicAdmin
from broker.kafka.producer import OutputProducer
from broker.kafka.reader import read_topic
from broker.kafka.security import load_client_config
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
from broker.wire.topics import TopicNames

log = structlog.get_logger("ixb.service")


def resolve_bootstrap(settings: Settings) -> str:
    """IXB_KAFKA_BOOTSTRAP, else the address `ixb kafka up` wrote, else a clear error.

    With IXB_CLIENT_CONFIG, its identity is bound to the address (every
    client of this process then connects with it), and its
    ``bootstrap.servers`` is the address unless IXB_KAFKA_BOOTSTRAP is set.
    """
    if settings.client_config is not None:
        config = load_client_config(settings.client_config, bootstrap=settings.kafka_bootstrap)
        security.use(config)
        return config.bootstrap
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    path = settings.embedded_bootstrap_file
    if path.exists():
        return path.read_text().strip()
    raise ConfigurationError(
        "no Kafka to talk to: set IXB_KAFKA_BOOTSTRAP=host:port, "
        "or start the embedded broker with `ixb kafka up` in another terminal"
    )


def producer_idempotence(settings: Settings) -> bool:
    """Whether producers ask for idempotence: unless configured off, or the broker is Tansu.

    `ixb kafka up --engine tansu` says so in the home it shares with the
    other commands, which then send without (Tansu cannot serve it).
    """
    if not settings.kafka_idempotence:
        return False
    if settings.kafka_bootstrap:
        return True
    try:
        return settings.embedded_engine_file.read_text().strip() != "tansu"
    except FileNotFoundError:
        return True


def output_producer(
    settings: Settings, bootstrap: str, admin: TopicAdmin, *, client_id: str
) -> OutputProducer:
    return OutputProducer(
        bootstrap, admin, client_id=client_id, idempotent=producer_idempotence(settings)
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
        origin_prefix=settings.log_origin,
        cosigner=cosigner_for(settings, producer, catalog),
    )


@asynccontextmanager
async def open_publisher(
    settings: Settings, bootstrap: str, nation: str
) -> AsyncIterator[Publisher]:
    catalog = load_catalog(settings)
    admin = TopicAdmin(bootstrap)
    producer = output_producer(settings, bootstrap, admin, client_id=f"ixb-publisher-{nation}")
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
