//! The exception classes of `tessera.exceptions`, declared here, and the exhaustive
//! mapping of `TesseraError` onto them: a new variant cannot compile without a class.

use pyo3::exceptions::{
    PyException, PyKeyboardInterrupt, PyMemoryError, PyOSError, PyRuntimeError, PyUserWarning,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::error::TesseraError;

/// One class: its name, the built-in it also derives from, and its docstring.
struct ClassSpec {
    name: &'static str,
    builtin: fn(Python<'_>) -> Bound<'_, PyType>,
    doc: &'static str,
}

macro_rules! classes {
    ($($index:ident = $name:literal, $builtin:ty, $doc:literal;)*) => {
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        #[repr(usize)]
        enum Class { $($index),* }

        const CLASSES: &[ClassSpec] = &[
            $(ClassSpec { name: $name, builtin: |py| py.get_type::<$builtin>(), doc: $doc }),*
        ];
    };
}

classes! {
    ModelNotFound = "ModelNotFoundError", PyRuntimeError,
        "The model id, repo id or directory does not exist (the message suggests close ids).";
    ModelLoad = "ModelLoadError", PyRuntimeError,
        "The model was found but cannot be loaded (missing or corrupt files, unsupported architecture, not cached while offline).";
    Encoding = "EncodingError", PyRuntimeError, "Inference failed.";
    UnsupportedDimension = "UnsupportedDimensionError", PyValueError,
        "The requested Matryoshka dimension is not one the model supports.";
    Device = "DeviceError", PyRuntimeError,
        "The device is unknown, unavailable, or not compiled into this build.";
    Quantization = "QuantizationError", PyValueError, "Quantization settings or inputs are invalid.";
    Tokenization = "TokenizationError", PyValueError, "The tokenizer rejected the input.";
    Config = "ConfigError", PyValueError, "An option or a configuration value is invalid.";
    DimensionMismatch = "DimensionMismatchError", PyValueError,
        "Two embeddings that must share a dimension do not.";
    Matryoshka = "MatryoshkaError", PyValueError, "A Matryoshka truncation request is invalid.";
    Io = "TesseraIOError", PyOSError, "Reading or writing a file failed.";
    Tensor = "TensorError", PyRuntimeError, "A tensor operation failed inside the engine.";
    OutOfMemory = "OutOfMemoryError", PyMemoryError,
        "An input would need more memory than can be allocated.";
}

/// `TesseraError` and its subclasses, created once per interpreter.
fn classes(py: Python<'_>) -> PyResult<&Vec<Py<PyType>>> {
    static CLASSES_CELL: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();
    CLASSES_CELL.get_or_try_init(py, || {
        let make = |name: &str, bases: Bound<'_, PyTuple>, doc: &str| -> PyResult<Py<PyType>> {
            let namespace = PyDict::new(py);
            namespace.set_item("__module__", "tessera.exceptions")?;
            namespace.set_item("__doc__", doc)?;
            let class = py
                .get_type::<PyType>()
                .call1((name, bases, namespace))?
                .cast_into::<PyType>()?;
            Ok(class.unbind())
        };
        let base = make(
            "TesseraError",
            PyTuple::new(py, [py.get_type::<PyException>()])?,
            "Base class of every tessera error.",
        )?;
        let mut all = vec![base.clone_ref(py)];
        for spec in CLASSES {
            let bases = PyTuple::new(
                py,
                [
                    base.bind(py).clone().into_any(),
                    (spec.builtin)(py).into_any(),
                ],
            )?;
            all.push(make(spec.name, bases, spec.doc)?);
        }
        Ok(all)
    })
}

/// `TruncationWarning`, a `UserWarning`: inputs were cut to the model's limit.
pub fn truncation_warning(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static WARNING: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    WARNING
        .get_or_try_init(py, || {
            let namespace = PyDict::new(py);
            namespace.set_item("__module__", "tessera.exceptions")?;
            namespace.set_item(
                "__doc__",
                "Inputs were longer than the model reads and were cut (on_truncation='warn').",
            )?;
            let bases = PyTuple::new(py, [py.get_type::<PyUserWarning>()])?;
            Ok(py
                .get_type::<PyType>()
                .call1(("TruncationWarning", bases, namespace))?
                .cast_into::<PyType>()?
                .unbind())
        })
        .map(|class| class.bind(py))
}

/// Adds `TesseraError`, every subclass and `TruncationWarning` to the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TruncationWarning", truncation_warning(py)?)?;
    let all = classes(py)?;
    m.add("TesseraError", all[0].bind(py))?;
    for (spec, class) in CLASSES.iter().zip(&all[1..]) {
        m.add(spec.name, class.bind(py))?;
    }
    Ok(())
}

fn class_of(err: &TesseraError) -> Class {
    match err {
        TesseraError::ModelNotFound { .. } => Class::ModelNotFound,
        TesseraError::ModelLoad { .. } => Class::ModelLoad,
        TesseraError::Encoding(_) => Class::Encoding,
        TesseraError::UnsupportedDimension { .. } => Class::UnsupportedDimension,
        TesseraError::Device(_) => Class::Device,
        TesseraError::Quantization(_) => Class::Quantization,
        TesseraError::Tokenization(_) => Class::Tokenization,
        TesseraError::Config(_) => Class::Config,
        TesseraError::DimensionMismatch { .. } => Class::DimensionMismatch,
        TesseraError::Matryoshka(_) => Class::Matryoshka,
        TesseraError::Io { .. } => Class::Io,
        TesseraError::Tensor(_) => Class::Tensor,
        TesseraError::OutOfMemory(_) => Class::OutOfMemory,
        // Never constructed for a caller: `detached` re-raises the pending signal.
        TesseraError::Interrupted => Class::Encoding,
    }
}

impl From<TesseraError> for PyErr {
    fn from(err: TesseraError) -> PyErr {
        if matches!(err, TesseraError::Interrupted) {
            return PyKeyboardInterrupt::new_err("interrupted");
        }
        let message = err.to_string();
        let errno = match &err {
            TesseraError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        };
        Python::attach(|py| {
            let class = match classes(py) {
                Ok(all) => all[class_of(&err) as usize + 1].bind(py).clone(),
                Err(e) => return e,
            };
            match errno {
                Some(code) => PyErr::from_type(class, (code, message)),
                None => PyErr::from_type(class, (message,)),
            }
        })
    }
}

/// A `ConfigError` (a `ValueError`) raised from the bindings themselves.
pub fn config_error(message: impl Into<String>) -> PyErr {
    TesseraError::Config(message.into()).into()
}

/// A `TokenizationError` raised from the bindings themselves.
pub fn tokenization_error(message: impl Into<String>) -> PyErr {
    TesseraError::Tokenization(message.into()).into()
}
