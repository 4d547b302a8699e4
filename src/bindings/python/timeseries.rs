//! `TesseraTimeSeries` and its builder.

use std::sync::Arc;

use numpy::ndarray::Array3;
use numpy::{
    IntoPyArray, PyArray1, PyArray3, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::repr::str_repr;
use pyo3::types::{PyFloat, PyInt, PyList, PyString, PyTuple};

use super::builders::py_builder;
use super::calls::{async_and_stream_methods, Output};
use super::convert::{detached, matrix_to_numpy, model_arg, type_name, Count};
use super::device::{device_arg, dtype_arg};
use super::outputs::PyForecast;
use crate::paradigms::timeseries::{Forecast, TimeSeriesBuilder, TimeSeriesForecaster};

/// `embed`'s result: encoder embeddings, then each series' `loc` and `scale`.
type Embedded<'py> = (
    Bound<'py, PyArray3<f32>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<f32>>,
);

/// Probabilistic forecasting with Chronos-Bolt.
#[pyclass(name = "TesseraTimeSeries", module = "tessera", frozen)]
pub struct PyTimeSeries {
    inner: Arc<TimeSeriesForecaster>,
    /// The builder's options as JSON, from which a pickled copy reloads the model.
    settings: String,
}

#[pymethods]
impl PyTimeSeries {
    #[new]
    #[pyo3(signature = (model, *, device=None, dtype=None, revision=None, batch_size=None, prediction_length=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the builder's keyword options
    fn new(
        py: Python<'_>,
        model: &Bound<'_, PyAny>,
        device: Option<&Bound<'_, PyAny>>,
        dtype: Option<&str>,
        revision: Option<String>,
        batch_size: Option<Count>,
        prediction_length: Option<Count>,
    ) -> PyResult<Self> {
        let batch_size = batch_size.map(Count::get);
        let prediction_length = prediction_length.map(Count::get);
        let mut builder = TimeSeriesBuilder::new()
            .model(model_arg(model)?)
            .device(device_arg(device)?)
            .dtype(dtype_arg(dtype)?);
        if let Some(v) = revision {
            builder = builder.revision(v);
        }
        if let Some(v) = batch_size {
            builder = builder.batch_size(v);
        }
        if let Some(v) = horizon_arg(prediction_length)? {
            builder = builder.prediction_length(v);
        }
        Self::from_builder(py, builder)
    }

    #[staticmethod]
    fn builder() -> PyTimeSeriesBuilder {
        PyTimeSeriesBuilder::fresh()
    }

