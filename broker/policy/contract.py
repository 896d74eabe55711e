"""The decision contract, shared by every engine that evaluates the policy.

Whatever evaluates ``data.ixb.sharing.decision`` (regopy in-process, an OPA
server), its raw result goes through :func:`decision_from_result`, so two
engines that compute the same document produce identical decisions, and a
result that is not a well-formed decision is PolicyUndecided on both.
"""

from __future__ import annotations

from pydantic import ValidationError

from broker.domain.decisions import Decision
from broker.errors import PolicyUndecided

DECISION_PACKAGE = "ixb.sharing"
DECISION_RULE = "decision"
DECISION_PATH = "ixb/sharing/decision"  # the same document, as OPA's Data API names it


def decision_from_result(raw: object, bundle_hash: str) -> Decision:
    """A validated, normalised decision, tagged with the bundle that made it."""
    try:
        decision = Decision.model_validate(raw)
    except ValidationError as exc:
        raise PolicyUndecided(f"the policy returned a malformed decision: {exc}") from exc
    return decision.model_copy(
        update={
            "bundle_hash": bundle_hash,
            "field_rules": tuple(sorted(decision.field_rules, key=lambda r: r.sort_key())),
            "reasons": tuple(sorted(decision.reasons)),
            "governing": tuple(sorted(decision.governing, key=lambda a: a.id)),
            "set_aside": tuple(sorted(decision.set_aside, key=lambda s: (s.id, s.by))),
            "not_covering": tuple(sorted(decision.not_covering)),
        }
    )
