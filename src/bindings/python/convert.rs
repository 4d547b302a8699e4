//! Python values in, NumPy arrays out, and the one helper that runs inference with the
//! GIL released.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyString};

use super::errors::{config_error, tokenization_error};
use crate::error::{Result as TesseraResult, TesseraError};
use crate::matrix::Matrix;

/// How often a running call looks for a pending signal (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Runs `work` with the GIL released, so other Python threads keep running, and turns
/// both errors and (never expected) panics into Python exceptions.
///
/// The work runs on this process's worker pool (rebuilt after a `fork`, see
/// [`crate::threads`]) while this thread waits for it and, every [`SIGNAL_POLL`], lets
/// Python run its signal handlers: a Ctrl-C raises the work's cancellation flag, the
/// work stops at its next checkpoint (between batches), and the `KeyboardInterrupt`
/// reaches the caller.
pub fn detached<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    F: FnOnce() -> TesseraResult<T> + Send,
    T: Send,
{
    let pool = crate::threads::pool()?;
    let cancel = Arc::new(AtomicBool::new(false));
    let mut signal: Option<PyErr> = None;
    let outcome = py.detach(|| {
        let mut outcome = None;
        let (done, finished) = mpsc::channel::<()>();
        pool.in_place_scope(|scope| {
            let flag = cancel.clone();
            let slot = &mut outcome;
            scope.spawn(move |_| {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::progress::with_reporter(super::progress::tqdm_reporters(), || {
                        crate::interrupt::with_cancel(flag, work)
                    })
                }));
                *slot = Some(result);
                let _ = done.send(());
            });
            while let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(SIGNAL_POLL) {
                if signal.is_none() {
                    if let Err(err) = Python::attach(|py| py.check_signals()) {
                        signal = Some(err);
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
            }
        });
        outcome
    });
    if let Some(err) = signal {
        return Err(err);
    }
    match outcome {
        Some(Ok(result)) => result.map_err(PyErr::from),
        Some(Err(panic)) => {
            let detail = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyErr::from(TesseraError::Encoding(format!(
                "internal error (please report it as a bug): {detail}"
            ))))
        }
        None => Err(PyErr::from(TesseraError::Encoding(
            "internal error (please report it as a bug): the worker did not finish".into(),
        ))),
    }
}

/// A count or a length (`batch_size`, `max_length`, `top_k`, `dimension`, ...): a Python
/// integer, or anything with `__index__` such as a NumPy integer. A negative or huge value
/// is a `ConfigError` (a `ValueError`) naming the value, not pyo3's `OverflowError`; the
/// range each argument allows is checked where it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub usize);

impl Count {
    pub fn get(self) -> usize {
        self.0
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Count {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err("expected an integer, not bool"));
        }
        let index = obj.call_method0("__index__").map_err(|_| {
            PyTypeError::new_err(format!("expected an integer, not {}", type_name(&obj)))
        })?;
        if let Ok(value) = index.extract::<u64>() {
            if let Ok(value) = usize::try_from(value) {
                return Ok(Count(value));
            }
        }
        let negative = index.lt(0)?;
        Err(config_error(if negative {
            format!("expected a non-negative integer, got {index}")
        } else {
            format!("{index} is too large for a count or a length")
        }))
    }
}

/// A `str` argument, with a TypeError naming the expected type otherwise.
///
/// A string that is not valid Unicode (a lone surrogate, which Python allows) is a
/// `TokenizationError` naming its position: Tessera does not guess a replacement.
pub fn text_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    match value.cast::<PyString>() {
        Ok(s) => match s.to_cow() {
            Ok(text) => Ok(text.into_owned()),
            Err(err) => Err(invalid_unicode(value.py(), &err, name)),
        },
        Err(_) => Err(PyTypeError::new_err(format!(
            "{name} must be str, not {}",
            type_name(value)
        ))),
    }
}

/// The `TokenizationError` for a `str` with a lone surrogate, from Python's
/// `UnicodeEncodeError` (which says where).
fn invalid_unicode(py: Python<'_>, err: &PyErr, name: &str) -> PyErr {
    let error = err.value(py);
    let start = error
        .getattr("start")
        .and_then(|v| v.extract::<usize>())
        .ok();
    let code = error
        .getattr("object")
        .and_then(|o| match start {
            Some(i) => o.get_item(i).and_then(|c| {
                c.extract::<String>().or_else(|_| {
                    // The surrogate itself cannot become a Rust string: read its code point.
                    py.import("builtins")?
                        .getattr("ord")?
                        .call1((c,))?
                        .extract::<u32>()
                        .map(|n| format!("U+{n:04X}"))
                })
            }),
            None => Err(err.clone_ref(py)),
        })
        .unwrap_or_else(|_| "a lone surrogate".into());
    tokenization_error(match start {
        Some(i) => format!(
            "{name} is not valid Unicode: {code} (a lone surrogate) at character {i}; \
             repair the text first, e.g. text.encode('utf-16', 'surrogatepass').decode('utf-16', 'replace')"
        ),
        None => format!("{name} is not valid Unicode text (it holds a lone surrogate)"),
    })
}

/// A sequence (or any iterable) of `str`; a bare `str` or `bytes` is refused, since
/// iterating it would encode single characters.
pub fn texts_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    if value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a sequence of str, not a single {}; wrap it in a list",
            type_name(value)
        )));
    }
    let iter = value.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be str or a sequence of str, not {}",
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
        return Ok(s.to_cow()?.into_owned());
    }
    let os = value.py().import("os")?;
    match os.call_method1("fspath", (value,)) {
        Ok(path) => match path.cast::<PyString>() {
            Ok(s) => Ok(s.to_cow()?.into_owned()),
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

/// A file path argument (`str` or `os.PathLike`), with a TypeError naming `name`.
pub fn path_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    let os = value.py().import("os")?;
    match os
        .call_method1("fspath", (value,))
        .map(|p| p.cast_into::<PyString>())
    {
        Ok(Ok(path)) => Ok(path.to_cow()?.into_owned()),
        _ => Err(PyTypeError::new_err(format!(
            "{name} must be a str or a pathlib.Path, not {}",
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
