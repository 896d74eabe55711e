"""What a recipient received, as field paths and kinds: never a value.

An auditor asking "what did BE see of NL's reports" needs the shape of each
delivery, not its contents: which fields arrived as the originator signed
them, which were withheld, and which the broker derived and how. The answer
is computed from the submission's disclosures and the delivery's rule set
with the same selection fan-out uses (:func:`broker.trust.sd.select.select`),
on abstract paths (``subjects[].full_name``), so it is shared by every report
of the same shape under the same rules and stays small over many deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from broker.enforcer.stages.derive import RuleSet
from broker.trust.sd.disclosure import Disclosure
from broker.trust.sd.layout import ReportLayout, abstract_path
from broker.trust.sd.select import select

__all__ = ["Received", "ReceivedViews"]

MAX_VIEWS = 4096


@dataclass(frozen=True, slots=True)
class Received:
    """Abstract field paths of one delivery, sorted; ``derived`` pairs a path with its kind.

    A kind is the rule's action, with its target for a generalisation
    (``pseudonymise``, ``generalise:year``).
    """

    visible: tuple[str, ...]
    withheld: tuple[str, ...]
    derived: tuple[tuple[str, str], ...]


class ReceivedViews:
    """Computes :class:`Received` views, once per (report shape, rule set)."""

    __slots__ = ("_last", "_layout", "_views")

    def __init__(self, layout: ReportLayout) -> None:
        self._layout = layout
        self._views: dict[tuple[frozenset[str], RuleSet], Received] = {}
        # The last submission's disclosures and shape: its recipients come one after another.
        self._last: tuple[Sequence[Disclosure], frozenset[str]] = ((), frozenset())

    def view(self, disclosures: Sequence[Disclosure], rules: RuleSet) -> Received:
        last, shape = self._last
        if disclosures is not last:
            shape = frozenset(abstract_path(d.path) for d in disclosures)
            self._last = (disclosures, shape)
        key = (shape, rules)
        known = self._views.get(key)
        if known is not None:
            return known
        if len(self._views) >= MAX_VIEWS:
            self._views.clear()  # bounded; shapes recur, so it refills with the common ones
        view = self._views[key] = self._compute(disclosures, shape, rules)
        return view

    def _compute(
        self, disclosures: Sequence[Disclosure], shape: frozenset[str], rules: RuleSet
    ) -> Received:
        def removed_by(fields: Sequence[str]) -> frozenset[str]:
            kept = select(self._layout, disclosures, fields)
            return shape - {abstract_path(d.path) for d in kept}

        withheld = removed_by(rules.withheld)
        derived: dict[str, str] = {}
        for rule in rules.derived:
            if not rule.field:
                continue
            kind = rule.action.value + (f":{rule.to}" if rule.to else "")
            for path in removed_by([rule.field]) - withheld:
                derived.setdefault(path, kind)
        visible = shape - withheld - derived.keys()
        return Received(
            visible=tuple(sorted(visible)),
            withheld=tuple(sorted(withheld)),
            derived=tuple(sorted(derived.items())),
        )
