"""What a stage made of a submission, as a value: its result, refused, or undecided.

A stage (intake, fan-out) returns one of three things rather than raising,
in the manner of Kroxylicious's ``FilterResult``: the caller matches on the
outcome, and "could not decide" can never be mistaken for "refused"
(docs/ARCHITECTURE.md, decision 2):

- the stage's own result (:class:`~broker.enforcer.stages.intake.Accepted`,
  :class:`~broker.enforcer.stages.fanout.Routed`): go on;
- :class:`Refused`: the submission is refused for good, with a reason code,
  and goes to the origin's rejected topic;
- :class:`Undecided`: the policy could not decide; not a refusal. The
  submission's partition stops at it and it is decided again later.

Inside a stage the trust and policy layers signal by raising (their errors
say what went wrong where); :func:`outcome_of` is the one place those
exceptions become outcomes, and the one place an unexpected exception of
one submission is contained so it cannot stop the enforcer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from broker.errors import PolicyUndecided, RejectedInput

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Refused:
    """Refused for good: the rejection's reason, stage and message (never a payload value)."""

    error: RejectedInput
    unexpected: str | None = None  # the kind of an unexpected exception, for the operator's log


@dataclass(frozen=True, slots=True)
class Undecided:
    """The policy engine could not decide (down, erroring, undefined): hold, ask again."""

    error: PolicyUndecided


def outcome_of(step: Callable[[], T]) -> T | Refused | Undecided:
    """Run a stage's work on one submission that may ask the policy; say what came of it."""
    try:
        return step()
    except PolicyUndecided as exc:
        return Undecided(exc)
    except Exception as exc:  # noqa: BLE001 - sorted out below, once for every stage
        return _refused(exc)


def refused_or(step: Callable[[], T]) -> T | Refused:
    """As :func:`outcome_of`, for a stage that asks no policy (so cannot be undecided)."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - sorted out below, once for every stage
        return _refused(exc)


def _refused(exc: Exception) -> Refused:
    if isinstance(exc, RejectedInput):
        return Refused(exc)
    # Anything else is a fault of ours with one submission, which must not stop
    # the enforcer. The exception's text may carry payload values: keep its kind.
    kind = type(exc).__name__
    return Refused(
        RejectedInput("internal_error", f"unexpected {kind}", stage="internal"), unexpected=kind
    )
