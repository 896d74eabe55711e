//! The verifier's loop over a submission's disclosures (`_take_signed` in
//! broker/trust/sd/verify.py), over a layout compiled once.
//!
//! For each disclosure, in the reference's order: the path's shape, the
//! value's and the salt's sizes, the digest (SHA-256 over the framed parts)
//! and its presence among the signed digests, the path's slot, a duplicate
//! path, then the value read and proven canonical in one pass. The first
//! failure raises the reference's `DisclosureError` with its reason and its
//! detail, which names paths and never values.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PySet, PyString, PyTuple};
use sha2::{Digest, Sha256};

use crate::errors::disclosure_error;
use crate::values::{compile, read, Failure, Logical, Reader};
use crate::wire::Refusal;

const MAX_VALUE_BYTES: usize = 65_536;
const SALT_BYTES: usize = 16;
const MAX_SALT_BYTES: usize = 64;
const MAX_PATH_CHARS: usize = 512;
const MAX_KNOWN_PATHS: usize = 65_536;
const DISCLOSURE_CONTEXT: &[u8] = b"ixb-disclosure-v1\x00";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Leaf,
    Record,
    List,
}

struct Slot {
    kind: Kind,
    reader: Option<Reader>,
    fallback: Py<PyAny>, // the reference's own decoding, where there is no reader
}

/// A report layout's disclosable paths, compiled for the native loop.
#[pyclass(frozen, module = "ixb_native")]
pub struct Plan {
    slots: Vec<Slot>,
    by_abstract: HashMap<String, usize>,
    known: std::sync::Mutex<HashMap<String, usize>>, // concrete paths seen before
    logical: Logical,
}

#[pymethods]
impl Plan {
    /// `slots`: (abstract path, kind, value type, fallback decode) for every
    /// disclosable path; kind is "leaf", "record" or "list".
    #[new]
    fn new(
        py: Python<'_>,
        slots: Vec<(String, String, Bound<'_, PyAny>, Py<PyAny>)>,
    ) -> PyResult<Self> {
        let mut compiled = Vec::with_capacity(slots.len());
        let mut by_abstract = HashMap::with_capacity(slots.len());
        for (path, kind, spec, fallback) in slots {
            let kind = match kind.as_str() {
                "leaf" => Kind::Leaf,
                "record" => Kind::Record,
                "list" => Kind::List,
                other => {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "unknown field kind {other}"
                    )))
                }
            };
            by_abstract.insert(path, compiled.len());
            compiled.push(Slot {
                kind,
                reader: compile(&spec)?,
                fallback,
            });
        }
        Ok(Self {
            slots: compiled,
            by_abstract,
            known: std::sync::Mutex::new(HashMap::new()),
            logical: Logical::new(py)?,
        })
    }

    /// Check each disclosure against `signed` and decode it into `values`;
    /// `digests` learns each one's digest by path. Returns the list items the
    /// disclosed lengths claim. The reference: `verify._take_signed`.
    fn take_signed<'py>(
        &self,
        py: Python<'py>,
        disclosures: &Bound<'py, PyAny>,
        signed: &Bound<'py, PyAny>,
        values: &Bound<'py, PyDict>,
        digests: &Bound<'py, PyDict>,
    ) -> PyResult<i128> {
        let signed_set = signed.cast::<PySet>().ok();
        let mut listed: i128 = 0;
        for item in disclosures.try_iter()? {
            let item = item?;
            let parts = item.cast::<PyTuple>()?;
            let salt_obj = parts.get_item(0)?;
            let path_obj = parts.get_item(1)?;
            let value_obj = parts.get_item(2)?;
            let salt = salt_obj.cast::<PyBytes>()?.as_bytes();
            let path_str = path_obj.cast::<PyString>()?;
            let value = value_obj.cast::<PyBytes>()?.as_bytes();
            let path = path_str.to_str().map_err(|_| malformed(py))?;
            if !path_shape(path) {
                return Err(malformed(py));
            }
            if value.len() > MAX_VALUE_BYTES {
                return Err(disclosure_error(
                    py,
                    "value_too_large",
                    &format!("{path}: value is too large"),
                ));
            }
            if !(SALT_BYTES..=MAX_SALT_BYTES).contains(&salt.len()) {
                return Err(disclosure_error(
                    py,
                    "bad_salt",
                    &format!("{path}: salt length out of range"),
                ));
            }
            let digest = PyBytes::new(py, &disclosure_digest(salt, path.as_bytes(), value));
            let is_signed = match signed_set {
                Some(set) => set.contains(&digest)?,
                None => signed.contains(&digest)?,
            };
            if !is_signed {
                return Err(disclosure_error(
                    py,
                    "disclosure_not_signed",
                    &format!("{path} is not signed"),
                ));
            }
            let slot = &self.slots[self.slot_of(py, path)?];
            if values.contains(&path_obj)? {
                return Err(disclosure_error(
                    py,
                    "duplicate_path",
                    &format!("{path} is disclosed twice"),
                ));
            }
            let decoded = self.decode(py, slot, &path_obj, path, &value_obj, value)?;
            values.set_item(&path_obj, &decoded)?;
            if slot.kind == Kind::List {
                let length: i128 = decoded.extract()?;
                if length < 0 {
                    return Err(disclosure_error(
                        py,
                        "implausible_count",
                        &format!("{path}: negative length"),
                    ));
                }
                listed += length;
            }
            digests.set_item(&path_obj, digest)?;
        }
        Ok(listed)
    }
}

