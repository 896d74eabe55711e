//! RFC 6962 hashing of one attested batch: the root over the statements and
//! every statement's audit path, in one pass. The reference is
//! broker/trust/merkle.py (`MerkleLog`, and the RFC's plain `root` and
//! `inclusion_proof` it is tested against).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use sha2::{Digest, Sha256};

type Hash = [u8; 32];

fn leaf(data: &[u8]) -> Hash {
    let mut hash = Sha256::new();
    hash.update([0u8]);
    hash.update(data);
    hash.finalize().into()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    let mut hash = Sha256::new();
    hash.update([1u8]);
    hash.update(left);
    hash.update(right);
    hash.finalize().into()
}

/// MTH over `leaves`, each leaf's path growing from the bottom up as the RFC's PATH is.
fn build(leaves: &[Hash], paths: &mut [Vec<Hash>]) -> Hash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let split = 1usize << (usize::BITS - 1 - (leaves.len() - 1).leading_zeros()); // largest 2^k < n
    let (left_leaves, right_leaves) = leaves.split_at(split);
    let (left_paths, right_paths) = paths.split_at_mut(split);
    let left = build(left_leaves, left_paths);
    let right = build(right_leaves, right_paths);
    left_paths.iter_mut().for_each(|p| p.push(right));
    right_paths.iter_mut().for_each(|p| p.push(left));
    node(&left, &right)
}

/// (root, [audit path of each payload]) of the tree whose leaves are `payloads`.
#[pyfunction]
pub fn batch_tree<'py>(
    py: Python<'py>,
    payloads: Vec<Bound<'py, PyBytes>>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyList>)> {
    if payloads.is_empty() {
        return Err(PyValueError::new_err(
            "a batch tree needs at least one payload",
        ));
    }
    let leaves: Vec<Hash> = payloads.iter().map(|p| leaf(p.as_bytes())).collect();
    let mut paths: Vec<Vec<Hash>> = vec![Vec::new(); leaves.len()];
    let root = build(&leaves, &mut paths);
    let out = PyList::empty(py);
    for path in paths {
        let hashes: Vec<Bound<'py, PyBytes>> = path.iter().map(|h| PyBytes::new(py, h)).collect();
        out.append(PyList::new(py, hashes)?)?;
    }
    Ok((PyBytes::new(py, &root), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_of_one_is_its_leaf() {
        let leaves = [leaf(b"a")];
        let mut paths = vec![Vec::new()];
        assert_eq!(build(&leaves, &mut paths), leaves[0]);
        assert!(paths[0].is_empty());
    }

    #[test]
    fn three_leaves_split_two_and_one() {
        let leaves = [leaf(b"a"), leaf(b"b"), leaf(b"c")];
        let mut paths = vec![Vec::new(); 3];
        let root = build(&leaves, &mut paths);
        assert_eq!(root, node(&node(&leaves[0], &leaves[1]), &leaves[2]));
        assert_eq!(paths[2], vec![node(&leaves[0], &leaves[1])]);
        assert_eq!(paths[0], vec![leaves[1], leaves[2]]);
    }
}
