//! The keywords every text encode shares: the output form, the batch options, and what
//! to do with inputs longer than the model reads (warned about after the call).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::convert::{detached, text_arg, texts_arg, Count};
use super::errors::truncation_warning;
use crate::paradigms::common::{EncodeOptions, InputTokens, OnTruncation};

/// The `output=` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// NumPy arrays.
    Array,
    /// Embedding objects carrying the text, its tokens and whether it was cut.
    Object,
    /// A whole batch in one buffer: rows plus offsets (multi-vector), CSR (sparse).
    Flat,
    /// A whole batch as one pyarrow array.
    Arrow,
}

impl Output {
    /// `output=` where one result per input comes back: `"array"` or `"object"`; true for
    /// objects.
    pub fn is_object(output: &str) -> PyResult<bool> {
        Ok(Self::parse(output, false)? == Output::Object)
    }

    /// Parses `output`; the batch forms (`"flat"`, `"arrow"`) only where a batch comes back.
    pub fn parse(output: &str, batch: bool) -> PyResult<Self> {
        match output {
            "array" => Ok(Output::Array),
            "object" => Ok(Output::Object),
            "flat" if batch => Ok(Output::Flat),
            "arrow" if batch => Ok(Output::Arrow),
            other => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "output must be {}, not {other:?}",
                if batch {
                    "'array', 'object', 'flat' or 'arrow'"
                } else {
                    "'array' or 'object' here ('flat' and 'arrow' take a list of inputs)"
                }
            ))),
        }
    }
}

/// The options of one text encode call.
pub fn text_options(
    batch_size: Option<Count>,
    show_progress: bool,
    on_truncation: &str,
) -> PyResult<EncodeOptions> {
    Ok(EncodeOptions {
        batch_size: batch_size.map(Count::get),
        show_progress,
        on_truncation: OnTruncation::parse(on_truncation)?,
        ..EncodeOptions::default()
    })
}

/// After a call: each input's token count and whether it was cut, in input order; with
/// `on_truncation="warn"`, a `TruncationWarning` when any was.
pub fn finish(py: Python<'_>, options: &EncodeOptions) -> PyResult<Vec<InputTokens>> {
    let (inputs, limit) = options.report.get();
    if options.on_truncation == OnTruncation::Warn {
        let cut = inputs.iter().filter(|i| i.truncated).count();
        if cut > 0 {
            let message = format!(
                "{cut} of {} inputs {} longer than the model's limit of {limit} tokens and {} cut",
                inputs.len(),
                if cut == 1 { "was" } else { "were" },
                if cut == 1 { "was" } else { "were" },
            );
            let warnings = py.import("warnings")?;
            // Level 1 is the innermost Python frame: the caller of this native method.
            warnings.call_method1("warn", (message, truncation_warning(py)?, 1))?;
        }
    }
    Ok(inputs)
}

/// `count_tokens`: an int for a str, a list of ints for a sequence of them.
pub fn count_tokens_with<'py, F>(
    py: Python<'py>,
    texts: &Bound<'py, PyAny>,
    count: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: FnOnce(&[&str]) -> crate::error::Result<Vec<usize>> + Send,
{
    let single = texts.is_instance_of::<PyString>();
    let texts = if single {
        vec![text_arg(texts, "texts")?]
    } else {
        texts_arg(texts, "texts")?
    };
    let counts = detached(py, move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        count(&refs)
    })?;
    if single {
        Ok(counts
            .first()
            .copied()
            .unwrap_or(0)
            .into_pyobject(py)?
            .into_any())
    } else {
        Ok(PyList::new(py, counts)?.into_any())
    }
}

/// `await model.a<method>(inputs, **kwargs)`: the call on tessera's async pool, merged with
/// concurrent calls of the same options when `merge` (see `tessera._aio`).
pub fn async_call<'py>(
    model: &Bound<'py, PyAny>,
    method: &str,
    inputs: &Bound<'py, PyAny>,
    kwargs: Option<&Bound<'py, PyDict>>,
    merge: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = model.py();
    let kwargs = kwargs.cloned().unwrap_or_else(|| PyDict::new(py));
    py.import("tessera._aio")?
        .call_method1("submit", (model, method, inputs, kwargs, merge))
}

/// `model.encode_stream(inputs, ...)`: `model.<method>` on consecutive batches of `inputs`,
/// yielded one by one (see `tessera._stream`).
pub fn stream_call<'py>(
    model: &Bound<'py, PyAny>,
    method: &str,
    inputs: &Bound<'py, PyAny>,
    batch_size: Option<Count>,
    column: Option<String>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = model.py();
    let kwargs = kwargs.cloned().unwrap_or_else(|| PyDict::new(py));
    let batch_size = batch_size.map_or(STREAM_BATCH_SIZE, Count::get);
    if batch_size == 0 {
        return Err(super::errors::config_error("batch_size must be at least 1"));
    }
    py.import("tessera._stream")?.call_method1(
        "stream",
        (model.getattr(method)?, inputs, batch_size, column, kwargs),
    )
}

/// Inputs per yielded result of `encode_stream` unless `batch_size` says otherwise.
const STREAM_BATCH_SIZE: usize = 256;

/// The async calls and `*_stream` of a class, as a second `#[pymethods]` block:
/// `a<method>` runs `<method>` on the async pool (merged with concurrent calls when
/// `merge`), each stream yields `<method>` over batches of an iterable.
macro_rules! async_and_stream_methods {
    ($class:ty, merge = $merge:expr, async { $($async_name:ident => $async_target:literal),* $(,)? },
     stream { $($stream_name:ident => $stream_target:literal),* $(,)? }) => {
        #[pyo3::pymethods]
        impl $class {
            $(
                #[doc = concat!("`await model.", stringify!($async_name), "(...)`: `", $async_target,
                    "` on a worker pool, the event loop left free.")]
                #[pyo3(signature = (inputs, **kwargs))]
                fn $async_name<'py>(
                    slf: &pyo3::Bound<'py, Self>,
                    inputs: &pyo3::Bound<'py, pyo3::PyAny>,
                    kwargs: Option<&pyo3::Bound<'py, pyo3::types::PyDict>>,
                ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::PyAny>> {
                    $crate::bindings::python::calls::async_call(
                        pyo3::Bound::as_any(slf), $async_target, inputs, kwargs, $merge,
                    )
                }
            )*
            $(
                #[doc = concat!("`", $stream_target, "` on consecutive batches of `inputs` (any iterable: a ",
                    "generator, a file's lines, Arrow record batches with `column=`), yielded one by ",
                    "one, so memory stays flat; other keywords go to `", $stream_target, "`.")]
                #[pyo3(signature = (inputs, *, batch_size=None, column=None, **kwargs))]
                fn $stream_name<'py>(
                    slf: &pyo3::Bound<'py, Self>,
                    inputs: &pyo3::Bound<'py, pyo3::PyAny>,
                    batch_size: Option<$crate::bindings::python::convert::Count>,
                    column: Option<String>,
                    kwargs: Option<&pyo3::Bound<'py, pyo3::types::PyDict>>,
                ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::PyAny>> {
                    $crate::bindings::python::calls::stream_call(
                        pyo3::Bound::as_any(slf), $stream_target, inputs, batch_size, column, kwargs,
                    )
                }
            )*
        }
    };
}
pub(crate) use async_and_stream_methods;
