"""Bilateral and multilateral sharing agreements, as typed values.

An agreement file is meant to be read by a legal or liaison officer: who
shares with whom, for what, until when, which report types up to which TLP
marking, and what must be withheld on the way. This model is the single
definition of that file's shape; errors name the field.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from broker.domain.report import HandlingCode, Marking, Nation, ReportType, UtcTime

ALL_TYPES = "*"

AgreementId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]


class FieldAction(StrEnum):
    """What an agreement does to a field on its way to the recipient.

    Listed from the strictest: when several rules name the same field, the
    strictest applies (a redaction beats a pseudonym beats a generalisation).
    """

    REDACT = "redact"  # the field is withheld from the recipient
    PSEUDONYMISE = "pseudonymise"  # replaced by a keyed pseudonym, stable per agreement
    GENERALISE = "generalise"  # made coarser: see GENERALISATIONS
    EMBARGO = "embargo"  # the whole report is held until `after` past its observation

    @property
    def strictness(self) -> int:
        return len(FieldAction) - list(FieldAction).index(self)


# What a field may be generalised to, from finest to coarsest, by the kind of
# value it holds (broker.domain.fields.value_kind names the kind).
GENERALISATIONS: dict[str, tuple[str, ...]] = {
    "timestamp": ("minute", "hour", "day"),
    "date": ("month", "year"),
    "location": ("0.001deg", "0.01deg", "0.1deg", "1deg", "border_sector", "country"),
}


def strictness(action: FieldAction, to: str | None = None) -> tuple[int, int]:
    """How strict a treatment is, to compare two: by action, then how coarse a generalisation."""
    if action is not FieldAction.GENERALISE:
        return (action.strictness, 0)
    coarseness = next((ts.index(to) for ts in GENERALISATIONS.values() if to in ts), -1)
    return (action.strictness, coarseness)


_DURATION = re.compile(r"^(?P<amount>[0-9]{1,6})(?P<unit>[smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_EMBARGO_S = 366 * 86400


def _duration_s(value: object) -> object:
    """``6h``, ``90m``, ``2d``, ``30s`` or a number of seconds, as whole seconds."""
    if isinstance(value, bool):  # YAML's `yes` is not one second
        raise ValueError("a duration is a whole number with s, m, h or d (e.g. 6h)")
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match is None:
            raise ValueError("a duration is a whole number with s, m, h or d (e.g. 6h)")
        return int(match["amount"]) * _SECONDS[match["unit"]]
    return value


Duration = Annotated[int, BeforeValidator(_duration_s), Field(gt=0, le=MAX_EMBARGO_S)]


class FieldRule(BaseModel):
    """One rule: ``{field, action}``, plus ``to`` for generalise, ``after`` for embargo.

    An embargo concerns the whole report and names no field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    action: FieldAction
    to: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    after: Duration | None = None

    @model_validator(mode="after")
    def _parameters_fit_action(self) -> Self:
        if self.action is FieldAction.EMBARGO:
            if self.field is not None or self.to is not None or self.after is None:
                raise ValueError("an embargo names no field and gives `after` (e.g. after: 6h)")
            return self
        if self.field is None:
            raise ValueError(f"a {self.action} rule names its field")
        if self.after is not None:
            raise ValueError("`after` is only for embargo rules")
        if self.action is FieldAction.GENERALISE:
            known = sorted({t for targets in GENERALISATIONS.values() for t in targets})
            if self.to not in known:
                raise ValueError(f"a generalise rule says what to generalise to, one of {known}")
        elif self.to is not None:
            raise ValueError("`to` is only for generalise rules")
        return self

    def sort_key(self) -> tuple[str, str, str, int]:
        return (self.field or "", self.action.value, self.to or "", self.after or 0)


class Facet(StrEnum):
    """What a report contains, declared to the policy without its contents."""

    LOCATION = "location"
    SUBJECTS = "subjects"
    VICTIMS = "victims"  # a subject whose role is victim
    TRAVEL_DOCUMENTS = "travel_documents"
    VEHICLES = "vehicles"
    INDICATORS = "indicators"


class Direction(StrEnum):
    MUTUAL = "mutual"  # every party shares with every other party
    ONE_WAY = "one_way"  # senders share with receivers, not back


