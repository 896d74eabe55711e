//! Disclosure values: the readers of broker/trust/sd/wire.py (`leaf_reader`).
//!
//! A value type is described by the Python side (`broker/trust/sd/_native.py`
//! turns a fastavro-parsed schema into a small tuple tree) and compiled here
//! once per layout. Reading returns what the reference returns, or the
//! refusal it raises; logical types are finished by the very Python calls
//! the reference makes (`epoch + timedelta`, `date.fromordinal`,
//! `uuid.UUID`), so their range and canonical checks cannot drift.

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyString, PyTuple};

use crate::wire::{byte_at, read_bytes, read_long, wire, Read, Refusal};

const INT_MIN: i64 = -(1 << 31);
const INT_MAX: i64 = (1 << 31) - 1;
const EPOCH_ORDINAL: i64 = 719_163; // date(1970, 1, 1).toordinal()

pub enum Step {
    Null,
    Boolean,
    Int,
    Long,
    Double,
    Str,
    Enum(Vec<Py<PyString>>),
    Optional(Box<[Step; 2]>), // an optional value: null and one other type, in schema order
    TimestampMillis,
    Date,
    Uuid,
}

/// How a whole value is read: a top-level string has its own fast path in
/// the reference (`_read_string`), with its own refusal texts.
pub enum Reader {
    WholeString,
    Steps(Step),
}

/// The Python objects logical types are finished with, taken once.
pub struct Logical {
    epoch: Py<PyAny>,
    timedelta: Py<PyAny>,
    date: Py<PyAny>,
    uuid: Py<PyAny>,
}

impl Logical {
    pub fn new(py: Python<'_>) -> PyResult<Self> {
        let datetime = py.import("datetime")?;
        let utc = datetime.getattr("UTC")?;
        let epoch = datetime
            .getattr("datetime")?
            .call1((1970, 1, 1, 0, 0, 0, 0, utc))?;
        Ok(Self {
            epoch: epoch.unbind(),
            timedelta: datetime.getattr("timedelta")?.unbind(),
            date: datetime.getattr("date")?.unbind(),
            uuid: py.import("uuid")?.getattr("UUID")?.unbind(),
        })
    }
}

/// The reader of a described type, or None where the reference has none
/// (then the reference's own decoding runs).
pub fn compile(spec: &Bound<'_, PyAny>) -> PyResult<Option<Reader>> {
    if let Ok(name) = spec.extract::<String>() {
        if name == "whole-string" {
            return Ok(Some(Reader::WholeString));
        }
    }
    Ok(step(spec)?.map(Reader::Steps))
}

fn step(spec: &Bound<'_, PyAny>) -> PyResult<Option<Step>> {
    if spec.is_none() {
        return Ok(None);
    }
    if let Ok(name) = spec.extract::<String>() {
        return Ok(Some(match name.as_str() {
            "null" => Step::Null,
            "boolean" => Step::Boolean,
            "int" => Step::Int,
            "long" => Step::Long,
            "double" => Step::Double,
            "string" => Step::Str,
            "timestamp-millis" => Step::TimestampMillis,
            "date" => Step::Date,
            "uuid" => Step::Uuid,
            _ => return Err(PyValueError::new_err(format!("unknown value type {name}"))),
        }));
    }
    let parts = spec
        .cast::<PyTuple>()
        .map_err(|_| PyTypeError::new_err("a value type"))?;
    let kind: String = parts.get_item(0)?.extract()?;
    match kind.as_str() {
        "enum" => {
            let symbols: Vec<Py<PyString>> = parts.get_item(1)?.extract()?;
            Ok(Some(Step::Enum(symbols)))
        }
        "optional" => {
            let first = step(&parts.get_item(1)?)?;
            let second = step(&parts.get_item(2)?)?;
            Ok(match (first, second) {
                (Some(a), Some(b)) => Some(Step::Optional(Box::new([a, b]))),
                _ => None,
            })
        }
        _ => Err(PyValueError::new_err(format!("unknown value type {kind}"))),
    }
}

/// Read a whole value: what the reference's reader returns for `data`, or its refusal.
pub fn read<'py>(
    py: Python<'py>,
    reader: &Reader,
    logical: &Logical,
    data: &[u8],
) -> Result<Bound<'py, PyAny>, Failure> {
    match reader {
        Reader::WholeString => whole_string(py, data),
        Reader::Steps(step) => {
            let (value, end) = match read_step(py, step, logical, data, 0) {
                Err(Failure::Refused(Refusal::Truncated)) => {
                    return Err(refused("undecodable", "the value ends early"))
                }
                other => other?,
            };
            if end != data.len() {
                return Err(refused("undecodable", "bytes after the value"));
            }
            Ok(value)
        }
    }
}

/// A refusal, or a Python error met while finishing a value (a bug, not a verdict).
pub enum Failure {
    Refused(Refusal),
    Python(PyErr),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Failure::Refused(refusal)
    }
}

impl From<std::convert::Infallible> for Failure {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<PyErr> for Failure {
    fn from(err: PyErr) -> Self {
        Failure::Python(err)
    }
}

fn refused(reason: &'static str, detail: &str) -> Failure {
    Failure::Refused(Refusal::Wire(reason, detail.to_owned()))
}

fn whole_string<'py>(py: Python<'py>, data: &[u8]) -> Result<Bound<'py, PyAny>, Failure> {
    if let Some(&first) = data.first() {
        if first < 0x80 && first & 1 == 0 {
            if usize::from(first >> 1) + 1 != data.len() {
                return Err(refused(
                    "undecodable",
                    "a string's length disagrees with its bytes",
                ));
            }
            return utf8(py, &data[1..]);
        }
    }
    let (value, end) = match string(py, data, 0) {
        Err(Failure::Refused(Refusal::Truncated)) => {
            return Err(refused("undecodable", "the value ends early"))
        }
        other => other?,
    };
    if end != data.len() {
        return Err(refused("undecodable", "bytes after the value"));
    }
    Ok(value)
}

