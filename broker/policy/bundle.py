"""A policy bundle: the Rego modules and agreements, loaded, checked and hashed.

The bundle's content hash names exactly what decided: it covers every Rego
module's source and the agreement data as the policy sees it, so the same
hash means the same decisions. Loading refuses anything doubtful: a file
that is not valid YAML, an agreement that does not fit the model, two files
claiming the same agreement id, a field rule naming a field the report
schema does not have, a precedence over an agreement the bundle does not
hold, or precedences that go round in a circle. Every problem of every file
is reported at once (:class:`BundleRefused`), each naming its file, line and
field (broker/policy/agreement_file.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.domain.agreements import Agreement
from broker.domain.fields import FieldPathError, check_rule
from broker.errors import ConfigurationError
from broker.policy.agreement_file import (
    AgreementFile,
    FileProblem,
    field_path,
    read_agreement_file,
)
from broker.wire.codec import SchemaCatalog
from broker.wire.report import REPORT_SCHEMA


class BundleRefused(ConfigurationError):
    """The agreement files do not load; ``problems``: every one, each naming its file."""

    def __init__(self, problems: tuple[FileProblem, ...]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    modules: Mapping[str, str]  # module name -> Rego source
    agreements: tuple[Agreement, ...]
    content_hash: str
    # agreement id -> the file it came from, for messages; not part of the hash
    files: Mapping[str, Path] = field(default_factory=dict)

    def file_of(self, agreement_id: str) -> str:
        path = self.files.get(agreement_id)
        return str(path) if path is not None else f"{agreement_id}.yaml"

    def time_boundaries_s(self) -> list[int]:
        """Every instant (epoch seconds) at which some agreement starts or ends."""
        return sorted(
            {int(a.valid_from.timestamp()) for a in self.agreements}
            | {int(a.valid_until.timestamp()) for a in self.agreements if a.valid_until}
        )

    def data(self) -> dict[str, Any]:
        """The base document the Rego policy reads as ``data``."""
        return {"agreements": {a.id: a.policy_data() for a in self.agreements}}


def load_bundle(directory: Path, catalog: SchemaCatalog) -> PolicyBundle:
    """Read ``directory``/**/*.rego and ``directory``/agreements/*.yaml."""
    if not directory.is_dir():
        raise ConfigurationError(f"policy directory {directory} does not exist")
    modules = {
        str(path.relative_to(directory)): path.read_text()
        for path in sorted(directory.rglob("*.rego"))
    }
    if not modules:
        raise ConfigurationError(f"no Rego modules under {directory}")
    loaded = _load_agreements(directory / "agreements", catalog)
    agreements = tuple(a for a, _ in loaded)
    return PolicyBundle(
        modules, agreements, _content_hash(modules, agreements), {a.id: p for a, p in loaded}
    )


def _load_agreements(directory: Path, catalog: SchemaCatalog) -> list[tuple[Agreement, Path]]:
    """Every agreement, with its file, or BundleRefused naming every problem in every file."""
    report_schema = catalog.schema(REPORT_SCHEMA).parsed
    files: dict[str, AgreementFile] = {}
    problems: list[FileProblem] = []
    for read in map(read_agreement_file, agreement_files(directory)):
        problems.extend(read.problems)
        agreement = read.agreement
        if agreement is None:
            continue
        if agreement.id in files:
            problems.append(
                FileProblem(
                    read.path,
                    f"agreement id {agreement.id!r} is already defined in "
                    f"{files[agreement.id].path}",
                    read.line_of(("id",)),
                )
            )
            continue
        files[agreement.id] = read
        problems.extend(_rule_problems(read, agreement, report_schema))
    problems.extend(_precedence_problems(files, some_unread=bool(problems)))
    if problems:
        raise BundleRefused(tuple(problems))
    return [(read.agreement, read.path) for read in files.values() if read.agreement is not None]


def _rule_problems(
    read: AgreementFile, agreement: Agreement, report_schema: Mapping[str, Any]
) -> list[FileProblem]:
    problems = []
    for key, rules in agreement.field_rules.items():
        for index, rule in enumerate(rules):
            try:
                check_rule(rule, report_schema)
            except FieldPathError as exc:
                loc = ("field_rules", key, index, "field")
                problems.append(
                    FileProblem(read.path, f"{field_path(loc)}: {exc}", read.line_of(loc))
                )
    return problems


def _precedence_problems(
    files: Mapping[str, AgreementFile], *, some_unread: bool
) -> list[FileProblem]:
    """Precedence names agreements of the bundle, and never goes round in a circle.

    A circle (A over B, B over A, for one report type) would set every one
    of its agreements aside where they all cover a report, and leave nobody
    to decide; it is refused at load, naming the files.
    """
    problems = []
    for read in files.values():
        assert read.agreement is not None  # only agreements that loaded are in ``files``
        for index, declaration in enumerate(read.agreement.precedence):
            for position, other in enumerate(declaration.over):
                if other not in files:
                    loc = ("precedence", index, "over", position)
                    problems.append(
                        FileProblem(
                            read.path,
                            f"{field_path(loc)}: no agreement {other!r} in this bundle "
                            f"(known: {', '.join(sorted(files))}"
                            f"{'; some files did not load' if some_unread else ''})",
                            read.line_of(loc),
                        )
                    )
    agreements = {i: r.agreement for i, r in files.items() if r.agreement is not None}
    for report_type in sorted({t for a in agreements.values() for t in a.report_types}):
        for circle in _circles(agreements, report_type):
            named = ", ".join(f"{i} ({files[i].path})" for i in circle)
            problems.append(
                FileProblem(
                    files[circle[0]].path,
                    f"precedence goes round in a circle for {report_type} reports: {named} "
                    "each set another aside; say which one prevails",
                    files[circle[0]].line_of(("precedence",)),
                )
            )
    return problems


def _circles(agreements: Mapping[str, Agreement], report_type: str) -> list[tuple[str, ...]]:
    """Each circle of ``over`` among agreements covering ``report_type``, once, least id first."""
    edges = {
        i: sorted(a.precedence_over(report_type) & agreements.keys())
        for i, a in agreements.items()
        if report_type in a.report_types
    }
    found: set[tuple[str, ...]] = set()

    def walk(path: list[str]) -> None:
        for nxt in edges.get(path[-1], []):
            if nxt == path[0]:
                found.add(tuple(path))
            elif nxt not in path and nxt > path[0]:
                walk([*path, nxt])

    for start in sorted(edges):
        walk([start])
    return sorted(found)


def agreement_files(directory: Path) -> list[Path]:
    """The agreement files of a bundle's ``agreements/`` directory, in load order."""
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def parse_agreement_file(path: Path) -> Agreement:
    """One agreement file on its own, or BundleRefused naming every problem in it."""
    read = read_agreement_file(path)
    if read.agreement is None:
        raise BundleRefused(read.problems)
    return read.agreement


def _content_hash(modules: Mapping[str, str], agreements: tuple[Agreement, ...]) -> str:
    canonical = json.dumps(
        {"modules": dict(modules), "data": {a.id: a.policy_data() for a in agreements}},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
