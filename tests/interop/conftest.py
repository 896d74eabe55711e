"""Other implementations to hold ixb's formats to: built once per session, outside the repo.

Go (1.24 or later) is a stated prerequisite of the test suite (README,
"Witnesses and quorum"): without it these tests fail, saying so, rather
than skip. The Go programs' dependencies come through
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


def go_build(module: Path, output: Path, *, package: str = ".") -> Path:
    """``go build`` of ``package`` in ``module`` into ``output``; or fail with Go's message."""
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "Go is not installed: tests/interop checks ixb's C2SP notes with the Go reference "
            "implementation (golang.org/x/mod/sumdb/note), so Go >= 1.24 must be on PATH"
        )
    env = {**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local"}
    built = subprocess.run(
        [go, "build", "-o", str(output), package],
        cwd=module,
        env=env,
        capture_output=True,
        text=True,
        timeout=_BUILD_TIMEOUT_S,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(f"building {package} in {module.name} with Go failed:\n{built.stderr}")
    return output


@pytest.fixture(scope="session")
def notecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/go/notecheck, built with the machine's Go into the session's temporary directory."""
    return go_build(GO_DIR / "notecheck", tmp_path_factory.mktemp("go") / "notecheck")


@pytest.fixture(scope="session")
def litewitness_bin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """litewitness and witnessctl (filippo.io/torchwood, pinned in tests/go/litewitness)."""
    target = tmp_path_factory.mktemp("litewitness")
    built = []
    for command in ("litewitness", "witnessctl"):
        built.append(
            go_build(
                GO_DIR / "litewitness",
                target / command,
                package=f"filippo.io/torchwood/cmd/{command}",
            )
        )
    return built[0], built[1]
