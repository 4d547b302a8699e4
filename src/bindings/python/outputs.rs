//! Output objects: `DenseEmbedding` (one text's vector with the text and its tokens) and
//! `Forecast` (one series' median and quantile paths).

use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use super::repr::{float_list_repr, html_card, str_repr};

use super::convert::array_protocol;

/// A dense vector with the text it came from and the tokens the model saw.
#[pyclass(name = "DenseEmbedding", module = "tessera", frozen)]
pub struct PyDenseEmbedding {
    embedding: Py<PyArray1<f32>>,
    values: Vec<f32>,
    text: Option<String>,
    tokens: Option<Vec<String>>,
    truncated: bool,
}

impl PyDenseEmbedding {
    pub fn wrap(
        py: Python<'_>,
        values: Vec<f32>,
        text: Option<String>,
        tokens: Option<Vec<String>>,
        truncated: bool,
    ) -> Self {
        let array = PyArray1::from_vec(py, values.clone());
        array.readwrite().make_nonwriteable();
        PyDenseEmbedding {
            embedding: array.unbind(),
            values,
            text,
            tokens,
            truncated,
        }
    }
}

#[pymethods]
impl PyDenseEmbedding {
    #[new]
    #[pyo3(signature = (embedding, text=None, tokens=None, truncated=false))]
    fn new(
        py: Python<'_>,
        embedding: PyReadonlyArray1<'_, f32>,
        text: Option<String>,
        tokens: Option<Vec<String>>,
        truncated: bool,
    ) -> Self {
        Self::wrap(py, embedding.as_array().to_vec(), text, tokens, truncated)
    }

    /// How many tokens the model read (special tokens included); None when unknown.
    #[getter]
    fn num_tokens(&self) -> Option<usize> {
        self.tokens.as_ref().map(Vec::len)
    }

    /// The text had more tokens than the model reads and was cut.
    #[getter]
    fn truncated(&self) -> bool {
        self.truncated
    }

    /// The vector, `(dim,)` float32.
    #[getter]
    fn embedding<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        self.embedding.bind(py).clone()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.values.len()
    }

    #[getter]
    fn text(&self) -> Option<String> {
        self.text.clone()
    }

    #[getter]
    fn tokens(&self) -> Option<Vec<String>> {
        self.tokens.clone()
    }

    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        array_protocol(self.embedding.bind(py).as_any(), dtype, copy)
    }

    fn __len__(&self) -> usize {
        self.values.len()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyDenseEmbedding>()
            .is_ok_and(|o| o.get().values == self.values && o.get().text == self.text)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let this = slf.get();
        let args = (
            this.embedding.bind(py).clone(),
            this.text.clone(),
            this.tokens.clone(),
            this.truncated,
        )
            .into_pyobject(py)?
            .into_any();
        Ok((slf.get_type().into_any(), args))
    }

    /// A card for notebooks: the text, its size and norm, the first values.
    fn _repr_html_(&self) -> String {
        let norm = self.values.iter().map(|v| v * v).sum::<f32>().sqrt();
        let head: Vec<String> = self
            .values
            .iter()
            .take(8)
            .map(|v| format!("{v:.4}"))
            .collect();
        html_card(
            "DenseEmbedding",
            &[
                ("text", self.text.clone().unwrap_or_default()),
                ("dim", self.values.len().to_string()),
                ("norm", format!("{norm:.4}")),
                ("values", format!("[{}, ...]", head.join(", "))),
            ],
        )
    }

    fn __repr__(&self) -> String {
        let preview = match &self.text {
            Some(t) => str_repr(&t.chars().take(40).collect::<String>()),
            None => "None".into(),
        };
        format!("DenseEmbedding(dim={}, text={preview})", self.values.len())
    }
}

/// One series' forecast: the median path and the quantile paths around it.
#[pyclass(name = "Forecast", module = "tessera", frozen)]
pub struct PyForecast {
    median: Py<PyArray1<f32>>,
    quantiles: Py<PyArray2<f32>>,
    quantile_levels: Vec<f32>,
}

