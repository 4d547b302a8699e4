//! The `tessera._tessera` extension module; `python/tessera` re-exports it.

use pyo3::prelude::*;

mod builders;
mod calls;
mod convert;
mod dense;
mod device;
mod errors;
mod factory;
mod multivector;
mod outputs;
mod pooling;
mod progress;
mod quantization;
mod ragged;
mod registry;
mod repr;
mod sparse;
mod timeseries;
mod vision;

#[pymodule]
fn _tessera(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    // Load NumPy's C API now: loading it lazily inside a call can meet a pending
    // KeyboardInterrupt, which the numpy crate turns into a panic.
    numpy::PyArray1::<f32>::zeros(m.py(), 0, false);
    m.add_class::<device::PyDevice>()?;
    m.add_class::<dense::PyDense>()?;
    m.add_class::<outputs::PyDenseEmbedding>()?;
    m.add_class::<dense::PyDenseBuilder>()?;
    m.add_class::<sparse::PySparse>()?;
    m.add_class::<sparse::PySparseBuilder>()?;
    m.add_class::<sparse::PySparseEmbedding>()?;
    m.add_class::<timeseries::PyTimeSeries>()?;
    m.add_class::<outputs::PyForecast>()?;
    m.add_class::<timeseries::PyTimeSeriesBuilder>()?;
    m.add_class::<multivector::PyMultiVector>()?;
    m.add_class::<multivector::PyMultiVectorBuilder>()?;
    m.add_class::<multivector::PyTokenEmbeddings>()?;
    m.add_class::<ragged::PyRaggedEmbeddings>()?;
    m.add_class::<quantization::PyQuantizationConfig>()?;
    m.add_class::<quantization::PyQuantizedEmbeddings>()?;
    m.add_function(wrap_pyfunction!(quantization::quantize, m)?)?;
    m.add_function(wrap_pyfunction!(quantization::quantize_embeddings, m)?)?;
    m.add_function(wrap_pyfunction!(pooling::pool_embeddings, m)?)?;
    m.add_class::<vision::PyVision>()?;
    m.add_class::<vision::PyVisionBuilder>()?;
    m.add_class::<vision::PyVisionEmbedding>()?;
    m.add_function(wrap_pyfunction!(registry::list_models, m)?)?;
    m.add_function(wrap_pyfunction!(factory::tessera_factory, m)?)?;
    m.add_function(wrap_pyfunction!(factory::restore, m)?)?;
    m.add_function(wrap_pyfunction!(device::available_devices, m)?)?;
    Ok(())
}
