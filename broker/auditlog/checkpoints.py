"""Signed checkpoints of one audit log, and the checkpointer that makes them.

A log is one partition of ``ixb.audit`` (log id ``"<topic>/<partition>"``);
its leaves are the exact record values in offset order. A checkpoint is the
broker's signature over the log's size and RFC 6962 root at a time, so an
auditor who holds two checkpoints can demand a consistency proof between
them, and a recipient holding one can check a receipt against it offline.

The signed input is domain-separated and has a fixed binary framing, so no
two distinct checkpoints share a signed input and nothing is signed twice
for two purposes::

    "ixb-checkpoint-v1" 0x00
    len(log_id) : uint16 big-endian, log_id : UTF-8
    tree_size   : uint64 big-endian
    root_hash   : 32 bytes
    at          : int64 big-endian, milliseconds since the epoch

Every checkpoint also carries ``note``: the same tree head as a C2SP
tlog-checkpoint in a signed note, signed by the Ed25519 half of the same key
under the log's origin (broker/auditlog/log_notes.py), so the ecosystem's
tools and witnesses read it; witnesses' cosignatures are further lines of
that note. A checkpoint verifies only if both signatures do and say the same.

Signing and verification are plugged in (:class:`CheckpointSigner`,
:class:`VerifySignature`), so the key registry decides the algorithm;
:func:`checkpoint_verifier` is the registry's: a broker key must have signed.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

# Re-exported: the keys a checkpoint is checked against live beside it (checkpoint_keys.py).
from broker.auditlog.checkpoint_keys import VerifySignature, broker_note_keys, checkpoint_verifier
from broker.auditlog.entries import epoch_ms, from_epoch_ms
from broker.auditlog.log_notes import (
    DEFAULT_ORIGIN_PREFIX,
    check_log_note,
    log_note,
    origin_of,
)
from broker.errors import DecodeError, RejectedInput, VerificationError
from broker.trust.merkle import HASH_SIZE, MerkleLog, leaf_hash, verify_consistency
from broker.wire.codec import SchemaCatalog

__all__ = [
    "CHECKPOINT_SCHEMA",
    "Checkpoint",
    "CheckpointSigner",
    "Checkpointer",
    "VerifySignature",
    "broker_note_keys",
    "check_consistency",
    "check_signature",
    "checkpoint_message",
    "checkpoint_verifier",
    "decode_checkpoint",
    "encode_checkpoint",
    "log_id_of",
    "sign_checkpoint",
]

CHECKPOINT_SCHEMA = "ixb.v1.AuditCheckpoint"
_CONTEXT = b"ixb-checkpoint-v1\x00"
_MAX_LOG_ID_BYTES = 0xFFFF

Clock = Callable[[], dt.datetime]


class CheckpointSigner(Protocol):
    """Whatever holds the broker's checkpoint key: it signs ixb's framing and the C2SP note."""

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...

    def sign_ed25519(self, message: bytes) -> bytes: ...

    def ed25519_public_key(self) -> bytes: ...


def log_id_of(topic: str, partition: int) -> str:
    """A log's id: one partition of the audit topic is one log."""
    return f"{topic}/{partition}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed (log, size, root, time); ``at_ms`` is the exact signed time.

    ``note`` is the C2SP signed note of the same tree head, with whatever
    cosignatures have been collected for it.
    """

    log_id: str
    tree_size: int
    root_hash: bytes
    at_ms: int
    signer_key_id: str
    signature: bytes
    note: bytes = b""

    @property
    def at(self) -> dt.datetime:
        return from_epoch_ms(self.at_ms)

    @property
    def origin(self) -> str:
        """The note's origin line (empty if there is no note)."""
        return self.note.split(b"\n", 1)[0].decode("utf-8", "replace") if self.note else ""

    def message(self) -> bytes:
        """The exact bytes the signature covers."""
        return checkpoint_message(self.log_id, self.tree_size, self.root_hash, self.at_ms)


def checkpoint_message(log_id: str, tree_size: int, root_hash: bytes, at_ms: int) -> bytes:
    """The signed input of a checkpoint (framing in the module docstring)."""
    name = log_id.encode()
    if len(name) > _MAX_LOG_ID_BYTES:
        raise ValueError("a log id must fit in 65535 bytes")
    if len(root_hash) != HASH_SIZE:
        raise ValueError(f"a root hash is {HASH_SIZE} bytes")
    if tree_size < 0:
        raise ValueError("a tree size is not negative")
    return (
        _CONTEXT
        + struct.pack(">H", len(name))
        + name
        + struct.pack(">Q", tree_size)
        + root_hash
        + struct.pack(">q", at_ms)
    )


