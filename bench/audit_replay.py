"""How fast ``ixb audit replay`` re-runs decisions: ``python -m bench.audit_replay``.

The log is recorded as the enforcer writes it, without Kafka: the bench's
reports and agreements (bench/reports.py) are sealed with real agency keys
and go through the real ``Enforcer.process`` (intake, fan-out, attestation,
audit writer, bundle archiver) in batches of 500; a second bundle is swapped
in halfway, so the replay loads and decides with two archived bundles. Then
the replayer re-runs every decision (intake again, the archived bundle's
Rego, the recipient's view) and only that is timed. ``measure`` returns the
figures for ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import math
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.reports import FAN_OUT, NATIONS, generate
from bench.workspace import Workspace
from broker.app.assembly import build_stages, signer_for
from broker.app.auditing import intake_window
from broker.app.logs import configure as configure_logging
from broker.app.settings import Settings
from broker.auditlog.checkpoints import log_id_of
from broker.auditlog.entries import decode_entry
from broker.auditor.replay import LoggedEntry, ReplayReport
from broker.auditor.use_cases import replayer_for
from broker.enforcer.stages.replay_guard import Position
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole
from broker.trust.registry_file import RegistryFile
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.submission import seal_submission
from broker.trust.sealing.routes import sealed_submission
from broker.wire.records import InboundRecord
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames

BATCH = 500
SECOND_BUNDLE = '  smuggling:\n    - {field: "vehicles[].registration", action: redact}\n'


class Recording:
    """The log, archives and submissions of one in-memory enforcer run."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.entries: list[LoggedEntry] = []
        self.archives: list[bytes] = []  # policy bundles
        self.registry_archives: list[bytes] = []  # registry versions
        self.submissions: dict[Position, InboundRecord] = {}

    async def record(self, sealed: list[tuple[str, bytes]], now: dt.datetime) -> None:
        settings = self.workspace.settings
        catalog = self.workspace.catalog
        stages = build_stages(settings)
        topics = stages.topics
        processor = stages.processor(clock=lambda: now)
        log_id = log_id_of(topics.audit, 0)
        batch = max(1, min(BATCH, len(sealed) // 2))  # a small run still sees both bundles
        for start in range(0, len(sealed), batch):
            if start >= len(sealed) // 2 and stages.policy.reloads == 0:
                _change_agreement(settings.policies_dir)
                stages.policy.check()
            inbound = []
            for offset, (nation, value) in enumerate(sealed[start : start + batch], start):
                topic = topics.submit(nation)
                record = InboundRecord(topic, 0, offset, None, value, (), 0)
                self.submissions[topic, 0, offset] = record
                inbound.append(record)
            processed = processor.process(inbound)
            processor.archiver.acknowledged(processed.archives)  # as if Kafka had
            for archive in processed.archives:
                kept = self.registry_archives if archive.topic == topics.registry else self.archives
                kept.append(archive.value)
            for output in processed.outputs:
                if output.topic == topics.audit:
                    entry = decode_entry(catalog, output.value)
                    self.entries.append(LoggedEntry(log_id, len(self.entries), entry))


def _change_agreement(policies: Path) -> None:
    path = policies / "agreements" / "bench-frontier-group.yaml"
    path.write_text(path.read_text().replace("version: 1", "version: 2") + SECOND_BUNDLE)


def _seal(workspace: Workspace, count: int, now: dt.datetime) -> list[tuple[str, bytes]]:
    """Signed and sealed as each origin's agency sends them (to the broker and its auditor)."""
    catalog = workspace.catalog
    layout = ReportLayout.from_catalog(catalog)
    settings = workspace.settings
    signers = {n: signer_for(settings, catalog, role=KeyRole.AGENCY, nation=n) for n in NATIONS}
    registry = RegistryFile(settings.registry_path).current()
    topics = TopicNames(settings.topic_namespace)
    sealed = []
    for r in generate(count, now=now - dt.timedelta(seconds=30)):
        signed = seal_submission(catalog, layout, signers[r.origin], report_to_record(r))
        value = sealed_submission(
            catalog, registry, signed, topic=topics.submit(r.origin), origin=r.origin, at=now
        )
        sealed.append((r.origin, value))
    return sealed


def measure(decisions: int = 100_000, *, profile: bool = False) -> dict[str, Any]:
    """Decisions replayed per second over ``decisions`` logged decisions (about; whole reports)."""
    reports = math.ceil(decisions / FAN_OUT)
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="ixb-bench-replay-") as tmp:
        base = Settings(policy_check_interval_s=3600)  # reloads only when the bench says so
        workspace = Workspace(Path(tmp), base)
        started = time.perf_counter()
        sealed = _seal(workspace, reports, now)
        sealed_s = time.perf_counter() - started
        recording = Recording(workspace)
        started = time.perf_counter()
        asyncio.run(recording.record(sealed, now))
        recorded_s = time.perf_counter() - started
        del sealed
        settings = workspace.settings
        registry = RegistryFile(settings.registry_path).current()
        replayer = replayer_for(
            workspace.catalog,
            registry,
            recording.archives,
            topics=TopicNames(settings.topic_namespace),
            window=intake_window(settings),
            registry_archives=recording.registry_archives,
            keys=Keystore(settings.keystore_dir),
        )
        profiler = cProfile.Profile() if profile else None
        cpu, started = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        report = replayer.replay(recording.entries, recording.submissions)
        if profiler:
            profiler.disable()
        replay_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    _check(report, len(recording.entries))
    figures: dict[str, Any] = {
        "replay_decisions": len(report.replayed),
        "replay_submissions": reports,
        "replay_bundles": len({r.bundle_hash for r in report.replayed}),
        "replay_seconds": round(replay_s, 3),
        "replay_cpu_seconds": round(cpu_s, 3),
        "replay_decisions_per_s": round(len(report.replayed) / replay_s, 1),
        "replay_seal_seconds": round(sealed_s, 3),
        "replay_record_seconds": round(recorded_s, 3),
    }
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        figures["replay_profile"] = text.getvalue()
    return figures


def _check(report: ReplayReport, entries: int) -> None:
    """A bench of a replay that finds differences, or replays less than logged, measures a bug."""
    if not report.ok or len(report.replayed) != entries:
        raise AssertionError(
            f"{len(report.findings)} findings and {len(report.replayed)} of {entries} replayed"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="print the cProfile top 25")
    args = parser.parse_args()
    configure_logging(level="WARNING")  # the recording enforcer logs every delivery at debug
    figures = measure(args.decisions, profile=args.profile)
    print(
        f"sealed {figures['replay_submissions']} reports in {figures['replay_seal_seconds']} s, "
        f"recorded them in {figures['replay_record_seconds']} s (not timed)"
    )
    print(
        f"replayed {figures['replay_decisions']} decisions under {figures['replay_bundles']} "
        f"bundles in {figures['replay_seconds']} s (cpu {figures['replay_cpu_seconds']} s): "
        f"{figures['replay_decisions_per_s']:,.0f} decisions/s"
    )
    if args.profile:
        print(figures["replay_profile"])


if __name__ == "__main__":
    main()