fn utf8<'py>(py: Python<'py>, raw: &[u8]) -> Result<Bound<'py, PyAny>, Failure> {
    match std::str::from_utf8(raw) {
        Ok(text) => Ok(PyString::new(py, text).into_any()),
        Err(_) => Err(refused("undecodable", "a string is not UTF-8")),
    }
}

fn string<'py>(
    py: Python<'py>,
    data: &[u8],
    pos: usize,
) -> Result<(Bound<'py, PyAny>, usize), Failure> {
    let (raw, pos) = read_bytes(data, pos, data.len() as i64)?;
    Ok((utf8(py, raw)?, pos))
}

fn check_index(index: i64, size: usize, what: &str) -> Result<usize, Refusal> {
    let size = size as i64;
    if (0..size).contains(&index) {
        return Ok(index as usize);
    }
    if (-size..0).contains(&index) {
        return wire("non_canonical", format!("{what} counted from the end"));
    }
    wire("undecodable", format!("{what} out of range"))
}

fn int(data: &[u8], pos: usize) -> Read<i64> {
    let (value, pos) = read_long(data, pos)?;
    if !(INT_MIN..=INT_MAX).contains(&value) {
        return wire("undecodable", "an int exceeds 32 bits");
    }
    Ok((value, pos))
}

fn read_step<'py>(
    py: Python<'py>,
    step: &Step,
    logical: &Logical,
    data: &[u8],
    pos: usize,
) -> Result<(Bound<'py, PyAny>, usize), Failure> {
    Ok(match step {
        Step::Null => (py.None().into_bound(py), pos),
        Step::Boolean => {
            let byte = byte_at(data, pos)?;
            if byte > 1 {
                return Err(refused("non_canonical", "a boolean other than 0 or 1"));
            }
            (PyBool::new(py, byte == 1).to_owned().into_any(), pos + 1)
        }
        Step::Int => {
            let (value, pos) = int(data, pos)?;
            (value.into_pyobject(py)?.into_any(), pos)
        }
        Step::Long => {
            let (value, pos) = read_long(data, pos)?;
            (value.into_pyobject(py)?.into_any(), pos)
        }
        Step::Double => {
            let end = pos + 8;
            if end > data.len() {
                return Err(Refusal::Truncated.into());
            }
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&data[pos..end]);
            (PyFloat::new(py, f64::from_le_bytes(raw)).into_any(), end)
        }
        Step::Str => string(py, data, pos)?,
        Step::Enum(symbols) => {
            let (index, pos) = read_long(data, pos)?;
            let index = check_index(index, symbols.len(), "an enum index")?;
            (symbols[index].bind(py).clone().into_any(), pos)
        }
        Step::Optional(branches) => {
            let (index, pos) = read_long(data, pos)?;
            let index = check_index(index, 2, "a union branch")?;
            read_step(py, &branches[index], logical, data, pos)?
        }
        Step::TimestampMillis => {
            let (millis, pos) = read_long(data, pos)?;
            (timestamp(py, logical, millis)?, pos)
        }
        Step::Date => {
            let (days, pos) = int(data, pos)?;
            (date(py, logical, days)?, pos)
        }
        Step::Uuid => {
            let (text, pos) = string(py, data, pos)?;
            (uuid(py, logical, &text)?, pos)
        }
    })
}

/// `_EPOCH + timedelta(microseconds=millis * 1000)`, an overflow refused.
fn timestamp<'py>(
    py: Python<'py>,
    logical: &Logical,
    millis: i64,
) -> Result<Bound<'py, PyAny>, Failure> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("microseconds", i128::from(millis) * 1000)?;
    let finished = logical
        .timedelta
        .bind(py)
        .call((), Some(&kwargs))
        .and_then(|delta| logical.epoch.bind(py).add(delta));
    match finished {
        Ok(value) => Ok(value),
        Err(err) if err.is_instance_of::<PyOverflowError>(py) => {
            Err(refused("undecodable", "a timestamp out of range"))
        }
        Err(err) => Err(err.into()),
    }
}

/// `date.fromordinal(days + EPOCH_ORDINAL)`, a date out of range refused.
fn date<'py>(py: Python<'py>, logical: &Logical, days: i64) -> Result<Bound<'py, PyAny>, Failure> {
    match logical
        .date
        .bind(py)
        .call_method1("fromordinal", (days + EPOCH_ORDINAL,))
    {
        Ok(value) => Ok(value),
        Err(err)
            if err.is_instance_of::<PyOverflowError>(py)
                || err.is_instance_of::<PyValueError>(py) =>
        {
            Err(refused("undecodable", "a date out of range"))
        }
        Err(err) => Err(err.into()),
    }
}

/// `uuid.UUID(text)`, which must print back as `text` (one form per value).
fn uuid<'py>(
    py: Python<'py>,
    logical: &Logical,
    text: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyAny>, Failure> {
    let value = match logical.uuid.bind(py).call1((text,)) {
        Ok(value) => value,
        Err(err) if err.is_instance_of::<PyValueError>(py) => {
            return Err(refused("undecodable", "not a UUID"))
        }
        Err(err) => return Err(err.into()),
    };
    if !value.str()?.as_any().eq(text)? {
        return Err(refused("non_canonical", "a UUID not in its canonical form"));
    }
    Ok(value)
}
