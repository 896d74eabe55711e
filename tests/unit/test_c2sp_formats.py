"""C2SP signed notes, checkpoints, cosignatures and add-checkpoint, against the specs' vectors.

The vectors are the specifications' own examples (c2sp.org/signed-note,
tlog-checkpoint, tlog-cosignature, tlog-witness) and the reference Go
package's (``golang.org/x/mod/sumdb/note``, whose example key is public);
tests/interop runs the Go code itself on ixb's notes.
"""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.errors import DecodeError
from broker.trust.merkle import EMPTY_ROOT
from broker.trust.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Note,
    ed25519_signature,
    key_id,
    parse_note,
    parse_vkey,
    verifies_ed25519,
    vkey,
)
from broker.trust.tlog import (
    add_checkpoint_body,
    checkpoint_text,
    cosign,
    cosignature_message,
    empty_tree_ok,
    parse_add_checkpoint,
    parse_tree_head,
    verify_cosignature,
)

# golang.org/x/mod/sumdb/note's documented example key (example_test.go).
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_LINE = (
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6R"
    "yyBwJnAM=\n"
)

# c2sp.org/signed-note, "Example".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
).encode()

# c2sp.org/tlog-cosignature, the example checkpoint and its cosignature.
SOFA = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SOFA_NOTE = (
    SOFA
    + "\n\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u"
    "5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9d"
    "lrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
).encode()


def go_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED)


def test_signing_the_go_example_gives_the_go_example_note_byte_for_byte() -> None:
    key = go_key()
    public = key.public_key().public_bytes_raw()

    line = ed25519_signature("PeterNeumann", public, key.sign(GO_TEXT.encode()))

    assert vkey("PeterNeumann", SIG_ED25519, public) == GO_VKEY
    assert Note(GO_TEXT, (line,)).to_bytes() == (GO_TEXT + "\n" + GO_LINE).encode()


def test_the_signed_note_specs_example_verifies_under_its_vkey_and_not_once_changed() -> None:
    name, kind, public = parse_vkey(SPEC_VKEY)

    assert (name, kind) == ("example.com/foo", SIG_ED25519)
    assert verifies_ed25519(parse_note(SPEC_NOTE), name, public) is True
    changed = parse_note(SPEC_NOTE.replace(b"example message", b"exemplary message"))
    assert verifies_ed25519(changed, name, public) is False


def test_a_note_without_a_line_of_the_key_is_neither_verified_nor_refused_by_that_key() -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()

    assert verifies_ed25519(parse_note(SPEC_NOTE), "example.com/foo", other) is None
    assert (
        verifies_ed25519(parse_note(SPEC_NOTE), "example.com/bar", parse_vkey(SPEC_VKEY)[2]) is None
    )


def test_key_ids_hash_the_name_the_signature_type_and_the_key() -> None:
    public = go_key().public_key().public_bytes_raw()

    assert key_id("PeterNeumann", SIG_ED25519, public).hex() == "c74f20a3"
    assert key_id("PeterNeumann", SIG_COSIGNATURE_V1, public) != key_id(
        "PeterNeumann", SIG_ED25519, public
    )
    assert key_id("PeterNeumann2", SIG_ED25519, public) != key_id(
        "PeterNeumann", SIG_ED25519, public
    )


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"text\n\xff\n\n\xe2\x80\x94 a AAAAAAA=\n", "UTF-8"),
        (b"text\tmore\n\n\xe2\x80\x94 a AAAAAAA=\n", "control"),
        (b"text\n\xe2\x80\x94 a AAAAAAA=\n", "blank line"),
        (b"text\n\n\xe2\x80\x94 a AAAAAAA=", "end in a newline"),
        (b"text\n\n- a AAAAAAA=\n", "does not start"),
        (b"text\n\n\xe2\x80\x94 a+b AAAAAAA=\n", "name base64"),
        (b"text\n\n\xe2\x80\x94 a AAAA\n", "name base64"),
        (b"text\n\n\xe2\x80\x94 a not!base64\n", "name base64"),
        (b"text\n\n" + b"\xe2\x80\x94 a AAAAAAA=\n" * 101, "more than 100"),
    ],
)
def test_a_malformed_note_is_refused_naming_the_rule_it_breaks(data: bytes, rule: str) -> None:
    with pytest.raises(DecodeError) as refused:
        parse_note(data)

    assert refused.value.reason == "malformed_note"
    assert rule in refused.value.detail


