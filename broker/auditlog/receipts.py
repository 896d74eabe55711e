"""Receipts: proof that one audit entry is in the log under a signed checkpoint.

A recipient (or an auditor) holding a receipt and the entry's bytes checks,
offline and from the checkpoint alone, that the broker signed a tree that
contains exactly those bytes at that index: the checkpoint's signature, the
entry's leaf hash, and the RFC 6962 audit path up to the signed root. No
other entry and no access to Kafka is needed.

A receipt may carry the entry itself (``entry``): then it is
self-contained, and ``ixb audit check-receipt FILE`` verifies it with the
key registry alone. The entry is still checked against the leaf hash like
one handed in separately; carrying it adds nothing the proof must trust.

The JSON form (``receipt_to_json``) is what ``ixb audit receipt`` writes;
hashes and the signature are lower-case hex, the entry and the checkpoint's
C2SP note are base64 (standard alphabet, padded), the time is integer
milliseconds so that the signed input is rebuilt exactly. The note carries
the witnesses' cosignatures collected for the checkpoint, so a holder can
ask for a quorum of them (broker/auditlog/witnessed.py).
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.auditlog.checkpoints import Checkpoint, VerifySignature, check_signature
from broker.auditlog.entries import AUDIT_ENTRY_SCHEMA, Outcome, epoch_ms
from broker.auditlog.witnessed import WitnessKeys, merged
from broker.errors import DecodeError, RejectedInput, VerificationError
from broker.trust.merkle import HASH_SIZE, MerkleLog, leaf_hash, verify_inclusion
from broker.trust.note import Note, parse_note
from broker.wire.codec import SchemaCatalog

__all__ = [
    "RECEIPT_FORMAT",
    "Receipt",
    "receipt",
    "receipt_for_delivery",
    "receipt_from_json",
    "receipt_to_json",
    "verify_receipt",
]

RECEIPT_FORMAT = "ixb-receipt-v1"
_STAGE = "receipt"


@dataclass(frozen=True, slots=True)
class Receipt:
    """An entry's leaf hash, its place in a checkpointed tree and the path to the root."""

    index: int
    tree_size: int
    leaf_hash: bytes
    audit_path: tuple[bytes, ...]
    checkpoint: Checkpoint
    entry: bytes | None = None  # the entry's exact bytes, when the receipt carries them
    registry: bytes | None = None  # the registry version the entry names (receipt_registry.py)


def receipt(
    log: MerkleLog, index: int, checkpoint: Checkpoint, *, entry: bytes | None = None
) -> Receipt:
    """The receipt for entry ``index`` under ``checkpoint``, from the log that was checkpointed.

    With ``entry`` (the record's bytes) the receipt carries it. Raises
    ValueError if the entry is not under the checkpoint, the log does not
    have the checkpoint's root, or ``entry`` is not the log's leaf there:
    handing out a receipt that cannot verify would be a bug.
    """
    size = checkpoint.tree_size
    if not 0 <= index < size:
        raise ValueError(f"entry {index} is not under the checkpoint of size {size}")
    if log.root_at(size) != checkpoint.root_hash:
        raise ValueError(f"this log's tree of size {size} is not the checkpoint's")
    leaf = log.leaf(index)
    if entry is not None and leaf_hash(entry) != leaf:
        raise ValueError(f"the entry given is not the log's entry {index}")
    return Receipt(index, size, leaf, tuple(log.inclusion_proof(index, size)), checkpoint, entry)


