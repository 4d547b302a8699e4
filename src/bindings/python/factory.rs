//! `Tessera(model, **options)`: the embedder of the model's paradigm.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::convert::{detached, model_arg};
use super::dense::PyDense;
use super::multivector::PyMultiVector;
use super::sparse::PySparse;
use super::timeseries::PyTimeSeries;
use super::vision::PyVision;
use crate::detect;
use crate::hub::{self, HubOptions};
use crate::paradigms::dense::DenseBuilder;
use crate::paradigms::multivector::MultiVectorBuilder;
use crate::paradigms::sparse::SparseBuilder;
use crate::paradigms::timeseries::TimeSeriesBuilder;
use crate::paradigms::vision::VisionBuilder;
use crate::registry::Paradigm;

/// Returns a `TesseraDense`, `TesseraMultiVector`, `TesseraSparse`, `TesseraVision` or
/// `TesseraTimeSeries` for `model`, forwarding keyword options to its constructor.
#[pyfunction]
#[pyo3(name = "Tessera", signature = (model, **options))]
pub fn tessera_factory<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let name = model_arg(model)?;
    let mut hub_options = HubOptions::from_env();
    if let Some(revision) = options.and_then(|o| o.get_item("revision").ok().flatten()) {
        if !revision.is_none() {
            hub_options.revision = Some(revision.extract()?);
        }
    }
    let paradigm = detached(py, move || {
        let source = hub::resolve(&name, &hub_options)?;
        detect::paradigm_of(&source)
    })?;
    let class = match paradigm {
        Paradigm::Dense => py.get_type::<PyDense>(),
        Paradigm::Sparse => py.get_type::<PySparse>(),
        Paradigm::Multivector => py.get_type::<PyMultiVector>(),
        Paradigm::Timeseries => py.get_type::<PyTimeSeries>(),
        Paradigm::Vision => py.get_type::<PyVision>(),
    };
    class.call(PyTuple::new(py, [model])?, options)
}

/// Rebuilds a pickled embedder from its paradigm and saved options (see the embedders'
/// `__reduce__`): the model loads again where it is unpickled.
#[pyfunction]
#[pyo3(name = "_restore", signature = (paradigm, settings))]
pub fn restore<'py>(
    py: Python<'py>,
    paradigm: &str,
    settings: &str,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match paradigm {
        "dense" => Bound::new(
            py,
            PyDense::from_builder(py, DenseBuilder::from_json(settings)?)?,
        )?
        .into_any(),
        "sparse" => Bound::new(
            py,
            PySparse::from_builder(py, SparseBuilder::from_json(settings)?)?,
        )?
        .into_any(),
        "multivector" => Bound::new(
            py,
            PyMultiVector::from_builder(py, MultiVectorBuilder::from_json(settings)?)?,
        )?
        .into_any(),
        "timeseries" => Bound::new(
            py,
            PyTimeSeries::from_builder(py, TimeSeriesBuilder::from_json(settings)?)?,
        )?
        .into_any(),
        "vision" => Bound::new(
            py,
            PyVision::from_builder(py, VisionBuilder::from_json(settings)?)?,
        )?
        .into_any(),
        other => {
            return Err(crate::error::TesseraError::Config(format!(
                "cannot restore an embedder of unknown paradigm '{other}'"
            ))
            .into())
        }
    })
}