impl PyForecast {
    /// `median` is `(horizon,)`; `quantiles` is `(horizon, levels)` row-major.
    pub fn wrap(
        py: Python<'_>,
        median: Vec<f32>,
        quantiles: Vec<f32>,
        quantile_levels: Vec<f32>,
    ) -> PyResult<Self> {
        let horizon = median.len();
        let median = PyArray1::from_vec(py, median);
        median.readwrite().make_nonwriteable();
        let quantiles = Array2::from_shape_vec((horizon, quantile_levels.len()), quantiles)
            .map_err(|e| PyRuntimeError::new_err(format!("internal shape error: {e}")))?
            .into_pyarray(py);
        quantiles.readwrite().make_nonwriteable();
        Ok(PyForecast {
            median: median.unbind(),
            quantiles: quantiles.unbind(),
            quantile_levels,
        })
    }
}

#[pymethods]
impl PyForecast {
    #[new]
    fn new(
        py: Python<'_>,
        median: PyReadonlyArray1<'_, f32>,
        quantiles: PyReadonlyArray2<'_, f32>,
        quantile_levels: Vec<f32>,
    ) -> PyResult<Self> {
        let horizon = median.len();
        if quantiles.shape() != [horizon, quantile_levels.len()] {
            return Err(PyValueError::new_err(format!(
                "quantiles must be (horizon, levels) = ({horizon}, {}), got {:?}",
                quantile_levels.len(),
                quantiles.shape()
            )));
        }
        let flat = quantiles.as_array().iter().copied().collect();
        Self::wrap(py, median.as_array().to_vec(), flat, quantile_levels)
    }

    /// The median path, `(prediction_length,)` float32: `forecast`'s row for this series.
    #[getter]
    fn median<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        self.median.bind(py).clone()
    }

    /// `(prediction_length, len(quantile_levels))` float32.
    #[getter]
    fn quantiles<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f32>> {
        self.quantiles.bind(py).clone()
    }

    #[getter]
    fn quantile_levels(&self) -> Vec<f32> {
        self.quantile_levels.clone()
    }

    #[getter]
    fn prediction_length(&self, py: Python<'_>) -> usize {
        self.median.bind(py).len()
    }

    /// The median path, so `np.asarray(forecast)` is what `forecast` returns.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        array_protocol(self.median.bind(py).as_any(), dtype, copy)
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.median.bind(py).len()
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<PyForecast>() else {
            return Ok(false);
        };
        let other = other.get();
        Ok(self.quantile_levels == other.quantile_levels
            && self.median.bind(py).readonly().as_slice()?
                == other.median.bind(py).readonly().as_slice()?
            && self.quantiles.bind(py).readonly().as_slice()?
                == other.quantiles.bind(py).readonly().as_slice()?)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let this = slf.get();
        let args = (
            this.median.bind(py).clone(),
            this.quantiles.bind(py).clone(),
            this.quantile_levels.clone(),
        )
            .into_pyobject(py)?
            .into_any();
        Ok((slf.get_type().into_any(), args))
    }

    /// A card for notebooks: the horizon, the levels, the first median values.
    fn _repr_html_(&self, py: Python<'_>) -> PyResult<String> {
        let median = self.median.bind(py).readonly();
        let head: Vec<String> = median
            .as_slice()?
            .iter()
            .take(8)
            .map(|v| format!("{v:.4}"))
            .collect();
        Ok(html_card(
            "Forecast",
            &[
                ("prediction_length", median.len().to_string()),
                ("quantile_levels", float_list_repr(&self.quantile_levels)),
                ("median", format!("[{}, ...]", head.join(", "))),
            ],
        ))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Forecast(prediction_length={}, quantile_levels={})",
            self.median.bind(py).len(),
            float_list_repr(&self.quantile_levels)
        )
    }
}
