"""``python -m bench.run``: every figure of issue 7, measured in one run on this machine.

On Apache Kafka (one KRaft node, started once for the whole run, so the raw
passthrough and the pipeline are measured on the same broker), or with
``--engine tansu`` on Tansu for comparison (a fresh one per phase: its
per-fetch cost grows with what it stores). The phases, in order, each on
fresh topics:

1. generate reports and sign them as the agencies would (not timed);
   sealing: HPKE seal and open cost per suite, per record and per batch
   (bench/sealing.py);
2. ceiling: intake and fan-out in a tight loop, no Kafka;
3. passthrough: raw aiokafka consume -> produce to three topics -> commit;
4. pipeline, one ``ixb run`` process, on the backlog;
5. pipeline, two processes in one consumer group, on the backlog;
6. latency: one caught-up enforcer, reports sent at a fixed rate, then at
   the rate step 4 measured (saturation).

Set ``IXB_KAFKA_BOOTSTRAP`` to measure against a cluster started elsewhere.
"""

from __future__ import annotations

import asyncio
import math
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import ceiling, latency, sealing, speed, stages
from bench.config import REPO, Config
from bench.embedded import Kafka, kafka_for
from bench.enforcers import run_backlog
from bench.kafka import RunFailed, passthrough
from bench.reports import FAN_OUT, NATIONS, generate, profiles, warm_up
from bench.results import environment, print_table, ratio, verdicts, write_json
from bench.workspace import Phase, Sealed, Workspace
from broker.app.logs import configure as configure_logging
from broker.app.settings import Settings
from broker.domain.report import ThreatReport
from broker.errors import IxbError

MAX_CEILING_REPORTS = 10_000
SPEED_SPREAD_NOTED = 1.15  # beyond this, the note says ratios between phases are noisy
MAX_SATURATION_REPORTS = 30_000
REQUIRED_KEYS = (  # issue 7: runs are compared by these
    "reports_per_s_1proc",
    "reports_per_s_2proc",
    "deliveries_per_s_1proc",
    "passthrough_reports_per_s",
    "ceiling_reports_per_s",
    "ratio_to_ceiling",
    "ratio_2proc_to_1proc",
    "latency_ms_p50",
    "latency_ms_p99",
    "latency_rate_per_s",
    "peak_rss_mb",
)