    /// The median forecast, `(batch, horizon)`. `context` is a 1-D array (one series), a
    /// 2-D array `(batch, length)` or a list of 1-D arrays; NaN marks missing values.
    /// `output="object"` gives a list of `Forecast`, one per series, with the quantiles too.
    #[pyo3(signature = (context, prediction_length=None, *, output="array", show_progress=false))]
    fn forecast<'py>(
        &self,
        py: Python<'py>,
        context: &Bound<'py, PyAny>,
        prediction_length: Option<Count>,
        output: &str,
        show_progress: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        if Output::is_object(output)? {
            let forecast =
                self.run_quantiles(py, context, prediction_length, None, show_progress)?;
            return forecast_objects(py, forecast);
        }
        let prediction_length = prediction_length.map(Count::get);
        let prediction_length = horizon_arg(prediction_length)?;
        let series = series_arg(context)?;
        let model = Arc::clone(&self.inner);
        let matrix = detached(py, move || {
            model.forecast_with(&series, prediction_length, show_progress)
        })?;
        Ok(matrix_to_numpy(py, matrix)?.into_any())
    }

    /// Quantile forecasts, `(batch, horizon, num_quantiles)`, at the model's levels or at
    /// `quantile_levels` (interpolated as the reference does). `output="object"` gives a
    /// list of `Forecast`, one per series.
    #[pyo3(signature = (context, prediction_length=None, quantile_levels=None, *, output="array", show_progress=false))]
    fn forecast_quantiles<'py>(
        &self,
        py: Python<'py>,
        context: &Bound<'py, PyAny>,
        prediction_length: Option<Count>,
        quantile_levels: Option<&Bound<'_, PyAny>>,
        output: &str,
        show_progress: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let object = Output::is_object(output)?;
        let forecast = self.run_quantiles(
            py,
            context,
            prediction_length,
            quantile_levels,
            show_progress,
        )?;
        if object {
            return forecast_objects(py, forecast);
        }
        let [batch, horizon, levels] = forecast.shape;
        let array = Array3::from_shape_vec((batch, horizon, levels), forecast.values)
            .map_err(|e| PyRuntimeError::new_err(format!("internal shape error: {e}")))?;
        Ok(array.into_pyarray(py).into_any())
    }

    /// Encoder embeddings `(batch, patches + [REG], d_model)` and each series' instance-norm
    /// `loc` and `scale`, as chronos-forecasting's `embed`.
    #[pyo3(signature = (context))]
    fn embed<'py>(&self, py: Python<'py>, context: &Bound<'py, PyAny>) -> PyResult<Embedded<'py>> {
        let series = series_arg(context)?;
        let model = Arc::clone(&self.inner);
        let embedded = detached(py, move || model.embed(&series))?;
        let [batch, rows, width] = embedded.shape;
        let array = Array3::from_shape_vec((batch, rows, width), embedded.values)
            .map_err(|e| PyRuntimeError::new_err(format!("internal shape error: {e}")))?;
        Ok((
            array.into_pyarray(py),
            PyArray1::from_vec(py, embedded.loc),
            PyArray1::from_vec(py, embedded.scale),
        ))
    }

    /// The default forecast horizon.
    fn prediction_length(&self) -> usize {
        self.inner.prediction_length()
    }

    /// The most recent values the model looks at.
    fn context_length(&self) -> usize {
        self.inner.context_length()
    }

    /// The shared name of `context_length()`: the longest input the model reads.
    fn max_length(&self) -> usize {
        self.inner.context_length()
    }

    /// The shared name of `embed`: encoder embeddings, `loc` and `scale` of the series.
    #[pyo3(signature = (context))]
    fn encode<'py>(&self, py: Python<'py>, context: &Bound<'py, PyAny>) -> PyResult<Embedded<'py>> {
        self.embed(py, context)
    }

    /// The quantile levels the model predicts.
    fn quantiles(&self) -> Vec<f32> {
        self.inner.quantiles()
    }

    fn model(&self) -> String {
        self.inner.model().to_string()
    }

    /// Pickles as the options it was built with: unpickling loads the model again
    /// (from the cache, or the hub), so embedders travel to worker processes.
    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, (&'static str, String))> {
        let restore = py.import("tessera._tessera")?.getattr("_restore")?;
        Ok((restore, ("timeseries", self.settings.clone())))
    }

    fn __repr__(&self) -> String {
        format!(
            "TesseraTimeSeries(model={}, context_length={}, prediction_length={}, quantiles={})",
            str_repr(self.inner.model()),
            self.inner.context_length(),
            self.inner.prediction_length(),
            self.inner.quantiles().len()
        )
    }
}

impl PyTimeSeries {
    fn run_quantiles(
        &self,
        py: Python<'_>,
        context: &Bound<'_, PyAny>,
        prediction_length: Option<Count>,
        quantile_levels: Option<&Bound<'_, PyAny>>,
        show_progress: bool,
    ) -> PyResult<Forecast> {
        let prediction_length = prediction_length.map(Count::get);
        let levels = quantile_levels.map(levels_arg).transpose()?;
        let prediction_length = horizon_arg(prediction_length)?;
        let series = series_arg(context)?;
        let model = Arc::clone(&self.inner);
        detached(py, move || {
            model.forecast_quantiles_with(
                &series,
                prediction_length,
                levels.as_deref(),
                show_progress,
            )
        })
    }

    pub fn from_builder(py: Python<'_>, builder: TimeSeriesBuilder) -> PyResult<Self> {
        let settings = builder.to_json()?;
        let inner = detached(py, move || builder.build())?;
        Ok(PyTimeSeries {
            inner: Arc::new(inner),
            settings,
        })
    }
}

