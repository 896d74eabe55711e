"""Apache Kafka's jars, resolved by Maven from Maven Central into a cache kept between runs.

The cache lives outside the clone (``$IXB_ENGINE_CACHE``, by default
``~/.cache/ixb``), one folder per engine and version, here
``kafka-<version>/``, so a fresh clone on the same machine reuses it and a
new machine builds it once. What is in it is exactly what the pinned
``kafka-pom.xml`` beside this module resolves to.

A folder only counts as the cache once it is complete: Maven fills a
temporary folder beside it, a ``COMPLETE`` file recording the pom's digest
is written last, and only then is the folder renamed into place. An
interrupted fetch leaves a temporary folder that is never read (and is
removed by the next fetch); a changed pom makes the old folder stale, and it
is replaced.

``ixb kafka fetch`` (what ``make kafka-engine`` runs) fetches if needed and
prints the folder of jars; ``ixb kafka up`` and the test session fetch too,
the first time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from broker.errors import ConfigurationError

KAFKA_VERSION = "4.4.0"
POM = Path(__file__).with_name("kafka-pom.xml")
_MARKER = "COMPLETE"
_STALE_TEMPORARY_S = 3600.0  # an unfinished fetch older than this is abandoned
MAVEN_TIMEOUT_S = 600.0


def default_cache() -> Path:
    """``~/.cache/ixb``: where the engines live unless IXB_ENGINE_CACHE says otherwise."""
    return Path.home() / ".cache" / "ixb"


def kafka_home(cache: Path) -> Path:
    return cache / f"kafka-{KAFKA_VERSION}"


def cached_libs(cache: Path) -> Path | None:
    """The folder of jars when the cache holds this pom's complete resolution, else None."""
    home = kafka_home(cache)
    try:
        recorded = (home / _MARKER).read_text().strip()
    except OSError:
        return None
    return home / "libs" if recorded == _pom_digest() else None


def ensure_kafka(
    cache: Path, *, maven: str = "mvn", say: Callable[[str], None] = lambda _: None
) -> Path:
    """The folder of Kafka's jars, fetched with Maven first if the cache lacks them."""
    libs = cached_libs(cache)
    if libs is not None:
        return libs
    executable = shutil.which(maven)
    if executable is None:
        raise ConfigurationError(
            f"Apache Kafka {KAFKA_VERSION} is not in {kafka_home(cache)}, and fetching it "
            "needs Maven (`mvn`) and a JDK >= 17 on the PATH"
        )
    cache.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(cache)
    say(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {kafka_home(cache)}")
    started = time.monotonic()
    building = Path(tempfile.mkdtemp(prefix=f".kafka-{KAFKA_VERSION}.", dir=cache))
    try:
        _resolve(executable, building)
        _install(building, kafka_home(cache))
    finally:
        shutil.rmtree(building, ignore_errors=True)
    libs = cached_libs(cache)
    if libs is None:  # pragma: no cover - _install either installs or raises
        raise ConfigurationError(f"the Kafka engine cache at {kafka_home(cache)} is incomplete")
    say(f"fetched {len(list(libs.glob('*.jar')))} jars in {time.monotonic() - started:.0f} s")
    return libs


def _resolve(maven: str, building: Path) -> None:
    shutil.copyfile(POM, building / "pom.xml")
    command = [
        maven,
        "--batch-mode",
        "--quiet",
        "-Dstyle.color=never",
        "-f",
        str(building / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={building / 'libs'}",
    ]
    try:
        done = subprocess.run(  # noqa: S603 - Maven on the project's own pinned pom
            command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ConfigurationError(
            f"Maven did not resolve Kafka within {MAVEN_TIMEOUT_S:.0f} s"
        ) from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ConfigurationError(f"Maven could not resolve Kafka {KAFKA_VERSION}:\n{tail}")
    broker_jar = building / "libs" / f"kafka_2.13-{KAFKA_VERSION}.jar"
    if not broker_jar.is_file():
        raise ConfigurationError(f"Maven finished without {broker_jar.name}")
    (building / _MARKER).write_text(_pom_digest() + "\n")


def _install(building: Path, home: Path) -> None:
    """Rename the finished folder into place; a stale one goes first, a rival's stays."""
    if home.exists() and cached_libs(home.parent) is None:
        stale = home.with_name(f".{home.name}.stale-{os.getpid()}")
        home.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        building.rename(home)
    except OSError:
        if cached_libs(home.parent) is None:  # not another fetch's complete folder
            raise


def _remove_abandoned(cache: Path) -> None:
    """Temporary folders of fetches that were killed: never read, only in the way."""
    cutoff = time.time() - _STALE_TEMPORARY_S
    for leftover in cache.glob(f".kafka-{KAFKA_VERSION}.*"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()