class Bench:
    """Runs the phases and collects figures; a failed phase leaves its figures out."""

    def __init__(self, config: Config, base: Settings, root: Path, console: Console) -> None:
        self.config = config
        if config.engine is not None:
            base = base.model_copy(update={"kafka_engine": config.engine})
        self.base = base
        # Tansu's per-fetch cost grows with what it stores: a fresh one per phase.
        self.fresh_per_phase = not base.kafka_bootstrap and base.kafka_engine == "tansu"
        self.shared: Kafka | None = None  # the broker every phase uses, unless fresh per phase
        self.described = ""
        self.workspace = Workspace(root, base)
        self.logs = root / "logs"
        self.logs.mkdir()
        self.console = console
        self.figures: dict[str, Any] = {}
        self.notes: list[str] = []
        self.failed: list[str] = []
        self.speeds: dict[str, tuple[float, float]] = {}  # per phase, before and after
        self.broker_pid: int | None = None  # the current phase's embedded Kafka
        self.sealed: list[Sealed] = []  # the measured reports, signed
        self.warm: list[Sealed] = []  # the warm-up, signed
        self._started = time.monotonic()

    def say(self, message: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self._started:6.1f}s[/dim] {message}")

    @asynccontextmanager
    async def kafka(self) -> AsyncIterator[Kafka]:
        """The run's broker, or a fresh embedded Tansu for one phase."""
        if self.shared is not None:
            yield self.shared
            return
        async with kafka_for(self.base, self.say) as kafka:
            self.described = f"{kafka.description}, fresh per phase"
            self.broker_pid = kafka.pids[0] if kafka.pids else None
            try:
                yield kafka
            finally:
                self.broker_pid = None

    async def phase(self, label: str, kafka: Kafka) -> Phase:
        """Fresh, empty topics for one measurement."""
        phase = self.workspace.phase(label, kafka)
        await phase.create_topics(submit_partitions=self.config.partitions)
        return phase

    async def guarded(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        before = speed.sample()  # nothing of ours runs between phases
        try:
            await work()
        except (RunFailed, IxbError, OSError) as exc:
            self.failed.append(name)
            self.notes.append(f"{name} failed: {exc}")
            self.say(f"[red]{name} failed[/red]: {exc}")
        self.speeds[name] = (before, speed.sample())

    async def run(self) -> dict[str, Any]:
        c = self.config
        self.say(
            f"generating and signing {c.reports:,} reports from {', '.join(NATIONS)}, "
            f"after a warm-up of {c.warm_up_copies} x {len(profiles())} decision inputs"
        )
        reports = generate(c.reports, seed=c.seed)
        warm = warm_up(c.warm_up_copies, seed=c.seed + 100)
        if self.fresh_per_phase:
            return await self._phases(reports, warm)
        async with kafka_for(self.base, self.say) as kafka:
            self.shared, self.described = kafka, kafka.description
            self.broker_pid = kafka.pids[0] if kafka.pids else None
            if kafka.embedded:
                self.described += ", one broker for the whole run"
            self.say(f"on {self.described}")
            return await self._phases(reports, warm)

    async def _phases(
        self, reports: list[ThreatReport], warm: list[ThreatReport]
    ) -> dict[str, Any]:
        c = self.config
        async with self.kafka() as kafka:
            self.sealed = await self.workspace.seal(reports, kafka)
            self.warm = await self.workspace.seal(warm, kafka)
        phases: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "sealing": self.sealing,
            "ceiling": self.ceiling,
            "passthrough": self.passthrough,
            "pipeline1": lambda: self.pipeline(1),
            "pipeline2": lambda: self.pipeline(2),
            "latency": self.latency,
        }
        for name, work in phases.items():
            if name in c.phases:
                await self.guarded(name, work)
            else:
                self.notes.append(f"{name}: skipped (--only)")
        return self.summary()

    async def sealing(self) -> None:
        self.say("sealing: HPKE seal and open per record and per batch, both suites (one thread)")
        self.figures.update(await asyncio.to_thread(sealing.figures))

    async def ceiling(self) -> None:
        """Synchronous on purpose: nothing else runs while the loop is timed."""
        count = min(len(self.sealed), MAX_CEILING_REPORTS)
        self.say(f"ceiling: the enforcer's processing of {count:,} reports, no Kafka")
        # In a thread: the ceiling runs its own event loop, nothing else runs meanwhile.
        result, profile = await asyncio.to_thread(
            ceiling.measure,
            self.workspace.settings,
            self.warm,
            self.sealed[:count],
            batch_size=self.workspace.settings.batch_max_records,
            profile=self.config.profile,
        )
        if result.rejected:
            self.notes.append(f"ceiling: {result.rejected} reports were refused (bench bug?)")
        if result.cache_misses_timed:
            self.notes.append(
                f"ceiling: {result.cache_misses_timed} decisions missed the warm cache"
            )
        self.figures.update(
            ceiling_reports_per_s=result.reports_per_s,
            ceiling_deliveries_per_s=result.deliveries_per_s,
            ceiling_reports=result.reports,
            ceiling_cpu_utilisation=result.cpu_seconds / result.seconds,
            ceiling_cpu_ms_per_report=result.cpu_ms_per_report,
            ceiling_stage_shares=result.stage_shares,
            decision_cache_misses_warm_up=result.cache_misses,
            decision_miss_ms_approx=result.miss_ms,
        )
        if profile is not None:
            self.console.print(profile)

    async def passthrough(self) -> None:
        self.say("passthrough: raw aiokafka consume -> produce x3 -> commit")
        async with self.kafka() as kafka:
            phase = await self.phase("pass", kafka)
            await phase.produce(self.warm)
            await phase.produce(self.sealed)
            topics = phase.topics
            span = await passthrough(
                kafka.bootstrap,
                pattern=topics.submit_pattern,
                group_id=phase.settings.group_id,
                routes={
                    topics.submit(n): [topics.deliver(r) for r in NATIONS if r != n]
                    for n in NATIONS
                },
                warm_up=len(self.warm),
                expected=len(self.warm) + len(self.sealed),
                batch_max=phase.settings.batch_max_records,
                session_timeout_ms=phase.settings.consumer_session_timeout_ms,
                timeout_s=self._timeout_s(),
                idempotent=phase.settings.kafka_idempotence,
            )
        self.figures.update(
            passthrough_reports_per_s=span.per_s,
            passthrough_deliveries_per_s=span.per_s * FAN_OUT,
        )

    async def pipeline(self, processes: int) -> None:
        self.say(f"pipeline: {processes} x `ixb run` on a backlog of {len(self.sealed):,}")
        async with self.kafka() as kafka:
            phase = await self.phase(f"p{processes}", kafka)
            result = await run_backlog(
                phase,
                processes=processes,
                warm_up=self.warm,
                reports=self.sealed,
                logs_dir=self.logs,
                timeout_s=self._timeout_s(),
                broker_pid=self.broker_pid,
            )
        suffix = f"{processes}proc"
        measured = result.span.total - result.span.at_start
        self.figures.update(
            {
                f"reports_per_s_{suffix}": result.reports_per_s,
                f"deliveries_per_s_{suffix}": result.deliveries_per_s,
                f"peak_rss_mb_{suffix}": result.peak_rss_mb,
                f"cpu_ms_per_report_{suffix}": 1000 * result.cpu_s / measured
                if measured
                else math.nan,
                f"measured_reports_{suffix}": measured,
                f"repeated_submissions_{suffix}": result.repeated,
                f"enforcer_cores_used_{suffix}": result.cpu_s / result.span.elapsed_s,
                f"broker_cores_used_{suffix}": (
                    result.broker_cpu_s / result.span.elapsed_s
                    if result.broker_cpu_s is not None
                    else math.nan
                ),
                f"enforcers_{suffix}": list(result.enforcer_summaries),
            }
        )
        if result.fan_out != FAN_OUT:
            self.notes.append(
                f"{suffix}: {result.fan_out:.3f} deliveries per submission, not {FAN_OUT} "
                f"(refusals or withheld decisions: see enforcers_{suffix} in the JSON)"
            )
        if result.repeated:
            self.notes.append(f"{suffix}: {result.repeated} submissions were processed twice")
        if measured < len(self.sealed) // 2:
            self.notes.append(
                f"{suffix}: only {measured} reports fell in "
                "the timed window (the enforcers kept up with the backlog being produced)"
            )

    async def latency(self) -> None:
        c = self.config
        count = int(c.latency_rate * c.latency_seconds)
        saturation = self.figures.get("reports_per_s_1proc", math.nan)
        runs = [(c.latency_rate, generate(count, seed=c.seed + 1))]
        if not math.isnan(saturation) and saturation > 0:
            n = min(MAX_SATURATION_REPORTS, int(saturation * c.saturation_seconds))
            runs.append((saturation, generate(n, seed=c.seed + 2)))
        rates = " then ".join(f"{rate:,.0f}/s" for rate, _ in runs)
        self.say(f"latency: one caught-up enforcer at {rates}")
        async with self.kafka() as kafka:
            phase = await self.phase("lat", kafka)
            sealed = [(rate, await self.workspace.seal(r, kafka)) for rate, r in runs]
            results, peak = await latency.measure(
                phase,
                warm_up=self.warm,
                runs=sealed,
                logs_dir=self.logs,
                broker_pid=self.broker_pid,
            )
        fixed = results[0]
        self.figures.update(
            peak_rss_mb_latency=peak,
            latency_rate_per_s=fixed.target_rate_per_s,
            latency_achieved_rate_per_s=fixed.achieved_rate_per_s,
            latency_ms_p50=fixed.p50_ms,
            latency_ms_p99=fixed.p99_ms,
            latency_ms_max=fixed.max_ms,
            latency_ms_to_output_p50=fixed.to_output_p50_ms,
            latency_ms_to_output_p99=fixed.to_output_p99_ms,
            latency_ms_from_output_p50=fixed.from_output_p50_ms,
            latency_ms_from_output_p99=fixed.from_output_p99_ms,
            latency_cpu_ms_per_report=fixed.cpu_ms_per_report,
        )
        for result in results:
            if not result.deliveries and result.unmatched:
                self.notes.append(
                    "latency: no delivery key matched broker.enforcer.stages.fanout.delivery_id; "
                    "bench/latency.py must follow the new key scheme"
                )
            elif result.missing:
                self.notes.append(
                    f"latency at {result.target_rate_per_s:,.0f}/s: {result.missing:,} of "
                    f"{result.missing + result.deliveries:,} deliveries not received in time"
                )
        if len(results) > 1:
            sat = results[1]
            self.figures.update(
                saturation_rate_per_s=sat.target_rate_per_s,
                saturation_achieved_rate_per_s=sat.achieved_rate_per_s,
                saturation_latency_ms_p50=sat.p50_ms,
                saturation_latency_ms_p99=sat.p99_ms,
                saturation_latency_ms_max=sat.max_ms,
            )
            self.notes.append(
                "saturation latency: reports sent open-loop at the 1-process backlog rate "
                f"for {c.saturation_seconds:g} s; any shortfall queues, so it grows with time"
            )

    def _timeout_s(self) -> float:
        return max(120.0, len(self.sealed) / 100)

    def summary(self) -> dict[str, Any]:
        f = self.figures
        nan = math.nan
        f.update(
            reports=len(self.sealed),
            fan_out=FAN_OUT,
            nations=list(NATIONS),
            submit_partitions=self.config.partitions,
            batch_max_records=self.workspace.settings.batch_max_records,
            kafka=self.described,
            peak_rss_mb=f.get("peak_rss_mb_1proc", nan),
            ratio_to_ceiling=ratio(
                f.get("reports_per_s_1proc", nan), f.get("ceiling_reports_per_s", nan)
            ),
            ratio_to_passthrough=ratio(
                f.get("reports_per_s_1proc", nan), f.get("passthrough_reports_per_s", nan)
            ),
            ratio_2proc_to_1proc=ratio(
                f.get("reports_per_s_2proc", nan), f.get("reports_per_s_1proc", nan)
            ),
            failed_phases=self.failed,
            notes=self.notes,
            machine_speed_by_phase={k: list(v) for k, v in self.speeds.items()},
            machine_speed_spread=speed.spread([x for v in self.speeds.values() for x in v]),
        )
        if f["machine_speed_spread"] > SPEED_SPREAD_NOTED:
            self.notes.append(
                f"the machine's speed changed {f['machine_speed_spread']:.2f}x across the run "
                "(bench/speed.py, sampled around each phase): ratios between phases carry "
                "that error"
            )
        f["cpu_ms_by_stage"] = stages.per_report(f)
        f.setdefault("latency_rate_per_s", self.config.latency_rate)
        for key in REQUIRED_KEYS:
            f.setdefault(key, nan)  # a failed phase: null in the JSON, MISS in the table
        f["targets_met"] = verdicts(f)
        f.update(environment(REPO))
        load = f["machine"]["load_average_1m_at_start"]
        if load > 0.5:
            self.notes.append(
                f"the machine was busy before the bench started (1-minute load {load}): "
                "expect noisy figures"
            )
        return f


async def _main(config: Config, console: Console) -> int:
    with tempfile.TemporaryDirectory(prefix="ixb-bench-") as root:
        bench = Bench(config, Settings(), Path(root), console)
        figures = await bench.run()
    print_table(console, figures)
    stages.print_stages(console, figures)
    latency.print_breakdown(console, figures)
    write_json(config.output, figures)
    console.print(f"figures written to {config.output}")
    if bench.failed:
        return 2
    return 1 if config.check and not all(figures["targets_met"].values()) else 0


def main(argv: list[str] | None = None) -> int:
    config = Config.from_args(argv, __doc__ or "")
    # The ceiling runs the enforcer in this process: it logs as `ixb run` does.
    configure_logging(level="INFO")
    return asyncio.run(_main(config, Console()))


if __name__ == "__main__":
    sys.exit(main())
