"""``make resilience``: enforcers killed and restarted under load, judged by an oracle.

Run it as ``python -m bench.resilience [--quick] [--reports N] [--processes P]
[--kills K] [--seed S]``; see :mod:`bench.resilience.harness` for the steps
and :mod:`bench.resilience.oracle` for what is checked.
"""

from bench.resilience.harness import QUICK, Outcome, Preset, run_resilience

__all__ = ["QUICK", "Outcome", "Preset", "run_resilience"]
