"""The effective field rules of one delivery: one rule per field, the strictest.

A decision's rules may name a field more than once (an agreement's general
``"*"`` rules and the report type's own, or several agreements that all
allow). One survives per field: a redaction beats a pseudonym beats a
generalisation, and of two generalisations the coarser wins. The enforcer
derives by this (broker/enforcer/stages/derive.py) and the recipient checks
what the broker says it derived by it (broker/parties/derivations.py), so
both sides combine rules in exactly one way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker.domain.agreements import FieldAction, FieldRule, strictness

__all__ = ["RuleSet", "effective_rules"]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The effective rules for one delivery: one per field, in the order they apply."""

    rules: tuple[FieldRule, ...]

    @property
    def withheld(self) -> tuple[str, ...]:
        return tuple(r.field for r in self.rules if r.action is FieldAction.REDACT and r.field)

    @property
    def derived(self) -> tuple[FieldRule, ...]:
        """Fields whose values the broker changed (pseudonymised or generalised)."""
        return tuple(r for r in self.rules if r.action is not FieldAction.REDACT)

    @property
    def derived_fields(self) -> tuple[str, ...]:
        """The paths of :attr:`derived`, as statements and the decision log name them."""
        return tuple(r.field for r in self.derived if r.field)

    @property
    def pseudonymises(self) -> bool:
        return any(r.action is FieldAction.PSEUDONYMISE for r in self.rules)


def effective_rules(rules: Iterable[FieldRule]) -> RuleSet:
    """The strictest rule per field; embargo rules are not field rules and are dropped."""
    strongest: dict[str, FieldRule] = {}
    for rule in rules:
        if rule.field is None:
            continue
        current = strongest.get(rule.field)
        if current is None or _stricter(rule, current):
            strongest[rule.field] = rule
    order = {FieldAction.REDACT: 0, FieldAction.GENERALISE: 1, FieldAction.PSEUDONYMISE: 2}
    ranked = sorted(strongest.values(), key=lambda r: (order[r.action], r.field or ""))
    return RuleSet(tuple(ranked))


def _stricter(rule: FieldRule, than: FieldRule) -> bool:
    return strictness(rule.action, rule.to) > strictness(than.action, than.to)
