"""Where the enforcer's CPU goes, stage by stage: so the next bottleneck is visible.

A cProfile pass over the ceiling's batches gives each stage's share of the
processing (cumulative time of the functions that make it up); the shares,
times the CPU per report the timed ceiling loop measured, give milliseconds
per report. The profiler slows Python code more than native code, so the
split is approximate, the total is not. What the pipeline spends beyond
the ceiling (consuming, producing, committing: the Kafka client and the
runner) is the difference of the two measured figures.
"""

from __future__ import annotations

import cProfile
import math
import pstats
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

# (stage, functions whose cumulative time makes it up: (file suffix, name), and
# optionally only when called by (file suffix, name)). None of a stage's
# functions calls another stage's, so nothing counts twice.
Function = tuple[str, str] | tuple[str, str, str, str]
STAGES: tuple[tuple[str, tuple[Function, ...]], ...] = (
    ("intake", (("broker/enforcer/stages/intake.py", "_check"),)),
    ("  envelope and disclosures", (("broker/trust/sd/submission.py", "open_submission"),)),
    ("  signature", (("broker/trust/envelopes.py", "verify_envelope"),)),
    (
        "  signed header",
        (("broker/wire/codec.py", "decode", "broker/enforcer/stages/intake.py", "_check"),),
    ),
    ("  disclosures checked", (("broker/trust/sd/verify.py", "verify_disclosures"),)),
    ("  report validated", (("broker/wire/report.py", "record_to_report"),)),
    ("decide", (("broker/policy/cache.py", "decide"),)),
    ("derive", (("broker/enforcer/stages/fanout.py", "_view"),)),
    ("statements", (("broker/enforcer/stages/fanout.py", "_state"),)),
    ("attest", (("broker/enforcer/processor.py", "attested"),)),
    (
        "audit",
        (
            ("broker/enforcer/processor.py", "_audited"),
            ("broker/enforcer/stages/audit_events.py", "decision_events"),
            ("broker/enforcer/stages/replay_guard.py", "ledger_record"),
        ),
    ),
)


def shares(work: Callable[[], object]) -> dict[str, float]:
    """Each stage's fraction of ``work``'s profiled time, and ``other`` for the rest.

    Sub-stages (indented names) are parts of the stage above them and are
    not counted again in ``other``.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # public, not in typeshed
    total = sum(entry[2] for entry in stats.values())  # every function's own time
    out: dict[str, float] = {}
    for stage, functions in STAGES:
        spent = sum(_spent(stats, function) for function in functions)
        out[stage] = spent / total if total else 0.0
    top = sum(v for k, v in out.items() if not k.startswith(" "))
    out["other"] = max(0.0, 1.0 - top)
    return out


def _spent(stats: dict[tuple[str, int, str], tuple[Any, ...]], function: Function) -> float:
    """Cumulative seconds in ``function`` (only under its caller, when one is named)."""
    suffix, name = function[0], function[1]
    spent = 0.0
    for (filename, _line, fn), (_cc, _nc, _tt, cumulative, callers) in stats.items():
        if fn != name or not filename.endswith(suffix):
            continue
        if len(function) == 2:
            spent += cumulative
            continue
        spent += sum(
            by[3]
            for (caller_file, _l, caller), by in callers.items()
            if caller == function[3] and caller_file.endswith(function[2])
        )
    return spent


def per_report(figures: dict[str, Any]) -> dict[str, float]:
    """Milliseconds of CPU per report by stage, and the pipeline's cost beyond the ceiling."""
    cpu = float(figures.get("ceiling_cpu_ms_per_report", math.nan))
    shares = figures.get("ceiling_stage_shares", {})
    if not shares:
        return {}
    out = {stage: share * cpu for stage, share in shares.items()}
    pipeline = float(figures.get("cpu_ms_per_report_1proc", math.nan))
    out["Kafka client and runner (pipeline - ceiling)"] = pipeline - cpu
    return out


def print_stages(console: Console, figures: dict[str, Any]) -> None:
    """The breakdown as a table: the stages of the ceiling, then what the pipeline adds."""
    breakdown = figures.get("cpu_ms_by_stage", {})
    if not breakdown:
        return
    table = Table(title="enforcer CPU per report by stage (cProfile shares x measured CPU)")
    table.add_column("stage")
    table.add_column("ms", justify="right")
    for stage, ms in breakdown.items():
        table.add_row(stage, "n/a" if math.isnan(ms) else f"{ms:.3f}")
    console.print(table)
