//! `QuantizationConfig`, `QuantizedEmbeddings` and `quantize_embeddings`.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::convert::{matrix_arg, type_name, Count};
use crate::quantization::{
    self, Precision, QuantizationConfig, QuantizedArray, QuantizedEmbeddings,
};

/// How token matrices are stored: `QuantizationConfig.None_` (float32), `Binary`,
/// `Int8` or `Int4`.
#[pyclass(
    name = "QuantizationConfig",
    module = "tessera",
    frozen,
    eq,
    hash,
    from_py_object
)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyQuantizationConfig {
    pub inner: QuantizationConfig,
}

#[pymethods]
impl PyQuantizationConfig {
    #[classattr]
    #[pyo3(name = "None_")]
    fn none_() -> Self {
        PyQuantizationConfig {
            inner: QuantizationConfig::None,
        }
    }

    #[classattr]
    #[pyo3(name = "NONE")]
    fn none_upper() -> Self {
        Self::none_()
    }

    #[classattr]
    #[pyo3(name = "Binary")]
    fn binary() -> Self {
        PyQuantizationConfig {
            inner: QuantizationConfig::Binary,
        }
    }

    #[classattr]
    #[pyo3(name = "Int8")]
    fn int8() -> Self {
        PyQuantizationConfig {
            inner: QuantizationConfig::Int8,
        }
    }

    #[classattr]
    #[pyo3(name = "Int4")]
    fn int4() -> Self {
        PyQuantizationConfig {
            inner: QuantizationConfig::Int4,
        }
    }

    /// Parses "none", "binary", "int8" or "int4".
    #[staticmethod]
    fn parse(name: &str) -> PyResult<Self> {
        Ok(PyQuantizationConfig {
            inner: QuantizationConfig::parse(name)?,
        })
    }

    fn __str__(&self) -> &'static str {
        self.inner.as_str()
    }

    /// Pickles as the name `QuantizationConfig.parse` reads back.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (&'static str,))> {
        let parse = slf.get_type().getattr("parse")?;
        Ok((parse, (slf.get().inner.as_str(),)))
    }

    fn __repr__(&self) -> String {
        let name = match self.inner {
            QuantizationConfig::None => "None_",
            QuantizationConfig::Binary => "Binary",
            QuantizationConfig::Int8 => "Int8",
            QuantizationConfig::Int4 => "Int4",
        };
        format!("QuantizationConfig.{name}")
    }
}

/// A `quantization=` argument: a `QuantizationConfig` or its name.
pub fn quantization_arg(value: &Bound<'_, PyAny>) -> PyResult<QuantizationConfig> {
    if let Ok(config) = value.cast::<PyQuantizationConfig>() {
        return Ok(config.get().inner);
    }
    if let Ok(name) = value.cast::<PyString>() {
        return Ok(QuantizationConfig::parse(&name.to_cow()?)?);
    }
    Err(PyTypeError::new_err(format!(
        "quantization must be a tessera.QuantizationConfig or one of 'none', 'binary', 'int8', 'int4', not {}",
        type_name(value)
    )))
}

/// A quantized token matrix: `data` is `(num_tokens, bytes_per_token)` uint8 (for binary,
/// packed bits in `np.packbits` order).
#[pyclass(name = "QuantizedEmbeddings", module = "tessera", frozen)]
pub struct PyQuantizedEmbeddings {
    pub inner: QuantizedEmbeddings,
    data: Py<PyArray2<u8>>,
}

impl PyQuantizedEmbeddings {
    pub fn wrap(py: Python<'_>, inner: QuantizedEmbeddings) -> PyResult<Self> {
        let (rows, cols) = inner.shape();
        let array = Array2::from_shape_vec((rows, cols), inner.data().to_vec())
            .map_err(|e| PyRuntimeError::new_err(format!("internal shape error: {e}")))?
            .into_pyarray(py);
        array.readwrite().make_nonwriteable();
        Ok(PyQuantizedEmbeddings {
            inner,
            data: array.unbind(),
        })
    }
}

#[pymethods]
impl PyQuantizedEmbeddings {
    /// Rebuilds quantized embeddings from their parts (as `data`, `original_dim`,
    /// `precision` and `scales` return them).
    #[new]
    #[pyo3(signature = (data, original_dim, precision, scales=None))]
    fn new(
        py: Python<'_>,
        data: numpy::PyReadonlyArray2<'_, u8>,
        original_dim: Count,
        precision: &Bound<'_, PyAny>,
        scales: Option<Vec<f32>>,
    ) -> PyResult<Self> {
        let original_dim = original_dim.get();
        let view = data.as_array();
        let num_tokens = view.nrows();
        let inner = QuantizedEmbeddings::from_parts(
            quantization_arg(precision)?,
            original_dim,
            num_tokens,
            view.iter().copied().collect(),
            scales.unwrap_or_default(),
        )?;
        Self::wrap(py, inner)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let this = slf.get();
        let args = (
            this.data.bind(py).clone(),
            this.inner.original_dim(),
            this.inner.precision().as_str(),
            this.inner.scales().to_vec(),
        )
            .into_pyobject(py)?
            .into_any();
        Ok((slf.get_type().into_any(), args))
    }

