"""RFC 6962 Merkle tree hashing, inclusion and consistency proofs, and an append-only log.

Why RFC 6962 exactly: auditors verify ixb's log offline with their own
tools, and the Certificate Transparency hashing is what those tools (Go's
transparency-dev/merkle, sigsum, Trillian clients) already implement. A leaf
hashes as SHA-256(0x00 || data) and an interior node as
SHA-256(0x01 || left || right); the prefixes keep a leaf from ever passing
for a node. A tree of n leaves splits at the largest power of two below n.

Three layers, cheapest to trust first:

- ``verify_inclusion`` and ``verify_consistency`` check proofs that come
  from the network. They follow RFC 9162 sections 2.1.3.2 and 2.1.4.2 step
  by step, and answer ``False`` for any malformed or wrong proof; they raise
  ``ValueError`` only for a negative index or size, which is a caller's bug,
  not a forger's trick.
- ``root``, ``inclusion_proof`` and ``consistency_proof`` are the RFC's MTH,
  PATH and PROOF over a plain sequence of leaf hashes, O(n) hashes each.
  They are the plain statement of the RFC, and what ``MerkleLog`` is tested
  against.
- ``MerkleLog`` keeps the hash of every complete (perfect) subtree, so
  appends, roots and proofs for any earlier size cost O(log n).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleLog",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every leaf hash, node hash, root and proof element (SHA-256)."""

_RangeHash = Callable[[int, int], bytes]
"""Hashes the subtree over leaves [lo, hi): how a proof builder reads its tree."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the tree with no leaves (RFC 6962 section 2.1: MTH({}) = SHA-256())."""


def leaf_hash(data: bytes) -> bytes:
    """Hash one log entry as a leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two subtree hashes into their parent: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _check_leaf_hashes(leaf_hashes: Sequence[bytes]) -> None:
    """Refuse entries that are not hashes: passing raw entries instead is an easy slip."""
    if not all(_is_hash(h) for h in leaf_hashes):
        raise ValueError(f"every leaf hash must be {HASH_SIZE} bytes")


def _check_non_negative(**values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative (got {value})")


# --- The RFC's definitions over a sequence of leaf hashes: O(n) each. -------------------------


def _mth(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for hi > lo, by the RFC's recursion (depth is log2 of the size)."""
    if hi - lo == 1:
        return leaf_hashes[lo]
    mid = lo + _split(hi - lo)
    return node_hash(_mth(leaf_hashes, lo, mid), _mth(leaf_hashes, mid, hi))


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (RFC 6962 MTH) of ``leaf_hashes``; O(n) hashes."""
    _check_leaf_hashes(leaf_hashes)
    if not leaf_hashes:
        return EMPTY_ROOT
    return _mth(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path (RFC 6962 PATH) of leaf ``index``, nearest sibling first; O(n) hashes.

    Raises ``ValueError`` if ``index`` is not a leaf of the tree: whoever
    produces a proof holds the leaves, so asking for a missing one is a bug.
    """
    _check_non_negative(index=index)
    _check_leaf_hashes(leaf_hashes)
    if index >= len(leaf_hashes):
        raise ValueError(f"index {index} is not below the tree size {len(leaf_hashes)}")
    path: list[bytes] = []
    lo, hi = 0, len(leaf_hashes)
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            path.append(_mth(leaf_hashes, mid, hi))
            hi = mid
        else:
            path.append(_mth(leaf_hashes, lo, mid))
            lo = mid
    path.reverse()
    return path


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The proof (RFC 9162 PROOF) that the first ``old_size`` leaves are a prefix; O(n) hashes.

    Empty when ``old_size`` is 0 or the whole tree, as the verifier expects.
    """
    _check_non_negative(old_size=old_size)
    _check_leaf_hashes(leaf_hashes)
    if old_size > len(leaf_hashes):
        raise ValueError(f"old size {old_size} exceeds the tree size {len(leaf_hashes)}")
    return _subproof(old_size, len(leaf_hashes), lambda lo, hi: _mth(leaf_hashes, lo, hi))


def _subproof(old_size: int, new_size: int, mth: _RangeHash) -> list[bytes]:
    """RFC 9162 SUBPROOF(m, D[n], true), unrolled; ``mth(lo, hi)`` hashes a subtree.

    The recursion only ever descends into one child, so it is a loop over
    the current subtree [lo, hi); ``complete`` is the RFC's flag b, true
    while the subtree is the old tree's left edge (its hash is then the old
    root, which the verifier already has).
    """
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []
    lo, hi, complete = 0, new_size, True
    while hi != old_size:
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            path.append(mth(mid, hi))
            hi = mid
        else:
            path.append(mth(lo, mid))
            lo, complete = mid, False
    if not complete:
        path.append(mth(lo, hi))
    path.reverse()
    return path


# --- Verification of proofs received from elsewhere: never raises on a bad proof. -------------


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows ``leaf_hash`` at ``index`` in the tree of ``tree_size`` and ``root``.

    RFC 9162 section 2.1.3.2; see :func:`root_from_inclusion`.
    """
    computed = root_from_inclusion(leaf_hash, index, tree_size, proof)
    return computed is not None and _is_hash(root) and hmac.compare_digest(computed, root)


