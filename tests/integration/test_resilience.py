"""The resilience run's quick preset, through the same code as ``make resilience``.

Two enforcers (``ixb run`` subprocesses) share the submission partitions;
three are SIGKILLed at random moments and restarted, and an extra one joins
and leaves, while 1,500 reports from seven nations and 30 submissions that
must be refused are published. The oracle then holds what every feed and
rejected topic contains against what the agreements decide.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.resilience import QUICK, run_resilience
from broker.app.settings import Settings
from tests.support.kafka import SESSION_TIMEOUT_MS

pytestmark = pytest.mark.integration


async def test_enforcers_killed_and_restarted_deliver_every_allowed_pair_and_nothing_else(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    preset = dataclasses.replace(QUICK, session_timeout_ms=SESSION_TIMEOUT_MS)

    outcome = await run_resilience(
        preset, Settings(kafka_bootstrap=kafka_bootstrap), workdir=tmp_path
    )

    counts, violations = outcome.verdict.counts, outcome.verdict.violations
    # First what explains the rest: a run that never settled misses deliveries too.
    for cause in ("enforcer_crashed", "not_quiescent"):
        assert not violations[cause], (cause, violations[cause][:3], _log_tails(tmp_path))
    assert counts["kills"] == preset.kills
    assert counts["restarts"] == preset.kills
    assert counts["expected_pairs"] > 0
    assert counts["denied_pairs"] > 0
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


def _log_tails(workdir: Path) -> dict[str, list[str]]:
    """The last lines each enforcer incarnation logged: where a stuck one stopped."""
    return {
        log.name: log.read_text(errors="replace").splitlines()[-3:]
        for log in sorted((workdir / "logs").glob("*.log"))
    }
