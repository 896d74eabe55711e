"""Canaries: a unique token in every string value of a record, found by walking its Avro schema.

A leak test plants them, runs the real broker, and searches every output
(as raw bytes, since deliveries carry values Avro-encoded) for tokens that
must not be there. Walking the schema, rather than listing fields by hand,
means a string field added to the schema is planted too.

Identifiers (strings with the ``uuid`` logical type) are not planted: they
must be valid UUIDs and are meant to appear in outputs (ledger, audit log).
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

_INDEX = re.compile(r"\[[0-9]+\]")


def abstract(path: str) -> str:
    """``subjects[1].full_name`` -> ``subjects[].full_name``."""
    return _INDEX.sub("[]", path)


class Canaries:
    """Tokens planted so far, each with the concrete path it was planted at."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}  # token -> concrete path

    def token(self, path: str) -> str:
        """Short enough for the tightest field (vehicle registrations: 32 characters)."""
        token = f"CANARY-{len(self.paths):03d}-{secrets.token_hex(6)}"
        self.paths[token] = path
        return token

    def plant(
        self,
        schema: Any,
        record: dict[str, Any],
        *,
        skip: Callable[[str], bool] = lambda _: False,
    ) -> dict[str, Any]:
        """A copy of ``record`` with a fresh token in every string value (null ones too).

        ``skip`` gets each abstract path and keeps the original value where it
        says so (e.g. nation codes, which a valid report needs as they are).
        """
        planted = copy.deepcopy(record)
        for path, setter in _strings(schema, planted, ""):
            if not skip(abstract(path)):
                setter(self.token(path))
        return planted

    def tokens_at(self, paths: set[str]) -> set[str]:
        """The tokens planted at these abstract paths."""
        return {t for t, p in self.paths.items() if abstract(p) in paths}


def string_paths(schema: Any, path: str = "") -> set[str]:
    """Every abstract path of the schema that holds a (non-uuid) string."""
    kind = _kind(schema)
    if kind == "string":
        return {path}
    if kind == "record":
        return {
            p for f in schema["fields"] for p in string_paths(f["type"], _join(path, f["name"]))
        }
    if kind == "array":
        return string_paths(schema["items"], f"{path}[]")
    if kind == "union":
        return {p for branch in schema for p in string_paths(branch, path)}
    return set()


Setter = Callable[[str], None]


def _strings(schema: Any, value: Any, path: str) -> Iterator[tuple[str, Setter]]:
    """(concrete path, setter) for every string slot of ``value``; containers are walked."""
    kind = _kind(schema)
    if kind == "record":
        for f in schema["fields"]:
            name = f["name"]
            at = _join(path, name)
            if _kind(f["type"]) in ("string", "union") and _holds_string(f["type"], value[name]):
                yield at, _setter(value, name)
            else:
                yield from _strings(f["type"], value[name], at)
    elif kind == "array":
        for i, item in enumerate(value):
            if _kind(schema["items"]) == "string":
                yield f"{path}[{i}]", _setter(value, i)
            else:
                yield from _strings(schema["items"], item, f"{path}[{i}]")
    elif kind == "union" and value is not None:
        [branch] = [b for b in schema if _kind(b) == "record"] or [None]
        if branch is not None:
            yield from _strings(branch, value, path)


def _holds_string(schema: Any, value: Any) -> bool:
    """A string field, or a nullable one holding a string or null."""
    if _kind(schema) == "string":
        return True
    branches = [_kind(b) for b in schema]
    return "string" in branches and (value is None or isinstance(value, str))


def _setter(container: Any, key: Any) -> Setter:
    def put(token: str) -> None:
        container[key] = token

    return put


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        if schema.get("logicalType") == "uuid":
            return "uuid"
        return str(schema["type"])
    return str(schema)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
