"""The ACL plan: least privilege derived from the registry's nations, the topics and the roles."""

from __future__ import annotations

import base64
import datetime as dt

from broker.trust.acls import (
    Acl,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    changes,
    is_managed,
    partners,
    plan,
)
from broker.trust.identities import Identity, Role
from broker.trust.records import KeyRecord, KeyRole
from broker.wire.topics import TopicNames

TOPICS = TopicNames()


def _grants(who: str, planned: frozenset[Acl]) -> set[tuple[str, str, str, str]]:
    return {
        (a.resource_type.name, a.pattern_type.name, a.resource_name, a.operation.name)
        for a in planned
        if a.principal == who and a.permission is Permission.ALLOW
    }


def test_a_nations_agency_writes_its_own_submit_topic_and_nothing_else() -> None:
    planned = plan(["BE", "NL"], TOPICS, enforcer_group="ixb-enforcer")
    assert _grants("User:BE.agency", planned.acls) == {
        ("TOPIC", "LITERAL", "ixb.submit.BE", "WRITE"),
        ("GROUP", "PREFIXED", "ixb.BE.agency.", "READ"),
    }


def test_a_nations_analyst_reads_its_feed_and_its_refusals_under_its_group_prefix() -> None:
    planned = plan(["BE", "NL"], TOPICS, enforcer_group="ixb-enforcer")
    assert _grants("User:BE.analyst", planned.acls) == {
        ("TOPIC", "LITERAL", "ixb.deliver.BE", "READ"),
        ("TOPIC", "LITERAL", "ixb.rejected.BE", "READ"),
        ("TOPIC", "LITERAL", "ixb.bundles", "READ"),
        ("GROUP", "PREFIXED", "ixb.BE.analyst.", "READ"),
    }


def test_no_one_but_the_super_users_may_create_delete_or_alter_anything() -> None:
    planned = plan(["BE", "NL", "DE"], TOPICS, enforcer_group="ixb-enforcer")
    forbidden = {
        Operation.CREATE,
        Operation.DELETE,
        Operation.ALTER,
        Operation.ALTER_CONFIGS,
        Operation.ALL,
        Operation.CLUSTER_ACTION,
    }
    allowed = [a for a in planned.acls if a.permission is Permission.ALLOW]
    assert not [a for a in allowed if a.operation in forbidden]
    assert not [a for a in allowed if a.resource_type is ResourceType.CLUSTER]
    assert not [a for a in allowed if a.principal in {"User:operator", "User:kafka"}]


def test_auditors_read_the_evidence_and_only_their_own_nations_intake() -> None:
    planned = plan(["BE", "NL"], TOPICS, enforcer_group="ixb-enforcer")
    be = _grants("User:BE.auditor", planned.acls)
    assert ("TOPIC", "LITERAL", "ixb.submit.BE", "READ") in be
    assert ("TOPIC", "LITERAL", "ixb.audit", "READ") in be
    assert not [g for g in be if g[2].endswith(".NL")]
    oversight = _grants("User:oversight", planned.acls)
    assert {g[2] for g in oversight if g[0] == "TOPIC"} == {
        "ixb.audit",
        "ixb.audit.checkpoints",
        "ixb.bundles",
        "ixb.registry",
    }


def test_the_enforcer_reads_submissions_and_writes_feeds_under_the_namespace() -> None:
    planned = plan(["BE"], TopicNames("t1"), enforcer_group="grp")
    enforcer = _grants("User:enforcer", planned.acls)
    assert ("TOPIC", "PREFIXED", "t1.ixb.submit.", "READ") in enforcer
    assert ("TOPIC", "PREFIXED", "t1.ixb.deliver.", "WRITE") in enforcer
    assert ("TOPIC", "PREFIXED", "t1.ixb.submit.", "WRITE") not in enforcer
    assert ("GROUP", "PREFIXED", "grp", "READ") in enforcer
    assert "t1.ixb.deliver.BE" in planned.topics


def test_a_revoked_identity_has_no_grant_and_is_denied_everything() -> None:
    revoked = Identity(Role.ANALYST, "BE")
    planned = plan(["BE", "NL"], TOPICS, enforcer_group="g", revoked=[revoked])
    mine = [a for a in planned.acls if a.principal == revoked.principal]
    assert {(a.resource_type, a.resource_name, a.operation, a.permission) for a in mine} == {
        (ResourceType.TOPIC, "*", Operation.ALL, Permission.DENY),
        (ResourceType.GROUP, "*", Operation.ALL, Permission.DENY),
    }
    assert _grants("User:NL.analyst", planned.acls)


def test_applying_adds_what_is_missing_and_removes_only_ixbs_stale_acls() -> None:
    planned = plan(["BE"], TOPICS, enforcer_group="g")
    kept = next(iter(sorted(planned.acls)))
    stale = Acl(
        "User:XX.analyst", ResourceType.TOPIC, PatternType.LITERAL, "ixb.deliver.XX", Operation.READ
    )
    foreign = Acl(
        "User:CN=someone else", ResourceType.TOPIC, PatternType.LITERAL, "x", Operation.READ
    )
    todo = changes(planned, [kept, stale, foreign])
    assert kept not in todo.add
    assert set(todo.add) == planned.acls - {kept}
    assert todo.remove == (stale,)
    assert changes(planned, planned.acls).empty


def test_only_ixb_parties_principals_are_managed() -> None:
    assert is_managed("User:BE.agency")
    assert is_managed("User:enforcer")
    assert not is_managed("User:operator")
    assert not is_managed("User:kafka")
    assert not is_managed("User:alice")
    assert not is_managed("Group:BE.agency")


def test_the_plan_reads_as_kafka_acls_commands() -> None:
    planned = plan(["BE"], TOPICS, enforcer_group="g")
    acl = next(
        a for a in planned.acls if a.principal == "User:BE.agency" and a.operation.name == "WRITE"
    )
    assert acl.kafka_acls_command("k:9093", "op.properties") == (
        "kafka-acls.sh --bootstrap-server k:9093 --command-config op.properties --add "
        "--allow-principal User:BE.agency --operation Write --topic ixb.submit.BE "
        "--resource-pattern-type literal"
    )


def test_a_nation_only_delivered_to_gets_its_topics_but_no_grant() -> None:
    planned = plan(["BE"], TOPICS, enforcer_group="g", delivered_to=["FR"])
    assert "ixb.deliver.FR" in planned.topics
    assert not [a for a in planned.acls if a.principal.startswith("User:FR.")]
    assert planned.allows("User:enforcer", ResourceType.TOPIC, "ixb.deliver.FR", Operation.WRITE)


def test_a_nation_whose_every_agency_key_is_revoked_is_no_partner() -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    public = base64.b64encode(bytes(32)).decode()

    def key(key_id: str, nation: str, revoked: dt.datetime | None) -> KeyRecord:
        return KeyRecord(
            key_id=key_id,
            role=KeyRole.AGENCY,
            nation=nation,
            public_key=public,
            not_before=now - dt.timedelta(days=30),
            revoked_at=revoked,
        )

    keys = [
        key("BE-1", "BE", now - dt.timedelta(days=1)),
        key("NL-1", "NL", now - dt.timedelta(days=1)),
        key("NL-2", "NL", None),
        key("DE-1", "DE", now + dt.timedelta(days=1)),  # revoked from tomorrow: still a partner
    ]
    assert partners(keys, now) == {"NL", "DE"}
