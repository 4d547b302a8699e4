//! Python values in, NumPy arrays out, and the one helper that runs inference with the
//! GIL released.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::error::{Result as TesseraResult, TesseraError};
use crate::matrix::Matrix;

/// Runs `work` with the GIL released, so other Python threads keep running, and turns
/// both errors and (never expected) panics into Python exceptions.
pub fn detached<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    F: FnOnce() -> TesseraResult<T> + Send,
    T: Send,
{
    let outcome = py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
    match outcome {
        Ok(result) => result.map_err(PyErr::from),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyErr::from(TesseraError::Encoding(format!(
                "internal error (please report it as a bug): {detail}"
            ))))
        }
    }
}

/// A `str` argument, with a TypeError naming the expected type otherwise.
pub fn text_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    match value.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{name} must be str, not {}",
            type_name(value)
        ))),
    }
}

/// A sequence (or any iterable) of `str`; a bare `str` or `bytes` is refused, since
/// iterating it would encode single characters.
pub fn texts_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    if value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a sequence of str, not a single {}; wrap it in a list or call encode()",
            type_name(value)
        )));
    }
    let iter = value.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a sequence of str, not {}",
            type_name(value)
        ))
    })?;
    let mut texts = Vec::with_capacity(value.len().unwrap_or(0));
    for (i, item) in iter.enumerate() {
        let item = item?;
        texts.push(text_arg(&item, &format!("{name}[{i}]"))?);
    }
    Ok(texts)
}

/// A model argument: a registry id, a repo id, or a path (`str` or `os.PathLike`).
pub fn model_arg(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_str()?.to_owned());
    }
    let os = value.py().import("os")?;
    match os.call_method1("fspath", (value,)) {
        Ok(path) => match path.cast::<PyString>() {
            Ok(s) => Ok(s.to_str()?.to_owned()),
            Err(_) => Err(PyTypeError::new_err(
                "model path must be a text path, not bytes",
            )),
        },
        Err(_) => Err(PyTypeError::new_err(format!(
            "model must be a str (registry id, Hugging Face repo id or directory) or a \
             pathlib.Path, not {}",
            type_name(value)
        ))),
    }
}

pub fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}

/// A vector handed to NumPy without copying the buffer.
pub fn vector_to_numpy(py: Python<'_>, data: Vec<f32>) -> Bound<'_, PyArray1<f32>> {
    PyArray1::from_vec(py, data)
}

/// A matrix handed to NumPy without copying the buffer.
pub fn matrix_to_numpy(py: Python<'_>, matrix: Matrix) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let array = Array2::from_shape_vec((matrix.rows, matrix.cols), matrix.data)
        .map_err(|e| PyRuntimeError::new_err(format!("internal shape error: {e}")))?;
    Ok(array.into_pyarray(py))
}

/// A 1-D vector: a float32 / float64 NumPy array or a sequence of floats.
pub fn vector_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<f32>> {
    if let Ok(array) = value.extract::<numpy::PyReadonlyArray1<'_, f32>>() {
        return Ok(array.as_array().to_vec());
    }
    if let Ok(array) = value.extract::<numpy::PyReadonlyArray1<'_, f64>>() {
        return Ok(array.as_array().iter().map(|&v| v as f32).collect());
    }
    if !value.is_instance_of::<PyString>() {
        if let Ok(list) = value.extract::<Vec<f32>>() {
            return Ok(list);
        }
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be str or a 1-D float array, not {}",
        type_name(value)
    )))
}

/// A 2-D float32 / float64 array as a [`Matrix`]; TypeError for other dtypes,
/// ValueError for other shapes.
pub fn matrix_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Matrix> {
    if let Ok(array) = value.extract::<numpy::PyReadonlyArray2<'_, f32>>() {
        let view = array.as_array();
        let (rows, cols) = view.dim();
        return Ok(Matrix {
            rows,
            cols,
            data: view.iter().copied().collect(),
        });
    }
    if let Ok(array) = value.extract::<numpy::PyReadonlyArray2<'_, f64>>() {
        let view = array.as_array();
        let (rows, cols) = view.dim();
        return Ok(Matrix {
            rows,
            cols,
            data: view.iter().map(|&v| v as f32).collect(),
        });
    }
    if let Ok(array) = value.cast::<numpy::PyUntypedArray>() {
        use numpy::PyUntypedArrayMethods;
        if array.ndim() != 2 {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{name} must be a 2-D (num_tokens, dim) array, got {} dimensions",
                array.ndim()
            )));
        }
        return Err(PyTypeError::new_err(format!(
            "{name} must be a float32 or float64 array, not dtype {}",
            array.dtype()
        )));
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be a 2-D float NumPy array, not {}",
        type_name(value)
    )))
}

/// `__array__(dtype=None, copy=None)` over an array the object already holds: the same
/// buffer unless a dtype change or a copy is asked for (NumPy 2 protocol).
pub fn array_protocol<'py>(
    array: &Bound<'py, PyAny>,
    dtype: Option<&Bound<'py, PyAny>>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut out = array.clone();
    if let Some(dtype) = dtype.filter(|d| !d.is_none()) {
        out = out.call_method1("astype", (dtype,))?;
    } else if copy == Some(true) {
        out = out.call_method0("copy")?;
    }
    Ok(out)
}

/// The `output=` keyword: `"array"` (NumPy) or `"object"` (an embedding object).
pub fn output_is_object(output: &str) -> PyResult<bool> {
    match output {
        "array" => Ok(false),
        "object" => Ok(true),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "output must be 'array' or 'object', not {other:?}"
        ))),
    }
}