def sign_checkpoint(
    signer: CheckpointSigner,
    log_id: str,
    tree_size: int,
    root_hash: bytes,
    at: dt.datetime,
    *,
    origin_prefix: str = DEFAULT_ORIGIN_PREFIX,
) -> Checkpoint:
    at_ms = epoch_ms(at)
    signature = signer.sign(checkpoint_message(log_id, tree_size, root_hash, at_ms))
    note = log_note(signer, origin_of(log_id, origin_prefix), tree_size, root_hash)
    return Checkpoint(log_id, tree_size, root_hash, at_ms, signer.key_id, signature, note)


def check_signature(checkpoint: Checkpoint, verify: VerifySignature) -> None:
    """Raise VerificationError unless the checkpoint's signer signed exactly this checkpoint.

    Both signatures: ixb's over the framing, and the C2SP note's, which must
    state the same log, size and root (broker/auditlog/log_notes.py).
    """
    verify(checkpoint.signer_key_id, checkpoint.signature, checkpoint.message(), checkpoint.at)
    public = verify.ed25519_key(checkpoint.signer_key_id, checkpoint.at)
    check_log_note(
        checkpoint.note,
        log_id=checkpoint.log_id,
        size=checkpoint.tree_size,
        root=checkpoint.root_hash,
        public_key=public,
    )


def check_consistency(old: Checkpoint, new: Checkpoint, proof: Iterable[bytes]) -> None:
    """Raise VerificationError unless ``proof`` shows ``new``'s tree extends ``old``'s.

    Signatures are the caller's to check first; this is the Merkle part only.
    """
    if old.log_id != new.log_id:
        raise VerificationError(
            "checkpoint_log_mismatch", "the two checkpoints are of different logs", stage="audit"
        )
    if not verify_consistency(
        old.tree_size, new.tree_size, old.root_hash, new.root_hash, list(proof)
    ):
        raise VerificationError(
            "inconsistent_checkpoints",
            f"{new.log_id}: the tree of size {new.tree_size} does not extend the tree of size "
            f"{old.tree_size} by the proof given",
            stage="audit",
        )


def encode_checkpoint(catalog: SchemaCatalog, checkpoint: Checkpoint) -> bytes:
    return catalog.encode(
        CHECKPOINT_SCHEMA,
        {
            "log_id": checkpoint.log_id,
            "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash,
            "at": checkpoint.at_ms,
            "signer_key_id": checkpoint.signer_key_id,
            "signature": checkpoint.signature,
            "note": checkpoint.note,
        },
    )


def decode_checkpoint(catalog: SchemaCatalog, data: bytes) -> Checkpoint:
    """Decode (not verify) a checkpoint; DecodeError by reason for anything malformed."""
    record = catalog.decode(data, CHECKPOINT_SCHEMA)
    if record["tree_size"] < 0:
        raise DecodeError("malformed", "checkpoint tree size is negative")
    return Checkpoint(
        log_id=record["log_id"],
        tree_size=record["tree_size"],
        root_hash=record["root_hash"],
        at_ms=epoch_ms(record["at"]),
        signer_key_id=record["signer_key_id"],
        signature=record["signature"],
        note=record["note"],
    )


