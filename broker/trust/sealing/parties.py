"""Whose a sealing key is, which keys a sender seals to, and what an opener asks of them.

Every sealing key belongs to one party, named by a label that is bound into
what is sealed to it (broker/trust/sealing/envelope.py), so a payload sealed
for one party does not open as another's even under a shared key id:

==================  =========================================  ==============
label               the party                                  its keys
==================  =========================================  ==============
``broker``          the enforcer                               role broker
``BE``              nation BE (its analysts, its feed)         role agency, BE
``auditor.BE``      BE's data-protection authority             role auditor, BE
==================  =========================================  ==============

A sender seals to the newest sealing key of each party valid now (a rotated
key stays valid through its overlap, so what was sealed to it just before
still arrives); a submission is sealed to the broker and, where the origin
registered one, to its own data-protection authority, which is how that
authority replays its nation's submissions (docs/ARCHITECTURE.md, "Who can
read what").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final

from broker.errors import ConfigurationError, VerificationError
from broker.trust.records import KeyRecord, KeyRole, KeyUse, PartnerRegistry

BROKER_PARTY: Final = "broker"


def party_label(role: KeyRole, nation: str | None) -> str:
    """The label of the party holding keys of ``role`` for ``nation`` (the table above)."""
    if role is KeyRole.BROKER:
        return BROKER_PARTY
    if role is KeyRole.AGENCY and nation is not None:
        return nation
    if role is KeyRole.AUDITOR and nation is not None:
        return f"auditor.{nation}"
    raise ConfigurationError(f"{role.value} keys seal nothing")


def auditor_party(nation: str) -> str:
    return party_label(KeyRole.AUDITOR, nation)


def label_of(key: KeyRecord) -> str:
    return party_label(key.role, key.nation)


def sealing_keys(
    registry: PartnerRegistry, *, role: KeyRole, nation: str | None, at: dt.datetime
) -> list[KeyRecord]:
    """The party's sealing keys valid at ``at``, newest first."""
    return [k for k in registry.of_party(role, nation, KeyUse.SEALING) if k.valid_at(at)]


def newest_sealing_key(
    registry: PartnerRegistry, *, role: KeyRole, nation: str | None, at: dt.datetime
) -> KeyRecord:
    """The key a sender seals to now; ConfigurationError naming the command if there is none."""
    keys = sealing_keys(registry, role=role, nation=nation, at=at)
    if not keys:
        flag = {KeyRole.BROKER: "--broker", KeyRole.AUDITOR: f"--auditor {nation}"}.get(
            role, f"--nation {nation}"
        )
        raise ConfigurationError(
            f"no valid sealing key for {party_label(role, nation)} in the registry: "
            f"run `ixb keys generate {flag} --sealing`"
        )
    return keys[0]


def submission_recipients(
    registry: PartnerRegistry, origin: str, at: dt.datetime
) -> list[KeyRecord]:
    """What ``origin``'s agency seals a submission to: the broker, and its own auditor if any."""
    recipients = [newest_sealing_key(registry, role=KeyRole.BROKER, nation=None, at=at)]
    recipients += sealing_keys(registry, role=KeyRole.AUDITOR, nation=origin, at=at)[:1]
    return recipients


def check_sealed_to(
    registry: PartnerRegistry,
    key_ids: Iterable[str],
    *,
    role: KeyRole,
    nation: str | None,
    at: dt.datetime,
) -> KeyRecord | None:
    """The first of ``key_ids`` that is a sealing key of the party valid at ``at``, if any.

    Key ids of other parties are passed over (a submission is sealed to the
    broker and to an auditor). A key id that is the party's but not valid at
    ``at`` is refused: nothing may be sealed to a revoked or expired key.
    """
    for key_id in key_ids:
        if key_id not in registry:
            continue
        key = registry.key(key_id)
        if key.role is not role or key.nation != nation or key.use is not KeyUse.SEALING:
            continue
        if not key.valid_at(at):
            raise VerificationError(
                "sealed_to_invalid_key",
                f"sealed to {key.key_id}, revoked or outside its validity at {at.isoformat()}",
                stage="unseal",
            )
        return key
    return None
