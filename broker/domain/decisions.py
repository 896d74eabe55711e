"""The decision contract between the enforcer and the policy decision point."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from broker.domain.agreements import FieldRule
from broker.domain.report import HandlingCode, Marking, Nation, ReportType


class DecisionInput(BaseModel):
    """The small, declared input the policy sees: never report contents."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: Nation
    recipient: Nation
    report_type: ReportType
    marking: Marking
    handling_code: HandlingCode
    now_s: Annotated[int, Field(description="evaluation time, seconds since the epoch")]


class AgreementRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: StrictInt


class Decision(BaseModel):
    """What the policy decided for one (report, recipient) pair.

    ``allow`` false with ``reasons`` is a deny. A decision that could not be
    made is not a Decision at all: the decision point raises PolicyUndecided.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow: StrictBool  # "yes", 1 or "true" from a policy is malformed, not an allow
    reasons: tuple[str, ...] = ()
    agreement: AgreementRef | None = None
    field_rules: tuple[FieldRule, ...] = ()
    bundle_hash: str = ""

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        """An allow names its agreement; a deny says why and carries nothing else."""
        if self.allow and (self.agreement is None or self.reasons):
            raise ValueError("an allow must name its agreement and give no refusal reasons")
        if not self.allow and (not self.reasons or self.agreement or self.field_rules):
            raise ValueError("a deny must give reasons and no agreement or field rules")
        return self
