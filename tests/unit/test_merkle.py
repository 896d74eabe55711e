"""RFC 6962 Merkle trees: Certificate Transparency's known answers, and what auditors rely on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.trust.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleLog,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# Known answers: the RFC 6962 test vectors every Certificate Transparency implementation
# checks itself against, as published in transparency-dev/merkle, proof/verify_test.go
# (the same data as google/certificate-transparency's merkle_tree_test.cc and Chromium's
# net/cert/ct_log_verifier_unittest.cc). Their leaf numbers are 1-based; ours are indices.
CT_ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = {
    size: bytes.fromhex(h)
    for size, h in enumerate(
        (
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ),
        start=1,
    )
}
CT_INCLUSION_PROOFS = [  # (index, tree size, proof)
    (0, 1, []),
    (0, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
    (5, 8, ["bc1a0643", "ca854ea1", "d37ee418"]),
    (2, 3, ["fac54203"]),
    (1, 5, ["6e340b9c", "5f083f0a", "bc1a0643"]),
]
CT_CONSISTENCY_PROOFS = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
    (6, 8, ["0ebc5d34", "ca854ea1", "d37ee418"]),
    (2, 5, ["5f083f0a", "bc1a0643"]),
    (6, 7, ["0ebc5d34", "b08693ec", "d37ee418"]),
]
# The proofs above are written by the first 4 bytes of each hash; these are the full hashes.
CT_HASHES = {
    h[:8]: bytes.fromhex(h)
    for h in (
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    )
}
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

CT_LEAVES = [leaf_hash(entry) for entry in CT_ENTRIES]


def full(short: list[str]) -> list[bytes]:
    return [CT_HASHES[h] for h in short]


def grown(leaf_hashes: list[bytes]) -> MerkleLog:
    log = MerkleLog()
    for h in leaf_hashes:
        log.append(h)
    return log


def entries(count: int, salt: bytes = b"") -> list[bytes]:
    """Distinct leaf hashes; ``salt`` gives a different log for the same count."""
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(count)]


def flip(proof: list[bytes], position: int, bit: int) -> list[bytes]:
    element = bytearray(proof[position])
    element[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:position], bytes(element), *proof[position + 1 :]]


# --- Known answers ---------------------------------------------------------------------------


def test_the_empty_tree_root_is_the_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT
    assert MerkleLog().root() == EMPTY_ROOT


def test_leaves_and_nodes_hash_with_their_own_prefixes() -> None:
    assert leaf_hash(b"ab") == hashlib.sha256(b"\x00ab").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert node_hash(CT_LEAVES[0], CT_LEAVES[1]) != leaf_hash(CT_LEAVES[0] + CT_LEAVES[1])


@pytest.mark.parametrize("size", sorted(CT_ROOTS))
def test_roots_of_the_ct_leaves_are_the_known_roots(size: int) -> None:
    log = grown(CT_LEAVES)
    assert root(CT_LEAVES[:size]) == CT_ROOTS[size]
    assert log.root_at(size) == CT_ROOTS[size]
    assert grown(CT_LEAVES[:size]).root() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION_PROOFS)
def test_inclusion_proofs_are_the_known_proofs_and_verify(
    index: int, size: int, proof: list[str]
) -> None:
    expected = full(proof)
    assert inclusion_proof(index, CT_LEAVES[:size]) == expected
    assert grown(CT_LEAVES).inclusion_proof(index, size) == expected
    assert verify_inclusion(CT_LEAVES[index], index, size, expected, CT_ROOTS[size])


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION_PROOFS)
def test_known_inclusion_proofs_fail_every_corruption_ct_tries(
    index: int, size: int, proof: list[str]
) -> None:
    good, leaf, good_root = full(proof), CT_LEAVES[index], CT_ROOTS[size]
    probes: list[tuple[int, int, bytes, list[bytes], bytes]] = [
        (index + 1, size, leaf, good, good_root),
        (index ^ 2, size, leaf, good, good_root),
        (index, size * 2, leaf, good, good_root),
        (index, size // 2, leaf, good, good_root),
        (index, size, leaf_hash(b"WrongLeaf"), good, good_root),
        (index, size, leaf, good, EMPTY_ROOT),
        (index, size, leaf, good, SOME_HASH),
        (index, size, leaf, [*good, b""], good_root),
        (index, size, leaf, [*good, good_root], good_root),
        (index, size, leaf, [b"", *good], good_root),
        (index, size, leaf, [good_root, *good], good_root),
    ]
    if index > 0:
        probes.append((index - 1, size, leaf, good, good_root))
    probes += [(index, size, leaf, flip(good, i, 3), good_root) for i in range(len(good))]
    if good:
        probes.append((index, size, leaf, good[:-1], good_root))
    if len(good) > 1:
        probes.append((index, size, leaf, [good[0], SOME_HASH, *good[1:]], good_root))
    for probe in probes:
        assert not verify_inclusion(probe[2], probe[0], probe[1], probe[3], probe[4])


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY_PROOFS)
def test_consistency_proofs_are_the_known_proofs_and_verify(
    old: int, new: int, proof: list[str]
) -> None:
    expected = full(proof)
    assert consistency_proof(old, CT_LEAVES[:new]) == expected
    assert grown(CT_LEAVES).consistency_proof(old, new) == expected
    assert verify_consistency(old, new, CT_ROOTS[old], CT_ROOTS[new], expected)


@pytest.mark.parametrize(("old", "new", "proof"), [p for p in CT_CONSISTENCY_PROOFS if p[2]])
def test_known_consistency_proofs_fail_every_corruption_ct_tries(
    old: int, new: int, proof: list[str]
) -> None:
    good, r1, r2 = full(proof), CT_ROOTS[old], CT_ROOTS[new]
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (old - 1, new, r1, r2, good),
        (old + 1, new, r1, r2, good),
        (old ^ 2, new, r1, r2, good),
        (old, new * 2, r1, r2, good),
        (old, new // 2, r1, r2, good),
        (old, new, SOME_HASH, r2, good),
        (old, new, r1, SOME_HASH, good),
        (old, new, r2, r1, good),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*good, b""]),
        (old, new, r1, r2, [*good, r1]),
        (old, new, r1, r2, [*good, r2]),
        (old, new, r1, r2, [b"", *good]),
        (old, new, r1, r2, [r1, *good]),
        (old, new, r1, r2, [r2, *good]),
        (old, new, r1, r2, [good[0], *good]),
        (old, new, r1, r2, good[:-1]),
    ]
    probes += [(old, new, r1, r2, flip(good, i, 4)) for i in range(len(good))]
    for probe in probes:
        assert not verify_consistency(*probe)


# --- Edges and errors ------------------------------------------------------------------------


def test_a_single_leaf_tree_proves_its_leaf_with_an_empty_proof() -> None:
    h = leaf_hash(b"data")
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [], leaf_hash(b"other"))
    assert not verify_inclusion(b"", 0, 1, [], b"")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (1, 0), (2, 1)])
def test_an_index_outside_the_tree_is_never_included(index: int, size: int) -> None:
    assert not verify_inclusion(SOME_HASH, index, size, [], SOME_HASH)
    assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


def test_hashes_of_the_wrong_length_are_refused_not_raised() -> None:
    proof = full(CT_INCLUSION_PROOFS[2][2])
    short = [*proof[:-1], proof[-1][:-1]]
    assert not verify_inclusion(CT_LEAVES[5], 5, 8, short, CT_ROOTS[8])
    assert not verify_inclusion(CT_LEAVES[5][:-1], 5, 8, proof, CT_ROOTS[8])
    assert not verify_inclusion(CT_LEAVES[5], 5, 8, proof, CT_ROOTS[8] + b"\x00")
    cproof = full(CT_CONSISTENCY_PROOFS[2][2])
    assert not verify_consistency(6, 8, CT_ROOTS[6], CT_ROOTS[8], [*cproof[:-1], b"x"])
    assert not verify_consistency(6, 8, CT_ROOTS[6][:16], CT_ROOTS[8], cproof)
    assert not verify_consistency(4, 8, CT_ROOTS[4][:16], CT_ROOTS[8], [CT_HASHES["bc1a0643"]])


def test_equal_sizes_are_consistent_only_with_equal_roots_and_no_proof() -> None:
    assert verify_consistency(3, 3, CT_ROOTS[3], CT_ROOTS[3], [])
    assert not verify_consistency(3, 3, CT_ROOTS[3], CT_ROOTS[4], [])
    assert not verify_consistency(3, 3, CT_ROOTS[3], CT_ROOTS[3], [CT_ROOTS[3]])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


def test_the_empty_tree_is_a_prefix_of_every_tree_only_under_its_own_root() -> None:
    assert verify_consistency(0, 8, EMPTY_ROOT, CT_ROOTS[8], [])
    assert not verify_consistency(0, 8, SOME_HASH, CT_ROOTS[8], [])
    assert not verify_consistency(0, 8, EMPTY_ROOT, CT_ROOTS[8], [CT_ROOTS[8]])
    assert consistency_proof(0, CT_LEAVES) == []


def test_a_log_never_shrinks() -> None:
    assert not verify_consistency(2, 1, CT_ROOTS[2], CT_ROOTS[1], [])
    assert not verify_consistency(8, 6, CT_ROOTS[8], CT_ROOTS[6], full(["0ebc5d34"]))


@pytest.mark.parametrize(
    "call",
    [
        lambda: verify_inclusion(SOME_HASH, -1, 1, [], SOME_HASH),
        lambda: verify_inclusion(SOME_HASH, 0, -1, [], SOME_HASH),
        lambda: verify_consistency(-1, 1, SOME_HASH, SOME_HASH, []),
        lambda: verify_consistency(0, -1, SOME_HASH, SOME_HASH, []),
        lambda: inclusion_proof(-1, CT_LEAVES),
        lambda: consistency_proof(-1, CT_LEAVES),
        lambda: grown(CT_LEAVES).root_at(-1),
        lambda: grown(CT_LEAVES).inclusion_proof(-1, 8),
        lambda: grown(CT_LEAVES).consistency_proof(-1, 8),
    ],
)
def test_negative_indices_and_sizes_are_programming_errors(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: inclusion_proof(3, CT_LEAVES[:3]),
        lambda: consistency_proof(4, CT_LEAVES[:3]),
        lambda: root([b"a raw entry, not its hash"]),
        lambda: grown(CT_LEAVES).root_at(9),
        lambda: grown(CT_LEAVES).inclusion_proof(3, 3),
        lambda: grown(CT_LEAVES).inclusion_proof(0, 9),
        lambda: grown(CT_LEAVES).consistency_proof(5, 4),
        lambda: grown(CT_LEAVES).consistency_proof(1, 9),
        lambda: MerkleLog().append(b"a raw entry, not its hash"),
    ],
)
def test_producers_refuse_what_they_cannot_prove(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=r"exceeds|not below|bytes"):
        call()


def test_append_returns_each_entry_index() -> None:
    log = MerkleLog()
    assert [log.append(h) for h in CT_LEAVES] == list(range(8))
    assert log.size == 8


# --- Properties ------------------------------------------------------------------------------

MAX_SIZE = 300
sizes = st.integers(min_value=1, max_value=MAX_SIZE)
salts = st.binary(max_size=8)


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    """A tree size and the index of one of its leaves."""
    size = draw(sizes)
    return draw(st.integers(0, size - 1)), size


@st.composite
def growth(draw: st.DrawFn) -> tuple[int, int]:
    """Two tree sizes 0 < old < new, so the consistency proof is not empty."""
    new = draw(st.integers(2, MAX_SIZE))
    return draw(st.integers(1, new - 1)), new


@settings(max_examples=100, deadline=None)
@given(size=sizes, salt=salts)
def test_every_inclusion_proof_from_the_log_verifies(size: int, salt: bytes) -> None:
    leaves = entries(size, salt)
    log = grown(leaves)
    tree_root = log.root()
    for index, leaf in enumerate(leaves):
        assert verify_inclusion(leaf, index, size, log.inclusion_proof(index, size), tree_root)


@settings(max_examples=100, deadline=None)
@given(size=sizes, salt=salts)
def test_every_consistency_proof_from_the_log_verifies(size: int, salt: bytes) -> None:
    log = grown(entries(size, salt))
    new_root = log.root()
    for old in range(size + 1):
        proof = log.consistency_proof(old, size)
        assert verify_consistency(old, size, log.root_at(old), new_root, proof)


def test_consistency_proofs_verify_for_every_pair_of_small_sizes() -> None:
    log = grown(entries(64))
    roots = [log.root_at(n) for n in range(65)]
    for new in range(65):
        for old in range(new + 1):
            proof = log.consistency_proof(old, new)
            assert verify_consistency(old, new, roots[old], roots[new], proof)


@settings(max_examples=60, deadline=None)
@given(leaf=leaf_in_tree(), old_fraction=st.floats(0, 1), salt=salts)
def test_log_proofs_are_the_rfc_proofs(
    leaf: tuple[int, int], old_fraction: float, salt: bytes
) -> None:
    index, size = leaf
    leaves = entries(MAX_SIZE, salt)
    log = grown(leaves)
    old = int(old_fraction * size)
    assert log.inclusion_proof(index, size) == inclusion_proof(index, leaves[:size])
    assert log.consistency_proof(old, size) == consistency_proof(old, leaves[:size])


@settings(max_examples=50, deadline=None)
@given(size=st.integers(0, 200), salt=salts)
def test_the_log_root_is_the_rfc_root_at_every_size(size: int, salt: bytes) -> None:
    leaves = entries(size, salt)
    log = MerkleLog()
    expected = [root(leaves[:n]) for n in range(size + 1)]
    assert log.root() == expected[0]
    for n, leaf in enumerate(leaves, start=1):
        log.append(leaf)
        assert log.root() == expected[n]
    assert [log.root_at(n) for n in range(size + 1)] == expected


@settings(max_examples=100, deadline=None)
@given(leaf=leaf_in_tree(), position=st.integers(0), bit=st.integers(0, 8 * HASH_SIZE - 1))
def test_any_flipped_bit_in_an_inclusion_proof_fails(
    leaf: tuple[int, int], position: int, bit: int
) -> None:
    index, size = leaf
    leaves = entries(size)
    log = grown(leaves)
    proof = log.inclusion_proof(index, size)
    if not proof:  # A one-leaf tree: its proof is empty, there is no bit to flip.
        return
    tampered = flip(proof, position % len(proof), bit)
    assert not verify_inclusion(leaves[index], index, size, tampered, log.root())


@settings(max_examples=100, deadline=None)
@given(sizes_=growth(), position=st.integers(0), bit=st.integers(0, 8 * HASH_SIZE - 1))
def test_any_flipped_bit_in_a_consistency_proof_fails(
    sizes_: tuple[int, int], position: int, bit: int
) -> None:
    old, new = sizes_
    log = grown(entries(new))
    proof = log.consistency_proof(old, new)
    tampered = flip(proof, position % len(proof), bit)
    assert not verify_consistency(old, new, log.root_at(old), log.root(), tampered)


@settings(max_examples=100, deadline=None)
@given(leaf=leaf_in_tree(), other=st.integers(0, MAX_SIZE + 2))
def test_an_inclusion_proof_fails_for_any_other_index(leaf: tuple[int, int], other: int) -> None:
    index, size = leaf
    leaves = entries(size)
    log = grown(leaves)
    proof = log.inclusion_proof(index, size)
    if other == index:
        other += 1
    assert not verify_inclusion(leaves[index], other, size, proof, log.root())


@settings(max_examples=100, deadline=None)
@given(leaf=leaf_in_tree(), other=sizes)
def test_an_inclusion_proof_fails_for_another_checkpoint(leaf: tuple[int, int], other: int) -> None:
    """Another (size, root) pair: a checkpoint signs both together.

    The size alone is no secret the root keeps: a proof for leaf 0 of a
    4-leaf tree has the same shape as one in a 3-leaf tree, so it verifies
    as (0, 3) against the 4-leaf root. What must fail is a proof for one
    checkpoint presented against another, real one.
    """
    index, size = leaf
    leaves = entries(MAX_SIZE)
    log = grown(leaves)
    proof = log.inclusion_proof(index, size)
    if other == size:
        other = size % MAX_SIZE + 1
    assert not verify_inclusion(leaves[index], index, other, proof, log.root_at(other))
    assert not verify_inclusion(leaves[index], index, size, proof, log.root_at(other))


@settings(max_examples=100, deadline=None)
@given(leaf=leaf_in_tree(), wrong=st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE))
def test_an_inclusion_proof_fails_for_another_leaf_or_root(
    leaf: tuple[int, int], wrong: bytes
) -> None:
    index, size = leaf
    leaves = entries(size)
    log = grown(leaves)
    proof, tree_root = log.inclusion_proof(index, size), log.root()
    assert not verify_inclusion(wrong, index, size, proof, tree_root)
    assert not verify_inclusion(leaves[index], index, size, proof, wrong)


@settings(max_examples=100, deadline=None)
@given(leaf=leaf_in_tree(), extra=st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE))
def test_a_truncated_or_extended_inclusion_proof_fails(leaf: tuple[int, int], extra: bytes) -> None:
    index, size = leaf
    leaves = entries(size)
    log = grown(leaves)
    proof, tree_root = log.inclusion_proof(index, size), log.root()
    for bad in ([*proof, extra], [extra, *proof], [*proof, *proof[-1:]], proof[:-1]):
        if bad != proof:
            assert not verify_inclusion(leaves[index], index, size, bad, tree_root)
    # An extra element is refused by the walk itself, not only because the root differs:
    # even against the root it would build, the tree of this size is out of levels.
    grafted = node_hash(extra, tree_root)
    assert not verify_inclusion(leaves[index], index, size, [*proof, extra], grafted)


@settings(max_examples=100, deadline=None)
@given(sizes_=growth(), old_other=st.integers(0, MAX_SIZE), new_other=sizes)
def test_a_consistency_proof_fails_between_other_checkpoints(
    sizes_: tuple[int, int], old_other: int, new_other: int
) -> None:
    old, new = sizes_
    log = grown(entries(MAX_SIZE))
    proof = log.consistency_proof(old, new)
    r1, r2 = log.root_at(old), log.root_at(new)
    if old_other != old:
        assert not verify_consistency(old_other, new, log.root_at(old_other), r2, proof)
    if new_other != new:
        assert not verify_consistency(old, new_other, r1, log.root_at(new_other), proof)
    assert not verify_consistency(old, new, r2, r1, proof)


@settings(max_examples=100, deadline=None)
@given(sizes_=growth(), wrong=st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE))
def test_a_consistency_proof_fails_for_other_roots(sizes_: tuple[int, int], wrong: bytes) -> None:
    old, new = sizes_
    log = grown(entries(new))
    proof = log.consistency_proof(old, new)
    assert not verify_consistency(old, new, wrong, log.root(), proof)
    assert not verify_consistency(old, new, log.root_at(old), wrong, proof)


@settings(max_examples=100, deadline=None)
@given(sizes_=growth(), extra=st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE))
def test_a_truncated_or_extended_consistency_proof_fails(
    sizes_: tuple[int, int], extra: bytes
) -> None:
    old, new = sizes_
    log = grown(entries(new))
    proof, r1, r2 = log.consistency_proof(old, new), log.root_at(old), log.root()
    for bad in ([*proof, extra], [extra, *proof], [proof[0], *proof], proof[:-1], proof[1:]):
        assert not verify_consistency(old, new, r1, r2, bad)
    grafted1, grafted2 = node_hash(extra, r1), node_hash(extra, r2)
    assert not verify_consistency(old, new, grafted1, grafted2, [*proof, extra])


@settings(max_examples=100, deadline=None)
@given(
    prefix=st.integers(0, MAX_SIZE - 1),
    sizes_=st.tuples(st.integers(1, MAX_SIZE), st.integers(1, MAX_SIZE)),
    salt=salts,
)
def test_a_forked_log_is_consistent_with_the_original_only_where_they_agree(
    prefix: int, sizes_: tuple[int, int], salt: bytes
) -> None:
    """Two logs share ``prefix`` entries, then differ from entry ``prefix`` on.

    An old checkpoint of the fork is consistent with a new one of the
    original only if the fork had not happened yet at the old size, and
    only through the original's proof; the fork's own proof leads to the
    fork's root, so it convinces only while both new trees are the same.
    """
    old, new = sorted(sizes_)
    common = entries(prefix)
    # A 9-byte salt: no 0-8 byte salt drawn for the fork can produce the same entries.
    original = grown(common + entries(MAX_SIZE - prefix, salt=b"original!"))
    fork_leaves = common + entries(MAX_SIZE - prefix, salt=salt)
    fork = grown(fork_leaves)
    fork_old_root, original_new_root = fork.root_at(old), original.root_at(new)
    original_proof = original.consistency_proof(old, new)
    fork_proof = fork.consistency_proof(old, new)
    assert verify_consistency(old, new, fork_old_root, original_new_root, original_proof) == (
        old <= prefix
    )
    assert verify_consistency(old, new, fork_old_root, original_new_root, fork_proof) == (
        new <= prefix
    )
    if old > prefix:
        forked_proof = fork.inclusion_proof(prefix, old)
        assert verify_inclusion(fork_leaves[prefix], prefix, old, forked_proof, fork_old_root)
        assert not verify_inclusion(
            fork_leaves[prefix], prefix, old, forked_proof, original.root_at(old)
        )


def test_the_log_answers_with_the_leaf_hash_it_holds_at_an_index_and_refuses_others() -> None:
    log = MerkleLog()
    for entry in CT_ENTRIES:
        log.append(leaf_hash(entry))

    assert [log.leaf(i) for i in range(len(CT_ENTRIES))] == [leaf_hash(e) for e in CT_ENTRIES]
    with pytest.raises(ValueError, match="not below the log size"):
        log.leaf(len(CT_ENTRIES))
    with pytest.raises(ValueError, match="must not be negative"):
        log.leaf(-1)
