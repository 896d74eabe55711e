"""The resilience run with broker faults, on the session's three-node Apache Kafka.

The in-suite preset (``BROKER_QUICK``): two enforcer SIGKILLs and restarts
and an extra enforcer in and out, plus broker faults while reports are
published: the active controller (which leads a third of the submission
partitions) SIGKILLed and restarted on its own data as the cluster elects
others, and one node frozen with SIGSTOP for a few seconds. Replication
factor 3 and ``min.insync.replicas`` 2 with ``acks=all`` idempotent
producers mean nothing acknowledged may be lost and nothing duplicated
beyond what de-duplication by delivery id removes; the oracle holds every
feed and rejected topic to that, and the decision log must verify.
``make resilience`` runs the full preset (four broker kills, among them a
busy partition's leader and the controller as separate victims).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.resilience import BROKER_QUICK, run_resilience
from broker.app.settings import Settings
from broker.kafka.embedded import ApacheKafka
from tests.support.kafka import EXTERNAL

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(EXTERNAL is not None, reason="broker faults need the embedded cluster"),
]


async def test_brokers_killed_frozen_and_restarted_under_load_lose_and_duplicate_nothing(
    kafka_cluster: ApacheKafka, tmp_path: Path
) -> None:
    preset = BROKER_QUICK
    timeline: list[str] = []  # what the run did when, for the failure message

    outcome = await run_resilience(
        preset, Settings(), workdir=tmp_path, cluster=kafka_cluster, say=_noting(timeline)
    )

    counts, violations = outcome.verdict.counts, outcome.verdict.violations
    # Shown with -rP: where the time went, and the at-least-once noise.
    print(f"broker-fault run in {outcome.seconds:.0f} s", *timeline, outcome.repeats, sep="\n")
    # First what explains the rest: a run that never settled misses deliveries too.
    for cause in ("enforcer_crashed", "not_quiescent", "graceful_stop"):
        assert not violations[cause], (cause, violations[cause][:3], timeline, _log_tails(tmp_path))
    assert counts["broker_kills"] == preset.broker_kills
    assert counts["broker_restarts"] == preset.broker_kills
    assert counts["broker_freezes"] == preset.broker_freezes
    # The kill aims at the active controller, which leads submission partitions: those
    # must change hands, and the quorum must elect another controller.
    assert counts["controller_kills"] == 1
    assert counts["leader_changes"] >= 1
    assert counts["controller_changes"] >= 1
    assert kafka_cluster.running
    assert counts["kills"] == preset.kills
    assert counts["restarts"] == preset.kills
    assert counts["expected_pairs"] > 0
    assert counts["missing"] == 0, violations["missing"][:5]
    assert counts["unexpected"] == 0, violations["unexpected"][:5]
    assert counts["split_delivery_ids"] == 0
    assert counts["feed_problems"] == 0
    assert counts["refusals_expected"] == preset.reports // preset.refused_every
    assert counts["refusals_found"] == counts["refusals_expected"]
    assert counts["refusal_wrong_reason"] == 0
    assert counts["valid_rejected"] == 0
    assert counts["audit_entries"] > 0
    assert counts["audit_unverified"] == 0, violations["audit_unverified"][:5]
    assert outcome.ok, {k: v for k, v in violations.items() if v}


def _noting(timeline: list[str]) -> Callable[[str], None]:
    started = time.monotonic()
    return lambda message: timeline.append(f"{time.monotonic() - started:6.1f}s {message}")


def _log_tails(workdir: Path) -> dict[str, list[str]]:
    """The last lines each enforcer incarnation logged: where a stuck one stopped."""
    return {
        log.name: log.read_text(errors="replace").splitlines()[-3:]
        for log in sorted((workdir / "logs").glob("*.log"))
    }
