"""``ixb demo --console`` (``make console``): the scenario, then the console on it until Ctrl-C.

``ixb demo`` exits when done (test_wheel.py runs it); with ``--console`` it
keeps the scenario up and serves the console, printing its address and a
login. This runs the command as a person would, on the session's Kafka,
logs in with what it printed, reads BE's feed, and stops it with SIGINT.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

pytestmark = pytest.mark.integration

_OPEN = re.compile(r"open (http://127\.0\.0\.1:\d+)/ in a browser")
_LOGIN = re.compile(r"log in as be-analyst with password (\S+) ")


class _Lines:
    """The command's output, line by line, read by a thread so a wait can time out.

    (Waiting with select() on the pipe and reading with readline() loses
    lines: readline buffers a whole chunk, and select() then sees nothing
    left to read while the line waited for sits in that buffer.)
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)  # the command ended

    def until(self, pattern: re.Pattern[str], timeout_s: float) -> str:
        """Lines until one matches; the match's group, or a failure naming the last ones."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            found = pattern.search(line)
            if found:
                return found[1]
        pytest.fail(f"no line matching {pattern.pattern!r}; the output ended: {self.seen[-15:]}")


def test_the_demo_serves_the_console_with_the_login_it_prints_until_interrupted(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IXB_")}
    # The session's Kafka takes only authenticated clients: the suite's operator identity.
    env |= {k: os.environ[k] for k in ("IXB_CLIENT_CONFIG",) if k in os.environ}
    env |= {"IXB_KAFKA_BOOTSTRAP": kafka_bootstrap, "IXB_HOME": str(tmp_path / "home")}
    run = "from broker.cli.main import main; main()"
    command = [sys.executable, "-c", run, "demo", "--console", "--console-port", "0"]
    with subprocess.Popen(  # this interpreter, running ixb as its console script would
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        try:
            lines = _Lines(process)
            url = lines.until(_OPEN, timeout_s=180)
            password = lines.until(_LOGIN, timeout_s=10)
            with httpx.Client(base_url=url, timeout=30) as http:
                wrong = http.post("/login", data={"name": "be-analyst", "password": password + "x"})
                logged_in = http.post("/login", data={"name": "be-analyst", "password": password})
                feed = http.get("/analyst/BE")
                other = http.get("/analyst/NL")
            assert wrong.status_code != 303
            assert logged_in.status_code == 303
            assert feed.status_code == 200
            assert "verified deliveries" in feed.text
            assert other.status_code == 403
            assert process.poll() is None  # still serving
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
