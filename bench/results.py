"""The figures of one run: a table for people, ``bench-results.json`` for comparisons.

Every figure comes from a measurement of this run; the targets are the
issue's (one enforcer process, fan-out 3, on this machine) and are only
compared with, never used as a value.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    label: str
    at_least: bool  # True: the figure must be >= limit; False: <= limit
    limit: float

    def met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.limit if self.at_least else value <= self.limit

    @property
    def text(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.limit:g}"


LOAD_AT_IMPORT = os.getloadavg()[0]  # before the bench adds its own load

TARGETS = (
    Target("reports_per_s_1proc", "reports/s, 1 process", True, 5000),
    Target("deliveries_per_s_1proc", "deliveries/s, 1 process", True, 15000),
    Target("ratio_to_ceiling", "pipeline / ceiling", True, 0.8),
    Target("ratio_2proc_to_1proc", "2 processes / 1 process", True, 1.8),
    Target("latency_ms_p99", "p99 latency (ms) at the fixed rate", False, 60),
    # issue 23: ixb's own work no costlier than Kafka's
    Target("ratio_to_passthrough", "pipeline / passthrough", True, 0.5),
    Target("cpu_ms_per_report_1proc", "enforcer CPU per report (ms), 1 process", False, 0.2),
)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def verdicts(figures: dict[str, Any]) -> dict[str, bool]:
    return {t.key: t.met(float(figures.get(t.key, math.nan))) for t in TARGETS}


def environment(repo: Path) -> dict[str, Any]:
    """Where and on what the figures were measured."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git(repo, "rev-parse", "HEAD"),
        "git_dirty": bool(_git(repo, "status", "--porcelain", "--untracked-files=no")),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "load_average_1m_at_start": round(LOAD_AT_IMPORT, 2),
        },
    }


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed git arguments, read-only
            ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_json(path: Path, figures: dict[str, Any]) -> None:
    """Strict JSON: a figure that could not be measured is null, never NaN."""
    path.write_text(json.dumps(_finite(figures), indent=2, sort_keys=True, default=str) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def print_table(console: Console, figures: dict[str, Any]) -> None:
    """Measurements, ratios, and the issue's targets with PASS or MISS."""
    table = Table(
        title=f"ixb bench: {figures['reports']:,} reports, fan-out {figures['fan_out']}",
        caption=f"on {figures.get('kafka') or 'Kafka'}",
    )
    table.add_column("measurement")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="center")
    targets = {t.key: t for t in TARGETS}
    met = verdicts(figures)
    rows: list[tuple[str, str, str] | None] = [
        ("passthrough_reports_per_s", "raw aiokafka passthrough, reports/s", "{:,.0f}"),
        ("ceiling_reports_per_s", "ceiling (ixb work, no Kafka), reports/s", "{:,.0f}"),
        None,
        ("reports_per_s_1proc", "pipeline, 1 process, reports/s", "{:,.0f}"),
        ("deliveries_per_s_1proc", "pipeline, 1 process, deliveries/s", "{:,.0f}"),
        ("reports_per_s_2proc", "pipeline, 2 processes, reports/s", "{:,.0f}"),
        ("peak_rss_mb", "peak memory of one enforcer (VmHWM), MiB", "{:,.0f}"),
        ("cpu_ms_per_report_1proc", "enforcer CPU per report, 1 process, ms", "{:.3f}"),
        ("cpu_ms_per_report_2proc", "enforcer CPU per report, 2 processes, ms", "{:.3f}"),
        ("enforcer_cores_used_1proc", "cores used by the enforcer, 1 process", "{:.2f}"),
        ("enforcer_cores_used_2proc", "cores used by the enforcers, 2 processes", "{:.2f}"),
        ("broker_cores_used_2proc", "cores used by Kafka (embedded), 2 processes", "{:.2f}"),
        None,
        ("ratio_to_ceiling", "ratio pipeline / ceiling", "{:.2f}"),
        ("ratio_to_passthrough", "ratio pipeline / passthrough", "{:.2f}"),
        ("ratio_2proc_to_1proc", "ratio 2 processes / 1 process", "{:.2f}"),
        ("machine_speed_spread", "machine speed, fastest / slowest sample", "{:.2f}"),
        None,
        ("latency_ms_p50", "latency p50 at {latency_rate_per_s:.0f}/s, ms", "{:,.1f}"),
        ("latency_ms_p99", "latency p99 at {latency_rate_per_s:.0f}/s, ms", "{:,.1f}"),
        (
            "saturation_latency_ms_p50",
            "latency p50 at {saturation_rate_per_s:,.0f}/s (saturation), ms",
            "{:,.1f}",
        ),
        (
            "saturation_latency_ms_p99",
            "latency p99 at {saturation_rate_per_s:,.0f}/s (saturation), ms",
            "{:,.1f}",
        ),
        *_sealing_rows(),
    ]
    for row in rows:
        if row is None:
            table.add_section()
            continue
        key, label, fmt = row
        value = figures.get(key, math.nan)
        target = targets.get(key)
        verdict = ""
        if target is not None:
            verdict = "[green]PASS[/green]" if met[key] else "[red]MISS[/red]"
        table.add_row(
            label.format_map(_Lenient(figures)),
            "n/a" if _missing(value) else fmt.format(value),
            target.text if target else "",
            verdict,
        )
    console.print(table)
    for note in figures.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}")


def _sealing_rows() -> list[tuple[str, str, str] | None]:
    """Seal and open cost per suite (bench/sealing.py: one thread, a 3 KiB payload)."""
    rows: list[tuple[str, str, str] | None] = []
    for suite, name in (("x25519", "X25519"), ("mlkem768_x25519", "ML-KEM-768+X25519")):
        rows += [
            None,
            (f"sealing_{suite}_seal_record_us", f"{name}: seal, own encapsulation, µs", "{:.1f}"),
            (f"sealing_{suite}_seal_batch_us", f"{name}: seal, batch's content key, µs", "{:.1f}"),
            (f"sealing_{suite}_open_record_us", f"{name}: open, own encapsulation, µs", "{:.1f}"),
            (f"sealing_{suite}_open_batch_us", f"{name}: open, batch's content key, µs", "{:.1f}"),
            (f"sealing_{suite}_seal_submission_us", f"{name}: seal to 2 readers, µs", "{:.1f}"),
            (f"sealing_{suite}_sealed_overhead_bytes", f"{name}: bytes added, 1 reader", "{:.0f}"),
        ]
    return rows


class _Lenient(dict[str, Any]):
    """Labels may name a figure a failed phase left out: it shows as nan."""

    def __missing__(self, key: str) -> float:
        return math.nan


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
