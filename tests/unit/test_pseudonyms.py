"""Pseudonym secrets: created once, owner-only, shared by every process, refused when damaged."""

from __future__ import annotations

import multiprocessing
import stat
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from broker.errors import ConfigurationError
from broker.trust.pseudonyms import SECRET_BYTES, Pseudonymiser, PseudonymSecrets, normalise

AGREEMENT = "schengen-frontier-cooperation"
FIELD = "subjects[].full_name"
RACERS = 4


def pseudonym_in(directory: Path, value: str = "Adrian Varga") -> str:
    return PseudonymSecrets(directory).for_agreement(AGREEMENT).pseudonym(FIELD, value)


def test_the_first_use_creates_a_32_byte_secret_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "secrets" / "pseudonyms"

    pseudonym_in(directory)

    secret = directory / f"{AGREEMENT}.key"
    assert len(secret.read_bytes()) == SECRET_BYTES == 32
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0
    assert [p.name for p in directory.iterdir()] == [secret.name]


def test_the_secret_is_reused_so_two_instances_on_one_directory_agree(tmp_path: Path) -> None:
    first = pseudonym_in(tmp_path)
    secret = (tmp_path / f"{AGREEMENT}.key").read_bytes()

    second = pseudonym_in(tmp_path)

    assert first == second
    assert (tmp_path / f"{AGREEMENT}.key").read_bytes() == secret


def test_the_pseudonym_is_the_one_the_stored_secret_gives(tmp_path: Path) -> None:
    pseudonym = pseudonym_in(tmp_path)

    secret = (tmp_path / f"{AGREEMENT}.key").read_bytes()
    assert Pseudonymiser(secret).pseudonym(FIELD, "Adrian Varga") == pseudonym


def test_two_directories_hold_two_secrets(tmp_path: Path) -> None:
    assert pseudonym_in(tmp_path / "one") != pseudonym_in(tmp_path / "two")


def test_each_agreement_gets_its_own_secret(tmp_path: Path) -> None:
    secrets = PseudonymSecrets(tmp_path)

    one = secrets.for_agreement("agreement-one").pseudonym(FIELD, "A Varga")
    two = secrets.for_agreement("agreement-two").pseudonym(FIELD, "A Varga")

    assert one != two
    one_secret = (tmp_path / "agreement-one.key").read_bytes()
    assert one_secret != (tmp_path / "agreement-two.key").read_bytes()


@pytest.mark.parametrize("length", [0, 16, SECRET_BYTES - 1, SECRET_BYTES + 1])
def test_a_damaged_secret_file_is_refused_and_left_as_it_is(length: int, tmp_path: Path) -> None:
    damaged = b"Z" * length
    (tmp_path / f"{AGREEMENT}.key").write_bytes(damaged)

    with pytest.raises(ConfigurationError, match="damaged") as caught:
        PseudonymSecrets(tmp_path).for_agreement(AGREEMENT)

    assert not damaged or damaged.decode() not in str(caught.value)
    assert (tmp_path / f"{AGREEMENT}.key").read_bytes() == damaged  # never overwritten


@pytest.mark.parametrize("agreement_id", ["../escape", "ab", "Upper-Case", "a/b/c", "", "x" * 65])
def test_an_invalid_agreement_id_is_refused_and_no_file_is_written(
    agreement_id: str, tmp_path: Path
) -> None:
    directory = tmp_path / "secrets"

    with pytest.raises(ConfigurationError, match="not an agreement id"):
        PseudonymSecrets(directory).for_agreement(agreement_id)

    assert list(tmp_path.rglob("*")) == []


@pytest.mark.parametrize("length", [0, 8, 15])
def test_a_secret_shorter_than_128_bits_is_refused(length: int) -> None:
    with pytest.raises(ConfigurationError, match="128 bits"):
        Pseudonymiser(bytes(length))


def test_a_secret_of_128_bits_is_accepted() -> None:
    assert Pseudonymiser(bytes(16)).pseudonym(FIELD, "x").startswith("ps1-")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("  DOE\t John ", "doe john"), ("\uff24oe", "doe"), ("Stra\u00dfe", "strasse"), ("", "")],
)
def test_normalisation_folds_case_width_and_white_space(value: str, expected: str) -> None:
    assert normalise(value) == expected


def _race(directory: str, barrier: Barrier, results: Queue[str]) -> None:
    """One enforcer process: wait for the others, then ask for the secret at once."""
    barrier.wait()
    results.put(pseudonym_in(Path(directory)))


def test_processes_racing_to_create_the_secret_all_agree_on_one(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(RACERS)
    results: Queue[str] = context.Queue()
    directory = tmp_path / "pseudonyms"
    processes = [
        context.Process(target=_race, args=(str(directory), barrier, results))
        for _ in range(RACERS)
    ]
    for process in processes:
        process.start()
    try:
        pseudonyms = [results.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=60)

    assert [p.exitcode for p in processes] == [0] * RACERS
    assert len(set(pseudonyms)) == 1
    assert pseudonyms[0] == pseudonym_in(directory)
    assert [p.name for p in directory.iterdir()] == [f"{AGREEMENT}.key"]  # no temporary left
