"""A policy bundle: the Rego modules and agreements, loaded, checked and hashed.

The bundle's content hash names exactly what decided: it covers every Rego
module's source and the agreement data as the policy sees it, so the same
hash means the same decisions. Loading refuses anything doubtful: a file
that is not valid YAML, an agreement that does not fit the model (the error
names the file and the field), two files claiming the same agreement id, or a
field rule naming a field the report schema does not have.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from broker.domain.agreements import Agreement
from broker.domain.fields import FieldPathError, check_rule
from broker.errors import ConfigurationError
from broker.wire.codec import SchemaCatalog
from broker.wire.report import REPORT_SCHEMA


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    modules: Mapping[str, str]  # module name -> Rego source
    agreements: tuple[Agreement, ...]
    content_hash: str

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
    agreements = _load_agreements(directory / "agreements", catalog)
    return PolicyBundle(modules, agreements, _content_hash(modules, agreements))


def _load_agreements(directory: Path, catalog: SchemaCatalog) -> tuple[Agreement, ...]:
    report_schema = catalog.schema(REPORT_SCHEMA).parsed
    seen: dict[str, Path] = {}
    agreements = []
    for path in agreement_files(directory):
        agreement = parse_agreement_file(path)
        if agreement.id in seen:
            raise ConfigurationError(
                f"{path}: agreement id {agreement.id!r} is already defined in {seen[agreement.id]}"
            )
        seen[agreement.id] = path
        for key, rules in agreement.field_rules.items():
            for index, rule in enumerate(rules):
                try:
                    check_rule(rule, report_schema)
                except FieldPathError as exc:
                    raise ConfigurationError(
                        f"{path}: field_rules.{key}[{index}].field: {exc}"
                    ) from exc
        agreements.append(agreement)
    return tuple(agreements)


def agreement_files(directory: Path) -> list[Path]:
    """The agreement files of a bundle's ``agreements/`` directory, in load order."""
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def parse_agreement_file(path: Path) -> Agreement:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: an agreement file holds one mapping")
    try:
        return Agreement.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<agreement>'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"{path}: {problems}") from exc


def _content_hash(modules: Mapping[str, str], agreements: tuple[Agreement, ...]) -> str:
    canonical = json.dumps(
        {"modules": dict(modules), "data": {a.id: a.policy_data() for a in agreements}},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
