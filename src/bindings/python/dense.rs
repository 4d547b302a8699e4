//! `TesseraDense` and its builder.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use super::builders::py_builder;
use super::convert::{
    detached, matrix_to_numpy, model_arg, output_is_object, text_arg, texts_arg, vector_arg,
    vector_to_numpy, Count,
};
use super::device::{device_arg, dtype_arg};
use super::outputs::PyDenseEmbedding;
use crate::paradigms::common::EncodeOptions;
use crate::paradigms::dense::{DenseBuilder, DenseEmbedder};
use crate::similarity::cosine;

/// Dense text embeddings: one vector per text.
#[pyclass(name = "TesseraDense", module = "tessera", frozen)]
pub struct PyDense {
    inner: Arc<DenseEmbedder>,
}

#[pymethods]
impl PyDense {
    #[new]
    #[pyo3(signature = (model, *, device=None, dtype=None, revision=None, max_length=None, batch_size=None, dimension=None, normalize=None, query_prefix=None, document_prefix=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the builder's keyword options
    fn new(
        py: Python<'_>,
        model: &Bound<'_, PyAny>,
        device: Option<&Bound<'_, PyAny>>,
        dtype: Option<&str>,
        revision: Option<String>,
        max_length: Option<Count>,
        batch_size: Option<Count>,
        dimension: Option<Count>,
        normalize: Option<bool>,
        query_prefix: Option<String>,
        document_prefix: Option<String>,
    ) -> PyResult<Self> {
        let max_length = max_length.map(Count::get);
        let batch_size = batch_size.map(Count::get);
        let dimension = dimension.map(Count::get);
        let mut builder = DenseBuilder::new()
            .model(model_arg(model)?)
            .device(device_arg(device)?)
            .dtype(dtype_arg(dtype)?);
        if let Some(v) = revision {
            builder = builder.revision(v);
        }
        if let Some(v) = max_length {
            builder = builder.max_length(v);
        }
        if let Some(v) = batch_size {
            builder = builder.batch_size(v);
        }
        if let Some(v) = dimension {
            builder = builder.dimension(v);
        }
        if let Some(v) = normalize {
            builder = builder.normalize(v);
        }
        if let Some(v) = query_prefix {
            builder = builder.query_prefix(v);
        }
        if let Some(v) = document_prefix {
            builder = builder.document_prefix(v);
        }
        Self::from_builder(py, builder)
    }

    /// A builder to configure the model step by step.
    #[staticmethod]
    fn builder() -> PyDenseBuilder {
        PyDenseBuilder::fresh()
    }

