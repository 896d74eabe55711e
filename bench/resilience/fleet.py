"""The enforcer processes of a resilience run: started, killed, restarted, stopped.

Each enforcer is ``ixb run`` (the console script beside this interpreter),
configured by ``IXB_*`` variables, in its own process group under a leash:
a small parent that reads a pipe only we hold and kills its whole group when
the pipe closes. So no enforcer outlives the run, even when the run itself
is SIGKILLed (the embedded Kafka has the same guard). A crash is simulated
by SIGKILL to the group (leash and enforcer die at once, nothing is flushed
or committed); a graceful stop is SIGTERM to the leash, which hands it to
the enforcer and exits with its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.enforcers import ixb_command

_LEASH = """
import os, signal, subprocess, sys, threading
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda number, _: child.send_signal(number))
def starter_gone():
    while os.read(0, 512):  # unbuffered: a daemon thread must hold no lock at exit
        pass
    os.killpg(0, signal.SIGKILL)
threading.Thread(target=starter_gone, daemon=True).start()
code = child.wait()
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass
class Enforcer:
    """One incarnation of an enforcer slot."""

    slot: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self._log.close()


@dataclass(frozen=True, slots=True)
class Stopped:
    slot: str
    code: int | None  # None: did not exit in time and was killed
    seconds: float
    last_lines: tuple[str, ...] = ()  # of its log, when it did not exit 0: where it was


class Fleet:
    """The enforcer slots of a run and what became of each incarnation."""

    def __init__(self, env: Mapping[str, str], logs_dir: Path) -> None:
        self._env = dict(env)
        self._logs_dir = logs_dir
        self._incarnations: Counter[str] = Counter()
        self.members: dict[str, Enforcer] = {}
        self.logs: list[Path] = []
        self.kills = 0
        self.restarts = 0
        self.crashed: list[str] = []  # exited without being told to, with their last lines
        self.stopped: list[Stopped] = []

    def start(self, slot: str) -> None:
        if slot in self.members and self.members[slot].alive:
            raise RuntimeError(f"enforcer {slot} is already running")
        if self._incarnations[slot]:
            self.restarts += 1
        self._incarnations[slot] += 1
        log_path = self._logs_dir / f"{slot}-{self._incarnations[slot]}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(  # noqa: S603 - our own console script under a fixed leash
            [sys.executable, "-c", _LEASH, *ixb_command()],
            env=self._env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
        self.members[slot] = Enforcer(slot, process, log_path, log)
        self.logs.append(log_path)

    def has_started(self, slot: str) -> bool:
        """Whether the current incarnation of ``slot`` has logged that it consumes."""
        enforcer = self.members.get(slot)
        return enforcer is not None and b'"enforcer_started"' in enforcer.log_path.read_bytes()

    def alive(self) -> list[str]:
        return sorted(slot for slot, e in self.members.items() if e.alive)

    def kill(self, slot: str) -> None:
        """SIGKILL the enforcer and its leash, as a crash of the machine would."""
        enforcer = self.members.pop(slot)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(enforcer.process.pid, signal.SIGKILL)
        enforcer.process.wait(timeout=10)
        enforcer.close()
        self.kills += 1

    async def stop(self, slot: str, *, timeout_s: float) -> Stopped:
        """SIGTERM: the batch in flight finishes and commits; record how it exited."""
        enforcer = self.members.pop(slot)
        started = time.monotonic()
        enforcer.process.send_signal(signal.SIGTERM)
        code: int | None
        try:
            code = await asyncio.to_thread(enforcer.process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - started
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(enforcer.process.pid, signal.SIGKILL)
            enforcer.process.wait(timeout=10)
        enforcer.close()
        last = () if code == 0 else _last_lines(enforcer.log_path)
        stopped = Stopped(slot, code, seconds, last)
        self.stopped.append(stopped)
        return stopped

    def restart_crashed(self) -> None:
        """Note every enforcer that exited on its own, and start it again."""
        for slot, enforcer in list(self.members.items()):
            if enforcer.alive:
                continue
            enforcer.close()
            tail = enforcer.log_path.read_text(errors="replace").splitlines()[-5:]
            self.crashed.append(
                f"{slot} exited with {enforcer.process.returncode}: " + " | ".join(tail)
            )
            del self.members[slot]
            self.start(slot)

    async def stop_all(self, *, timeout_s: float) -> list[Stopped]:
        return list(
            await asyncio.gather(*(self.stop(s, timeout_s=timeout_s) for s in list(self.members)))
        )

    def close(self) -> None:
        """Kill whatever still runs (after a failure); safe to call twice."""
        for slot in list(self.members):
            self.kill(slot)

    def log_events(self, names: Iterable[str]) -> Counter[str]:
        """How often each named event appears in the enforcers' JSON logs."""
        wanted = set(names)
        found: Counter[str] = Counter()
        for path in self.logs:
            for line in path.read_text(errors="replace").splitlines():
                if not line.startswith("{"):
                    continue
                with contextlib.suppress(ValueError):
                    event = json.loads(line).get("event")
                    if event in wanted:
                        found[event] += 1
        return found


def _last_lines(log: Path, count: int = 5) -> tuple[str, ...]:
    """The last lines of a log, long lines cut: what an enforcer did as it ended."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ()
    return tuple(line[:300] for line in lines[-count:])
