//! Avro records written as fastavro writes them, for the values the broker
//! hands over: broker/trust/sd/statement.py writes every delivery
//! statement's head through this, three per report.
//!
//! The writer only writes what it can write byte for byte as fastavro
//! would; for any other value (a naive datetime, a missing field that
//! fastavro would fill with its default, a type fastavro would coerce) it
//! answers None, and the caller runs fastavro itself. So the bytes, and
//! every refusal, stay fastavro's; tests/unit/test_native_core.py compares
//! the two on generated records.

use std::collections::HashMap;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDateTime, PyDict, PyInt, PyList, PyString, PyTuple};

use crate::wire::{write_bytes, write_long};

enum Type {
    Null,
    Boolean,
    Long, // "int" too: fastavro writes an int as a varint, unchecked
    Bytes,
    Fixed(usize),
    Str,
    Enum(HashMap<String, i64>),
    Array(Box<Type>),
    Record(Vec<(Py<PyString>, Type)>),
    Optional { null_index: i64, other: Box<Type> },
    TimestampMillis,
}

/// Not written here: the caller writes it with fastavro.
struct Fallback;

type Written = Result<(), Fallback>;

#[pyclass(frozen, module = "ixb_native")]
pub struct RecordWriter {
    record: Type,
    epoch: Py<PyAny>,
}

#[pymethods]
impl RecordWriter {
    /// `schema`: the record's type as broker/trust/sd/_native.py describes it.
    #[new]
    fn new(py: Python<'_>, schema: &Bound<'_, PyAny>) -> PyResult<Self> {
        let record = compile(py, schema)?;
        if !matches!(record, Type::Record(_)) {
            return Err(PyValueError::new_err("a record writer writes records"));
        }
        let datetime = py.import("datetime")?;
        let epoch = datetime.getattr("datetime")?.call1((
            1970,
            1,
            1,
            0,
            0,
            0,
            0,
            datetime.getattr("UTC")?,
        ))?;
        Ok(Self {
            record,
            epoch: epoch.unbind(),
        })
    }

    /// The record's Avro body as fastavro writes it, or None: then fastavro must.
    fn write<'py>(
        &self,
        py: Python<'py>,
        record: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut out = Vec::with_capacity(1024);
        match self.value(py, &self.record, record, &mut out)? {
            Ok(()) => Ok(Some(PyBytes::new(py, &out))),
            Err(Fallback) => Ok(None),
        }
    }
}

