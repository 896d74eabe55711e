"""Replay protection in memory: once per report id, a redo at the same position is not a replay."""

from __future__ import annotations

import datetime as dt

import pytest

from broker.enforcer.stages.replay_guard import ReplayGuard
from broker.errors import RejectedInput

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
WINDOW = dt.timedelta(hours=1)
FIRST = ("ixb.submit.NL", 0, 7)


def guard_with(report_id: str, issued_at: dt.datetime) -> ReplayGuard:
    guard = ReplayGuard(WINDOW)
    guard.check(report_id, issued_at, FIRST, NOW)
    guard.remember(report_id, issued_at, FIRST)
    return guard


def test_the_same_report_from_another_position_is_refused_as_a_replay() -> None:
    guard = guard_with("r1", NOW)
    with pytest.raises(RejectedInput) as refused:
        guard.check("r1", NOW, ("ixb.submit.NL", 1, 0), NOW)
    assert (refused.value.reason, refused.value.stage) == ("replayed_report", "replay")


def test_the_same_position_again_is_a_redo_and_goes_through() -> None:
    guard = guard_with("r1", NOW)
    guard.check("r1", NOW, FIRST, NOW)  # does not raise


def test_a_report_older_than_the_window_is_refused_as_stale() -> None:
    with pytest.raises(RejectedInput) as refused:
        ReplayGuard(WINDOW).check("r2", NOW - WINDOW - dt.timedelta(seconds=1), FIRST, NOW)
    assert refused.value.reason == "stale_report"


def test_ids_are_forgotten_only_once_their_reports_would_be_stale_anyway() -> None:
    guard = guard_with("old", NOW - dt.timedelta(minutes=50))
    guard.remember("new", NOW, ("ixb.submit.NL", 0, 8))

    guard.forget_older_than(NOW)
    assert len(guard) == 2
    guard.forget_older_than(NOW + dt.timedelta(minutes=11))
    assert len(guard) == 1
    with pytest.raises(RejectedInput):
        guard.check("new", NOW, FIRST, NOW + dt.timedelta(minutes=11))
