//! ixb's native core: the per-field hot path of selective disclosure.
//!
//! The Python modules in broker/trust/sd/ are the reference; each function
//! here answers as one of them does, refusals included, and
//! tests/unit/test_native_core.py holds the two to it on arbitrary bytes.
//! broker/trust/sd/_native.py decides which runs.

mod errors;
mod merkle;
mod plan;
mod values;
mod wire;
mod writer;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::errors::wire_error;
use crate::wire::{
    byte_at, read_length, read_long, wire as refuse, write_bytes, write_long, Refusal,
};

/// An array of `ixb.v1.Disclosure` at `pos`: ([(salt, path, value, item bytes)], next position).
/// The reference: `broker.trust.sd.wire.read_disclosures`.
#[pyfunction]
#[pyo3(signature = (data, pos, *, max_items, max_field_bytes))]
fn read_disclosures<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyBytes>,
    pos: usize,
    max_items: i64,
    max_field_bytes: i64,
) -> PyResult<(Bound<'py, PyList>, usize)> {
    let bytes = data.as_bytes();
    let spans =
        disclosure_spans(bytes, pos, max_items, max_field_bytes).map_err(|r| wire_error(py, r))?;
    let items = PyList::empty(py);
    for span in &spans.items {
        let [salt, path, value] = span.parts;
        // Checked as UTF-8 while the spans were found.
        let text = std::str::from_utf8(&bytes[path.0..path.1]).unwrap_or_default();
        let item = PyTuple::new(
            py,
            [
                PyBytes::new(py, &bytes[salt.0..salt.1]).into_any(),
                PyString::new(py, text).into_any(),
                PyBytes::new(py, &bytes[value.0..value.1]).into_any(),
                PyBytes::new(py, &bytes[span.start..span.end]).into_any(),
            ],
        )?;
        items.append(item)?;
    }
    Ok((items, spans.end))
}

struct Span {
    start: usize,
    end: usize,
    parts: [(usize, usize); 3],
}

struct Spans {
    items: Vec<Span>,
    end: usize,
}

/// Where each disclosure and its three parts lie; nothing is allocated ahead
/// of the bytes (a claimed count only bounds the loop).
fn disclosure_spans(
    data: &[u8],
    pos: usize,
    max_items: i64,
    max_field_bytes: i64,
) -> Result<Spans, Refusal> {
    let (count, mut pos) = read_long(data, pos)?;
    if count == 0 {
        return Ok(Spans {
            items: Vec::new(),
            end: pos,
        });
    }
    if count < 0 {
        return refuse("non_canonical", "an array is written in sized blocks");
    }
    if count > max_items {
        return refuse(
            "too_many_items",
            format!("{count} disclosures exceed {max_items}"),
        );
    }
    let mut items = Vec::with_capacity((count as usize).min(data.len() / 3 + 1));
    for _ in 0..count {
        let start = pos;
        let mut parts = [(0, 0); 3];
        for part in &mut parts {
            let first = byte_at(data, pos)?;
            let size;
            if first < 0x80 && first & 1 == 0 {
                size = usize::from(first >> 1);
                pos += 1;
            } else {
                (size, pos) = read_length(data, pos, max_field_bytes)?;
            }
            let end = pos.checked_add(size).ok_or(Refusal::Truncated)?;
            if end > data.len() {
                return Err(Refusal::Truncated);
            }
            *part = (pos, end);
            pos = end;
        }
        if std::str::from_utf8(&data[parts[1].0..parts[1].1]).is_err() {
            return refuse("invalid_utf8", "a disclosure path is not UTF-8");
        }
        items.push(Span {
            start,
            end: pos,
            parts,
        });
    }
    let (end, pos) = read_long(data, pos)?;
    if end != 0 {
        return refuse(
            "non_canonical",
            "an array is written in more than one block",
        );
    }
    Ok(Spans { items, end: pos })
}

/// SHA-256 over the context and each part prefixed by its length.
/// The reference: `broker.trust.sd.disclosure.disclosure_digest`.
#[pyfunction]
fn disclosure_digest<'py>(
    py: Python<'py>,
    salt: &[u8],
    path: &[u8],
    value: &[u8],
) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &plan::disclosure_digest(salt, path, value))
}

/// The disclosures no pattern covers (abstract paths, `[]` for any index).
/// The reference: the filter in `broker.trust.sd.select.select`.
#[pyfunction]
fn uncovered<'py>(
    disclosures: &Bound<'py, PyAny>,
    patterns: Vec<String>,
) -> PyResult<Bound<'py, PyList>> {
    plan::uncovered(disclosures, &patterns)
}

/// The `disclosures` array of a statement, spliced from each item's bytes
/// (or written, for a disclosure made here). The reference:
/// `broker.trust.sd.statement.disclosures_array`.
#[pyfunction]
fn disclosures_array<'py>(
    py: Python<'py>,
    disclosures: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut body = Vec::new();
    let mut count: i64 = 0;
    for item in disclosures.try_iter()? {
        let item = item?;
        let parts = item.cast::<PyTuple>()?;
        let wire = if parts.len() > 3 {
            Some(parts.get_item(3)?)
        } else {
            None
        };
        match wire.as_ref().map(|w| w.cast::<PyBytes>()).transpose()? {
            Some(received) if !received.as_bytes().is_empty() => {
                body.extend_from_slice(received.as_bytes())
            }
            _ => {
                write_bytes(parts.get_item(0)?.cast::<PyBytes>()?.as_bytes(), &mut body);
                write_bytes(
                    parts.get_item(1)?.cast::<PyString>()?.to_str()?.as_bytes(),
                    &mut body,
                );
                write_bytes(parts.get_item(2)?.cast::<PyBytes>()?.as_bytes(), &mut body);
            }
        }
        count += 1;
    }
    if count == 0 {
        return Ok(PyBytes::new(py, b"\x00"));
    }
    let mut out = Vec::with_capacity(body.len() + 11);
    write_long(count, &mut out);
    out.extend_from_slice(&body);
    out.push(0);
    Ok(PyBytes::new(py, &out))
}

#[pymodule]
fn ixb_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(errors::bind, m)?)?;
    m.add_function(wrap_pyfunction!(read_disclosures, m)?)?;
    m.add_function(wrap_pyfunction!(disclosure_digest, m)?)?;
    m.add_function(wrap_pyfunction!(uncovered, m)?)?;
    m.add_function(wrap_pyfunction!(disclosures_array, m)?)?;
    m.add_function(wrap_pyfunction!(merkle::batch_tree, m)?)?;
    m.add_class::<plan::Plan>()?;
    m.add_class::<writer::RecordWriter>()?;
    Ok(())
}
