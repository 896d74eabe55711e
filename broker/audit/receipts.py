"""Receipts: proof that one audit entry is in the log under a signed checkpoint.

A recipient (or an auditor) holding a receipt and the entry's bytes checks,
offline and from the checkpoint alone, that the broker signed a tree that
contains exactly those bytes at that index: the checkpoint's signature, the
entry's leaf hash, and the RFC 6962 audit path up to the signed root. No
other entry and no access to Kafka is needed.

The JSON form (``receipt_to_json``) is what ``ixb audit receipt`` prints;
binary values are lower-case hex, the time is integer milliseconds so that
the signed input is rebuilt exactly.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.audit.checkpoints import Checkpoint, VerifySignature, check_signature
from broker.audit.merkle import HASH_SIZE, MerkleLog, leaf_hash, verify_inclusion
from broker.errors import DecodeError, VerificationError

__all__ = [
    "RECEIPT_FORMAT",
    "Receipt",
    "receipt",
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


def receipt(log: MerkleLog, index: int, checkpoint: Checkpoint) -> Receipt:
    """The receipt for entry ``index`` under ``checkpoint``, from the log that was checkpointed.

    Raises ValueError if the entry is not under the checkpoint or the log
    does not have the checkpoint's root: handing out a receipt that cannot
    verify would be a bug.
    """
    size = checkpoint.tree_size
    if not 0 <= index < size:
        raise ValueError(f"entry {index} is not under the checkpoint of size {size}")
    if log.root_at(size) != checkpoint.root_hash:
        raise ValueError(f"this log's tree of size {size} is not the checkpoint's")
    return Receipt(
        index, size, log.leaf(index), tuple(log.inclusion_proof(index, size)), checkpoint
    )


def verify_receipt(receipt: Receipt, entry: bytes, verify: VerifySignature) -> None:
    """Return if ``entry`` is in the signed tree as the receipt says; else VerificationError.

    Checked in order: the checkpoint's signature, that the receipt is for
    this checkpoint's tree, that ``entry`` hashes to the receipt's leaf, and
    the audit path from that leaf to the signed root.
    """
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
        },
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
        )
        path = doc["audit_path"]
        if not isinstance(path, list):
            raise TypeError("audit_path")
        return Receipt(
            index=_int(doc["index"]),
            tree_size=_int(doc["tree_size"]),
            leaf_hash=_hash(doc["leaf_hash"]),
            audit_path=tuple(_hash(h) for h in path),
            checkpoint=checkpoint,
        )
    except (KeyError, TypeError, ValueError) as exc:
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