def receipt_for_delivery(
    logs: Mapping[str, Sequence[tuple[int, bytes]]],
    checkpoints: Iterable[Checkpoint],
    delivery_id: str,
    verify: VerifySignature,
    *,
    catalog: SchemaCatalog,
    outcome: Outcome | None = None,
    witnesses: WitnessKeys | None = None,
    quorum: int = 0,
) -> Receipt:
    """A self-contained receipt for the latest entry naming ``delivery_id`` (of ``outcome``).

    ``logs`` are the logs' records in offset order, by log id. The entry is
    the one with the latest time (a delivery held, then released, has two);
    the checkpoint is the largest of its log that covers it, verifies under
    ``verify``, has the root the log has at its size and, with a ``quorum``,
    is cosigned by that many partners' witnesses. Its note carries every
    cosignature of every copy of that checkpoint. RejectedInput (stage
    ``receipt``): ``receipt_no_entry`` when no entry names the delivery,
    ``receipt_not_checkpointed`` when no such checkpoint covers it (yet).
    """
    log_id, index, entry = _latest_entry(logs, delivery_id, catalog, outcome)
    tree = MerkleLog()
    for _, value in logs[log_id]:
        tree.append(leaf_hash(value))
    covering = _with_all_cosignatures(
        [c for c in checkpoints if _covers(c, tree, log_id, index, verify)]
    )
    if quorum:
        assert witnesses is not None, "a quorum is counted under the registry's witness keys"
        covering = [c for c in covering if len(witnesses.cosigners(parse_note(c.note))) >= quorum]
    if not covering:
        witnessed = f" cosigned by {quorum} partners' witnesses" if quorum else ""
        raise RejectedInput(
            "receipt_not_checkpointed",
            f"{log_id}: no signed checkpoint{witnessed} covers entry {index} yet",
            stage=_STAGE,
        )
    latest = max(covering, key=lambda c: (c.tree_size, c.at_ms))
    return receipt(tree, index, latest, entry=entry)


