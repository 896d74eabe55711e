"""Least-privilege Kafka ACLs, derived from the partner registry, the topic names and the roles.

Nothing here is hand-written per partner: :func:`plan` takes the nations
the registry lists, the topic names (:mod:`broker.wire.topics`) and the
enforcer's group, and says exactly which ACLs must exist — ``ixb acl plan``
prints them, ``ixb acl apply`` makes a cluster match (adding what is
missing, removing what is stale). Kafka's StandardAuthorizer with
``allow.everyone.if.no.acl.found=false`` refuses everything else.

| principal       | may                                                              |
|-----------------|------------------------------------------------------------------|
| ``N.agency``    | write ``ixb.submit.N``                                           |
| ``N.analyst``   | read ``ixb.deliver.N``, ``ixb.rejected.N`` and ``ixb.bundles``   |
|                 | (the agreements its recipient library checks derivations by)    |
| ``N.auditor``   | read the evidence; read ``ixb.submit.N`` and ``ixb.rejected.N``  |
|                 | (the origin nation's authority replays its own submissions)      |
| ``oversight``   | read the evidence (decision log, checkpoints, bundles, registry) |
| each of them    | consumer groups under its own prefix, ``ixb.<principal>.``       |
| ``enforcer``    | read every submit topic; write every deliver and rejected topic; |
|                 | read and write its own topics; groups ``<group_id>*``            |
| ``operator``, ``kafka`` | super users: create, alter, delete topics and ACLs       |

Kafka lets READ and WRITE imply DESCRIBE, so no DESCRIBE is granted apart.
No principal but the super users has any CLUSTER permission, so no one else
creates, alters or deletes a topic, or touches an ACL. The enforcer also
reads its topics' settings (DESCRIBE_CONFIGS) to report drift at start.

The enum values are Kafka's wire codes (``AclOperation`` and friends).
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from broker.errors import ConfigurationError
from broker.trust.identities import SUPER_USERS, Identity, Role
from broker.trust.records import KeyRecord, KeyRole
from broker.wire.topics import TopicNames


class ResourceType(IntEnum):
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class PatternType(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


class Permission(IntEnum):
    DENY = 2
    ALLOW = 3


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    """One binding: ``principal`` may do ``operation`` on the resources the pattern matches."""

    principal: str
    resource_type: ResourceType
    pattern_type: PatternType
    resource_name: str
    operation: Operation
    permission: Permission = Permission.ALLOW
    host: str = "*"

    def row(self) -> dict[str, str]:
        return {
            "principal": self.principal,
            "permission": self.permission.name,
            "operation": self.operation.name,
            "resource": self.resource_type.name,
            "pattern": self.pattern_type.name,
            "name": self.resource_name,
            "host": self.host,
        }

    def kafka_acls_command(self, bootstrap: str, command_config: str) -> str:
        """The same binding as ``kafka-acls.sh --add`` arguments."""
        resource = {
            ResourceType.TOPIC: "--topic",
            ResourceType.GROUP: "--group",
            ResourceType.TRANSACTIONAL_ID: "--transactional-id",
        }
        target = (
            ["--cluster"]
            if self.resource_type is ResourceType.CLUSTER
            else [resource[self.resource_type], self.resource_name]
        )
        verb = "--allow-principal" if self.permission is Permission.ALLOW else "--deny-principal"
        words = [
            "kafka-acls.sh",
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            command_config,
            "--add",
            verb,
            self.principal,
            "--operation",
            _camel(self.operation.name),
            *target,
            "--resource-pattern-type",
            self.pattern_type.name.lower(),
        ]
        return shlex.join(words)


@dataclass(frozen=True, slots=True)
class AclPlan:
    """The ACLs that must exist, and the topics the operator creates for them to guard."""

    acls: frozenset[Acl]
    topics: tuple[str, ...]

    def allows(
        self, principal: str, resource_type: ResourceType, name: str, operation: Operation
    ) -> bool:
        """Whether Kafka's StandardAuthorizer would let ``principal`` do this under the plan.

        Its rules: a DENY wins over any ALLOW; ALL covers every operation;
        READ, WRITE, DELETE and ALTER imply DESCRIBE; no ACL, no access. The
        access-matrix test holds the cluster's answers to these.
        """
        relevant = [
            a
            for a in self.acls
            if a.principal == principal
            and a.resource_type is resource_type
            and (
                a.resource_name == "*"
                or (a.pattern_type is PatternType.LITERAL and a.resource_name == name)
                or (a.pattern_type is PatternType.PREFIXED and name.startswith(a.resource_name))
            )
        ]
        implying = {Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}

        def covers(acl: Acl) -> bool:
            if acl.operation in (operation, Operation.ALL):
                return True
            return (
                operation is Operation.DESCRIBE
                and acl.permission is Permission.ALLOW
                and acl.operation in implying
            )

        if any(a.permission is Permission.DENY and covers(a) for a in relevant):
            return False
        return any(a.permission is Permission.ALLOW and covers(a) for a in relevant)


@dataclass(frozen=True, slots=True)
class AclChanges:
    """What makes a cluster's ACLs equal to a plan's."""

    add: tuple[Acl, ...]
    remove: tuple[Acl, ...]

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


def partners(keys: Iterable[KeyRecord], now: dt.datetime) -> frozenset[str]:
    """The nations with an agency key neither revoked nor expired at ``now``.

    A nation whose every key was revoked is no partner any more: the plan
    gives its principals nothing, and applying it removes their ACLs.
    """
    return frozenset(
        key.nation
        for key in keys
        if key.role is KeyRole.AGENCY
        and key.nation is not None
        and (key.revoked_at is None or key.revoked_at > now)
        and (key.not_after is None or key.not_after > now)
    )


def group_prefix(topics: TopicNames, identity: Identity) -> str:
    """The consumer groups a reader may use: ``ixb.BE.analyst.`` (under the namespace).

    One prefix per principal, inside its nation's (``ixb.BE.``): a nation's
    auditor cannot join its analysts' group and take their partitions.
    """
    base = f"{topics.namespace}.ixb" if topics.namespace else "ixb"
    return f"{base}.{identity.name}."


def evidence_topics(topics: TopicNames) -> tuple[str, ...]:
    """What auditors verify and replay from: the decision log and its archives."""
    return (topics.audit, topics.audit_checkpoints, topics.bundles, topics.registry)


def plan(
    nations: Iterable[str],
    topics: TopicNames,
    *,
    enforcer_group: str,
    revoked: Iterable[Identity] = (),
    delivered_to: Iterable[str] = (),
) -> AclPlan:
    """Every ACL ixb needs for ``nations`` (the registry's partners), and nothing more.

    ``delivered_to``: further nations the enforcer delivers to (an
    agreement's parties not, or no longer, in the registry): their topics
    are planned, for the enforcer to write, but their principals get nothing.

    A ``revoked`` identity gets no grant, and a DENY of everything on every
    topic and group besides: a DENY wins over any ALLOW, so an ACL added by
    hand later does not bring the credential back.
    """
    acls: set[Acl] = set()
    refused = frozenset(revoked)

    def grant(
        who: Identity,
        kind: ResourceType,
        name: str,
        *operations: Operation,
        pattern: PatternType = PatternType.LITERAL,
    ) -> None:
        if who not in refused:
            acls.update(Acl(who.principal, kind, pattern, name, op) for op in operations)

    read, write = Operation.READ, Operation.WRITE
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    chosen = sorted(set(nations))
    for nation in chosen:
        agency = Identity(Role.AGENCY, nation)
        analyst = Identity(Role.ANALYST, nation)
        auditor = Identity(Role.AUDITOR, nation)
        grant(agency, topic, topics.submit(nation), write)
        grant(analyst, topic, topics.deliver(nation), read)
        grant(analyst, topic, topics.rejected(nation), read)
        # The recipient library judges the broker's derivations by the archived bundles.
        grant(analyst, topic, topics.bundles, read)
        for reader in (agency, analyst, auditor):
            grant(reader, group, group_prefix(topics, reader), read, pattern=PatternType.PREFIXED)
        grant(auditor, topic, topics.submit(nation), read)
        grant(auditor, topic, topics.rejected(nation), read)
        for name in evidence_topics(topics):
            grant(auditor, topic, name, read)
    oversight = Identity(Role.OVERSIGHT)
    for name in evidence_topics(topics):
        grant(oversight, topic, name, read)
    grant(oversight, group, group_prefix(topics, oversight), read, pattern=PatternType.PREFIXED)

    enforcer = Identity(Role.ENFORCER)
    base = f"{topics.namespace}.ixb" if topics.namespace else "ixb"
    prefixed = PatternType.PREFIXED
    grant(enforcer, topic, f"{base}.submit.", read, pattern=prefixed)
    grant(enforcer, topic, f"{base}.deliver.", write, pattern=prefixed)
    grant(enforcer, topic, f"{base}.rejected.", write, pattern=prefixed)
    own = (topics.held, topics.accepted, *evidence_topics(topics))
    for name in own:
        grant(enforcer, topic, name, read, write, Operation.DESCRIBE_CONFIGS)
    grant(enforcer, group, enforcer_group, read, pattern=prefixed)

    for who in refused:
        for kind in (topic, group):
            acls.add(
                Acl(who.principal, kind, PatternType.LITERAL, "*", Operation.ALL, Permission.DENY)
            )

    per_nation = [
        name
        for nation in sorted(set(chosen) | set(delivered_to))
        for name in (topics.submit(nation), topics.deliver(nation), topics.rejected(nation))
    ]
    return AclPlan(frozenset(acls), (*per_nation, *own))


def changes(planned: AclPlan, existing: Iterable[Acl]) -> AclChanges:
    """What to add and remove so that ixb's principals hold exactly the plan.

    Only ACLs of principals that name an ixb party are removed when stale
    (a partner dropped from the registry included); an ACL another system
    made for its own principal is none of ixb's business.
    """
    held = {acl for acl in existing if is_managed(acl.principal)}
    return AclChanges(
        add=tuple(sorted(planned.acls - held)), remove=tuple(sorted(held - planned.acls))
    )


def is_managed(principal: str) -> bool:
    """Whether ``principal`` is an ixb party's (the super users need no ACL and get none)."""
    kind, _, name = principal.partition(":")
    if kind != "User":
        return False
    try:
        identity = Identity.parse(name)
    except ConfigurationError:
        return False
    return identity not in SUPER_USERS


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
