"""The C2SP face of a decision-log checkpoint: a tlog-checkpoint in a signed note.

Every checkpoint the broker signs (broker/auditlog/checkpoints.py) carries,
besides ixb's own signature over its fixed framing, the same tree head as a
C2SP checkpoint (broker/trust/tlog.py), signed with the Ed25519 half of the
same broker key under a key name equal to the log's *origin*::

    <prefix>/<topic>/<partition>          the origin, e.g. ixb.local/ixb.audit/0
    <tree size>
    <base64 root>

    — <origin> base64(key ID || Ed25519 signature)

So tools of the transparency-log ecosystem (the Go ``sumdb/note`` package,
litewitness, any tlog-witness) can check ixb's checkpoints, and witnesses
can cosign them (broker/parties/witness.py). The prefix is a deployment's
name for its logs (``IXB_LOG_ORIGIN``): origins must not collide between
deployments a witness serves, since a witness keeps one state per origin.

:func:`check_log_note` is what every verifier of an ixb checkpoint record
runs; :func:`open_log_note` is for a bare note (a witness's request, a
checkpoint an auditor holds in a file), where only the registry's broker
keys say who may have signed it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from broker.errors import DecodeError, VerificationError
from broker.trust.note import SIG_ED25519 as _ED25519
from broker.trust.note import Note, ed25519_signature, key_id, parse_note, verifies_ed25519
from broker.trust.tlog import TreeHead, checkpoint_text, origin_is_valid, parse_tree_head

__all__ = [
    "DEFAULT_ORIGIN_PREFIX",
    "LogKey",
    "NoteSigner",
    "OpenedNote",
    "check_log_note",
    "log_id_of_origin",
    "log_key_id",
    "log_note",
    "open_log_note",
    "origin_of",
]

DEFAULT_ORIGIN_PREFIX = "ixb.local"
_STAGE = "checkpoint"


def origin_of(log_id: str, prefix: str = DEFAULT_ORIGIN_PREFIX) -> str:
    """A log's origin line (and the broker's key name for it): ``<prefix>/<log id>``."""
    origin = f"{prefix}/{log_id}"
    if not origin_is_valid(origin):
        raise ValueError("an origin has no spaces and no '+'")
    return origin


def log_id_of_origin(origin: str, prefix: str = DEFAULT_ORIGIN_PREFIX) -> str | None:
    """The log id an origin of this deployment names, or None for another's origin."""
    log_id = origin.removeprefix(f"{prefix}/")
    return log_id if log_id != origin and log_id else None


class NoteSigner(Protocol):
    """What signs a checkpoint's note: the broker key's Ed25519 half."""

    def sign_ed25519(self, message: bytes) -> bytes: ...

    def ed25519_public_key(self) -> bytes: ...


def log_note(signer: NoteSigner, origin: str, size: int, root: bytes) -> bytes:
    """The signed C2SP checkpoint of (origin, size, root), signed under the origin."""
    text = checkpoint_text(origin, size, root)
    public = signer.ed25519_public_key()
    line = ed25519_signature(origin, public, signer.sign_ed25519(text.encode()))
    return Note(text, (line,)).to_bytes()


def check_log_note(data: bytes, *, log_id: str, size: int, root: bytes, public_key: bytes) -> Note:
    """The note, if it is the C2SP checkpoint of exactly this tree signed by ``public_key``.

    VerificationError (stage ``checkpoint``): ``checkpoint_note_missing``,
    ``checkpoint_note_malformed``, ``checkpoint_note_mismatch`` (another
    log, size or root, or extension lines) or ``checkpoint_note_signature``.
    Lines of other keys (witnesses' cosignatures) are left for others to judge.
    """
    if not data:
        raise VerificationError(
            "checkpoint_note_missing", f"{log_id}: no C2SP checkpoint note", stage=_STAGE
        )
    note, head = _parse(data, log_id)
    if (
        head.size != size
        or head.root != root
        or head.extensions
        or not head.origin.endswith(f"/{log_id}")
    ):
        raise VerificationError(
            "checkpoint_note_mismatch",
            f"{log_id}: the note states another log, size or root than the checkpoint",
            stage=_STAGE,
        )
    if verifies_ed25519(note, head.origin, public_key) is not True:
        raise VerificationError(
            "checkpoint_note_signature",
            f"{log_id}: the note of size {size} has no valid signature by the checkpoint's key",
            stage=_STAGE,
        )
    return note


@dataclass(frozen=True, slots=True)
class LogKey:
    """A broker key as a note key: its registry id and its raw Ed25519 public key."""

    key_id: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A bare checkpoint note whose log signature verified: what it says and who signed."""

    note: Note
    head: TreeHead
    signer: LogKey

    @property
    def data(self) -> bytes:
        return self.note.to_bytes()


def open_log_note(data: bytes, keys: Iterable[LogKey]) -> OpenedNote:
    """A bare note signed under its origin by one of ``keys``; else VerificationError.

    Reasons as :func:`check_log_note`, and ``checkpoint_note_signature``
    when no key's (origin, key ID) pair signed it, or one that did fails.
    """
    note, head = _parse(data, None)
    for key in keys:
        verified = verifies_ed25519(note, head.origin, key.public_key)
        if verified is None:
            continue
        if not verified:
            break
        return OpenedNote(note, head, key)
    raise VerificationError(
        "checkpoint_note_signature",
        f"{head.origin}: no valid signature by a broker key under the origin",
        stage=_STAGE,
    )


def log_key_id(origin: str, key: LogKey) -> bytes:
    """The 4-byte note key ID of ``key`` signing as the log ``origin``."""
    return key_id(origin, _ED25519, key.public_key)


def _parse(data: bytes, log_id: str | None) -> tuple[Note, TreeHead]:
    try:
        note = parse_note(data)
        return note, parse_tree_head(note.text)
    except DecodeError as exc:
        raise VerificationError(
            "checkpoint_note_malformed",
            f"{log_id or 'a checkpoint'}: the note is not a C2SP checkpoint ({exc.detail})",
            stage=_STAGE,
        ) from exc
