"""``python -m bench.resilience``: one run, a table of counts, exit 1 on any violation."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.resilience.harness import BROKER_QUICK, FULL, Outcome, Preset, run_resilience
from bench.resilience.oracle import EXAMPLES
from broker.app import logs
from broker.app.settings import Settings


def preset_from(argv: list[str] | None) -> tuple[Preset, Path | None]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.resilience",
        description="Enforcers and Kafka brokers SIGKILLed and restarted under load, judged "
        "by an oracle computed from the agreements. Runs on its own three-node Apache Kafka; "
        "IXB_KAFKA_BOOTSTRAP (a cluster started elsewhere) means enforcer faults only.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the in-suite run: 1,000 reports over 20 s, 2 kills, 1 broker kill, 1 freeze",
    )
    parser.add_argument("--brokers", type=int, help="Kafka nodes: 3 (default) or 1 (no faults)")
    parser.add_argument("--broker-kills", type=int, help="broker SIGKILLs (default 4)")
    parser.add_argument("--freezes", type=int, help="broker SIGSTOP/SIGCONTs (default 1)")
    parser.add_argument("--reports", type=int, help="valid reports (default 20000)")
    parser.add_argument("--processes", type=int, help="enforcers in the group (default 2)")
    parser.add_argument("--kills", type=int, help="SIGKILLs during the run (default 10)")
    parser.add_argument("--rebalances", type=int, help="extra enforcers in and out (default 1)")
    parser.add_argument("--seed", type=int, help="the workload and chaos schedule (default 7)")
    parser.add_argument("--window", type=float, help="seconds to publish over (default N/400)")
    parser.add_argument("--session-timeout-ms", type=int, help="the group's (default 2000)")
    parser.add_argument("--keep", type=Path, help="keep the run's files (logs) in this directory")
    args = parser.parse_args(argv)
    preset = BROKER_QUICK if args.quick else FULL
    names = ("reports", "processes", "kills", "rebalances", "seed", "session_timeout_ms")
    chosen = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    for name, given in (
        ("publish_s", args.window),
        ("brokers", args.brokers),
        ("broker_kills", args.broker_kills),
        ("broker_freezes", args.freezes),
    ):
        if given is not None:
            chosen[name] = given
    return dataclasses.replace(preset, **chosen), args.keep


def single_node(preset: Preset) -> Preset:
    """No broker to kill: one node, or a cluster started elsewhere."""
    return dataclasses.replace(preset, brokers=1, broker_kills=0, broker_freezes=0)


def print_outcome(console: Console, outcome: Outcome) -> None:
    table = Table(title=f"resilience run ({outcome.seconds:.0f} s)")
    table.add_column("count")
    table.add_column("value", justify="right")
    for name, value in outcome.verdict.counts.items():
        bad = name in outcome.verdict.violations and value
        table.add_row(f"[red]{name}[/red]" if bad else name, f"{value:,}")
    console.print(table)
    for name, examples in outcome.verdict.violations.items():
        for example in examples[:EXAMPLES]:
            console.print(f"[red]{name}[/red]: {example}")
    console.print(outcome.repeats)
    verdict = "[green]no violation[/green]" if outcome.ok else "[red]VIOLATIONS[/red]"
    console.print(verdict)


def main(argv: list[str] | None = None) -> int:
    preset, keep = preset_from(argv)
    logs.configure(level="WARNING")
    # A killed broker makes the run's own clients log every refused connection; the
    # enforcers' logs (--keep) still hold theirs, and the verdict says what was lost.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    console = Console()
    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {message}")

    base = Settings()
    if preset.brokers == 1 or base.kafka_bootstrap:
        if preset.brokers > 1:
            say("a cluster started elsewhere: enforcer faults only, no broker faults")
        preset = single_node(preset)
    say(f"{preset}")
    outcome = asyncio.run(run_resilience(preset, base, workdir=keep, say=say))
    print_outcome(console, outcome)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