/// One `Forecast` per series, from a single run of the model.
fn forecast_objects(py: Python<'_>, forecast: Forecast) -> PyResult<Bound<'_, PyAny>> {
    let [batch, horizon, levels] = forecast.shape;
    let list = PyList::empty(py);
    for series in 0..batch {
        let median = forecast.median.data[series * horizon..(series + 1) * horizon].to_vec();
        let span = horizon * levels;
        let quantiles = forecast.values[series * span..(series + 1) * span].to_vec();
        list.append(PyForecast::wrap(
            py,
            median,
            quantiles,
            forecast.quantile_levels.clone(),
        )?)?;
    }
    Ok(list.into_any())
}

/// A `prediction_length` argument: positive, or a ConfigError saying so.
fn horizon_arg(value: Option<usize>) -> PyResult<Option<usize>> {
    match value {
        Some(0) => Err(crate::error::TesseraError::Config(
            "prediction_length must be at least 1, got 0".into(),
        )
        .into()),
        other => Ok(other),
    }
}

/// `quantile_levels`: a sequence of numbers (a `str` is refused, not iterated).
fn levels_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    if value.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "quantile_levels must be a sequence of floats in (0, 1), not str",
        ));
    }
    value.extract::<Vec<f32>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "quantile_levels must be a sequence of floats in (0, 1), not {}",
            type_name(value)
        ))
    })
}

/// Series from a 1-D array, a 2-D array or a list of 1-D arrays, as float32 (float64 is
/// rounded to float32 first, as the reference does).
fn series_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<f32>>> {
    let is_list = value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>();
    if is_list {
        let items: Vec<Bound<'_, PyAny>> = value.try_iter()?.collect::<PyResult<_>>()?;
        if items.is_empty() {
            return Err(PyValueError::new_err(
                "context is empty: give at least one series",
            ));
        }
        let is_number =
            |i: &Bound<'_, PyAny>| i.is_instance_of::<PyFloat>() || i.is_instance_of::<PyInt>();
        let numbers = items.iter().filter(|i| is_number(i)).count();
        if numbers > 0 && numbers < items.len() {
            if let Some((i, item)) = items.iter().enumerate().find(|(_, i)| !is_number(i)) {
                return Err(PyTypeError::new_err(format!(
                    "context[{i}] is {}, but a series is a list of numbers only (a batch is a \
                     list of series)",
                    type_name(item)
                )));
            }
        }
        if numbers == 0 {
            return items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let array = numeric_array(item, &format!("context[{i}]"))?;
                    if array.ndim() != 1 {
                        return Err(PyValueError::new_err(format!(
                            "context[{i}] must be 1-D, got {} dimensions",
                            array.ndim()
                        )));
                    }
                    rows_of(&array).map(|mut rows| rows.remove(0))
                })
                .collect();
        }
    }
    let array = numeric_array(value, "context")?;
    match array.ndim() {
        1 | 2 => rows_of(&array),
        n => Err(PyValueError::new_err(format!(
            "context must be a 1-D series or a 2-D (batch, length) array, got {n} dimensions"
        ))),
    }
}

/// `numpy.asarray(value)` if it holds real numbers; a TypeError naming the dtype otherwise.
fn numeric_array<'py>(
    value: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let numpy = value.py().import("numpy")?;
    let array = numpy
        .call_method1("asarray", (value,))
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{name} must be a numeric array, not {}",
                type_name(value)
            ))
        })?
        .cast_into::<PyUntypedArray>()?;
    let kind = array.dtype().kind();
    if !matches!(kind, b'f' | b'i' | b'u') {
        return Err(PyTypeError::new_err(format!(
            "{name} must hold float32 or float64 numbers, not dtype {}",
            array.dtype()
        )));
    }
    Ok(array)
}

fn rows_of(array: &Bound<'_, PyUntypedArray>) -> PyResult<Vec<Vec<f32>>> {
    // float32 is read as is; float64 and integers are rounded to float32.
    let as_f32 = array.call_method1("astype", ("float32",))?;
    let typed = as_f32.cast_into::<numpy::PyArrayDyn<f32>>()?;
    let readonly = typed.readonly();
    let view = readonly.as_array();
    match view.ndim() {
        1 => Ok(vec![view.iter().copied().collect()]),
        _ => Ok(view
            .outer_iter()
            .map(|row| row.iter().copied().collect())
            .collect()),
    }
}

py_builder!("TesseraTimeSeriesBuilder", PyTimeSeriesBuilder, TimeSeriesBuilder, PyTimeSeries, {
    prediction_length: Count => Count::get,
});

async_and_stream_methods!(PyTimeSeries, merge = false,
    async { aforecast => "forecast", aforecast_quantiles => "forecast_quantiles", aencode => "encode" },
    stream { forecast_stream => "forecast", encode_stream => "encode" });
