"""Who talks to Kafka: every party's role, and the Kafka principal its certificate names.

One principal per nation *and role*, not one per nation: an agency adapter
publishes, an analyst reads a feed, a data-protection authority reads the
evidence, and they run on different machines under different people. A
stolen analyst workstation must not be able to publish in the nation's name,
and an adapter's host must not read the nation's inbound feed; with one
principal per nation, Kafka could not tell them apart.

The principal is the certificate's common name (``CN=BE.analyst``), which
the brokers map from the subject with ``ssl.principal.mapping.rules``
(:data:`PRINCIPAL_MAPPING_RULE`); Kafka then sees ``User:BE.analyst``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from broker.errors import ConfigurationError

# The subject's CN becomes the principal; any other subject keeps Kafka's default
# (the whole DN), which no ACL names, so such a client is authenticated but may do nothing.
PRINCIPAL_MAPPING_RULE = "RULE:^CN=([^,]+)(,.*)?$/$1/,DEFAULT"
_NATION = re.compile(r"[A-Z]{2}")


class Role(StrEnum):
    """What a party does; the first three speak for one nation, the others for none."""

    AGENCY = "agency"  # publishes its nation's signed submissions
    ANALYST = "analyst"  # reads its nation's feed and its refused submissions
    AUDITOR = "auditor"  # its nation's data-protection authority: the evidence, its own intake
    ENFORCER = "enforcer"  # the broker's enforcer processes
    OVERSIGHT = "oversight"  # the joint oversight body: the evidence of every nation
    OPERATOR = "operator"  # runs the cluster: topics and ACLs (a Kafka super user)
    KAFKA = "kafka"  # the brokers themselves, to each other (a Kafka super user)

    @property
    def national(self) -> bool:
        return self in (Role.AGENCY, Role.ANALYST, Role.AUDITOR)


@dataclass(frozen=True, slots=True, order=True)
class Identity:
    """One party: a role, and the nation it speaks for when the role is national."""

    role: Role
    nation: str | None = None

    def __post_init__(self) -> None:
        if self.role.national != (self.nation is not None):
            need = "needs a nation" if self.role.national else "speaks for no nation"
            raise ConfigurationError(f"the {self.role} role {need}")
        if self.nation is not None and not _NATION.fullmatch(self.nation):
            raise ConfigurationError(f"{self.nation!r} is not an ISO 3166-1 alpha-2 code")

    @property
    def name(self) -> str:
        """The certificate's CN and the Kafka user: ``BE.analyst``, ``enforcer``."""
        return f"{self.nation}.{self.role}" if self.nation else str(self.role)

    @property
    def principal(self) -> str:
        return f"User:{self.name}"

    @classmethod
    def parse(cls, name: str) -> Identity:
        """The identity a CN names (the inverse of :attr:`name`)."""
        nation, _, role = name.rpartition(".")
        try:
            return cls(Role(role), nation or None)
        except ValueError as exc:
            raise ConfigurationError(f"{name!r} names no ixb party") from exc


SUPER_USERS = (Identity(Role.KAFKA), Identity(Role.OPERATOR))
