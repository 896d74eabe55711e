"""``make resilience``: enforcers and brokers killed and restarted under load, judged by an oracle.

Run it as ``python -m bench.resilience [--quick] [--reports N] [--processes P]
[--kills K] [--broker-kills B] [--freezes F] [--brokers 1|3] [--seed S]``; see
:mod:`bench.resilience.harness` for the steps, :mod:`bench.resilience.brokers`
for the broker faults and :mod:`bench.resilience.oracle` for what is checked.
"""

from bench.resilience.harness import BROKER_QUICK, FULL, QUICK, Outcome, Preset, run_resilience

__all__ = ["BROKER_QUICK", "FULL", "QUICK", "Outcome", "Preset", "run_resilience"]
