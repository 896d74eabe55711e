"""One agreement file, read the way a liaison officer wrote it, and its problems said plainly.

Every problem with a file is reported, not just the first, each as one
line that starts with the file and the line it is on and names the field
the way the file spells it: ``field_rules.terrorism[0].after``, a list
element always as ``[i]`` and never as ``.i``.

YAML 1.1 (what PyYAML reads) turns some words into booleans: ``yes``,
``no``, ``on``, ``off``, ``y``... So ``after: yes`` is the boolean true, and a
Norwegian ``NO`` among the parties is false. When a value that failed is
such a boolean, the message says which word YAML turned into it, so the
officer does not stare at a file that plainly says ``NO``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from broker.domain.agreements import Agreement

__all__ = ["AgreementFile", "FileProblem", "field_path", "read_agreement_file"]

Loc = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One thing wrong with one file; ``line`` is 1-based, 0 when unknown."""

    path: Path
    message: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)

    def document(self) -> dict[str, object]:
        return {"file": str(self.path), "line": self.line or None, "message": self.message}


@dataclass(frozen=True, slots=True)
class AgreementFile:
    """A file read: the agreement, or every problem that kept it from being one."""

    path: Path
    agreement: Agreement | None
    problems: tuple[FileProblem, ...] = ()
    root: yaml.Node | None = None  # the composed document, to find a field's line later

    def line_of(self, loc: Loc) -> int:
        node = _node_at(self.root, loc)
        return 0 if node is None else node.start_mark.line + 1


def read_agreement_file(path: Path) -> AgreementFile:
    """Parse and validate ``path``; never raises for what is in the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return AgreementFile(path, None, (FileProblem(path, f"cannot be read: {exc}"),))
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        return AgreementFile(path, None, (FileProblem(path, f"not valid YAML: {problem}", line),))
    if not isinstance(raw, dict):
        problem = FileProblem(path, "an agreement file holds one mapping")
        return AgreementFile(path, None, (problem,))
    try:
        return AgreementFile(path, Agreement.model_validate(raw), root=root)
    except ValidationError as exc:
        problems = tuple(_problem(path, root, err) for err in exc.errors(include_url=False))
        return AgreementFile(path, None, problems, root)


def _problem(path: Path, root: yaml.Node | None, err: Any) -> FileProblem:
    loc: Loc = tuple(err["loc"])
    node = _node_at(root, loc)
    message = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, bool) and isinstance(node, yaml.ScalarNode):
        message = (
            f"{message}; YAML read `{node.value}` as the boolean {str(value).lower()}, "
            f'not as the word "{node.value}" (quote it if the word is meant)'
        )
    line = 0 if node is None else node.start_mark.line + 1
    return FileProblem(path, f"{field_path(loc, root)}: {message}", line)


def field_path(loc: Sequence[int | str], root: yaml.Node | None = None) -> str:
    """``field_rules.smuggling[0].after``: keys after dots, list positions in brackets.

    With the composed document, a position is told from a mapping key by
    the node it steps into (so a key ``0`` is not mistaken for a position),
    and a bad mapping key is named by the word the file holds.
    """
    text = ""
    node = root
    for index, part in enumerate(loc):
        if loc[index + 1 : index + 2] == ("[key]",):
            key = _key_node(node, part)
            word = key.value if isinstance(key, yaml.ScalarNode) else part
            return f"{text} key `{word}`" if text else f"key `{word}`"
        step = _step(node, part)
        positional = isinstance(node, yaml.SequenceNode) or (
            step is None and isinstance(part, int) and not isinstance(part, bool)
        )
        text += f"[{part}]" if positional else (f".{part}" if text else str(part))
        if step is not None or not isinstance(node, yaml.MappingNode):
            node = step  # else a one-item list written as its item (precedence: {...})
    return text or "<agreement>"


def _node_at(root: yaml.Node | None, loc: Loc) -> yaml.Node | None:
    node = root
    for index, part in enumerate(loc):
        if loc[index + 1 : index + 2] == ("[key]",):
            return _key_node(node, part)
        next_node = _step(node, part)
        if next_node is None:
            if isinstance(node, yaml.MappingNode) and isinstance(part, int):
                continue  # a one-item list written as its item (precedence: {...})
            return node  # as near as the file lets us get (e.g. a missing field)
        node = next_node
    return node


def _step(node: yaml.Node | None, part: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        items: list[yaml.Node] = node.value
        return items[part] if 0 <= part < len(items) else None
    if isinstance(node, yaml.MappingNode):
        pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
        for key, value in pairs:
            if _same_key(key, part):
                return value
    return None


def _key_node(node: yaml.Node | None, part: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
        for key, _ in pairs:
            if _same_key(key, part):
                return key
    return None


def _same_key(key: yaml.Node, part: int | str) -> bool:
    if not isinstance(key, yaml.ScalarNode):
        return False
    value = yaml.SafeLoader("").construct_object(key)
    return bool(value == part and isinstance(value, str) == isinstance(part, str))
