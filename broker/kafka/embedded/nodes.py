"""One node of an embedded Apache Kafka, and the temporary folder a cluster keeps its data in."""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import IO

from broker.kafka.embedded import kraft
from broker.kafka.embedded.watchdog import Watched

_WORKDIR_PREFIX = "ixb-kafka-"
_held: dict[Path, IO[bytes]] = {}  # the lock of each temporary folder this process made


def temporary_workdir() -> Path:
    """A fresh temporary folder, locked for as long as this process lives.

    A process that is SIGKILLed cannot remove its folder (the watchdog stops
    the JVMs, not the data). The lock goes with the process, so the next
    cluster started anywhere on the machine removes folders whose lock is
    free: their owner is gone.
    """
    root = Path(tempfile.gettempdir())
    settled = time.time() - 60  # younger ones may be between their making and their lock
    for leftover in root.glob(f"{_WORKDIR_PREFIX}*"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime > settled:
                continue
        with contextlib.suppress(OSError), (leftover / ".owner").open("ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError while its owner lives
            shutil.rmtree(leftover, ignore_errors=True)
    workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
    lock = (workdir / ".owner").open("ab")
    fcntl.flock(lock, fcntl.LOCK_EX)
    _held[workdir] = lock
    return workdir


def release_workdir(workdir: Path) -> None:
    lock = _held.pop(workdir, None)
    if lock is not None:
        lock.close()


class KafkaNode:
    """One combined broker and controller: its ports, its folder, its process."""

    def __init__(
        self, node_id: int, ports: kraft.NodePorts, directory: Path, command: list[str]
    ) -> None:
        self.node_id = node_id
        self.ports = ports
        self.directory = directory
        self.log = directory / "kafka.log"
        self._process = Watched([*command, str(directory / "server.properties")], log=self.log)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.advertised}"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process.running else None

    @property
    def running(self) -> bool:
        return self._process.running

    def start(self) -> None:
        self._process.start()

    def stop(self, *, wait: bool = True) -> None:
        """SIGTERM (after SIGCONT), SIGKILL after the grace; ``wait=False`` only asks."""
        self._process.stop(wait=wait)

    def kill(self, *, wait: bool = True) -> None:
        """SIGKILL, and return once the process is gone (its data stays).

        ``wait=False`` only sends the signal, so that several nodes die at
        once (each takes about a second to be gone here); a later ``kill()``
        or ``stop()`` waits.
        """
        self._process.signal(signal.SIGKILL)
        if wait:
            self._process.wait(timeout_s=10)

    def freeze(self) -> None:
        self._process.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._process.signal(signal.SIGCONT)

    def log_tail(self, lines: int = 12) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def quorum_state(self) -> tuple[int, int] | None:
        """(leader epoch, leader id) as this node last recorded it, if it knows a leader."""
        try:
            state = json.loads(
                (self.data_dir / "__cluster_metadata-0" / "quorum-state").read_text()
            )
        except (OSError, ValueError):
            return None
        leader = int(state.get("leaderId", -1))
        return (int(state.get("leaderEpoch", -1)), leader) if leader >= 0 else None
