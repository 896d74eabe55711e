"""What a recipient may see: the report with an agreement's field rules applied.

The rules a decision carries may name the same field more than once (the
general ``"*"`` rules and the report type's own, or several agreements that
all allow). One rule per field survives, the strictest
(:func:`~broker.domain.rule_sets.effective_rules`, in the domain so that the
recipient checks derivations by the same rule). Redactions are applied
first, so a pseudonym or a generalisation is never computed for something
that is withheld anyway.

Everything happens on a copy of the decoded record; the original, and the
originator's exact bytes, are never touched. Only the containers on the
rules' paths are copied (a deep copy of the whole record was half the
per-report cost in the bench profile); everything else is shared, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from broker.domain.agreements import FieldAction
from broker.domain.fields import FieldPath, Step, resolve, transform, value_kind, withhold
from broker.domain.generalise import generaliser
from broker.domain.rule_sets import RuleSet, effective_rules
from broker.trust.pseudonyms import Pseudonymiser

__all__ = ["Deriver", "RuleSet", "effective_rules"]


class Deriver:
    """Applies rule sets to decoded records; caches parsed paths and value kinds."""

    __slots__ = ("_kinds", "_paths", "_schema")

    def __init__(self, report_schema: Mapping[str, Any]) -> None:
        self._schema = report_schema
        self._paths: dict[str, FieldPath] = {}
        self._kinds: dict[str, str] = {}

    def derive(
        self,
        record: Mapping[str, Any],
        rule_set: RuleSet,
        pseudonymiser: Pseudonymiser | None,
    ) -> dict[str, Any]:
        """A derived copy of ``record``. ``pseudonymiser`` is needed when a rule pseudonymises."""
        derived = dict(record)
        for rule in rule_set.rules:
            assert rule.field is not None  # effective_rules keeps field rules only
            path = self._path(rule.field)
            _copy_along(derived, path.steps)
            if rule.action is FieldAction.REDACT:
                withhold(derived, path)
            elif rule.action is FieldAction.GENERALISE:
                assert rule.to is not None  # FieldRule validates this
                transform(derived, path, generaliser(self._kind(path), rule.to))
            else:
                if pseudonymiser is None:
                    raise ValueError("a pseudonymise rule needs the agreement's pseudonymiser")
                transform(derived, path, _pseudonym_of(pseudonymiser, rule.field))
        return derived

    def _path(self, field: str) -> FieldPath:
        path = self._paths.get(field)
        if path is None:
            path = self._paths[field] = FieldPath.parse(field)
        return path

    def _kind(self, path: FieldPath) -> str:
        kind = self._kinds.get(path.text)
        if kind is None:
            kind = self._kinds[path.text] = value_kind(resolve(path, self._schema))
        return kind


def _copy_along(node: dict[str, Any], steps: tuple[Step, ...]) -> None:
    """Replace every container on ``steps`` below ``node`` by a copy (``node`` is one)."""
    step, rest = steps[0], steps[1:]
    value = node.get(step.name)
    if not rest or value is None:
        return  # the leaf itself is replaced by assignment, never mutated
    if isinstance(value, list):
        items = [dict(item) if isinstance(item, dict) else item for item in value]
        node[step.name] = items
        for item in items:
            if isinstance(item, dict):
                _copy_along(item, rest)
    elif isinstance(value, dict):
        copied = dict(value)
        node[step.name] = copied
        _copy_along(copied, rest)


def _pseudonym_of(pseudonymiser: Pseudonymiser, field: str) -> Callable[[Any], Any]:
    return lambda value: pseudonymiser.pseudonym(field, value)