def test_the_text_ends_at_the_last_blank_line_so_a_text_may_hold_blank_lines() -> None:
    note = parse_note(b"one\n\ntwo\n\n\xe2\x80\x94 a AAAAAAA=\n")

    assert note.text == "one\n\ntwo\n"
    assert [s.name for s in note.signatures] == ["a"]


def test_a_checkpoint_text_is_origin_size_and_base64_root_each_on_its_line() -> None:
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")

    assert checkpoint_text("example.com/behind-the-sofa", 20852163, root) == SOFA
    head = parse_tree_head(SOFA)
    assert (head.origin, head.size, head.root, head.extensions) == (
        "example.com/behind-the-sofa",
        20852163,
        root,
        (),
    )


@pytest.mark.parametrize(
    "text",
    [
        "origin\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # leading zero
        "origin\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",  # unpadded
        "origin\n12\nCsUY\n",  # not 32 bytes
        "origin\n12\n",
        "\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",  # empty extension
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",  # no final newline
    ],
)
def test_a_checkpoint_text_that_breaks_the_layout_is_refused(text: str) -> None:
    with pytest.raises(DecodeError) as refused:
        parse_tree_head(text)

    assert refused.value.reason == "malformed_checkpoint"


def test_the_cosignature_message_is_the_specs_example_exactly() -> None:
    assert cosignature_message(SOFA, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_the_specs_example_cosignature_line_carries_its_key_id_and_timestamp() -> None:
    line = parse_note(SOFA_NOTE).signatures[1]

    assert line.name == "witness.example.com/w1"
    assert line.key_id.hex() == "8d66cf3f"
    assert struct.unpack(">Q", line.signature[:8]) == (1679315147,)
    assert len(line.signature) == 8 + 64


def test_a_cosignature_verifies_with_its_time_and_not_under_another_text_or_key() -> None:
    witness = Ed25519PrivateKey.generate()
    public = witness.public_key().public_bytes_raw()
    line = cosign("witness.example/be", public, witness.sign, SOFA, 1_772_000_000)
    cosigned = parse_note(SOFA_NOTE).with_signatures([line])

    verified = verify_cosignature(cosigned, "witness.example/be", public)

    assert verified is not None
    assert verified.timestamp == 1_772_000_000
    other_text = Note(SOFA.replace("20852163", "20852164"), cosigned.signatures)
    assert verify_cosignature(other_text, "witness.example/be", public) is None
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert verify_cosignature(cosigned, "witness.example/be", stranger) is None


def test_a_cosignature_whose_timestamp_was_changed_does_not_verify() -> None:
    witness = Ed25519PrivateKey.generate()
    public = witness.public_key().public_bytes_raw()
    line = cosign("w", public, witness.sign, SOFA, 1_772_000_000)
    moved = type(line)(
        line.name, line.key_id, struct.pack(">Q", 1_772_000_001) + line.signature[8:]
    )

    assert verify_cosignature(Note(SOFA, (moved,)), "w", public) is None


def test_an_add_checkpoint_body_is_the_specs_layout_and_reads_back() -> None:
    proof = [
        base64.b64decode(h)
        for h in (
            "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=",
            "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=",
        )
    ]

    body = add_checkpoint_body(20852014, proof, SOFA_NOTE)

    assert body == (
        b"old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
        b"jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\n" + SOFA_NOTE
    )
    request = parse_add_checkpoint(body)
    assert (request.old_size, request.proof, request.head.size) == (
        20852014,
        tuple(proof),
        20852163,
    )
    assert request.checkpoint.to_bytes() == SOFA_NOTE


@pytest.mark.parametrize(
    "body",
    [
        b"old 01\n\n" + SOFA_NOTE,
        b"new 1\n\n" + SOFA_NOTE,
        b"old 1\nnot-a-hash\n\n" + SOFA_NOTE,
        b"old 1\n" + SOFA_NOTE,
        b"old 1\n" + b"PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n" * 64 + b"\n" + SOFA_NOTE,
    ],
)
def test_a_malformed_add_checkpoint_request_is_refused(body: bytes) -> None:
    with pytest.raises(DecodeError) as refused:
        parse_add_checkpoint(body)

    assert refused.value.reason in ("malformed_request", "malformed_note", "malformed_checkpoint")


def test_only_the_empty_trees_root_may_come_with_size_zero() -> None:
    assert empty_tree_ok(parse_tree_head(checkpoint_text("o", 0, EMPTY_ROOT)))
    assert not empty_tree_ok(parse_tree_head(checkpoint_text("o", 0, bytes(32))))