impl Plan {
    fn slot_of(&self, py: Python<'_>, path: &str) -> PyResult<usize> {
        let mut known = self.known.lock().expect("the path cache is never poisoned");
        if let Some(&index) = known.get(path) {
            return Ok(index);
        }
        let Some(&index) = self.by_abstract.get(abstract_path(path).as_str()) else {
            return Err(disclosure_error(
                py,
                "unknown_path",
                &format!("{path}: no such disclosable field"),
            ));
        };
        if known.len() >= MAX_KNOWN_PATHS {
            known.clear();
        }
        known.insert(path.to_owned(), index);
        Ok(index)
    }

    fn decode<'py>(
        &self,
        py: Python<'py>,
        slot: &Slot,
        path_obj: &Bound<'py, PyAny>,
        path: &str,
        value_obj: &Bound<'py, PyAny>,
        value: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(reader) = &slot.reader else {
            return slot.fallback.bind(py).call1((path_obj, value_obj));
        };
        match read(py, reader, &self.logical, value) {
            Ok(decoded) => Ok(decoded),
            Err(Failure::Python(err)) => Err(err),
            Err(Failure::Refused(Refusal::Wire(reason, detail))) => {
                let reason = if reason == "non_canonical" {
                    "non_canonical_value"
                } else {
                    "undecodable_value"
                };
                Err(disclosure_error(py, reason, &format!("{path}: {detail}")))
            }
            Err(Failure::Refused(Refusal::Truncated)) => Err(disclosure_error(
                py,
                "undecodable_value",
                &format!("{path}: the value ends early"),
            )),
        }
    }
}

fn malformed(py: Python<'_>) -> PyErr {
    disclosure_error(
        py,
        "malformed_path",
        "a disclosure path is not a concrete field path",
    )
}

