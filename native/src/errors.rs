//! The refusals the native core raises are the reference's own classes,
//! handed over once by broker/trust/sd/_native.py (`bind`): a caller cannot
//! tell which implementation refused, only why.

use std::sync::OnceLock;

use pyo3::exceptions::{PyIndexError, PyRuntimeError};
use pyo3::prelude::*;

use crate::wire::Refusal;

static WIRE_ERROR: OnceLock<Py<PyAny>> = OnceLock::new();
static DISCLOSURE_ERROR: OnceLock<Py<PyAny>> = OnceLock::new();

/// Take the classes to raise: `WireError(reason, detail)` and `DisclosureError(reason, detail)`.
/// Binding the same classes again changes nothing; other classes are refused.
#[pyfunction]
pub fn bind(py: Python<'_>, wire_error: Py<PyAny>, disclosure_error: Py<PyAny>) -> PyResult<()> {
    let wire = WIRE_ERROR.get_or_init(|| wire_error.clone_ref(py));
    let disclosure = DISCLOSURE_ERROR.get_or_init(|| disclosure_error.clone_ref(py));
    if !wire.is(&wire_error) || !disclosure.is(&disclosure_error) {
        return Err(PyRuntimeError::new_err(
            "ixb_native is bound to other error classes",
        ));
    }
    Ok(())
}

fn raise(py: Python<'_>, class: &OnceLock<Py<PyAny>>, reason: &str, detail: &str) -> PyErr {
    let Some(class) = class.get() else {
        return PyRuntimeError::new_err("ixb_native.bind was not called");
    };
    match class.bind(py).call1((reason, detail)) {
        Ok(instance) => PyErr::from_value(instance),
        Err(err) => err,
    }
}

pub fn disclosure_error(py: Python<'_>, reason: &str, detail: &str) -> PyErr {
    raise(py, &DISCLOSURE_ERROR, reason, detail)
}

/// A wire refusal as the reference raises it: WireError, or IndexError where the bytes end.
pub fn wire_error(py: Python<'_>, refusal: Refusal) -> PyErr {
    match refusal {
        Refusal::Wire(reason, detail) => raise(py, &WIRE_ERROR, reason, &detail),
        Refusal::Truncated => PyIndexError::new_err("the bytes end early"),
    }
}