    /// Embeds one text: an array of shape `(dim,)`, or a `DenseEmbedding` with the text
    /// and its tokens when `output="object"`.
    #[pyo3(signature = (text, *, output="array"))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        output: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let objects = output_is_object(output)?;
        let text = text_arg(text, "text")?;
        let model = Arc::clone(&self.inner);
        let vector = detached(py, {
            let text = text.clone();
            move || model.encode(&text)
        })?;
        if objects {
            let tokens = self.inner.token_strings(&text)?;
            Ok(Bound::new(
                py,
                PyDenseEmbedding::wrap(py, vector, Some(text), Some(tokens)),
            )?
            .into_any())
        } else {
            Ok(vector_to_numpy(py, vector).into_any())
        }
    }

    /// Embeds many texts: an array of shape `(n, dim)` (rows in input order), or a list
    /// of `DenseEmbedding` when `output="object"`.
    #[pyo3(signature = (texts, *, batch_size=None, show_progress=false, output="array"))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
        output: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let batch_size = batch_size.map(Count::get);
        let objects = output_is_object(output)?;
        let texts = texts_arg(texts, "texts")?;
        let options = EncodeOptions {
            batch_size,
            show_progress,
        };
        let model = Arc::clone(&self.inner);
        let (matrix, texts) = detached(py, move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.encode_batch(&refs, &options).map(|m| (m, texts))
        })?;
        if !objects {
            return Ok(matrix_to_numpy(py, matrix)?.into_any());
        }
        let list = PyList::empty(py);
        for (row, text) in matrix.iter_rows().zip(texts) {
            let tokens = self.inner.token_strings(&text)?;
            list.append(PyDenseEmbedding::wrap(
                py,
                row.to_vec(),
                Some(text),
                Some(tokens),
            ))?;
        }
        Ok(list.into_any())
    }

    /// Embeds query text(s) with the model's query prefix: `(dim,)` for a str,
    /// `(n, dim)` for a sequence.
    #[pyo3(signature = (text, *, batch_size=None, show_progress=false))]
    fn encode_query<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let batch_size = batch_size.map(Count::get);
        self.encode_with_prefix(py, text, batch_size, show_progress, true)
    }

    /// Embeds document text(s) with the model's document prefix.
    #[pyo3(signature = (text, *, batch_size=None, show_progress=false))]
    fn encode_document<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let batch_size = batch_size.map(Count::get);
        self.encode_with_prefix(py, text, batch_size, show_progress, false)
    }

    /// Cosine similarity of two texts or two vectors.
    #[pyo3(signature = (a, b))]
    fn similarity(
        &self,
        py: Python<'_>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
    ) -> PyResult<f32> {
        let (a, b) = (self.vector_of(py, a, "a")?, self.vector_of(py, b, "b")?);
        Ok(cosine(&a, &b)?)
    }

    /// Length of the output vectors.
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    /// The model id this embedder was built from.
    fn model(&self) -> String {
        self.inner.model().to_string()
    }

    /// Truncation length in tokens.
    fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    /// Token ids of a text as the model sees it.
    #[pyo3(signature = (text))]
    fn tokenize(&self, text: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        let text = text_arg(text, "text")?;
        let mut ids = self.inner.tokenize(&[text.as_str()])?;
        Ok(ids.pop().unwrap_or_default())
    }

    fn __repr__(&self) -> String {
        format!(
            "TesseraDense(model={:?}, dimension={}, pooling={:?}, normalize={}, device={:?})",
            self.inner.model(),
            self.inner.dimension(),
            self.inner.pooling(),
            self.inner.normalizes(),
            self.inner.device().location()
        )
    }
}

impl PyDense {
    pub fn from_builder(py: Python<'_>, builder: DenseBuilder) -> PyResult<Self> {
        let inner = detached(py, move || builder.build())?;
        Ok(PyDense {
            inner: Arc::new(inner),
        })
    }

    fn vector_of(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        name: &str,
    ) -> PyResult<Vec<f32>> {
        if value.is_instance_of::<PyString>() {
            let text = text_arg(value, name)?;
            let model = Arc::clone(&self.inner);
            detached(py, move || model.encode(&text))
        } else {
            vector_arg(value, name)
        }
    }

    fn encode_with_prefix<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        batch_size: Option<usize>,
        show_progress: bool,
        query: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let single = text.is_instance_of::<PyString>();
        let texts = if single {
            vec![text_arg(text, "text")?]
        } else {
            texts_arg(text, "texts")?
        };
        let options = EncodeOptions {
            batch_size,
            show_progress,
        };
        let model = Arc::clone(&self.inner);
        let matrix = detached(py, move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            if query {
                model.encode_queries(&refs, &options)
            } else {
                model.encode_documents(&refs, &options)
            }
        })?;
        if single {
            Ok(vector_to_numpy(py, matrix.data).into_any())
        } else {
            Ok(matrix_to_numpy(py, matrix)?.into_any())
        }
    }
}

py_builder!("TesseraDenseBuilder", PyDenseBuilder, DenseBuilder, PyDense, {
    max_length: Count => Count::get,
    dimension: Count => Count::get,
    normalize: bool,
    query_prefix: String,
    document_prefix: String,
});
