"""Where the Avro schemas and the Rego policies that ship with ixb are found.

The top-level ``schemas/`` and ``policies/`` folders are their source. A
wheel carries copies as package data under ``broker/_data/`` (see
``pyproject.toml``), so an installed ixb finds them without the repository;
a checkout (an editable install, the tests) reads the source folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / name


SCHEMAS_DIR = _shipped("schemas")
POLICIES_DIR = _shipped("policies")
