"""One OPA version everywhere: the Makefile builds it, the tests expect it, compose runs it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.opa_server import MAKE_TARGET, OPA_VERSION, OpaEngineMissing, opa_binary

REPO = Path(__file__).resolve().parents[2]


def test_the_makefile_builds_the_opa_version_the_tests_expect() -> None:
    pinned = re.search(r"^OPA_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)

    assert pinned is not None
    assert pinned.group(1) == OPA_VERSION


def test_docker_compose_runs_the_opa_version_the_tests_run() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())

    assert compose["services"]["opa"]["image"] == f"openpolicyagent/opa:{OPA_VERSION}"


def test_the_opa_binary_is_looked_for_in_the_engine_cache_by_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("IXB_OPA_BIN", raising=False)
    monkeypatch.setenv("IXB_ENGINE_CACHE", str(tmp_path))
    built = tmp_path / f"opa-{OPA_VERSION}" / "opa"
    built.parent.mkdir()
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)

    assert opa_binary() == built


def test_a_missing_opa_binary_names_the_make_target_that_builds_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IXB_OPA_BIN", str(tmp_path / "no-such-opa"))

    with pytest.raises(OpaEngineMissing, match=re.escape(MAKE_TARGET)) as missing:
        opa_binary()

    assert str(tmp_path / "no-such-opa") in str(missing.value)
    assert "IXB_OPA_BIN" in str(missing.value)


# A TEST DOUBLE of the Go toolchain, to make `go install` fail half-way or succeed
# in no time: it answers `go env GOVERSION` and "builds" a script into $GOBIN.
FAKE_GO = """#!/bin/sh
if [ "$1" = env ]; then echo go0.0-fake; exit 0; fi
printf '#!/bin/sh\\necho Version: fake\\n' > "$GOBIN/opa"
chmod +x "$GOBIN/opa"
exit "${FAKE_GO_EXIT:-0}"
"""


def make_opa_engine(tmp_path: Path, *, go_exit: int) -> subprocess.CompletedProcess[str]:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "go").write_text(FAKE_GO)
    (tools / "go").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "IXB_ENGINE_CACHE": str(tmp_path / "cache"),
        "FAKE_GO_EXIT": str(go_exit),
    }
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "opa-engine"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_interrupted_opa_build_leaves_no_binary_that_looks_done(tmp_path: Path) -> None:
    made = make_opa_engine(tmp_path, go_exit=1)

    assert made.returncode != 0
    built = tmp_path / "cache" / f"opa-{OPA_VERSION}"
    assert list(built.iterdir()) == [], "neither a binary nor the scratch folder is left"


def test_a_finished_opa_build_is_renamed_into_the_engine_cache(tmp_path: Path) -> None:
    made = make_opa_engine(tmp_path, go_exit=0)

    assert made.returncode == 0, made.stderr
    built = tmp_path / "cache" / f"opa-{OPA_VERSION}"
    assert [p.name for p in built.iterdir()] == ["opa"]
    assert "building OPA" in made.stdout