class Precedence(BaseModel):
    """A declaration that this agreement takes precedence over others (lex specialis).

    Where this agreement and one named in ``over`` both cover a report (same
    flow, listed type, both in force), the other is set aside: neither its
    prohibitions nor its field rules nor its embargo apply. ``report_types``
    limits the declaration to some of this agreement's types (default: all).
    It can only act on flows between this agreement's own parties, since it
    applies only where this agreement covers the report.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    over: Annotated[tuple[AgreementId, ...], Field(min_length=1)]
    report_types: tuple[ReportType, ...] = Field(default=(), alias="for")

    @field_validator("over")
    @classmethod
    def _each_once(cls, over: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(over)) != len(over):
            raise ValueError("an agreement is named more than once")
        return over


def _one_or_many(value: object) -> object:
    """``precedence: {over: [...]}`` is shorthand for a list of one declaration."""
    return [value] if isinstance(value, dict) else value


class Agreement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: AgreementId
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
    # SIENA-style handling codes this agreement carries. H2 ("no onward
    # sharing without the originator's consent") additionally needs the
    # originator's standing consent for the recipient, in h2_consent.
    handling_codes: Annotated[tuple[HandlingCode, ...], Field(min_length=1)] = (
        HandlingCode.H0,
        HandlingCode.H1,
        HandlingCode.H2,
    )
    h2_consent: dict[Nation, tuple[Nation, ...]] = {}  # originator -> recipients it consents to
    excluded_facets: tuple[Facet, ...] = ()  # reports containing any of these never flow
    field_rules: dict[str, tuple[FieldRule, ...]] = {}
    precedence: Annotated[tuple[Precedence, ...], BeforeValidator(_one_or_many)] = ()

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
        named = set(self.h2_consent) | {n for ns in self.h2_consent.values() for n in ns}
        if named - set(self.parties):
            raise ValueError(f"h2_consent names non-parties {sorted(named - set(self.parties))}")
        if self.h2_consent and HandlingCode.H2 not in self.handling_codes:
            raise ValueError("h2_consent is given but H2 is not among handling_codes")
        for declaration in self.precedence:
            if self.id in declaration.over:
                raise ValueError("an agreement cannot take precedence over itself")
            stray = sorted(set(declaration.report_types) - set(self.report_types))
            if stray:
                raise ValueError(
                    f"precedence is declared for {', '.join(stray)}, which this agreement "
                    "does not cover"
                )
        return self

    def senders_and_receivers(self) -> tuple[tuple[Nation, ...], tuple[Nation, ...]]:
        if self.direction is Direction.ONE_WAY:
            return self.senders, self.receivers
        return self.parties, self.parties

    def rules_for(self, report_type: str) -> tuple[FieldRule, ...]:
        """The general rules, then the report type's own (a ReportType is a str)."""
        return self.field_rules.get(ALL_TYPES, ()) + self.field_rules.get(report_type, ())

    def precedence_over(self, report_type: str) -> frozenset[str]:
        """The agreements this one sets aside for ``report_type`` reports."""
        return frozenset(
            other
            for declaration in self.precedence
            if report_type in (declaration.report_types or self.report_types)
            for other in declaration.over
        )

    def policy_data(self) -> dict[str, object]:
        """The agreement as the Rego policy reads it (``data.agreements[id]``).

        ``precedence`` is written only when declared, so an agreement without
        it has the same data, and an archived bundle the same hash, as before
        precedence existed.
        """
        senders, receivers = self.senders_and_receivers()
        data: dict[str, object] = {
            "id": self.id,
            "version": self.version,
            "senders": list(senders),
            "receivers": list(receivers),
            "valid_from_s": _epoch(self.valid_from),
            "valid_until_s": None if self.valid_until is None else _epoch(self.valid_until),
            "report_types": [t.value for t in self.report_types],
            "max_marking": self.max_marking.value,
            "handling_codes": [c.value for c in self.handling_codes],
            "h2_consent": {o: list(rs) for o, rs in self.h2_consent.items()},
            "excluded_facets": [f.value for f in self.excluded_facets],
            "field_rules": {
                key: [rule.model_dump(mode="json", exclude_none=True) for rule in rules]
                for key, rules in self.field_rules.items()
            },
        }
        if self.precedence:
            data["precedence"] = [
                {
                    "over": list(d.over),
                    "report_types": [t.value for t in d.report_types or self.report_types],
                }
                for d in self.precedence
            ]
        return data


def _epoch(when: dt.datetime) -> int:
    return int(when.timestamp())
