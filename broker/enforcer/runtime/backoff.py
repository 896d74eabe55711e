"""How long a partition waits before a submission the policy could not decide is tried again.

"Could not decide" is not "deny" (docs/ARCHITECTURE.md, decision 2): the runner holds the
partition at the undecided submission and asks again later. Each partition
waits ``initial_s`` after its first undecided submission, twice as long after
each further one in a row, at most ``max_s``; one submission of the
partition that goes through resets it. A policy engine that stays down
therefore costs one attempt per partition every ``max_s`` seconds, however
long it stays down, and nothing accumulates meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.errors import ConfigurationError
from broker.wire.records import Partition


class PartitionBackoff:
    """Exponential back-off per partition: ``initial_s``, doubling, capped at ``max_s``."""

    __slots__ = ("_delays", "initial_s", "max_s")

    def __init__(self, *, initial_s: float = 0.5, max_s: float = 30.0) -> None:
        if not 0 < initial_s <= max_s:
            raise ConfigurationError("policy retry back-off needs 0 < initial_s <= max_s")
        self.initial_s = initial_s
        self.max_s = max_s
        self._delays: dict[Partition, float] = {}  # the last delay given, per partition

    def next_delay(self, partition: Partition) -> float:
        """The wait before ``partition`` is tried again, one step longer than the last."""
        last = self._delays.get(partition)
        delay = self.initial_s if last is None else min(last * 2, self.max_s)
        self._delays[partition] = delay
        return delay

    def reset(self, partitions: Iterable[Partition]) -> None:
        """These partitions made progress: their next wait is ``initial_s`` again."""
        for partition in partitions:
            self._delays.pop(partition, None)
