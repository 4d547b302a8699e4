//! `TesseraError` → the Python exception classes of `tessera.exceptions`, in one place.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::error::TesseraError;

/// The class name in `tessera/exceptions.py` for each error kind.
fn class_name(err: &TesseraError) -> &'static str {
    match err {
        TesseraError::ModelNotFound { .. } => "ModelNotFoundError",
        TesseraError::ModelLoad { .. } => "ModelLoadError",
        TesseraError::Encoding(_) => "EncodingError",
        TesseraError::UnsupportedDimension { .. } => "UnsupportedDimensionError",
        TesseraError::Device(_) => "DeviceError",
        TesseraError::Quantization(_) => "QuantizationError",
        TesseraError::Tokenization(_) => "TokenizationError",
        TesseraError::Config(_) => "ConfigError",
        TesseraError::DimensionMismatch { .. } => "DimensionMismatchError",
        TesseraError::Matryoshka(_) => "MatryoshkaError",
        TesseraError::Io { .. } => "TesseraIOError",
        TesseraError::Tensor(_) => "TensorError",
    }
}

fn exception_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module =
        MODULE.get_or_try_init(py, || py.import("tessera.exceptions").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

impl From<TesseraError> for PyErr {
    fn from(err: TesseraError) -> PyErr {
        let message = err.to_string();
        Python::attach(|py| match exception_class(py, class_name(&err)) {
            Ok(class) => {
                let errno_args = match &err {
                    TesseraError::Io { source, .. } => source.raw_os_error(),
                    _ => None,
                };
                match errno_args {
                    Some(code) => PyErr::from_type(class, (code, message)),
                    None => PyErr::from_type(class, (message,)),
                }
            }
            Err(_) => PyRuntimeError::new_err(message),
        })
    }
}
