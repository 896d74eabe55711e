"""The decision contract between the enforcer and the policy decision point."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from broker.domain.agreements import Facet, FieldRule
from broker.domain.report import (
    HandlingCode,
    Marking,
    Nation,
    ReportType,
    SubjectRole,
    ThreatReport,
)


class DecisionInput(BaseModel):
    """The small, declared input the policy sees: never report contents."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: Nation
    recipient: Nation
    report_type: ReportType
    marking: Marking
    handling_code: HandlingCode
    facets: tuple[Facet, ...] = ()  # what the report contains, sorted, never the contents
    observed_at_s: Annotated[int, Field(description="observation time, epoch seconds")] = 0
    now_s: Annotated[int, Field(description="evaluation time, seconds since the epoch")]

    @field_validator("facets")
    @classmethod
    def _facets_as_a_set(cls, facets: tuple[Facet, ...]) -> tuple[Facet, ...]:
        """Sorted and unique, so equal inputs are equal (and hit the same cache entry)."""
        return tuple(sorted(set(facets)))


def facets_of(report: ThreatReport) -> tuple[Facet, ...]:
    """What the report contains, as the policy may know it: kinds, never contents."""
    present = {
        Facet.LOCATION: report.location is not None,
        Facet.SUBJECTS: bool(report.subjects),
        Facet.VICTIMS: any(s.role is SubjectRole.VICTIM for s in report.subjects),
        Facet.TRAVEL_DOCUMENTS: any(s.travel_documents for s in report.subjects),
        Facet.VEHICLES: bool(report.vehicles),
        Facet.INDICATORS: bool(report.indicators),
    }
    return tuple(sorted(facet for facet, here in present.items() if here))


def decision_inputs(
    report: ThreatReport, recipients: Iterable[str], *, now_s: int, origin: str | None = None
) -> list[DecisionInput]:
    """What the policy is asked about ``report``, once per recipient (facets found once).

    ``origin`` overrides the report's own, for asking "what if NL sent this".
    """
    facets = facets_of(report)
    observed_at_s = int(report.observed_at.timestamp())
    return [
        DecisionInput(
            origin=origin or report.origin,
            recipient=recipient,
            report_type=report.report_type,
            marking=report.marking,
            handling_code=report.handling_code,
            facets=facets,
            observed_at_s=observed_at_s,
            now_s=now_s,
        )
        for recipient in recipients
    ]


class AgreementRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: StrictInt


class SetAside(BaseModel):
    """An agreement that covered the report but was set aside by another's declared precedence."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    by: str


class Decision(BaseModel):
    """What the policy decided for one (report, recipient) pair.

    ``allow`` false with ``reasons`` is a deny. A decision that could not be
    made is not a Decision at all: the decision point raises PolicyUndecided.

    Where agreements overlap, the decision also says how it came about:
    ``governing`` are the agreements whose terms decided (all of them, the
    most protective combination: any prohibition refuses, the strictest rule
    per field, the longest embargo); ``set_aside`` those a declared
    precedence displaced; ``not_covering`` (``"id:reason"``) those on the
    flow that do not cover the report (not in force, type not listed). Of
    the governing agreements ``agreement`` authorises an allow; its secret
    keys the pseudonyms.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow: StrictBool  # "yes", 1 or "true" from a policy is malformed, not an allow
    reasons: tuple[str, ...] = ()
    agreement: AgreementRef | None = None
    field_rules: tuple[FieldRule, ...] = ()
    not_before_s: StrictInt | None = None  # embargo: not delivered before this instant
    bundle_hash: str = ""
    governing: tuple[AgreementRef, ...] = ()
    set_aside: tuple[SetAside, ...] = ()
    not_covering: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        """An allow names its agreement; a deny says why and carries nothing else."""
        if self.allow and (self.agreement is None or self.reasons):
            raise ValueError("an allow must name its agreement and give no refusal reasons")
        if self.allow and self.governing and self.agreement not in self.governing:
            raise ValueError("the authorising agreement must be one of the governing ones")
        if not self.allow and (
            not self.reasons or self.agreement or self.field_rules or self.not_before_s is not None
        ):
            raise ValueError("a deny must give reasons and no agreement, rules or embargo")
        return self

    @property
    def embargo_s(self) -> int | None:
        """The longest embargo among the rules, in seconds after observation."""
        delays = [r.after for r in self.field_rules if r.after is not None]
        return max(delays) if delays else None
