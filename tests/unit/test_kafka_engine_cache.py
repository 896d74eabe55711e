"""The Kafka engine cache counts only a complete fetch of the pinned pom, and fetches once.

Maven is replaced by test doubles here, to make a fetch fail half-way or
succeed without the network; the real fetch is what every integration
test's Kafka comes from (tests/conftest.py).
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from broker.errors import ConfigurationError
from broker.kafka.embedded import engine
from broker.kafka.embedded.engine import KAFKA_VERSION, cached_libs, ensure_kafka, kafka_home

_DOUBLE = """#!{python}
import pathlib, sys
out = pathlib.Path(next(a for a in sys.argv if a.startswith("-DoutputDirectory=")).split("=", 1)[1])
out.mkdir(parents=True)
(out / "kafka-clients-{version}.jar").write_bytes(b"jar")
calls = pathlib.Path({calls!r})
calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
if {fail}:
    print("[ERROR] Could not transfer artifact: connection reset")
    sys.exit(1)
(out / "kafka_2.13-{version}.jar").write_bytes(b"jar")
"""


def _maven_double(tmp_path: Path, *, fail: bool) -> tuple[str, Path]:
    """A stand-in for ``mvn`` that writes jars where it is told, or dies after one."""
    calls = tmp_path / f"calls-{fail}"
    script = tmp_path / ("mvn-that-fails" if fail else "mvn-that-works")
    script.write_text(
        _DOUBLE.format(python=sys.executable, version=KAFKA_VERSION, calls=str(calls), fail=fail)
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), calls


def test_a_fetch_that_fails_half_way_leaves_nothing_that_counts_as_the_cache(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    maven, _ = _maven_double(tmp_path, fail=True)

    with pytest.raises(ConfigurationError, match="connection reset"):
        ensure_kafka(cache, maven=maven)

    assert cached_libs(cache) is None
    assert not kafka_home(cache).exists()
    assert list(cache.iterdir()) == []  # its temporary folder went too


def test_a_complete_fetch_is_used_from_then_on_without_maven(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    maven, calls = _maven_double(tmp_path, fail=False)

    libs = ensure_kafka(cache, maven=maven)
    again = ensure_kafka(cache, maven=str(tmp_path / "no-such-mvn"))

    assert libs == again == kafka_home(cache) / "libs"
    assert (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
    assert calls.read_text() == "x"  # Maven ran once


def test_a_cache_made_from_another_pom_is_fetched_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    maven, calls = _maven_double(tmp_path, fail=False)
    ensure_kafka(cache, maven=maven)
    changed = tmp_path / "kafka-pom.xml"
    changed.write_text(engine.POM.read_text().replace("2.25.3", "2.25.4"))
    monkeypatch.setattr(engine, "POM", changed)

    assert cached_libs(cache) is None
    ensure_kafka(cache, maven=maven)

    assert cached_libs(cache) == kafka_home(cache) / "libs"
    assert calls.read_text() == "xx"


def test_without_maven_the_error_says_what_is_missing_and_where_the_cache_is(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"

    with pytest.raises(ConfigurationError) as refused:
        ensure_kafka(cache, maven=str(tmp_path / "no-such-mvn"))

    assert "Maven" in str(refused.value)
    assert str(kafka_home(cache)) in str(refused.value)
