"""Batch attestation: one broker signature per produced batch, a self-contained proof per statement.

Signing every delivery costs a signature each and caps throughput (docs/ARCHITECTURE.md,
decision 6). The broker instead builds an RFC 6962 Merkle tree over the
exact statement bytes of one produced batch and signs its root once::

    "ixb-batch-v1" 0x00 key_id 0x00 tree_size (8 bytes, big-endian) root

Each statement travels in an :data:`ATTESTED_SCHEMA` envelope with its leaf
index, the tree size, its audit path and the root signature, so a recipient
verifies one delivery on its own: recompute the root from the leaf and the
path, then check the signature over it. The leaf is the payload exactly as
received, hashed before it is decoded. A verifier that sees many statements
of one batch verifies the root signature once (:class:`AttestationVerifier`).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from broker import native
from broker.errors import VerificationError
from broker.trust.key_checks import check_key
from broker.trust.merkle import MerkleLog, leaf_hash, root_from_inclusion
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.signatures import SigningKey, verify_signature
from broker.wire.codec import SchemaCatalog

ATTESTED_SCHEMA = "ixb.v1.AttestedEnvelope"
_CONTEXT = b"ixb-batch-v1\x00"
_SIZE = struct.Struct(">Q")
MAX_AUDIT_PATH = 64  # a tree of 2**64 leaves; a longer path is a forgery


def batch_signing_input(key_id: str, tree_size: int, root: bytes) -> bytes:
    return _CONTEXT + key_id.encode() + b"\x00" + _SIZE.pack(tree_size) + root


@dataclass(frozen=True, slots=True)
class Attested:
    signer_key_id: str
    algorithm: str
    payload: bytes
    tree_size: int
    leaf_index: int
    audit_path: tuple[bytes, ...]
    signature: bytes


class BatchAttester:
    """Attests the statements of one batch with a single signature."""

    __slots__ = ("_catalog", "_private", "key_id")

    def __init__(self, private: SigningKey, catalog: SchemaCatalog) -> None:
        # The key names itself and its algorithm: nothing to pass that could disagree.
        self.key_id = private.key_id
        self._private = private
        self._catalog = catalog

    def attest(self, payloads: Sequence[bytes]) -> list[bytes]:
        """The encoded attested envelope of every payload, in order."""
        if not payloads:
            return []
        root, paths = batch_tree(payloads)
        size = len(paths)
        signature = self._private.sign(batch_signing_input(self.key_id, size, root))
        return [
            self._catalog.encode(
                ATTESTED_SCHEMA,
                {
                    "signer_key_id": self.key_id,
                    "algorithm": self._private.algorithm,
                    "payload": payload,
                    "tree_size": size,
                    "leaf_index": index,
                    "audit_path": paths[index],
                    "signature": signature,
                },
            )
            for index, payload in enumerate(payloads)
        ]


def batch_tree(payloads: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The Merkle root over ``payloads`` (at least one) and each one's audit path.

    The native core computes all of a batch's paths in one pass; the
    reference is :class:`~broker.trust.merkle.MerkleLog`, a path at a time.
    """
    if native.ACTIVE:
        tree: tuple[bytes, list[list[bytes]]] = native.core().batch_tree(payloads)
        return tree
    log = MerkleLog()
    for payload in payloads:
        log.append(leaf_hash(payload))
    return log.root(), [log.inclusion_proof(index, log.size) for index in range(log.size)]


def open_attested(catalog: SchemaCatalog, data: bytes) -> Attested:
    """Parse the envelope only; only its one canonical encoding is accepted."""
    record = catalog.decode_canonical(data, ATTESTED_SCHEMA, stage="envelope")
    return Attested(
        signer_key_id=record["signer_key_id"],
        algorithm=record["algorithm"],
        payload=record["payload"],
        tree_size=record["tree_size"],
        leaf_index=record["leaf_index"],
        audit_path=tuple(record["audit_path"]),
        signature=record["signature"],
    )


class AttestationVerifier:
    """Verifies attested statements, checking each batch root's signature once.

    Only roots whose signature verified are remembered, keyed by everything
    the signature covers and the signature itself; a forged root never
    enters the cache, and an entry is only a shortcut for an identical check.
    """

    __slots__ = ("_capacity", "_verified")

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._verified: OrderedDict[tuple[str, int, bytes, bytes], None] = OrderedDict()

    def verify(
        self, attested: Attested, registry: PartnerRegistry, *, role: KeyRole, at: dt.datetime
    ) -> KeyRecord:
        """Check the inclusion proof and the root signature; return the signing key."""
        key = check_key(
            registry, attested.signer_key_id, role=role, algorithm=attested.algorithm, at=at
        )
        if len(attested.audit_path) > MAX_AUDIT_PATH or not (
            0 <= attested.leaf_index < attested.tree_size
        ):
            raise VerificationError("bad_inclusion_proof", "the audit path does not fit the batch")
        root = root_from_inclusion(
            leaf_hash(attested.payload),
            attested.leaf_index,
            attested.tree_size,
            attested.audit_path,
        )
        if root is None:
            raise VerificationError("bad_inclusion_proof", "the audit path does not fit the batch")
        cache_key = (key.key_id, attested.tree_size, root, attested.signature)
        if cache_key in self._verified:
            self._verified.move_to_end(cache_key)
            return key
        verify_signature(
            key, attested.signature, batch_signing_input(key.key_id, attested.tree_size, root)
        )
        self._verified[cache_key] = None
        if len(self._verified) > self._capacity:
            self._verified.popitem(last=False)
        return key