def root_from_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]
) -> bytes | None:
    """The root ``proof`` leads to from ``leaf_hash`` at ``index``, or None if it cannot fit.

    RFC 9162 section 2.1.3.2 up to the final comparison, for callers that
    learn the root from the proof and then check a signature over it.
    ``fn`` and ``sn`` are the positions of the leaf and of the last leaf at
    the current level; where ``fn`` is the last node of its level and has no
    right sibling, the walk climbs without consuming a proof element. A proof
    of the wrong length fails (too long runs out of levels, too short leaves
    ``sn`` above 0).
    """
    _check_non_negative(index=index, tree_size=tree_size)
    if index >= tree_size or not _is_hash(leaf_hash):
        return None
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0 or not _is_hash(p):
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree (old_size, old_root) is a prefix of (new_size, new_root).

    RFC 9162 section 2.1.4.2, plus the two cases it leaves to the caller:
    equal sizes are consistent when the roots are equal and the proof is
    empty; the empty tree is a prefix of every tree, provided the claimed
    old root really is the empty root and the proof is empty.

    The walk rebuilds both roots at once: ``fr`` from the hashes left of
    the old tree's last leaf, ``sr`` from all of them.
    """
    _check_non_negative(old_size=old_size, new_size=new_size)
    if old_size > new_size or not _is_hash(old_root) or not _is_hash(new_root):
        return False
    if old_size == new_size:
        return not proof and hmac.compare_digest(old_root, new_root)
    if old_size == 0:
        return not proof and hmac.compare_digest(old_root, EMPTY_ROOT)
    return _walk_consistency(old_size, new_size, old_root, new_root, proof)


def _walk_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2 steps 1-7, for 0 < old_size < new_size."""
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # The old tree is a perfect subtree: its root seeds.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    if not _is_hash(path[0]):
        return False
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0 or not _is_hash(c):
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)


# --- The log the broker keeps. ----------------------------------------------------------------


class MerkleLog:
    """An append-only, in-memory Merkle log that answers for its current and every past size.

    It stores every perfect subtree hash: ``_levels[h][i]`` is the hash of
    leaves [i * 2**h, (i + 1) * 2**h). That is at most 2n hashes, about
    150 bytes a leaf with Python's object overhead (15 MB for 100,000).
    Any subtree the RFC's recursion visits, for any size up to the current
    one, is then one lookup if perfect, or a right-edge chain of at most
    log2(n) lookups and hashes if not; nothing is ever rehashed from the
    leaves. The last node of each level is the compact range (the stack of
    perfect subtree roots) of the current size.

    Costs, for n the current size: ``append`` amortised O(1) hashes (worst
    O(log n)); ``root`` and ``root_at`` O(log n); ``inclusion_proof`` and
    ``consistency_proof`` O(log n) lookups and O(log n) hashes, so proofs
    for all n entries cost O(n log n). Not thread-safe: one writer.
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return len(self._levels[0])

    def append(self, leaf_hash: bytes) -> int:
        """Add a leaf hash (see ``leaf_hash``) and return its index.

        Each append completes one perfect subtree per trailing one bit of
        the old size, and stores its hash: amortised one hash an append.
        """
        if not _is_hash(leaf_hash):
            raise ValueError(f"a leaf hash must be {HASH_SIZE} bytes")
        index = self.size
        self._levels[0].append(leaf_hash)
        level = 0
        while len(self._levels[level]) % 2 == 0:
            below = self._levels[level]
            if level + 1 == len(self._levels):
                self._levels.append([])
            self._levels[level + 1].append(node_hash(below[-2], below[-1]))
            level += 1
        return index

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``: what a receipt for that entry states."""
        _check_non_negative(index=index)
        if index >= self.size:
            raise ValueError(f"index {index} is not below the log size {self.size}")
        return self._levels[0][index]

    def root(self) -> bytes:
        """The root of the log as it is now; O(log n)."""
        return self.root_at(self.size)

    def root_at(self, size: int) -> bytes:
        """The root the log had when it held ``size`` leaves; O(log n)."""
        self._check_size(size)
        return self._range_hash(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of the first ``size`` leaves; O(log n).

        Equal to ``inclusion_proof(index, leaves[:size])``. Once the walk
        turns into a left child every sibling below is a perfect subtree,
        so at most one sibling needs hashing.
        """
        self._check_size(size)
        _check_non_negative(index=index)
        if index >= size:
            raise ValueError(f"index {index} is not below the tree size {size}")
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            mid = lo + _split(hi - lo)
            if index < mid:
                path.append(self._range_hash(mid, hi))
                hi = mid
            else:
                path.append(self._perfect(lo, mid - lo))
                lo = mid
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The proof that the tree of ``old_size`` leaves is a prefix of that of ``new_size``.

        Equal to ``consistency_proof(old_size, leaves[:new_size])``; O(log n).
        """
        self._check_size(new_size)
        _check_non_negative(old_size=old_size)
        if old_size > new_size:
            raise ValueError(f"old size {old_size} exceeds the new size {new_size}")
        return _subproof(old_size, new_size, self._range_hash)

    def _check_size(self, size: int) -> None:
        _check_non_negative(size=size)
        if size > self.size:
            raise ValueError(f"size {size} exceeds the log size {self.size}")

    def _perfect(self, lo: int, width: int) -> bytes:
        """The stored hash of the perfect subtree of ``width`` (a power of two) leaves at ``lo``."""
        level = width.bit_length() - 1
        assert width == 1 << level, "a perfect subtree is a power of two wide"
        assert lo % width == 0, "a perfect subtree starts at a multiple of its width"
        return self._levels[level][lo >> level]

    def _range_hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) from stored subtrees: the left children down the right edge, folded.

        Valid for every range the RFC's recursion visits: there ``lo`` is a
        multiple of the smallest power of two not below ``hi - lo``, so each
        left child is a stored perfect subtree.
        """
        lefts: list[bytes] = []
        while (hi - lo) & (hi - lo - 1):  # Not a power of two: split off the perfect left part.
            mid = lo + _split(hi - lo)
            lefts.append(self._perfect(lo, mid - lo))
            lo = mid
        result = self._perfect(lo, hi - lo)
        for left in reversed(lefts):
            result = node_hash(left, result)
        return result
