"""Who may do what on the cluster: every role against every topic, group and operation.

The session's Kafka runs with TLS, client certificates required and the
StandardAuthorizer (``allow.everyone.if.no.acl.found=false``). Here the ACL
plan for two nations is applied on a fresh namespace, each role connects
with librdkafka (the client most partners use besides Java's) using the
configuration ``ixb credentials issue`` writes, and each answer Kafka gives
is compared with what the plan says (:meth:`AclPlan.allows`): a refusal
must be Kafka's own authorization error, an allowed read or write must work.
Clients without a certificate, with one from another CA, or in plaintext,
are refused at the handshake.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import confluent_kafka
import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # exported, not in __all__
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from broker.app.settings import Settings
from broker.kafka.acls import AclAdmin, apply_plan
from broker.kafka.embedded.secure import SecureCluster
from broker.kafka.security import ClientConfig, load_client_config
from broker.trust import acls
from broker.trust.acls import AclPlan, Operation
from broker.trust.identities import Identity, Role
from broker.trust.pki import PartyFiles, Pki
from broker.wire.topics import TopicNames
from tests.support.kafka import EXTERNAL, SECURED

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        EXTERNAL is not None or not SECURED, reason="needs the session's secured embedded Kafka"
    ),
]

_T = TypeVar("_T")
NATIONS = ("BE", "NL")
ROLES = [
    Identity(Role.AGENCY, "BE"),
    Identity(Role.ANALYST, "BE"),
    Identity(Role.AUDITOR, "BE"),
    Identity(Role.ENFORCER),
    Identity(Role.OVERSIGHT),
]
AUTHORIZATION_ERRORS = {
    confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED,
    confluent_kafka.KafkaError.GROUP_AUTHORIZATION_FAILED,
    confluent_kafka.KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


@dataclass
class Secured:
    bootstrap: str
    topics: TopicNames
    plan: AclPlan
    credentials: dict[Identity, dict[str, str]]
    enforcer_group: str

    def group_of(self, identity: Identity) -> str:
        """A consumer group the identity may use (the agency may use none)."""
        if identity.role is Role.ENFORCER:
            return self.enforcer_group
        return f"{acls.group_prefix(self.topics, identity)}probe"

    def client(self, identity: Identity, **extra: object) -> dict[str, Any]:
        return {**self.credentials[identity], **extra}


@pytest.fixture(scope="module")
def secured(
    kafka_bootstrap: str, suite_pki: SecureCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secured]:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    topics = TopicNames(namespace)
    group = f"{namespace}-enforcer"
    planned = acls.plan(NATIONS, topics, enforcer_group=group)
    _run(apply_plan(kafka_bootstrap, planned))
    folder = tmp_path_factory.mktemp("credentials")
    credentials = {}
    for identity in ROLES:
        files = suite_pki.pki.issue(
            identity,
            into=_files(folder, identity.name),
        )
        config = ClientConfig(
            kafka_bootstrap,
            ca=suite_pki.pki.ca_certificate,
            certificate=files.certificate,
            key=files.key,
        )
        credentials[identity] = config.properties()
    operator = suite_pki.client_config(Identity(Role.OPERATOR), kafka_bootstrap).properties()
    producer = confluent_kafka.Producer({**operator, "acks": "all"})
    seeded: dict[str, confluent_kafka.KafkaError | None] = {}
    for name in planned.topics:  # one record everywhere, so an allowed read has one to read
        producer.produce(
            name, key=b"seed", value=b"seed", partition=0, on_delivery=_recorder(seeded, name)
        )
    producer.flush(20)
    assert seeded == dict.fromkeys(planned.topics)
    yield Secured(kafka_bootstrap, topics, planned, credentials, group)
    _run(_remove_all(kafka_bootstrap, planned))


def test_every_role_writes_exactly_the_topics_the_plan_allows(secured: Secured) -> None:
    wrong = []
    for identity in ROLES:
        producer = confluent_kafka.Producer(
            secured.client(identity, acks="all", **{"message.timeout.ms": 8000})
        )
        results: dict[str, confluent_kafka.KafkaError | None] = {}
        for name in secured.plan.topics:
            producer.produce(
                name,
                key=b"probe",
                value=b"probe",
                partition=0,
                on_delivery=_recorder(results, name),
            )
        producer.flush(20)
        for name in secured.plan.topics:
            allowed = secured.plan.allows(
                identity.principal, acls.ResourceType.TOPIC, name, Operation.WRITE
            )
            error = results[name]
            refused = error is not None and error.code() in AUTHORIZATION_ERRORS
            if (allowed and error is not None) or (not allowed and not refused):
                wrong.append(f"{identity.name} write {name}: plan {allowed}, kafka {error}")
    assert not wrong, "\n".join(wrong)
    assert secured.plan.allows(
        "User:BE.agency", acls.ResourceType.TOPIC, secured.topics.submit("BE"), Operation.WRITE
    )


def test_every_role_reads_exactly_the_topics_the_plan_allows(secured: Secured) -> None:
    wrong = []
    for identity in ROLES:
        for name in secured.plan.topics:
            allowed = secured.plan.allows(
                identity.principal, acls.ResourceType.TOPIC, name, Operation.READ
            )
            outcome = _read_one(secured.client(identity), name, group=secured.group_of(identity))
            if allowed and outcome != b"seed":
                wrong.append(f"{identity.name} read {name}: allowed, kafka {outcome!r}")
            if not allowed and _refusal(outcome) not in AUTHORIZATION_ERRORS:
                wrong.append(f"{identity.name} read {name}: refused by the plan, kafka {outcome!r}")
    assert not wrong, "\n".join(wrong)


def test_be_reading_nls_feed_and_submissions_is_refused_by_kafka(secured: Secured) -> None:
    be = Identity(Role.ANALYST, "BE")
    analyst, group = secured.client(be), secured.group_of(be)
    for name in (secured.topics.deliver("NL"), secured.topics.submit("NL")):
        outcome = _read_one(analyst, name, group=group)
        assert _refusal(outcome) == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert _read_one(analyst, secured.topics.deliver("BE"), group=group) == b"seed"


def test_be_joins_its_own_group_prefix_but_not_the_enforcers_group(secured: Secured) -> None:
    analyst = Identity(Role.ANALYST, "BE")
    feed = secured.topics.deliver("BE")
    client = secured.client(analyst)
    assert _read_one(client, feed, group=secured.group_of(analyst)) == b"seed"
    for group in (secured.enforcer_group, secured.group_of(Identity(Role.ANALYST, "NL"))):
        outcome = _read_one(client, feed, group=group)
        assert _refusal(outcome) == confluent_kafka.KafkaError.GROUP_AUTHORIZATION_FAILED


@pytest.mark.parametrize("identity", ROLES, ids=lambda i: i.name)
def test_no_role_creates_deletes_or_reconfigures_topics_or_touches_acls(
    secured: Secured, identity: Identity
) -> None:
    admin = AdminClient(secured.client(identity))
    victim = secured.topics.deliver("NL")
    new = f"{secured.topics.namespace}.ixb.new"
    binding = AclBinding(
        ResourceType.TOPIC,
        victim,
        ResourcePatternType.LITERAL,
        identity.principal,
        "*",
        AclOperation.READ,
        AclPermissionType.ALLOW,
    )
    futures = [
        admin.delete_topics([victim], operation_timeout=5)[victim],
        admin.create_topics([NewTopic(new, 1, 1)])[new],
        admin.create_acls([binding])[binding],
    ]
    for future in futures:
        with pytest.raises(confluent_kafka.KafkaException) as refused:
            future.result(timeout=15)
        assert refused.value.args[0].code() in AUTHORIZATION_ERRORS


def test_a_client_without_a_certificate_is_refused_at_the_handshake(secured: Secured) -> None:
    anonymous = dict(secured.client(ROLES[0]))
    del anonymous["ssl.certificate.location"], anonymous["ssl.key.location"]
    _assert_cannot_connect(anonymous)


def test_a_certificate_from_another_ca_is_refused(secured: Secured, tmp_path: Path) -> None:
    rogue = Pki(tmp_path / "rogue")
    rogue.init()
    files = rogue.issue(Identity(Role.OPERATOR))  # even one naming the super user
    config = ClientConfig(
        secured.bootstrap,
        ca=Path(secured.credentials[ROLES[0]]["ssl.ca.location"]),
        certificate=files.certificate,
        key=files.key,
    )
    _assert_cannot_connect(config.properties())


def test_there_is_no_plaintext_port(secured: Secured) -> None:
    _assert_cannot_connect(
        {"bootstrap.servers": secured.bootstrap, "security.protocol": "PLAINTEXT"}
    )


def test_a_revoked_analyst_is_refused_what_it_could_read_before(
    secured: Secured, suite_pki: SecureCluster, tmp_path: Path
) -> None:
    """Revocation: the plan drops the grants and DENYs everything; apply makes it so."""
    identity = Identity(Role.ANALYST, "NL")
    files = suite_pki.pki.issue(identity, into=_files(tmp_path, identity.name))
    client = ClientConfig(
        secured.bootstrap,
        ca=suite_pki.pki.ca_certificate,
        certificate=files.certificate,
        key=files.key,
    ).properties()
    group, feed = secured.group_of(identity), secured.topics.deliver("NL")
    assert _read_one(client, feed, group=group) == b"seed"
    revoked = acls.plan(
        NATIONS, secured.topics, enforcer_group=secured.enforcer_group, revoked=[identity]
    )
    try:
        done = _run(apply_plan(secured.bootstrap, revoked))
        assert {a.principal for a in done.remove} == {identity.principal}
        # The group's DENY or the topic's: both Kafka's refusal.
        assert _refusal(_read_one(client, feed, group=group)) in AUTHORIZATION_ERRORS
    finally:
        _run(apply_plan(secured.bootstrap, secured.plan))
    assert _read_one(client, feed, group=group) == b"seed"


def test_applying_the_same_plan_again_changes_nothing(secured: Secured) -> None:
    assert _run(apply_plan(secured.bootstrap, secured.plan)).empty


def test_ixb_credentials_issue_writes_a_file_librdkafka_reads_as_the_party(
    secured: Secured, suite_pki: SecureCluster, tmp_path: Path
) -> None:
    out = tmp_path / "be.properties"
    settings = Settings(
        home=tmp_path / "home", pki_dir=suite_pki.pki.directory, kafka_bootstrap=secured.bootstrap
    )
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ixb")),
            *("credentials", "issue", "--nation", "BE", "--role", "analyst", "--out", str(out)),
        ],
        env=settings.environment(os.environ),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (out.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "be.key").stat().st_mode & 0o777) == 0o600
    assert "PRIVATE KEY" not in done.stdout + done.stderr
    properties = load_client_config(out).properties()
    group = secured.group_of(Identity(Role.ANALYST, "BE"))
    assert _read_one(properties, secured.topics.deliver("BE"), group=group) == b"seed"
    refused = _read_one(properties, secured.topics.deliver("NL"), group=group)
    assert _refusal(refused) == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED


def _recorder(
    results: dict[str, confluent_kafka.KafkaError | None], name: str
) -> Callable[[confluent_kafka.KafkaError | None, confluent_kafka.Message], None]:
    def delivered(error: confluent_kafka.KafkaError | None, _: confluent_kafka.Message) -> None:
        results[name] = error

    return delivered


def _read_one(
    client: Mapping[str, Any], topic: str, *, group: str
) -> bytes | confluent_kafka.KafkaError:
    """The first record of ``topic``, read in a fresh group under ``group``, or Kafka's error.

    By subscription: librdkafka tells a subscriber that a topic it may not
    describe is not available, while an assigned partition of it just waits.
    """
    consumer = confluent_kafka.Consumer(
        {
            **client,
            "group.id": f"{group}-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    try:
        consumer.subscribe([topic])
        for _ in range(40):
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                return error
            value = message.value()
            assert isinstance(value, bytes)
            return value
        raise AssertionError(f"neither a record nor an error from {topic}")
    finally:
        consumer.close()


def _refusal(outcome: bytes | confluent_kafka.KafkaError) -> int | None:
    """Kafka's error code, or None for a record.

    Never ``KafkaError == bytes``: confluent-kafka 2.16 leaves a TypeError
    pending in the interpreter, which surfaces later as a SystemError.
    """
    return outcome.code() if isinstance(outcome, confluent_kafka.KafkaError) else None


def _assert_cannot_connect(client: Mapping[str, Any]) -> None:
    admin = AdminClient({**client, "socket.timeout.ms": 3000})
    with pytest.raises(confluent_kafka.KafkaException) as refused:
        admin.list_topics(timeout=4)
    assert refused.value.args[0].code() in {
        confluent_kafka.KafkaError._TRANSPORT,
        confluent_kafka.KafkaError._TIMED_OUT,
        confluent_kafka.KafkaError._SSL,
        confluent_kafka.KafkaError._AUTHENTICATION,
    }


def _files(folder: Path, name: str) -> PartyFiles:
    return PartyFiles(folder / f"{name}.pem", folder / f"{name}.key")


async def _remove_all(bootstrap: str, planned: AclPlan) -> None:
    admin = AclAdmin(bootstrap)
    await admin.start()
    try:
        await admin.remove(planned.acls)
    finally:
        await admin.close()


def _run(work: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(work)
