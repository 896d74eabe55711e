"""The options of ``python -m bench.run`` (bench/run.py), parsed once into a frozen value."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from broker.kafka.embedded import Engine

REPO = Path(__file__).resolve().parent.parent
PHASES = ("sealing", "ceiling", "passthrough", "pipeline1", "pipeline2", "latency")


@dataclass(frozen=True, slots=True)
class Config:
    reports: int
    latency_rate: float
    latency_seconds: float
    saturation_seconds: float
    warm_up_copies: int
    partitions: int
    seed: int
    profile: bool
    check: bool
    output: Path
    phases: tuple[str, ...]
    engine: Engine | None

    @classmethod
    def from_args(cls, argv: list[str] | None, description: str = "") -> Config:
        parser = argparse.ArgumentParser(
            prog="python -m bench.run",
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--reports", type=int, help="backlog size (default 20000)")
        parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
        parser.add_argument("--latency-rate", type=float, default=500.0, help="reports/s")
        parser.add_argument("--latency-seconds", type=float, help="default 10 (quick: 3)")
        parser.add_argument(
            "--partitions", type=int, default=4, help="partitions per submission topic"
        )
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--profile", action="store_true", help="cProfile the ceiling loop")
        parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
        parser.add_argument("--output", type=Path, default=REPO / "bench-results.json")
        parser.add_argument(
            "--engine",
            choices=("kafka", "tansu"),
            help="the embedded broker (default IXB_KAFKA_ENGINE, else kafka); "
            "ignored when IXB_KAFKA_BOOTSTRAP is set",
        )
        parser.add_argument(
            "--only",
            choices=PHASES,
            action="append",
            help="run this phase alone (repeatable); the others are reported as skipped",
        )
        args = parser.parse_args(argv)
        quick = bool(args.quick)
        return cls(
            reports=args.reports or (1500 if quick else 20_000),
            latency_rate=args.latency_rate,
            latency_seconds=args.latency_seconds or (3.0 if quick else 10.0),
            saturation_seconds=2.0 if quick else 5.0,
            warm_up_copies=4 if quick else 8,
            partitions=args.partitions,
            seed=args.seed,
            profile=bool(args.profile),
            check=bool(args.check),
            output=args.output,
            phases=tuple(args.only or PHASES),
            engine=args.engine,
        )
