"""A child process that cannot outlive whoever started it, however that one ends.

The rule every embedded engine follows: the engine runs under a small Python
watchdog that holds the read end of a pipe whose write end only we hold.
When we stop it, exit or are SIGKILLed, the pipe closes and the watchdog
stops the engine: SIGTERM, then SIGKILL after a grace period. (Linux's
PR_SET_PDEATHSIG would fire when the starting *thread* ends, which kills the
engine under callers that start it from a worker thread.)

The watchdog also ends when the engine does, so "the watchdog is alive"
means "the engine is alive", and an engine killed on purpose (a fault test)
leaves nothing behind to reap. A stopped (SIGSTOP) engine still counts as
alive, and is still killed at the end of the grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from broker.errors import TransportError

_WATCHDOG = """
import os, signal, subprocess, sys, threading, time
grace, log, argv = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
out = open(log, "ab") if log else subprocess.DEVNULL
child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
print(child.pid, flush=True)

def stop(*_):
    with_grace = time.monotonic() + grace
    try:
        os.kill(child.pid, signal.SIGTERM)
        while child.returncode is None and time.monotonic() < with_grace:
            time.sleep(0.05)
        if child.returncode is None:
            os.kill(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

def orphaned():
    sys.stdin.buffer.read()  # returns when the pipe closes: our starter stopped or died
    stop()

signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the engine itself
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop, daemon=True).start())
threading.Thread(target=orphaned, daemon=True).start()
sys.exit(child.wait())
"""


class Watched:
    """One engine process under the watchdog; ``start`` it, ``stop`` it, signal it."""

    __slots__ = ("_argv", "_cwd", "_env", "_grace_s", "_log", "_watchdog", "pid")

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log: Path | None = None,
        grace_s: float = 5.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """``log`` gets the engine's stdout and stderr; ``grace_s`` is SIGTERM's head start."""
        self._argv = list(argv)
        self._log = log
        self._grace_s = grace_s
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None  # the engine's, once started

    def start(self) -> int:
        """Start the engine under a fresh watchdog and return the engine's pid."""
        if self.running:
            raise TransportError(f"{self._argv[0]} is already running as {self.pid}")
        self._close()
        self._watchdog = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable,
                "-c",
                _WATCHDOG,
                str(self._grace_s),
                str(self._log or ""),
                *self._argv,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self._env,
            cwd=self._cwd,
        )
        assert self._watchdog.stdout is not None
        line = self._watchdog.stdout.readline()
        try:
            self.pid = int(line)
        except ValueError:
            self.stop()
            raise TransportError(f"could not start {self._argv[0]}") from None
        return self.pid

    @property
    def running(self) -> bool:
        """The engine is alive (a stopped, SIGSTOPped, engine too)."""
        return self._watchdog is not None and self._watchdog.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the engine itself (SIGKILL, SIGSTOP, SIGCONT ...)."""
        if self.pid is not None and self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def wait(self, timeout_s: float) -> int | None:
        """The engine's exit status once it has ended within ``timeout_s``, else None."""
        if self._watchdog is None:
            return None
        try:
            return self._watchdog.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, *, wait: bool = True) -> None:
        """Close the watchdog's pipe (it stops the engine), and make sure of it.

        ``wait=False`` only closes the pipe, so that several engines stop at
        once; a later ``stop()`` waits for the end.
        """
        watchdog = self._watchdog
        if watchdog is None:
            return
        self.signal(signal.SIGCONT)  # a frozen engine cannot act on SIGTERM
        self._close()
        if not wait:
            return
        try:
            watchdog.wait(timeout=self._grace_s + 5)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait(timeout=5)
            if self.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
        self._watchdog = None

    def _close(self) -> None:
        watchdog = self._watchdog
        if watchdog is None:
            return
        for stream in (watchdog.stdin, watchdog.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