def _with_all_cosignatures(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    """Each checkpoint with the cosignatures of every copy of its tree head merged in."""
    by_head: dict[tuple[int, bytes], list[Note]] = {}
    for c in checkpoints:
        by_head.setdefault((c.tree_size, c.root_hash), []).append(parse_note(c.note))
    return [
        dataclasses.replace(c, note=merged(by_head[c.tree_size, c.root_hash]).to_bytes())
        for c in checkpoints
    ]


def _latest_entry(
    logs: Mapping[str, Sequence[tuple[int, bytes]]],
    delivery_id: str,
    catalog: SchemaCatalog,
    outcome: Outcome | None,
) -> tuple[str, int, bytes]:
    """(log id, index, bytes) of the latest entry naming the delivery, of ``outcome`` if given."""
    found: tuple[int, str, int, bytes] | None = None  # (at ms, log id, index, entry)
    for log_id, records in logs.items():
        for index, (_, value) in enumerate(records):
            try:
                record = catalog.decode(value, AUDIT_ENTRY_SCHEMA)
            except DecodeError:
                continue  # ``ixb audit verify`` names it; it is no one's receipt
            if record["delivery_id"] != delivery_id or (
                outcome is not None and record["outcome"] != outcome.value
            ):
                continue
            at_ms = epoch_ms(record["at"])
            if found is None or at_ms >= found[0]:
                found = (at_ms, log_id, index, value)
    if found is None:
        which = "" if outcome is None else f" {outcome.value}"
        raise RejectedInput(
            "receipt_no_entry", f"no{which} entry names delivery {delivery_id}", stage=_STAGE
        )
    return found[1:]


def _covers(
    checkpoint: Checkpoint, tree: MerkleLog, log_id: str, index: int, verify: VerifySignature
) -> bool:
    """Whether ``checkpoint`` signs ``tree`` (of ``log_id``) at a size that includes ``index``."""
    if checkpoint.log_id != log_id or not index < checkpoint.tree_size <= tree.size:
        return False
    if tree.root_at(checkpoint.tree_size) != checkpoint.root_hash:
        return False
    try:
        check_signature(checkpoint, verify)
    except VerificationError:
        return False
    return True


def verify_receipt(
    receipt: Receipt,
    entry: bytes | None,
    verify: VerifySignature,
    *,
    witnesses: WitnessKeys | None = None,
    quorum: int = 0,
) -> None:
    """Return if ``entry`` is in the signed tree as the receipt says; else VerificationError.

    ``entry`` None means the entry the receipt carries (``receipt_entry_missing``
    if it carries none). Checked in order: the checkpoint's signature (ixb's
    and its C2SP note's), with a ``quorum`` that many partners' witnesses'
    cosignatures on the note (``no_quorum``), that the receipt is for this
    checkpoint's tree, that the entry hashes to the receipt's leaf, and the
    audit path from that leaf to the signed root.
    """
    if entry is None:
        entry = receipt.entry
    if entry is None:
        raise VerificationError(
            "receipt_entry_missing",
            "the receipt carries no entry and none was given",
            stage=_STAGE,
        )
    checkpoint = receipt.checkpoint
    try:
        check_signature(checkpoint, verify)
    except VerificationError as exc:
        raise VerificationError(
            "checkpoint_signature",
            f"{checkpoint.log_id}: checkpoint of size {checkpoint.tree_size} does not verify "
            f"({exc.reason})",
            stage=_STAGE,
        ) from exc
    if quorum:
        if witnesses is None:
            raise ValueError("a quorum is counted under the registry's witness keys")
        what = f"{checkpoint.log_id}: the checkpoint of size {checkpoint.tree_size}"
        witnesses.require(parse_note(checkpoint.note), quorum, what=what)
    if receipt.tree_size != checkpoint.tree_size:
        raise VerificationError(
            "receipt_size_mismatch",
            f"receipt for size {receipt.tree_size}, checkpoint of size {checkpoint.tree_size}",
            stage=_STAGE,
        )
    if not hmac.compare_digest(leaf_hash(entry), receipt.leaf_hash):
        raise VerificationError(
            "receipt_entry_mismatch",
            f"the entry given is not the one the receipt names at index {receipt.index}",
            stage=_STAGE,
        )
    if not verify_inclusion(
        receipt.leaf_hash,
        receipt.index,
        receipt.tree_size,
        receipt.audit_path,
        checkpoint.root_hash,
    ):
        raise VerificationError(
            "receipt_inclusion",
            f"{checkpoint.log_id}: the audit path does not lead from index {receipt.index} "
            f"to the root of size {receipt.tree_size}",
            stage=_STAGE,
        )


def receipt_to_json(receipt: Receipt) -> dict[str, Any]:
    c = receipt.checkpoint
    carried = {} if receipt.entry is None else {"entry": base64.b64encode(receipt.entry).decode()}
    if receipt.registry is not None:
        carried["registry"] = base64.b64encode(receipt.registry).decode()
    return {
        "format": RECEIPT_FORMAT,
        "index": receipt.index,
        "tree_size": receipt.tree_size,
        "leaf_hash": receipt.leaf_hash.hex(),
        "audit_path": [h.hex() for h in receipt.audit_path],
        "checkpoint": {
            "log_id": c.log_id,
            "tree_size": c.tree_size,
            "root_hash": c.root_hash.hex(),
            "at_ms": c.at_ms,
            "signer_key_id": c.signer_key_id,
            "signature": c.signature.hex(),
            "note": base64.b64encode(c.note).decode(),
        },
        **carried,
    }


def receipt_from_json(document: object) -> Receipt:
    """Parse the JSON form; DecodeError (reason ``malformed_receipt``) for any other shape."""
    try:
        doc = _mapping(document)
        if doc["format"] != RECEIPT_FORMAT:
            raise ValueError("format")
        c = _mapping(doc["checkpoint"])
        checkpoint = Checkpoint(
            log_id=_str(c["log_id"]),
            tree_size=_int(c["tree_size"]),
            root_hash=_hash(c["root_hash"]),
            at_ms=_int(c["at_ms"]),
            signer_key_id=_str(c["signer_key_id"]),
            signature=bytes.fromhex(_str(c["signature"])),
            note=base64.b64decode(_str(c.get("note", "")), validate=True),
        )
        path = doc["audit_path"]
        if not isinstance(path, list):
            raise TypeError("audit_path")
        carried = doc.get("entry")
        registry = doc.get("registry")
        return Receipt(
            index=_int(doc["index"]),
            tree_size=_int(doc["tree_size"]),
            leaf_hash=_hash(doc["leaf_hash"]),
            audit_path=tuple(_hash(h) for h in path),
            checkpoint=checkpoint,
            entry=None if carried is None else base64.b64decode(_str(carried), validate=True),
            registry=None if registry is None else base64.b64decode(_str(registry), validate=True),
        )
    except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
        # Name the kind of problem only; the document is the caller's input.
        raise DecodeError(
            "malformed_receipt", f"not an {RECEIPT_FORMAT} document ({type(exc).__name__})"
        ) from exc


def _mapping(value: object) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise TypeError("expected an object")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _int(value: object) -> int:
    if type(value) is not int or value < 0:
        raise TypeError("expected a non-negative integer")
    return value


def _hash(value: object) -> bytes:
    raw = bytes.fromhex(_str(value))
    if len(raw) != HASH_SIZE:
        raise ValueError("expected a SHA-256 hash")
    return raw
