"""The policy decision point: one interface, a decision or PolicyUndecided.

``decide`` returns a :class:`~broker.domain.decisions.Decision` (allow, or
deny with reasons) or raises :class:`~broker.errors.PolicyUndecided`. The two
are never confused: an engine that is down, erroring, or that leaves the
decision undefined has not denied anything, and the caller must hold or
refuse the message as retriable, never deliver it.
"""

from __future__ import annotations

from typing import Protocol

from broker.domain.decisions import Decision, DecisionInput


class PolicyDecisionPoint(Protocol):
    @property
    def bundle_hash(self) -> str:
        """Content hash of the policy bundle this decision point evaluates."""
        ...

    def decide(self, decision_input: DecisionInput) -> Decision:
        """Decide one (report, recipient) pair, or raise PolicyUndecided."""
        ...
