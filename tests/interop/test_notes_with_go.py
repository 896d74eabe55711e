"""ixb's checkpoints, cosignatures and witness requests, read by the Go reference code.

tests/go/notecheck opens each note with ``golang.org/x/mod/sumdb/note``
(Ed25519 log signatures), ``filippo.io/torchwood`` (cosignature/v1 and the
checkpoint text) and ``golang.org/x/mod/sumdb/tlog`` (RFC 6962 proofs).
Everything it is given is produced by ixb's own code paths: the
:class:`Checkpointer`, the witness, the receipt.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from broker.auditlog.checkpoints import Checkpointer
from broker.auditlog.log_notes import origin_of
from broker.trust.merkle import leaf_hash
from broker.trust.note import SIG_COSIGNATURE_V1, SIG_ED25519, vkey
from broker.trust.signatures import SigningKey
from tests.support.witnessing import LOG_ID, ORIGIN, Federation, values

pytestmark = pytest.mark.interop


def run(
    notecheck: Path, command: str, data: bytes, *flags: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(notecheck), command, *flags],
        input=data.decode(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def opened(notecheck: Path, command: str, data: bytes, *flags: str) -> dict[str, Any]:
    result = run(notecheck, command, data, *flags)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def log_vkey(key: SigningKey, origin: str = ORIGIN) -> str:
    return vkey(origin, SIG_ED25519, key.ed25519_public_key())


def witness_vkey(key: SigningKey) -> str:
    return vkey(key.key_id, SIG_COSIGNATURE_V1, key.ed25519_public_key())


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    return Federation(tmp_path)


def test_every_checkpoint_the_checkpointer_signs_opens_with_go_sumdb_note(
    notecheck: Path, federation: Federation
) -> None:
    checkpointer = Checkpointer(LOG_ID, federation.broker, federation.clock, every_entries=7)
    signed = [c for i, v in enumerate(values(30)) if (c := checkpointer.append(i, v))]

    assert [c.tree_size for c in signed] == [7, 14, 21, 28]
    for checkpoint in signed:
        document = opened(notecheck, "open", checkpoint.note, "-log", log_vkey(federation.broker))
        assert document["origin"] == origin_of(LOG_ID) == ORIGIN
        assert document["size"] == checkpoint.tree_size
        assert base64.b64decode(document["root"]) == checkpoint.root_hash
        assert document["signatures"] == [
            {
                "name": ORIGIN,
                "key_hash": log_vkey(federation.broker).split("+")[1],
                "kind": "log",
            }
        ]


def test_a_hybrid_broker_key_signs_notes_go_opens_with_its_ed25519_half(
    notecheck: Path, federation: Federation
) -> None:
    hybrid = SigningKey.generate("ed25519+ml-dsa-65", prefix="broker")
    checkpointer = Checkpointer(LOG_ID, hybrid, federation.clock)
    for i, value in enumerate(values(3)):
        checkpointer.append(i, value)

    checkpoint = checkpointer.checkpoint()

    assert opened(notecheck, "open", checkpoint.note, "-log", log_vkey(hybrid))["size"] == 3


def test_go_refuses_an_ixb_note_whose_text_was_changed(
    notecheck: Path, federation: Federation
) -> None:
    note = federation.log(values(5)).checkpoint().note
    changed = note.replace(b"\n5\n", b"\n6\n", 1)

    result = run(notecheck, "open", changed, "-log", log_vkey(federation.broker))

    assert result.returncode == 1
    assert "invalid signature" in result.stderr or "verification failure" in result.stderr


def test_cosignatures_of_ixb_witnesses_verify_with_torchwood_with_their_times(
    notecheck: Path, federation: Federation
) -> None:
    shown = federation.log(values(12))
    note = shown.checkpoint().note
    for nation in ("NL", "BE"):
        answer = federation.witnesses[nation].add_checkpoint(shown.request(0))
        assert answer.status == 200
        note += answer.body

    document = opened(
        notecheck,
        "open",
        note,
        "-log",
        log_vkey(federation.broker),
        "-witness",
        witness_vkey(federation.witness_keys["NL"]),
        "-witness",
        witness_vkey(federation.witness_keys["BE"]),
    )

    cosignatures = [s for s in document["signatures"] if s["kind"] == "cosignature"]
    assert {s["name"] for s in cosignatures} == {
        federation.witness_keys["NL"].key_id,
        federation.witness_keys["BE"].key_id,
    }
    assert all(s["timestamp"] > 1_700_000_000 for s in cosignatures)
    assert document["unverified"] == 0


def test_a_forged_cosignature_line_makes_go_refuse_the_note(
    notecheck: Path, federation: Federation
) -> None:
    shown = federation.log(values(4))
    answer = federation.witnesses["BE"].add_checkpoint(shown.request(0))
    name, encoded = answer.body.rstrip(b"\n").rsplit(b" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[20] ^= 1  # inside the Ed25519 signature, after key ID and timestamp
    note = shown.checkpoint().note + name + b" " + base64.b64encode(bytes(raw)) + b"\n"

    result = run(
        notecheck,
        "open",
        note,
        "-log",
        log_vkey(federation.broker),
        "-witness",
        witness_vkey(federation.witness_keys["BE"]),
    )

    assert result.returncode == 1


def test_ixb_add_checkpoint_requests_carry_proofs_go_sumdb_tlog_accepts(
    notecheck: Path, federation: Federation
) -> None:
    shown = federation.log(values(100))
    for old, new in [(0, 1), (1, 2), (3, 7), (7, 8), (13, 64), (64, 100), (99, 100)]:
        body = shown.request(old, new)
        old_root = base64.b64encode(shown.tree.root_at(old)).decode()

        document = opened(
            notecheck,
            "add-checkpoint",
            body,
            "-log",
            log_vkey(federation.broker),
            "-old-root",
            old_root,
        )

        assert (document["old_size"], document["size"], document["proof"]) == (
            old,
            new,
            "consistent",
        )


def test_ixb_inclusion_proofs_are_accepted_by_go_sumdb_tlog(
    notecheck: Path, federation: Federation
) -> None:
    entries = values(23)
    shown = federation.log(entries)
    note = shown.checkpoint().note
    for index in (0, 1, 11, 22):
        proof = shown.tree.inclusion_proof(index, 23)
        flags = ["-log", log_vkey(federation.broker), "-index", str(index)]
        flags += ["-leaf", base64.b64encode(leaf_hash(entries[index])).decode()]
        for step in proof:
            flags += ["-proof", base64.b64encode(step).decode()]

        assert opened(notecheck, "inclusion", note, *flags)["proof"] == "included"
