"""Other implementations to hold ixb's formats to: built once per session, outside the repo.

Go is a stated prerequisite (README, "Prerequisites"): without it these tests
fail, saying so, rather than skip. The Go programs' dependencies come through
the Go module proxy, pinned by their go.sum.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.interop

GO_DIR = REPO / "tests" / "go"
_BUILD_TIMEOUT_S = 600


def go_build(package: Path, output: Path) -> Path:
    """``go build`` of ``package`` into ``output``; the test fails with Go's message if it fails."""
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "Go is not installed: tests/interop checks ixb's C2SP notes with the Go reference "
            "implementation (golang.org/x/mod/sumdb/note), so Go >= 1.24 must be on PATH"
        )
    env = {**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local"}
    built = subprocess.run(
        [go, "build", "-o", str(output), "."],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=_BUILD_TIMEOUT_S,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(f"building {package.name} with Go failed:\n{built.stderr}")
    return output


@pytest.fixture(scope="session")
def notecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/go/notecheck, built with the machine's Go into the session's temporary directory."""
    return go_build(GO_DIR / "notecheck", tmp_path_factory.mktemp("go") / "notecheck")
