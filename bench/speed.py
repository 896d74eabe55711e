"""How fast this machine runs Python right now: one fixed workload, timed by the wall clock.

On the machine ixb is developed on, the same CPU-bound loop runs anywhere
between about half and all of its best speed from one stretch of a few
seconds to the next, with nothing else of ours running (a busy neighbour on
the host, presumably). Phases of the bench run minutes apart, so a ratio
between two of them (pipeline / ceiling, two processes / one) can move by
that much for no reason in ixb. The bench samples the speed before and
after every phase and reports the spread beside the ratios, so that a
reader can tell a real change from the machine's. Wall-clock time, as the
figures it qualifies: time the host takes away from this virtual machine
counts (CPU time would not see it); nothing of ours runs between phases.
"""

from __future__ import annotations

import hashlib
import time

_ROUNDS = 2000  # one unit: hashing and dictionary work, about 1 ms here


def _unit() -> None:
    digest = b"\0" * 32
    table: dict[bytes, int] = {}
    for i in range(_ROUNDS):
        digest = hashlib.sha256(digest).digest()
        table[digest[:8]] = i


def sample(seconds: float = 0.3) -> float:
    """Units of the fixed workload per second, over about ``seconds``."""
    started = time.perf_counter()
    units = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        _unit()
        units += 1
    return units / elapsed


def spread(samples: list[float]) -> float:
    """The fastest sample over the slowest: 1.0 is a steady machine."""
    return max(samples) / min(samples) if samples else float("nan")
