"""A witness's memory: per log origin, the last tree it cosigned, kept on disk.

One JSON file per origin, named by the hex SHA-256 of the origin (the name
tlog-witness's monitor endpoint uses), written atomically::

    {"origin": ..., "size": N, "root": base64, "checkpoint": the cosigned note}

``checkpoint`` is the log's signed note with this witness's cosignature: what
the witness serves to monitors and what an auditor keeps as a trusted
checkpoint (``ixb audit verify --trusted-checkpoint``). A forked checkpoint
the witness refused is kept under ``evidence/``, with the tree it
contradicts: proof the broker signed two views.

Checking the old size and storing the new tree happen under one lock: a
thread lock within the process and ``flock`` on ``.lock`` across processes,
so two requests can never both pass the check against the same old tree
(the rollback race tlog-witness describes).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from broker.errors import ConfigurationError
from broker.trust.files import atomic_write
from broker.trust.merkle import EMPTY_ROOT
from broker.trust.note import Note
from broker.trust.tlog import TreeHead

__all__ = ["Evidence", "Stored", "WitnessState", "origin_hash"]


def origin_hash(origin: str) -> str:
    """The lower-case hex SHA-256 of an origin: its file's and monitor URL's name."""
    return hashlib.sha256(origin.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Stored:
    """The last tree cosigned for an origin (size 0 and the empty root before the first)."""

    origin: str
    size: int = 0
    root: bytes = EMPTY_ROOT
    checkpoint: bytes = b""  # the cosigned note, once there is one

    def advanced(self, head: TreeHead, cosigned: Note) -> Stored:
        return Stored(self.origin, head.size, head.root, cosigned.to_bytes())


@dataclass(frozen=True, slots=True)
class Evidence:
    """A checkpoint the witness refused as inconsistent with the tree it had cosigned."""

    origin: str
    cosigned_size: int
    cosigned_root: bytes
    request: bytes  # the add-checkpoint body as received


class WitnessState:
    """The per-origin files under ``directory``; see the module docstring."""

    __slots__ = ("_thread_lock", "directory")

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self, origin: str) -> Iterator[Stored]:
        """The stored tree of ``origin``, held so that nobody else checks or stores meanwhile."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, (self.directory / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield self._read(origin)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def store(self, stored: Stored) -> None:
        """Persist the new tree (call within :meth:`locked`, before answering)."""
        document = {
            "origin": stored.origin,
            "size": stored.size,
            "root": base64.b64encode(stored.root).decode(),
            "checkpoint": stored.checkpoint.decode(),
        }
        data = json.dumps(document, indent=2).encode() + b"\n"
        atomic_write(self._file(stored.origin), data, mode=0o644)

    def latest_note(self, hex_hash: str) -> bytes | None:
        """The cosigned note of the origin whose SHA-256 is ``hex_hash``, if there is one."""
        if len(hex_hash) != 64 or not all(c in "0123456789abcdef" for c in hex_hash):
            return None
        path = self.directory / f"{hex_hash}.json"
        if not path.exists():
            return None
        checkpoint = self._parse(path)["checkpoint"]
        return checkpoint.encode() if isinstance(checkpoint, str) and checkpoint else None

    def keep_evidence(self, evidence: Evidence) -> Path:
        """Write a refused fork under ``evidence/``; the file's path."""
        name = f"{origin_hash(evidence.origin)}-{evidence.cosigned_size}-{time.time_ns()}.txt"
        header = (
            f"origin {evidence.origin}\ncosigned {evidence.cosigned_size} "
            f"{base64.b64encode(evidence.cosigned_root).decode()}\n\n"
        ).encode()
        path = self.directory / "evidence" / name
        atomic_write(path, header + evidence.request, mode=0o644)
        return path

    def _file(self, origin: str) -> Path:
        return self.directory / f"{origin_hash(origin)}.json"

    def _read(self, origin: str) -> Stored:
        path = self._file(origin)
        if not path.exists():
            return Stored(origin)
        document = self._parse(path)
        if document["origin"] != origin:
            raise ConfigurationError(f"{path} is the state of another origin")
        size, root, checkpoint = document["size"], document["root"], document["checkpoint"]
        if type(size) is not int or not isinstance(root, str) or not isinstance(checkpoint, str):
            raise ConfigurationError(f"{path} is not a witness state")
        return Stored(origin, size, base64.b64decode(root), checkpoint.encode())

    @staticmethod
    def _parse(path: Path) -> dict[str, object]:
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            # Never start over from size 0: that would cosign a rolled-back log.
            raise ConfigurationError(f"{path} is not a readable witness state") from exc
        if not isinstance(document, dict) or not {"origin", "size", "root", "checkpoint"} <= set(
            document
        ):
            raise ConfigurationError(f"{path} is not a witness state")
        return document
