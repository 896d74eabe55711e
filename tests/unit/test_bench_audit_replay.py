"""The replay bench records a real enforcer run under two bundles and replays all of it."""

from __future__ import annotations

from bench import audit_replay


def test_the_replay_bench_replays_every_decision_it_recorded_under_both_bundles() -> None:
    figures = audit_replay.measure(30)

    assert figures["replay_submissions"] == 10
    assert figures["replay_decisions"] == 30  # every report decided for three partners
    assert figures["replay_bundles"] == 2
    assert figures["replay_decisions_per_s"] > 0
    assert "replay_profile" not in figures