    /// The stored bytes, `(num_tokens, bytes_per_token)` uint8.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<u8>> {
        self.data.bind(py).clone()
    }

    /// Alias of `data` for binary quantization (packed sign bits).
    #[getter]
    fn bits<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<u8>> {
        self.data.bind(py).clone()
    }

    /// Per-token scale factors (int8 / int4); empty for binary.
    #[getter]
    fn scales(&self) -> Vec<f32> {
        self.inner.scales().to_vec()
    }

    #[getter]
    fn precision(&self) -> PyQuantizationConfig {
        PyQuantizationConfig {
            inner: self.inner.precision(),
        }
    }

    #[getter]
    fn original_dim(&self) -> usize {
        self.inner.original_dim()
    }

    #[getter]
    fn num_tokens(&self) -> usize {
        self.inner.num_tokens()
    }

    #[getter]
    fn shape(&self) -> (usize, usize) {
        self.inner.shape()
    }

    /// Bytes held (data plus scales).
    fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes()
    }

    /// float32 size over quantized size (32 for binary).
    fn compression_ratio(&self) -> f32 {
        self.inner.compression_ratio()
    }

    /// An approximate float32 matrix back (signs as ±1 for binary).
    fn dequantize<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        super::convert::matrix_to_numpy(py, self.inner.dequantize())
    }

    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        super::convert::array_protocol(self.data.bind(py).as_any(), dtype, copy)
    }

    fn __len__(&self) -> usize {
        self.inner.num_tokens()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyQuantizedEmbeddings>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "QuantizedEmbeddings(precision={}, num_tokens={}, original_dim={}, memory_bytes={})",
            self.inner.precision(),
            self.inner.num_tokens(),
            self.inner.original_dim(),
            self.inner.memory_bytes()
        )
    }
}

/// Quantizes a token matrix `(num_tokens, dim)` (binary by default).
#[pyfunction]
#[pyo3(signature = (embeddings, quantization=None))]
pub fn quantize(
    py: Python<'_>,
    embeddings: &Bound<'_, PyAny>,
    quantization: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyQuantizedEmbeddings> {
    let matrix = matrix_arg(embeddings, "embeddings")?;
    let config = match quantization {
        Some(q) => quantization_arg(q)?,
        None => QuantizationConfig::Binary,
    };
    PyQuantizedEmbeddings::wrap(py, quantization::quantize(&matrix, config)?)
}

/// sentence-transformers' `quantize_embeddings`: `precision` is "float32", "int8",
/// "uint8", "binary" or "ubinary"; int8 / uint8 use `ranges` `(2, dim)`, else the ranges of
/// `calibration_embeddings`, else those of `embeddings`.
#[pyfunction]
#[pyo3(signature = (embeddings, precision, *, ranges=None, calibration_embeddings=None))]
pub fn quantize_embeddings<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyAny>,
    precision: &str,
    ranges: Option<&Bound<'py, PyAny>>,
    calibration_embeddings: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let matrix = matrix_arg(embeddings, "embeddings")?;
    let precision = Precision::parse(precision)?;
    let ranges = ranges.map(|r| matrix_arg(r, "ranges")).transpose()?;
    let calibration = calibration_embeddings
        .map(|c| matrix_arg(c, "calibration_embeddings"))
        .transpose()?;
    let out = quantization::quantize_embeddings(
        &matrix,
        precision,
        ranges.as_ref(),
        calibration.as_ref(),
    )?;
    quantized_to_numpy(py, out)
}

/// A quantized array as NumPy (float32, int8 or uint8), without a second copy.
pub fn quantized_to_numpy(py: Python<'_>, out: QuantizedArray) -> PyResult<Bound<'_, PyAny>> {
    let shape_error = |e: numpy::ndarray::ShapeError| {
        PyRuntimeError::new_err(format!("internal shape error: {e}"))
    };
    Ok(match out {
        QuantizedArray::Float32(m) => super::convert::matrix_to_numpy(py, m)?.into_any(),
        QuantizedArray::Int8 { rows, cols, data } => Array2::from_shape_vec((rows, cols), data)
            .map_err(shape_error)?
            .into_pyarray(py)
            .into_any(),
        QuantizedArray::Uint8 { rows, cols, data } => Array2::from_shape_vec((rows, cols), data)
            .map_err(shape_error)?
            .into_pyarray(py)
            .into_any(),
    })
}
