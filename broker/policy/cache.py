"""Decisions cached per (bundle, declared input, validity epoch).

The policy sees a small declared input (docs/ARCHITECTURE.md, decision 5), so the same
few combinations of origin, recipient, type, marking and handling code recur
all day. The only input that changes constantly is the evaluation time, and
the policy reads it only by comparing it with agreements' ``valid_from`` and
``valid_until``. Between two consecutive such boundaries every decision is
the same, so the cache key replaces the time by the index of the interval
it falls in. The observation time is read only to compute an embargo's
not-before instant (observation + the longest embargo among the rules), so
it is left out of the key and the instant is recomputed from the cached
rules for each input. A policy that used either time in any other way would
have to be keyed differently here; tests/unit/test_decision_cache.py compares
cached and uncached decisions around every boundary to hold this to account.

The cache belongs to one bundle: a reloaded bundle gets a new, empty cache.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from broker.domain.decisions import Decision, DecisionInput
from broker.policy import PolicyDecisionPoint

DEFAULT_MAX_ENTRIES = 100_000


class CachedDecisionPoint:
    """Wraps a decision point; undecided results are never cached."""

    __slots__ = ("_boundaries", "_entries", "_inner", "_max_entries", "hits", "misses")

    def __init__(
        self,
        inner: PolicyDecisionPoint,
        time_boundaries_s: Iterable[int],
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._inner = inner
        self._boundaries = sorted(set(time_boundaries_s))
        self._entries: dict[tuple[object, ...], Decision] = {}
        self._max_entries = max_entries
        self.hits = 0
        self.misses = 0

    @property
    def bundle_hash(self) -> str:
        return self._inner.bundle_hash

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def decide(self, decision_input: DecisionInput) -> Decision:
        key = (
            decision_input.origin,
            decision_input.recipient,
            decision_input.report_type,
            decision_input.marking,
            decision_input.handling_code,
            decision_input.facets,
            bisect.bisect_right(self._boundaries, decision_input.now_s),
        )
        cached = self._entries.get(key)
        if cached is not None:
            self.hits += 1
            embargo_s = cached.embargo_s
            if embargo_s is None:
                return cached
            return cached.model_copy(
                update={"not_before_s": decision_input.observed_at_s + embargo_s}
            )
        self.misses += 1
        decision = self._inner.decide(decision_input)  # PolicyUndecided propagates, uncached
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # bounded memory; the working set refills quickly
        self._entries[key] = decision
        return decision
