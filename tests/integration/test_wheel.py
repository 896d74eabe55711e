"""The built wheel, installed without the repository, runs the demo.

A checkout finds the Avro schemas and the shipped policies in the top-level
``schemas/`` and ``policies/`` folders; an installed ixb must find the
copies the wheel carries as package data. This builds the wheel, installs
it (without dependencies: those of the test run serve) into a folder of its
own, and runs ``ixb demo`` from there in a directory that holds nothing of
the checkout, with the interpreter told to look in that folder first. The
demo exits by itself, saying how to serve the console and a login to try.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Run as the console script would, but with the installed copy first on the path.
_RUN_INSTALLED = """
import sys
sys.path.insert(0, sys.argv[1])
import broker, broker.resources
from broker.cli.main import main
print("ixb-from", broker.__file__)
print("schemas-from", broker.resources.SCHEMAS_DIR)
print("policies-from", broker.resources.POLICIES_DIR)
sys.argv = ["ixb", "demo"]
main()
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("ixb-*.whl")
    return built


def test_the_wheel_carries_the_consoles_templates_and_static_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    console = REPO / "broker" / "console"
    shipped = [*(console / "templates").glob("*.html"), *(console / "static").iterdir()]
    assert shipped
    for source in shipped:
        assert source.relative_to(REPO).as_posix() in names


def test_the_wheel_carries_the_schemas_and_policies_as_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in (REPO / "schemas").glob("*.avsc"):
        assert f"broker/_data/schemas/{source.name}" in names
    assert "broker/_data/policies/ixb/sharing.rego" in names
    for source in (REPO / "policies" / "agreements").glob("*.yaml"):
        assert f"broker/_data/policies/agreements/{source.name}" in names


def test_an_installed_wheel_runs_the_demo_without_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """As a new user would: the demo starts its own secured Kafka, from the wheel's files."""
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run(
        [*install, "--target", str(target), str(wheel)],
        check=True,
        timeout=120,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IXB_")}
    env |= {k: os.environ[k] for k in ("IXB_ENGINE_CACHE",) if k in os.environ}
    env |= {"IXB_HOME": str(elsewhere / "home")}
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted below, with stderr
        [sys.executable, "-c", _RUN_INSTALLED, str(target)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines()[:3])
    installed = target / "broker"
    assert Path(lines["ixb-from"]).is_relative_to(installed)
    assert Path(lines["schemas-from"]) == installed / "_data" / "schemas"
    assert Path(lines["policies-from"]) == installed / "_data" / "policies"
    totals = re.search(r"^(\d+) submissions, (\d+) deliveries", done.stdout, re.MULTILINE)
    assert totals is not None, done.stdout[-3000:]
    assert int(totals[1]) > 0
    assert int(totals[2]) > 0
    # The demo's two tampered submissions are refused with their reasons: signed by
    # a neighbour's key, and altered in transit (sealed, so it no longer opens).
    assert "origin_mismatch" in done.stdout
    assert "seal_unopenable" in done.stdout
    # The operator's dump holds no published title; the moved delivery opens nowhere.
    assert re.search(r"published titles: 0 found", done.stdout), done.stdout[-3000:]
    # On its secured Kafka, BE's analyst reads BE's feed, and Kafka refuses it NL's.
    read = re.search(r"ixb subscribe --nation BE: exit 0, (\d+) verified deliveries", done.stdout)
    assert read is not None, done.stdout[-3000:]
    assert int(read[1]) > 0
    refused = "ixb subscribe --nation NL: exit 2, error: Kafka refused access to "
    assert refused in done.stdout, done.stdout[-3000:]
    assert "TopicAuthorizationFailed" in done.stdout
    # It exits, ending with where the console would be and a login that `make console` takes.
    password_file = elsewhere / "home" / "console" / "demo-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text(encoding="utf-8").strip()
    hint = done.stdout[done.stdout.rindex("The console") :]
    assert "make console" in hint
    assert "http://127.0.0.1:8470/" in hint
    assert f"be-analyst with password {password}" in hint
