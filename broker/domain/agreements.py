"""Bilateral and multilateral sharing agreements, as typed values.

An agreement file is meant to be read by a legal or liaison officer: who
shares with whom, for what, until when, which report types up to which TLP
marking, and what must be withheld on the way. This model is the single
definition of that file's shape; errors name the field.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from broker.domain.report import Marking, Nation, ReportType, UtcTime

ALL_TYPES = "*"


class FieldAction(StrEnum):
    REDACT = "redact"  # the field is withheld from the recipient


class FieldRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    field: Annotated[str, Field(min_length=1, max_length=200)]
    action: FieldAction


class Direction(StrEnum):
    MUTUAL = "mutual"  # every party shares with every other party
    ONE_WAY = "one_way"  # senders share with receivers, not back


class Agreement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]
    version: Annotated[int, Field(ge=1)]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    purpose: Annotated[str, Field(min_length=1, max_length=2000)]
    parties: Annotated[tuple[Nation, ...], Field(min_length=2)]
    direction: Direction = Direction.MUTUAL
    senders: tuple[Nation, ...] = ()
    receivers: tuple[Nation, ...] = ()
    valid_from: UtcTime
    valid_until: UtcTime | None = None
    report_types: Annotated[tuple[ReportType, ...], Field(min_length=1)]
    max_marking: Marking
    field_rules: dict[str, tuple[FieldRule, ...]] = {}

    @field_validator("field_rules")
    @classmethod
    def _rules_name_report_types(
        cls, rules: dict[str, tuple[FieldRule, ...]]
    ) -> dict[str, tuple[FieldRule, ...]]:
        known = {t.value for t in ReportType} | {ALL_TYPES}
        unknown = sorted(set(rules) - known)
        if unknown:
            raise ValueError(f"field_rules keys must be report types or '*', not {unknown}")
        return rules

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if len(set(self.parties)) != len(self.parties):
            raise ValueError("parties are listed more than once")
        if self.direction is Direction.ONE_WAY:
            if not self.senders or not self.receivers:
                raise ValueError("a one_way agreement names its senders and receivers")
            outside = sorted((set(self.senders) | set(self.receivers)) - set(self.parties))
            if outside:
                raise ValueError(f"senders/receivers {outside} are not parties")
        elif self.senders or self.receivers:
            raise ValueError("senders/receivers are only for one_way agreements")
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self

    def rules_for(self, report_type: ReportType) -> tuple[FieldRule, ...]:
        return self.field_rules.get(ALL_TYPES, ()) + self.field_rules.get(report_type.value, ())

    def policy_data(self) -> dict[str, object]:
        """The agreement as the Rego policy reads it (``data.agreements[id]``)."""
        senders = self.senders if self.direction is Direction.ONE_WAY else self.parties
        receivers = self.receivers if self.direction is Direction.ONE_WAY else self.parties
        return {
            "id": self.id,
            "version": self.version,
            "senders": list(senders),
            "receivers": list(receivers),
            "valid_from_s": _epoch(self.valid_from),
            "valid_until_s": None if self.valid_until is None else _epoch(self.valid_until),
            "report_types": [t.value for t in self.report_types],
            "max_marking": self.max_marking.value,
            "field_rules": {
                key: [rule.model_dump(mode="json") for rule in rules]
                for key, rules in self.field_rules.items()
            },
        }


def _epoch(when: dt.datetime) -> int:
    return int(when.timestamp())