/// SHA-256 over the context and each part prefixed by its length (4 bytes, big-endian).
pub fn disclosure_digest(salt: &[u8], path: &[u8], value: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(DISCLOSURE_CONTEXT);
    for part in [salt, path, value] {
        hash.update((part.len() as u32).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// `check_path_shape`: steps `[a-z_][a-z0-9_]*`, each with an optional
/// canonical index `[0]`..`[999999]`, joined by dots; at most 512 characters.
pub fn path_shape(path: &str) -> bool {
    let bytes = path.as_bytes();
    if path.chars().count() > MAX_PATH_CHARS || bytes.is_empty() {
        return false;
    }
    let mut pos = 0;
    loop {
        // a name
        match bytes.get(pos) {
            Some(b'a'..=b'z' | b'_') => pos += 1,
            _ => return false,
        }
        while matches!(bytes.get(pos), Some(b'a'..=b'z' | b'0'..=b'9' | b'_')) {
            pos += 1;
        }
        // an optional index
        if bytes.get(pos) == Some(&b'[') {
            pos += 1;
            match bytes.get(pos) {
                Some(b'0') => pos += 1,
                Some(b'1'..=b'9') => {
                    pos += 1;
                    let mut more = 0;
                    while more < 5 && matches!(bytes.get(pos), Some(b'0'..=b'9')) {
                        pos += 1;
                        more += 1;
                    }
                }
                _ => return false,
            }
            if bytes.get(pos) != Some(&b']') {
                return false;
            }
            pos += 1;
        }
        match bytes.get(pos) {
            None => return true,
            Some(b'.') => pos += 1,
            _ => return false,
        }
    }
}

/// `subjects[2].full_name` → `subjects[].full_name`: what `re.sub(r"\[[0-9]+\]", "[]", path)` gives.
pub fn abstract_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut copied = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes[pos] == b'[' {
            let digits = bytes[pos + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 && bytes.get(pos + 1 + digits) == Some(&b']') {
                out.push_str(&path[copied..pos]);
                out.push_str("[]");
                pos += digits + 2;
                copied = pos;
                continue;
            }
        }
        pos += 1;
    }
    out.push_str(&path[copied..]);
    out
}

/// The disclosures whose paths no pattern covers, the same objects in order.
pub fn uncovered<'py>(
    disclosures: &Bound<'py, PyAny>,
    patterns: &[String],
) -> PyResult<Bound<'py, PyList>> {
    let py = disclosures.py();
    let kept = PyList::empty(py);
    let mut known: HashMap<String, bool> = HashMap::new();
    for item in disclosures.try_iter()? {
        let item = item?;
        let path_obj = item.cast::<PyTuple>()?.get_item(1)?;
        let abstract_ = abstract_path(path_obj.cast::<PyString>()?.to_str()?);
        let hidden = match known.get(&abstract_) {
            Some(&hidden) => hidden,
            None => {
                let hidden = covered(&abstract_, patterns);
                known.insert(abstract_, hidden);
                hidden
            }
        };
        if !hidden {
            kept.append(item)?;
        }
    }
    Ok(kept)
}

/// `covered`: the abstract path is a pattern or lies beneath one.
fn covered(abstract_: &str, patterns: &[String]) -> bool {
    if patterns.is_empty() {
        return false;
    }
    if patterns.iter().any(|p| p == abstract_) {
        return true;
    }
    abstract_
        .char_indices()
        .filter(|&(_, c)| c == '.' || c == '[')
        .any(|(i, _)| patterns.iter().any(|p| p == &abstract_[..i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_the_layout_have_the_shape() {
        for path in [
            "title",
            "subjects[0].full_name",
            "subjects[12].travel_documents[999999].number",
            "_a.b_1",
        ] {
            assert!(path_shape(path), "{path}");
        }
    }

    #[test]
    fn paths_the_reference_refuses_are_refused() {
        for path in [
            "",
            "Title",
            "a..b",
            "a[01]",
            "a[1234567]",
            "a[]",
            "1a",
            "a.",
            "a[0]b",
            "a b",
            "é",
        ] {
            assert!(!path_shape(path), "{path}");
        }
    }

    #[test]
    fn indices_become_brackets() {
        assert_eq!(
            abstract_path("subjects[2].travel_documents[10].number"),
            "subjects[].travel_documents[].number"
        );
        assert_eq!(abstract_path("a[x][1][][2"), "a[x][][][2");
    }
}