fn compile(py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<Type> {
    if let Ok(name) = spec.extract::<String>() {
        return Ok(match name.as_str() {
            "null" => Type::Null,
            "boolean" => Type::Boolean,
            "int" | "long" => Type::Long,
            "bytes" => Type::Bytes,
            "string" => Type::Str,
            "timestamp-millis" => Type::TimestampMillis,
            _ => return Err(PyValueError::new_err(format!("unknown type {name}"))),
        });
    }
    let parts = spec
        .cast::<PyTuple>()
        .map_err(|_| PyTypeError::new_err("a type"))?;
    let kind: String = parts.get_item(0)?.extract()?;
    Ok(match kind.as_str() {
        "enum" => {
            let symbols: Vec<String> = parts.get_item(1)?.extract()?;
            let mut index = HashMap::new();
            for (i, symbol) in symbols.into_iter().enumerate() {
                index.entry(symbol).or_insert(i as i64); // fastavro's symbols.index: the first
            }
            Type::Enum(index)
        }
        "fixed" => Type::Fixed(parts.get_item(1)?.extract()?),
        "array" => Type::Array(Box::new(compile(py, &parts.get_item(1)?)?)),
        "record" => {
            let fields: Vec<(String, Bound<'_, PyAny>)> = parts.get_item(1)?.extract()?;
            let mut compiled = Vec::with_capacity(fields.len());
            for (name, field) in fields {
                compiled.push((PyString::intern(py, &name).unbind(), compile(py, &field)?));
            }
            Type::Record(compiled)
        }
        "optional" => Type::Optional {
            null_index: parts.get_item(1)?.extract()?,
            other: Box::new(compile(py, &parts.get_item(2)?)?),
        },
        _ => return Err(PyValueError::new_err(format!("unknown type {kind}"))),
    })
}

impl RecordWriter {
    fn value(
        &self,
        py: Python<'_>,
        ty: &Type,
        value: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
    ) -> PyResult<Written> {
        match ty {
            Type::Null => {
                if !value.is_none() {
                    return Ok(Err(Fallback));
                }
            }
            Type::Boolean => match value.cast::<PyBool>() {
                Ok(flag) => out.push(u8::from(flag.is_true())),
                Err(_) => return Ok(Err(Fallback)),
            },
            Type::Long => {
                if !value.is_exact_instance_of::<PyInt>() {
                    return Ok(Err(Fallback));
                }
                match value.extract::<i64>() {
                    Ok(number) => write_long(number, out),
                    Err(_) => return Ok(Err(Fallback)),
                }
            }
            Type::Bytes => match value.cast_exact::<PyBytes>() {
                Ok(raw) => write_bytes(raw.as_bytes(), out),
                Err(_) => return Ok(Err(Fallback)),
            },
            Type::Fixed(size) => match value.cast_exact::<PyBytes>() {
                // fastavro refuses another length
                Ok(raw) if raw.as_bytes().len() == *size => out.extend_from_slice(raw.as_bytes()),
                _ => return Ok(Err(Fallback)),
            },
            Type::Str => match value
                .cast_exact::<PyString>()
                .ok()
                .and_then(|s| s.to_str().ok())
            {
                Some(text) => write_bytes(text.as_bytes(), out),
                None => return Ok(Err(Fallback)),
            },
            Type::Enum(index) => {
                let symbol = value
                    .cast_exact::<PyString>()
                    .ok()
                    .and_then(|s| s.to_str().ok());
                match symbol.and_then(|s| index.get(s)) {
                    Some(&i) => write_long(i, out),
                    None => return Ok(Err(Fallback)),
                }
            }
            Type::Array(items) => {
                let Ok(list) = value.cast_exact::<PyList>() else {
                    return Ok(Err(Fallback));
                };
                if !list.is_empty() {
                    write_long(list.len() as i64, out);
                    for item in list.iter() {
                        if self.value(py, items, &item, out)?.is_err() {
                            return Ok(Err(Fallback));
                        }
                    }
                }
                out.push(0);
            }
            Type::Record(fields) => {
                let Ok(dict) = value.cast_exact::<PyDict>() else {
                    return Ok(Err(Fallback));
                };
                for (name, field) in fields {
                    let Some(item) = dict.get_item(name.bind(py))? else {
                        return Ok(Err(Fallback)); // fastavro's defaults decide
                    };
                    if self.value(py, field, &item, out)?.is_err() {
                        return Ok(Err(Fallback));
                    }
                }
            }
            Type::Optional { null_index, other } => {
                if value.is_none() {
                    write_long(*null_index, out);
                } else {
                    write_long(1 - *null_index, out);
                    if self.value(py, other, value, out)?.is_err() {
                        return Ok(Err(Fallback));
                    }
                }
            }
            Type::TimestampMillis => {
                if value.is_exact_instance_of::<PyInt>() {
                    return self.value(py, &Type::Long, value, out);
                }
                let Ok(moment) = value.cast_exact::<PyDateTime>() else {
                    return Ok(Err(Fallback));
                };
                if moment.getattr("tzinfo")?.is_none() {
                    return Ok(Err(Fallback)); // naive: fastavro's own rule
                }
                // fastavro: (delta.days * 86400 + delta.seconds) * 1000 + int(delta.microseconds / 1000)
                let delta = moment.sub(self.epoch.bind(py))?;
                let days: i64 = delta.getattr("days")?.extract()?;
                let seconds: i64 = delta.getattr("seconds")?.extract()?;
                let micros: i64 = delta.getattr("microseconds")?.extract()?;
                write_long((days * 86_400 + seconds) * 1000 + micros / 1000, out);
            }
        }
        Ok(Ok(()))
    }
}
