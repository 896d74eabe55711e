"""The bench's reports are realistic and its ceiling runs the real stages (no Kafka)."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from bench import ceiling, latency
from bench.reports import FAN_OUT, NATIONS, generate, profiles, warm_up
from bench.results import TARGETS, verdicts, write_json
from bench.workspace import Sealed, Workspace, signed_submission
from broker.app.assembly import signer_for
from broker.app.settings import Settings
from broker.domain.report import SubjectRole, ThreatReport
from broker.enforcer.stages.fanout import delivery_id
from broker.trust.records import KeyRole
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import seal_submission
from broker.wire.codec import SchemaCatalog
from broker.wire.report import encode_report, report_to_record

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _profile(report: ThreatReport) -> tuple[str, str, str, str]:
    return (report.origin, report.report_type, report.marking, report.handling_code)


def test_the_same_seed_gives_the_same_reports_and_another_seed_others() -> None:
    assert generate(20, seed=3, now=NOW) == generate(20, seed=3, now=NOW)
    assert generate(20, seed=3, now=NOW) != generate(20, seed=4, now=NOW)


def test_every_report_carries_subjects_documents_vehicles_and_indicators() -> None:
    for report in generate(200, now=NOW):
        assert 3 <= len(report.subjects) <= 5
        assert all(s.travel_documents for s in report.subjects)
        assert report.vehicles
        assert len(report.indicators) >= 2


def test_reports_are_distinct_and_their_sizes_spread(catalog: SchemaCatalog) -> None:
    reports = generate(300, now=NOW)
    assert len({r.report_id for r in reports}) == len(reports)
    sizes = [len(encode_report(catalog, r)) for r in reports]
    assert max(sizes) > 2.5 * min(sizes)


def test_the_origin_mix_is_heavy_on_one_nation() -> None:
    origins = collections.Counter(r.origin for r in generate(2000, now=NOW))
    assert set(origins) == set(NATIONS)
    assert origins.most_common(1)[0][0] == "NL"
    assert origins["NL"] > 2 * origins["FR"]


def test_victims_appear_only_in_trafficking_reports() -> None:
    for report in generate(300, now=NOW):
        has_victim = any(s.role is SubjectRole.VICTIM for s in report.subjects)
        assert has_victim == (report.report_type == "human_trafficking")


def test_the_warm_up_covers_every_profile_the_generator_draws_from() -> None:
    warm = collections.Counter(_profile(r) for r in warm_up(2, seed=1, now=NOW))
    assert set(warm) == set(profiles())
    assert set(warm.values()) == {2}
    assert {_profile(r) for r in generate(500, now=NOW)} <= set(warm)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("bench"), Settings())


def _seal(workspace: Workspace, reports: list[ThreatReport]) -> list[Sealed]:
    """Signed as the publisher signs (its own path needs a running Kafka producer)."""
    signers = {
        n: signer_for(workspace.settings, workspace.catalog, role=KeyRole.AGENCY, nation=n)
        for n in NATIONS
    }
    layout = ReportLayout.from_catalog(workspace.catalog)
    sealed = []
    for report in reports:
        signed = seal_submission(
            workspace.catalog, layout, signers[report.origin], report_to_record(report)
        )
        key = str(report.report_id).encode()
        sealed.append(
            signed_submission(workspace.catalog, workspace.readers, report.origin, key, signed)
        )
    return sealed


def test_every_report_reaches_the_three_other_nations_through_the_real_stages(
    workspace: Workspace,
) -> None:
    sealed = _seal(workspace, generate(12, seed=5))
    stages = ceiling.Stages(workspace.settings)
    inbound = [s.inbound(stages.topics, offset) for offset, s in enumerate(sealed)]
    assert stages.process(inbound) == (12 * FAN_OUT, 0)


def test_a_forged_report_is_refused_by_the_ceiling_loop_as_by_the_enforcer(
    workspace: Workspace,
) -> None:
    [good] = _seal(workspace, generate(1, seed=6))
    tampered = good.signed[:-1] + bytes(
        [good.signed[-1] ^ 1]
    )  # the last disclosure: no longer signed
    forged = dataclasses.replace(good, signed=tampered, _values={})
    stages = ceiling.Stages(workspace.settings)
    assert stages.process([forged.inbound(stages.topics, 0)]) == (0, 1)


@pytest.fixture
def logs_as_the_bench() -> Iterator[None]:
    """ixb's events from INFO up, as `make bench` logs them (bench/run.py), for one test.

    Unconfigured, structlog renders every debug event (three "delivered" a
    report): the profile would then be of log printing, not of the stages.
    The configuration before is restored, caching off, so no test after
    inherits a logger bound here.
    """
    before = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**before)


@pytest.mark.usefixtures("logs_as_the_bench")
def test_the_ceiling_decides_from_a_warm_cache_and_counts_every_report(
    workspace: Workspace,
) -> None:
    sealed = _seal(workspace, generate(8, seed=7))
    result, profile = ceiling.measure(
        workspace.settings, sealed, sealed, batch_size=3, profile=True
    )
    assert (result.reports, result.deliveries, result.rejected) == (8, 8 * FAN_OUT, 0)
    assert result.cache_misses > 0
    assert result.cache_misses_timed == 0
    assert profile is not None
    assert "route" in profile


def test_a_figure_that_could_not_be_measured_misses_its_target_and_is_null(
    tmp_path: Path,
) -> None:
    figures = {t.key: math.nan for t in TARGETS}
    assert not any(verdicts(figures).values())
    write_json(tmp_path / "r.json", figures)
    assert set(json.loads((tmp_path / "r.json").read_text()).values()) == {None}


def test_targets_pass_only_on_the_right_side_of_their_limit() -> None:
    at_limit = {t.key: t.limit for t in TARGETS}
    assert all(verdicts(at_limit).values())
    worse = {t.key: t.limit * (0.9 if t.at_least else 1.1) for t in TARGETS}
    assert not any(verdicts(worse).values())


def test_a_latency_splits_at_the_stamp_the_enforcer_put_on_the_delivery(
    workspace: Workspace,
) -> None:
    [report] = _seal(workspace, generate(1, seed=9))
    ledger = latency._Ledger([report])
    ledger.sent(0, at=10.0)
    recipient = next(n for n in NATIONS if n != report.nation)
    key = delivery_id(report.payload_sha256, recipient).encode()
    ledger.arrived(key, at=10.5, stamped_ms=round(ledger.sent_wall_ms[0] + 200))
    ledger.arrived(key, at=10.6, stamped_ms=0)  # a repeat: not counted twice
    assert ledger.latencies_s == [0.5]
    assert ledger.to_output_ms == [pytest.approx(200, abs=1)]
    assert ledger.unmatched == 1
