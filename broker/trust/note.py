"""C2SP signed notes (c2sp.org/signed-note): a text, a blank line, signature lines.

The transparency-log ecosystem (the Go checksum database, Sigsum, litewitness,
Tessera) exchanges checkpoints and cosignatures as signed notes, so ixb writes
its decision-log checkpoints in this form too (broker/trust/tlog.py gives
the checkpoint and cosignature layers). A note is::

    <text, ending in a newline>
    <blank line>
    — <key name> base64(key ID (4 bytes, big-endian) || signature)
    ...

and the key ID is ``SHA-256(name || 0x0A || type || public key)[:4]``, with
``type`` 0x01 for an Ed25519 signature over the text and 0x04 for a
timestamped checkpoint cosignature (c2sp.org/tlog-cosignature). The pair
(name, key ID) names a key: a verifier ignores every signature whose pair it
does not know, and refuses the note if one whose pair it knows fails.

:func:`parse_note` is as strict as the reference implementation
(``golang.org/x/mod/sumdb/note``, which tests/go/notecheck runs against
ixb's notes): valid UTF-8, no control character other than the newline, the
text split from the signatures at the last blank line, each signature line
well formed. It refuses with :class:`~broker.errors.DecodeError` reason
``malformed_note`` and a detail that names the rule broken, never the text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.errors import DecodeError

__all__ = [
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "SIG_COSIGNATURE_V1",
    "SIG_ED25519",
    "Note",
    "NoteSignature",
    "ed25519_signature",
    "key_id",
    "parse_note",
    "parse_vkey",
    "valid_key_name",
    "verifies_ed25519",
    "vkey",
]

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
MAX_NOTE_BYTES = 64 * 1024  # a checkpoint with 100 cosignatures is about 10 KiB
MAX_SIGNATURES = 100  # the reference implementation's limit; the spec asks for at least 16
_DASH = "\u2014 "  # em dash, space: how every signature line starts
_MALFORMED = "malformed_note"


def valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode space, no ``+`` (the vkey separator)."""
    return bool(name) and "+" not in name and not any(_is_space(c) for c in name)


def _is_space(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Zs"


def key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    """The 4-byte key ID: ``SHA-256(name || 0x0A || type || public key)[:4]``."""
    if not valid_key_name(name):
        raise ValueError("a key name is non-empty, without spaces or '+'")
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()[:4]


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key's name and ID, and the signature bytes after the ID."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        encoded = base64.b64encode(self.key_id + self.signature).decode()
        return f"{_DASH}{self.name} {encoded}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A note's text (ending in a newline) and its signatures, in order."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        if not self.text.endswith("\n"):
            raise ValueError("a note's text ends in a newline")

    def to_bytes(self) -> bytes:
        """The note as it travels: text, blank line, one line per signature."""
        if not self.signatures:
            raise ValueError("a signed note has at least one signature")
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()

    def with_signatures(self, added: Iterable[NoteSignature]) -> Note:
        """This note with ``added`` appended, leaving out exact repeats of a line."""
        kept = list(self.signatures)
        for signature in added:
            if signature not in kept:
                kept.append(signature)
        return Note(self.text, tuple(kept))

    def signatures_by(self, name: str, key: bytes) -> list[NoteSignature]:
        """The signatures whose (name, key ID) is ``(name, key)``: the only ones a key may own."""
        return [s for s in self.signatures if s.name == name and s.key_id == key]


def parse_note(data: bytes) -> Note:
    """The note in ``data``, or DecodeError ``malformed_note`` naming the rule it breaks."""
    if len(data) > MAX_NOTE_BYTES:
        raise DecodeError(_MALFORMED, f"a note is at most {MAX_NOTE_BYTES} bytes")
    try:
        message = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(_MALFORMED, "a note is valid UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in message):
        raise DecodeError(_MALFORMED, "a note has no control characters but newlines")
    split = message.rfind("\n\n")
    if split < 0:
        raise DecodeError(_MALFORMED, "no blank line before the signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block.endswith("\n"):
        raise DecodeError(_MALFORMED, "the signatures end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise DecodeError(_MALFORMED, f"more than {MAX_SIGNATURES} signatures")
    return Note(text, tuple(_signature(number, line) for number, line in enumerate(lines)))


def _signature(number: int, line: str) -> NoteSignature:
    if not line.startswith(_DASH):
        raise DecodeError(_MALFORMED, f"signature line {number} does not start with '\u2014 '")
    name, _, encoded = line[len(_DASH) :].partition(" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raw = b""
    if not valid_key_name(name) or len(raw) < 5:
        raise DecodeError(_MALFORMED, f"signature line {number} is not '\u2014 name base64'")
    return NoteSignature(name, raw[:4], raw[4:])


def ed25519_signature(name: str, public_key: bytes, signature: bytes) -> NoteSignature:
    """The line for an Ed25519 (type 0x01) signature over a note's text by ``public_key``."""
    return NoteSignature(name, key_id(name, SIG_ED25519, public_key), signature)


def verifies_ed25519(note: Note, name: str, public_key: bytes) -> bool | None:
    """Whether the note carries a valid Ed25519 signature by this key; None if it has none.

    A note with a signature line of this key that does not verify is False
    even if another line of the same key verifies: the note is malformed,
    and the specification says to reject it.
    """
    lines = note.signatures_by(name, key_id(name, SIG_ED25519, public_key))
    if not lines:
        return None
    key = Ed25519PublicKey.from_public_bytes(public_key)
    message = note.text.encode()
    for line in lines:
        try:
            key.verify(line.signature, message)
        except InvalidSignature:
            return False
    return True


def vkey(name: str, signature_type: int, public_key: bytes) -> str:
    """A verifier key: ``name+hex(key ID)+base64(type || public key)``."""
    identifier = key_id(name, signature_type, public_key).hex()
    material = base64.b64encode(bytes([signature_type]) + public_key).decode()
    return f"{name}+{identifier}+{material}"


def parse_vkey(text: str) -> tuple[str, int, bytes]:
    """(name, signature type, public key) of a verifier key; ValueError if it is not one."""
    name, _, rest = text.partition("+")
    identifier, _, material = rest.partition("+")
    try:
        raw = base64.b64decode(material, validate=True)
        claimed = bytes.fromhex(identifier)
    except (binascii.Error, ValueError):
        raise ValueError("not a verifier key: name+hex+base64") from None
    if not valid_key_name(name) or len(claimed) != 4 or len(raw) < 2:
        raise ValueError("not a verifier key: name+hex+base64")
    signature_type, public_key = raw[0], raw[1:]
    if key_id(name, signature_type, public_key) != claimed:
        raise ValueError("the verifier key's ID does not match its name and key")
    return name, signature_type, public_key
