"""Making a cluster's ACLs match a plan, through Kafka's Admin API (``ixb acl apply``).

aiokafka's admin client has no ACL methods, but its protocol module has the
DescribeAcls, CreateAcls and DeleteAcls requests (versions 1 and up, all
Kafka 4 still serves); they are sent through the admin client's connection,
so TLS and the operator's certificate apply as for any other request.

:func:`apply_plan` is idempotent: it creates the plan's topics that are
missing, reads every ACL, adds the missing ones, deletes the stale ones
(of ixb's own principals only, :func:`broker.trust.acls.changes`), and
reports what it changed. Applying the same plan again changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest
from aiokafka.protocol.api import Request

from broker.errors import TransportError
from broker.kafka.admin import TopicAdmin
from broker.kafka.security import client_options
from broker.trust.acls import (
    Acl,
    AclChanges,
    AclPlan,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    changes,
)

_ANY = 1  # the ANY code of every ACL enum: a filter that matches all


class AclAdmin:
    """Reads, adds and deletes ACL bindings (as a principal allowed to: the operator)."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=10_000, **client_options(bootstrap)
        )

    async def start(self) -> None:
        try:
            await self._admin.start()
        except KafkaError as exc:
            raise TransportError(f"cannot reach Kafka admin: {exc}") from exc

    async def close(self) -> None:
        await self._admin.close()

    async def acls(self) -> list[Acl]:
        """Every binding the cluster holds (those of kinds ixb never makes are left out)."""
        # None (a null string) matches any name, principal and host.
        request = DescribeAclsRequest(_ANY, None, _ANY, None, None, _ANY, _ANY)
        response = await self._send(request)
        _raise_for(response.error_code, response.error_message, "describe ACLs")
        found = []
        for resource_type, name, pattern_type, bindings in response.resources:
            for principal, host, operation, permission in bindings:
                try:
                    found.append(
                        Acl(
                            principal,
                            ResourceType(resource_type),
                            PatternType(pattern_type),
                            name,
                            Operation(operation),
                            Permission(permission),
                            host,
                        )
                    )
                except ValueError:
                    continue  # a kind of resource or operation ixb never grants
        return found

    async def add(self, acls: Iterable[Acl]) -> None:
        for acl in acls:
            response = await self._send(CreateAclsRequest(*_fields(acl)))
            for code, message in response.creation_responses:
                _raise_for(code, message, f"add {acl.row()}")

    async def remove(self, acls: Iterable[Acl]) -> None:
        for acl in acls:
            response = await self._send(DeleteAclsRequest(*_fields(acl)))
            for code, message, _matching in response.filter_responses:
                _raise_for(code, message, f"remove {acl.row()}")

    async def _send(self, request: Request[Any]) -> Any:
        # The admin client's own request path (private in aiokafka 0.14, which has no ACL API).
        try:
            return await self._admin._send_request(request)
        except KafkaError as exc:
            raise TransportError(f"ACL request failed: {exc}") from exc


async def apply_plan(
    bootstrap: str, planned: AclPlan, *, ledger_retention: dt.timedelta | None = None
) -> AclChanges:
    """Create the plan's missing topics, then add missing and delete stale ACLs; what changed.

    Topics are created with the shapes the enforcer would give them
    (``ledger_retention``: the intake ledger's, from the enforcer's settings).
    """
    topics = TopicAdmin(bootstrap, ledger_retention=ledger_retention)
    await topics.start()
    try:
        await topics.ensure(planned.topics)
    finally:
        await topics.close()
    admin = AclAdmin(bootstrap)
    await admin.start()
    try:
        todo = changes(planned, await admin.acls())
        await admin.add(todo.add)
        await admin.remove(todo.remove)
    finally:
        await admin.close()
    return todo


def _fields(acl: Acl) -> tuple[int, str, int, str, str, int, int]:
    return (
        int(acl.resource_type),
        acl.resource_name,
        int(acl.pattern_type),
        acl.principal,
        acl.host,
        int(acl.operation),
        int(acl.permission),
    )


def _raise_for(code: int, message: str | None, what: str) -> None:
    if code != 0:
        raise TransportError(f"cannot {what}: {for_code(code).__name__} {message or ''}".rstrip())
