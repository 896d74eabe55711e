"""C2SP checkpoints, cosignatures and the witness protocol's messages, byte for byte.

Three specifications, each a layer over a signed note (broker/trust/note.py):

- **c2sp.org/tlog-checkpoint**: the note text is the log's *origin* line, the
  tree size in decimal (no leading zeros) and the base64 RFC 6962 root, each
  ending in a newline, then optional extension lines (ixb writes none). The
  log signs it with Ed25519 under a key name equal to the origin.
- **c2sp.org/tlog-cosignature** (v1, Ed25519, signature type 0x04): a witness
  signs ``"cosignature/v1\\ntime <t>\\n" || checkpoint text`` and the line
  carries ``key ID || timestamp (8 bytes, big-endian) || signature``. It says:
  as of ``t``, this is the largest tree consistent with everything the
  witness saw of this origin.
- **c2sp.org/tlog-witness** ``add-checkpoint``: the request body is
  ``"old <size>\\n"``, at most 63 base64 proof lines, a blank line and the
  checkpoint note; the answer is the witness's cosignature lines.

Everything here is pure and refuses malformed input with
:class:`~broker.errors.DecodeError` (reasons ``malformed_checkpoint``,
``malformed_request``); the details name the rule broken, never the bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.errors import DecodeError
from broker.trust.merkle import EMPTY_ROOT, HASH_SIZE
from broker.trust.note import (
    SIG_COSIGNATURE_V1,
    Note,
    NoteSignature,
    key_id,
    parse_note,
    valid_key_name,
)

__all__ = [
    "MAX_PROOF_LINES",
    "AddCheckpoint",
    "Cosignature",
    "TreeHead",
    "add_checkpoint_body",
    "checkpoint_text",
    "cosign",
    "cosignature_message",
    "empty_tree_ok",
    "origin_is_valid",
    "parse_add_checkpoint",
    "parse_tree_head",
    "verify_cosignature",
]

MAX_PROOF_LINES = 63
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_TIMESTAMP = 2**63 - 1


@dataclass(frozen=True, slots=True)
class TreeHead:
    """What a checkpoint's text says: origin, size, root (and extension lines, opaque)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        return checkpoint_text(self.origin, self.size, self.root, self.extensions)


def checkpoint_text(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """The checkpoint's note text, exactly as c2sp.org/tlog-checkpoint lays it out."""
    if not origin or "\n" in origin:
        raise ValueError("an origin is one non-empty line")
    if size < 0 or len(root) != HASH_SIZE:
        raise ValueError("a tree size is not negative and a root is 32 bytes")
    if any(not line or "\n" in line for line in extensions):
        raise ValueError("extension lines are non-empty single lines")
    lines = [origin, str(size), base64.b64encode(root).decode(), *extensions]
    return "".join(f"{line}\n" for line in lines)


def parse_tree_head(text: str) -> TreeHead:
    """The tree head a checkpoint text states; DecodeError ``malformed_checkpoint`` if none."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise DecodeError("malformed_checkpoint", "a checkpoint has at least three lines")
    origin, size, root, *extensions = lines[:-1]
    if not origin:
        raise DecodeError("malformed_checkpoint", "the origin line is empty")
    if not _DECIMAL.fullmatch(size) or int(size) > _MAX_TIMESTAMP:
        raise DecodeError("malformed_checkpoint", "the size is not a decimal without zeros ahead")
    raw = _hash(root)
    if raw is None:
        raise DecodeError("malformed_checkpoint", "the root is not a base64 SHA-256 hash")
    if any(not line for line in extensions):
        raise DecodeError("malformed_checkpoint", "an extension line is empty")
    return TreeHead(origin, int(size), raw, tuple(extensions))


def _hash(line: str) -> bytes | None:
    """A base64 hash as written (canonical encoding only), else None."""
    try:
        raw = base64.b64decode(line, validate=True)
    except binascii.Error:
        return None
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode() != line:
        return None
    return raw


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A verified cosignature: who cosigned, and the time it states."""

    name: str
    timestamp: int


def cosignature_message(checkpoint: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: header, time line, then the checkpoint's text."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise ValueError("a cosignature time is a non-negative 63-bit POSIX time")
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint}".encode()


def cosign(
    name: str,
    public_key: bytes,
    sign: Callable[[bytes], bytes],
    checkpoint: str,
    timestamp: int,
) -> NoteSignature:
    """The cosignature line of the witness ``name`` on ``checkpoint`` at ``timestamp``.

    ``sign`` makes an Ed25519 signature with the private half of ``public_key``.
    """
    signature = sign(cosignature_message(checkpoint, timestamp))
    return NoteSignature(
        name,
        key_id(name, SIG_COSIGNATURE_V1, public_key),
        struct.pack(">Q", timestamp) + signature,
    )


def verify_cosignature(note: Note, name: str, public_key: bytes) -> Cosignature | None:
    """The witness's valid cosignature on the note, or None if it carries none that verifies.

    A line of this key that fails to verify counts as none: a verifier counts
    only cosignatures it checked.
    """
    for line in note.signatures_by(name, key_id(name, SIG_COSIGNATURE_V1, public_key)):
        if len(line.signature) != 8 + 64:
            continue
        (timestamp,) = struct.unpack(">Q", line.signature[:8])
        if timestamp > _MAX_TIMESTAMP:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(
                line.signature[8:], cosignature_message(note.text, timestamp)
            )
        except InvalidSignature:
            continue
        return Cosignature(name, timestamp)
    return None


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """An ``add-checkpoint`` request: the size the client says the witness has, a proof, a note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: Note
    head: TreeHead

    def body(self) -> bytes:
        return add_checkpoint_body(self.old_size, self.proof, self.checkpoint.to_bytes())


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """The request body c2sp.org/tlog-witness defines for ``POST <prefix>/add-checkpoint``."""
    if old_size < 0 or len(proof) > MAX_PROOF_LINES:
        raise ValueError(f"an old size is not negative and a proof has at most {MAX_PROOF_LINES}")
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("".join(f"{line}\n" for line in lines) + "\n").encode() + checkpoint


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """The request in ``body``; DecodeError ``malformed_request`` (or the note's reason)."""
    head, blank, rest = body.partition(b"\n\n")
    if not blank:
        raise DecodeError("malformed_request", "no blank line before the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise DecodeError("malformed_request", "the old size and proof lines are ASCII") from None
    old = lines[0].removeprefix("old ")
    if old == lines[0] or not _DECIMAL.fullmatch(old):
        raise DecodeError("malformed_request", "the first line is 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise DecodeError("malformed_request", f"more than {MAX_PROOF_LINES} proof lines")
    proof = []
    for line in lines[1:]:
        raw = _hash(line)
        if raw is None:
            raise DecodeError("malformed_request", "a proof line is not a base64 hash")
        proof.append(raw)
    note = parse_note(rest)
    tree = parse_tree_head(note.text)
    return AddCheckpoint(int(old), tuple(proof), note, tree)


def empty_tree_ok(head: TreeHead) -> bool:
    """A checkpoint of size 0 must have the empty tree's root (the hash of nothing)."""
    return head.size != 0 or head.root == EMPTY_ROOT


def origin_is_valid(origin: str) -> bool:
    """An origin usable as the log's key name too (ixb signs under its origin)."""
    return valid_key_name(origin)