class Checkpointer:
    """Grows one log's Merkle tree and signs a checkpoint every N entries or T seconds.

    Fed every record of the log in offset order from offset 0 (``extend``
    to catch up after a restart without signing, then ``append``). A
    checkpoint is due when ``every_entries`` entries, or ``every_s``
    seconds with at least one new entry, have passed since the last one;
    ``tick`` lets a quiet log be checkpointed on time. Pure: the clock is
    injected and the caller publishes what it returns. One task only.
    """

    __slots__ = (
        "_clock",
        "_every_entries",
        "_every_s",
        "_last_at",
        "_last_size",
        "_log",
        "_origin_prefix",
        "_signer",
        "log_id",
    )

    def __init__(
        self,
        log_id: str,
        signer: CheckpointSigner,
        clock: Clock,
        *,
        every_entries: int = 1000,
        every_s: float = 10.0,
        origin_prefix: str = DEFAULT_ORIGIN_PREFIX,
    ) -> None:
        if every_entries < 1 or every_s <= 0:
            raise ValueError("checkpoints must be due after at least one entry and some time")
        self.log_id = log_id
        self._origin_prefix = origin_prefix
        self._signer = signer
        self._clock = clock
        self._every_entries = every_entries
        self._every_s = every_s
        self._log = MerkleLog()
        self._last_size = 0
        self._last_at = clock()

    @property
    def log(self) -> MerkleLog:
        """The tree so far: for receipts and consistency proofs. Do not append to it."""
        return self._log

    @property
    def unsigned(self) -> int:
        """Entries added since the last checkpoint (made here or taken by ``resume``)."""
        return self._log.size - self._last_size

    def extend(self, records: Iterable[tuple[int, bytes]]) -> None:
        """Add records without signing: replaying the log after a restart.

        Counts and time run from the checkpointer's start, so the next
        ``append`` signs at once if the replay added ``every_entries`` or
        more, and ``tick`` within ``every_s``: what the last process wrote
        after its last checkpoint is never left unsigned for long.
        """
        for offset, value in records:
            self._add(offset, value)

    def resume(self, checkpoint: Checkpoint) -> None:
        """Take ``checkpoint`` (signed before a restart) as the last one made here.

        The log must already reach its size (``extend`` first) and have its
        root there; otherwise VerificationError (``checkpoint_root_mismatch``
        or ``checkpoint_beyond_log``): the log is not what was signed, and
        signing on would sign a fork. The signature is the caller's to check.
        """
        if checkpoint.log_id != self.log_id:
            raise ValueError("the checkpoint must be of this log")
        size = checkpoint.tree_size
        if size > self._log.size:
            raise VerificationError(
                "checkpoint_beyond_log",
                f"{self.log_id}: checkpoint of size {size}, log of size {self._log.size}",
                stage="checkpoint",
            )
        if self._log.root_at(size) != checkpoint.root_hash:
            raise VerificationError(
                "checkpoint_root_mismatch",
                f"{self.log_id}: the log's first {size} entries do not have the signed root",
                stage="checkpoint",
            )
        self._last_size = max(size, self._last_size)

    def append(self, offset: int, value: bytes) -> Checkpoint | None:
        """Add the record at ``offset``; a checkpoint if one is now due."""
        self._add(offset, value)
        if self._log.size - self._last_size >= self._every_entries:
            return self.checkpoint()
        return self.tick()

    def tick(self) -> Checkpoint | None:
        """A checkpoint if time is up and there are entries since the last one."""
        if self._log.size == self._last_size:
            return None
        if (self._clock() - self._last_at).total_seconds() < self._every_s:
            return None
        return self.checkpoint()

    def checkpoint(self) -> Checkpoint:
        """Sign the tree as it is now, due or not (e.g. at shutdown)."""
        now = self._clock()
        size = self._log.size
        checkpoint = sign_checkpoint(
            self._signer,
            self.log_id,
            size,
            self._log.root(),
            now,
            origin_prefix=self._origin_prefix,
        )
        self._last_size, self._last_at = size, now
        return checkpoint

    def consistency(self, old: Checkpoint, new: Checkpoint) -> list[bytes]:
        """The proof that ``new``'s tree extends ``old``'s, from this log."""
        if old.log_id != self.log_id or new.log_id != self.log_id:
            raise ValueError("both checkpoints must be of this log")
        return self._log.consistency_proof(old.tree_size, new.tree_size)

    def _add(self, offset: int, value: bytes) -> None:
        expected = self._log.size
        if offset != expected:
            # Offsets of a plain topic are contiguous: anything else is not this log.
            raise RejectedInput(
                "offset_gap",
                f"{self.log_id}: offset {offset} arrived where offset {expected} was expected",
                stage="checkpoint",
            )
        self._log.append(leaf_hash(value))


def signed_checkpoints(
    catalog: SchemaCatalog, records: Iterable[tuple[int, bytes]], verify: VerifySignature
) -> tuple[dict[str, list[Checkpoint]], list[tuple[int, str]]]:
    """Per log, every non-empty checkpoint whose signature verifies, smallest first.

    ``records`` are (offset, value) from the checkpoints topic. Also returns
    the (offset, reason) of every record left out because it does not
    decode or verify (``ixb audit verify`` names those). Whoever signs a new
    checkpoint must find the log still has each of these roots
    (:meth:`Checkpointer.resume`), or it would sign a fork.
    """
    signed: dict[str, list[Checkpoint]] = {}
    ignored: list[tuple[int, str]] = []
    for offset, value in records:
        try:
            checkpoint = decode_checkpoint(catalog, value)
            check_signature(checkpoint, verify)
        except RejectedInput as exc:
            ignored.append((offset, exc.reason))
            continue
        if checkpoint.tree_size:  # the empty tree gives nothing to carry on from
            signed.setdefault(checkpoint.log_id, []).append(checkpoint)
    for checkpoints in signed.values():
        checkpoints.sort(key=lambda c: c.tree_size)
    return signed, ignored
