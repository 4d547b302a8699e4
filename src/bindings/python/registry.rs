//! `tessera.list_models()`.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::registry::{self, Paradigm};

/// The registry as a list of dicts, optionally of one paradigm.
#[pyfunction]
#[pyo3(signature = (paradigm=None))]
pub fn list_models<'py>(py: Python<'py>, paradigm: Option<&str>) -> PyResult<Bound<'py, PyList>> {
    let paradigm = paradigm.map(Paradigm::parse).transpose()?;
    let json = py.import("json")?;
    let list = PyList::empty(py);
    for spec in registry::list_models(paradigm) {
        let text = serde_json::to_string(spec)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        let entry = json.call_method1("loads", (text,))?.cast_into::<PyDict>()?;
        list.append(entry)?;
    }
    Ok(list)
}
