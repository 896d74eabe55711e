"""What every stage may consult while processing one batch.

Built by the runner once per batch, so a registry or policy change takes
effect between batches, never in the middle of one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from broker.policy import PolicyDecisionPoint
from broker.trust.keys import PartnerRegistry


@dataclass(frozen=True, slots=True)
class BatchContext:
    registry: PartnerRegistry
    policy: PolicyDecisionPoint
    partners: frozenset[str]  # every nation a report could be delivered to
    now: dt.datetime
