//! `TesseraMultiVector` (ColBERT), its builder and `TokenEmbeddings`.

use std::sync::Arc;

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::repr::{device_repr, html_card, str_repr};
use pyo3::types::{PyList, PyString};

use super::builders::py_builder;
use super::calls::{async_and_stream_methods, count_tokens_with, finish, text_options, Output};
use super::convert::{
    array_protocol, detached, matrix_arg, matrix_to_numpy, model_arg, text_arg, texts_arg,
    type_name, Count,
};
use super::device::{device_arg, dtype_arg, QuantizeArg};
use super::pooling::pool_factor_arg;
use super::quantization::{quantization_arg, PyQuantizationConfig, PyQuantizedEmbeddings};
use super::ragged::PyRaggedEmbeddings;
use crate::matrix::Matrix;
use crate::paradigms::common::EncodeOptions;
use crate::paradigms::multivector::{MultiVectorBuilder, MultiVectorEmbedder, TokenEmbeddings};
use crate::pooling::{pool, PoolingStyle};
use crate::quantization::QuantizationConfig;
use rayon::prelude::*;

/// A text's token matrix with the token each row belongs to.
#[pyclass(name = "TokenEmbeddings", module = "tessera", frozen)]
pub struct PyTokenEmbeddings {
    embeddings: Py<PyArray2<f32>>,
    inner: TokenEmbeddings,
}

impl PyTokenEmbeddings {
    pub(crate) fn wrap(py: Python<'_>, inner: TokenEmbeddings) -> PyResult<Self> {
        let array = matrix_to_numpy(py, inner.embeddings.clone())?;
        array.readwrite().make_nonwriteable();
        Ok(PyTokenEmbeddings {
            embeddings: array.unbind(),
            inner,
        })
    }
}

#[pymethods]
impl PyTokenEmbeddings {
    #[new]
    #[pyo3(signature = (embeddings, text=None, tokens=None, token_ids=None, truncated=false))]
    fn new(
        py: Python<'_>,
        embeddings: &Bound<'_, PyAny>,
        text: Option<String>,
        tokens: Option<Vec<String>>,
        token_ids: Option<Vec<u32>>,
        truncated: bool,
    ) -> PyResult<Self> {
        let embeddings = matrix_arg(embeddings, "embeddings")?;
        let rows = embeddings.rows;
        let tokens = tokens.unwrap_or_default();
        let token_ids = token_ids.unwrap_or_default();
        for (name, len) in [("tokens", tokens.len()), ("token_ids", token_ids.len())] {
            if len != 0 && len != rows {
                return Err(PyValueError::new_err(format!(
                    "{name} has {len} entries for {rows} rows"
                )));
            }
        }
        Self::wrap(
            py,
            TokenEmbeddings {
                text: text.unwrap_or_default(),
                embeddings,
                token_ids,
                tokens,
                truncated,
            },
        )
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let this = slf.get();
        let args = (
            this.embeddings.bind(py).clone(),
            this.inner.text.clone(),
            this.inner.tokens.clone(),
            this.inner.token_ids.clone(),
            this.inner.truncated,
        )
            .into_pyobject(py)?
            .into_any();
        Ok((slf.get_type().into_any(), args))
    }

    /// `(num_tokens, dim)` float32, one row per token.
    #[getter]
    fn embeddings<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f32>> {
        self.embeddings.bind(py).clone()
    }

    #[getter]
    fn text(&self) -> &str {
        &self.inner.text
    }

    /// The token of each row, as stored in the vocabulary.
    #[getter]
    fn tokens(&self) -> Vec<String> {
        self.inner.tokens.clone()
    }

    #[getter]
    fn token_ids(&self) -> Vec<u32> {
        self.inner.token_ids.clone()
    }

    #[getter]
    fn num_tokens(&self) -> usize {
        self.inner.num_tokens()
    }

    /// The text had more tokens than the model reads and was cut.
    #[getter]
    fn truncated(&self) -> bool {
        self.inner.truncated
    }

    #[getter]
    fn embedding_dim(&self) -> usize {
        self.inner.embedding_dim()
    }

    #[getter]
    fn shape(&self) -> (usize, usize) {
        self.inner.shape()
    }

    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        array_protocol(self.embeddings.bind(py).as_any(), dtype, copy)
    }

    fn __len__(&self) -> usize {
        self.inner.num_tokens()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyTokenEmbeddings>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }

    /// A card for notebooks: the text and the tokens that have rows.
    fn _repr_html_(&self) -> String {
        let tokens: Vec<&str> = self
            .inner
            .tokens
            .iter()
            .take(48)
            .map(String::as_str)
            .collect();
        html_card(
            "TokenEmbeddings",
            &[
                ("text", self.inner.text.clone()),
                (
                    "shape",
                    format!(
                        "({}, {})",
                        self.inner.num_tokens(),
                        self.inner.embedding_dim()
                    ),
                ),
                ("tokens", tokens.join(" ")),
            ],
        )
    }

    fn __repr__(&self) -> String {
        let preview: String = self.inner.text.chars().take(40).collect();
        format!(
            "TokenEmbeddings(text={}, num_tokens={}, embedding_dim={})",
            str_repr(&preview),
            self.inner.num_tokens(),
            self.inner.embedding_dim()
        )
    }
}

/// `rank`'s result: document indices and their scores, best first.
type Ranking<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f32>>);

/// Late-interaction (ColBERT) embeddings: one vector per token, scored with MaxSim.
#[pyclass(name = "TesseraMultiVector", module = "tessera", frozen)]
pub struct PyMultiVector {
    inner: Arc<MultiVectorEmbedder>,
    /// The builder's options as JSON, from which a pickled copy reloads the model.
    settings: String,
}

#[pymethods]
impl PyMultiVector {
    #[new]
    #[pyo3(signature = (model, *, device=None, dtype=None, quantize=None, revision=None, max_length=None, query_length=None, batch_size=None, dimension=None, quantization=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the builder's keyword options
    fn new(
        py: Python<'_>,
        model: &Bound<'_, PyAny>,
        device: Option<&Bound<'_, PyAny>>,
        dtype: Option<&str>,
        quantize: Option<QuantizeArg>,
        revision: Option<String>,
        max_length: Option<Count>,
        query_length: Option<Count>,
        batch_size: Option<Count>,
        dimension: Option<Count>,
        quantization: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let max_length = max_length.map(Count::get);
        let query_length = query_length.map(Count::get);
        let batch_size = batch_size.map(Count::get);
        let dimension = dimension.map(Count::get);
        let mut builder = MultiVectorBuilder::new()
            .model(model_arg(model)?)
            .device(device_arg(device)?)
            .dtype(dtype_arg(dtype)?);
        if let Some(v) = quantize {
            builder = builder.quantize(v.get());
        }
        if let Some(v) = revision {
            builder = builder.revision(v);
        }
        if let Some(v) = max_length {
            builder = builder.max_length(v);
        }
        if let Some(v) = query_length {
            builder = builder.query_length(v);
        }
        if let Some(v) = batch_size {
            builder = builder.batch_size(v);
        }
        if let Some(v) = dimension {
            builder = builder.dimension(v);
        }
        if let Some(q) = quantization.filter(|q| !q.is_none()) {
            builder = builder.quantization(quantization_arg(q)?);
        }
        Self::from_builder(py, builder)
    }

    #[staticmethod]
    fn builder() -> PyMultiVectorBuilder {
        PyMultiVectorBuilder::fresh()
    }

    /// A document's token matrix `(num_tokens, dim)`, or a list for a list of texts;
    /// `output="object"` gives `TokenEmbeddings` with the token strings, and for a list
    /// `output="flat"` gives one `RaggedEmbeddings`.
    #[pyo3(signature = (text, *, output="array", is_query=false, batch_size=None, show_progress=false, show_progress_bar=None, on_truncation="ignore", pool_factor=None, protected_tokens=Count(1)), text_signature = "(self, /, text, *, output='array', is_query=False, batch_size=None, show_progress=False, show_progress_bar=None, on_truncation='ignore', pool_factor=None, protected_tokens=1)")]
    #[allow(clippy::too_many_arguments)] // PyLate's keywords beside the shared ones
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        output: &str,
        is_query: bool,
        batch_size: Option<Count>,
        show_progress: bool,
        show_progress_bar: Option<bool>,
        on_truncation: &str,
        pool_factor: Option<Count>,
        protected_tokens: Count,
    ) -> PyResult<Bound<'py, PyAny>> {
        let show = show_progress || show_progress_bar == Some(true);
        let options = text_options(batch_size, show, on_truncation)?;
        let side = Side::new(is_query, pool_factor, protected_tokens)?;
        self.encode_any(py, text, side, options, output)
    }

    /// A query's token matrix `(query_length, dim)`, expansion rows included (a list for
    /// a list of texts).
    #[pyo3(signature = (text, *, output="array", batch_size=None, show_progress=false, on_truncation="ignore"))]
    fn encode_query<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        output: &str,
        batch_size: Option<Count>,
        show_progress: bool,
        on_truncation: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = text_options(batch_size, show_progress, on_truncation)?;
        self.encode_any(py, text, Side::QUERY, options, output)
    }

    /// A document's token matrix, punctuation rows dropped (a list for a list of texts).
    /// `pool_factor=k` pools its rows as PyLate does (Ward clusters of the tokens after
    /// the first `protected_tokens`, about `n / k` rows left).
    #[pyo3(signature = (text, *, output="array", batch_size=None, show_progress=false, on_truncation="ignore", pool_factor=None, protected_tokens=Count(1)), text_signature = "(self, /, text, *, output='array', batch_size=None, show_progress=False, on_truncation='ignore', pool_factor=None, protected_tokens=1)")]
    #[allow(clippy::too_many_arguments)] // the shared keywords plus PyLate's pooling ones
    fn encode_document<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        output: &str,
        batch_size: Option<Count>,
        show_progress: bool,
        on_truncation: &str,
        pool_factor: Option<Count>,
        protected_tokens: Count,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = text_options(batch_size, show_progress, on_truncation)?;
        let side = Side::new(false, pool_factor, protected_tokens)?;
        self.encode_any(py, text, side, options, output)
    }

    /// Token matrices of many texts: a list, one `(num_tokens, dim)` array per text
    /// (`TokenEmbeddings` with `output="object"`, one `RaggedEmbeddings` with
    /// `output="flat"`).
    #[pyo3(signature = (texts, is_query=false, *, batch_size=None, show_progress=false, output="array", on_truncation="ignore", pool_factor=None, protected_tokens=Count(1)), text_signature = "(self, /, texts, is_query=False, *, batch_size=None, show_progress=False, output='array', on_truncation='ignore', pool_factor=None, protected_tokens=1)")]
    #[allow(clippy::too_many_arguments)] // the shared keywords plus PyLate's
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        is_query: bool,
        batch_size: Option<Count>,
        show_progress: bool,
        output: &str,
        on_truncation: &str,
        pool_factor: Option<Count>,
        protected_tokens: Count,
    ) -> PyResult<Bound<'py, PyAny>> {
        let output = Output::parse(output, true)?;
        let options = text_options(batch_size, show_progress, on_truncation)?;
        let side = Side::new(is_query, pool_factor, protected_tokens)?;
        self.encode_many(py, texts, side, options, output)
    }

    /// Tokens of each whole text as the model would read it with no length limit (its
    /// marker included): more than `max_length()` means `encode` cuts it.
    #[pyo3(signature = (texts))]
    fn count_tokens<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let model = Arc::clone(&self.inner);
        count_tokens_with(py, texts, move |refs| model.count_tokens(refs))
    }

    /// MaxSim: for each query row the best dot product over document rows, summed.
    /// Arguments are token matrices, `TokenEmbeddings`, or texts (encoded as a query and a
    /// document respectively).
    #[pyo3(signature = (query, document))]
    fn similarity(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        document: &Bound<'_, PyAny>,
    ) -> PyResult<f32> {
        let q = self.matrix_of(py, query, true, "query")?;
        let d = self.matrix_of(py, document, false, "document")?;
        Ok(self.inner.similarity(&q, &d)?)
    }

    /// MaxSim scores `(len(queries), len(documents))`, computed in parallel in Rust.
    #[pyo3(signature = (queries, documents))]
    fn similarity_matrix<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let queries = self.matrices_of(py, queries, true, "queries")?;
        let documents = self.matrices_of(py, documents, false, "documents")?;
        let model = Arc::clone(&self.inner);
        let scores = detached(py, move || model.similarity_matrix(&queries, &documents))?;
        matrix_to_numpy(py, scores)
    }

    /// The `top_k` best documents for a query: `(indices, scores)`, best first.
    #[pyo3(signature = (query, documents, top_k=Count(10)), text_signature = "(self, /, query, documents, top_k=10)")]
    fn rank<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
        top_k: Count,
    ) -> PyResult<Ranking<'py>> {
        let top_k = top_k.get();
        let query = self.matrix_of(py, query, true, "query")?;
        let documents = self.matrices_of(py, documents, false, "documents")?;
        let model = Arc::clone(&self.inner);
        let ranked = detached(py, move || model.rank(&query, &documents, top_k))?;
        let (indices, scores): (Vec<i64>, Vec<f32>) =
            ranked.into_iter().map(|(i, s)| (i as i64, s)).unzip();
        Ok((
            PyArray1::from_vec(py, indices),
            PyArray1::from_vec(py, scores),
        ))
    }

    /// Quantizes a token matrix with this model's quantization (binary if none is set).
    #[pyo3(signature = (embeddings))]
    fn quantize(
        &self,
        py: Python<'_>,
        embeddings: &Bound<'_, PyAny>,
    ) -> PyResult<PyQuantizedEmbeddings> {
        let matrix = matrix_arg(embeddings, "embeddings")?;
        PyQuantizedEmbeddings::wrap(py, self.inner.quantize(&matrix)?)
    }

    /// Encodes and quantizes one text.
    #[pyo3(signature = (text, is_query=false))]
    fn encode_quantized(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        is_query: bool,
    ) -> PyResult<PyQuantizedEmbeddings> {
        let text = text_arg(text, "text")?;
        let model = Arc::clone(&self.inner);
        let quantized = detached(py, move || model.encode_quantized(&text, is_query))?;
        PyQuantizedEmbeddings::wrap(py, quantized)
    }

    /// MaxSim between quantized matrices (`1 - 2 * hamming / dim` per pair for binary).
    #[pyo3(signature = (query, document))]
    fn similarity_quantized(
        &self,
        query: &PyQuantizedEmbeddings,
        document: &PyQuantizedEmbeddings,
    ) -> PyResult<f32> {
        Ok(self
            .inner
            .similarity_quantized(&query.inner, &document.inner)?)
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn model(&self) -> String {
        self.inner.model().to_string()
    }

    /// Tokens per query (expansion included).
    fn query_length(&self) -> usize {
        self.inner.query_length()
    }

    /// Most tokens per document.
    fn document_length(&self) -> usize {
        self.inner.document_length()
    }

    /// sentence-transformers' name for `dimension()` (the width of every token row).
    fn get_sentence_embedding_dimension(&self) -> usize {
        self.inner.dimension()
    }

    /// The most tokens a document keeps (the shared name of `document_length()`).
    fn max_length(&self) -> usize {
        self.inner.document_length()
    }

    fn quantization(&self) -> PyQuantizationConfig {
        PyQuantizationConfig {
            inner: self.inner.quantization(),
        }
    }

    /// Pickles as the options it was built with: unpickling loads the model again
    /// (from the cache, or the hub), so embedders travel to worker processes.
    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, (&'static str, String))> {
        let restore = py.import("tessera._tessera")?.getattr("_restore")?;
        Ok((restore, ("multivector", self.settings.clone())))
    }

    fn __repr__(&self) -> String {
        format!(
            "TesseraMultiVector(model={}, dimension={}, query_length={}, document_length={}, quantization={}, device={})",
            str_repr(self.inner.model()),
            self.inner.dimension(),
            self.inner.query_length(),
            self.inner.document_length(),
            str_repr(self.inner.quantization().as_str()),
            device_repr(self.inner.device())
        )
    }
}

impl PyMultiVector {
    pub fn from_builder(py: Python<'_>, builder: MultiVectorBuilder) -> PyResult<Self> {
        let settings = builder.to_json()?;
        let inner = detached(py, move || builder.build())?;
        Ok(PyMultiVector {
            inner: Arc::new(inner),
            settings,
        })
    }

    /// One text's matrix (or object), or the batch form for a list of texts.
    fn encode_any<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        side: Side,
        options: EncodeOptions,
        output: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let single = text.is_instance_of::<PyString>();
        let output = Output::parse(output, !single)?;
        if !single {
            return self.encode_many(py, text, side, options, output);
        }
        let one = PyList::new(py, [text])?;
        self.encode_many(py, one.as_any(), side, options, output)?
            .get_item(0)
    }

    fn encode_many<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        side: Side,
        options: EncodeOptions,
        output: Output,
    ) -> PyResult<Bound<'py, PyAny>> {
        let texts = texts_arg(texts, "texts")?;
        let model = Arc::clone(&self.inner);
        let call = options.clone();
        let encoded = detached(py, move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let mut encoded = model.encode_batch_with_tokens(&refs, side.is_query, &call)?;
            if let Some((pool_factor, style)) = side.pooling {
                encoded.par_iter_mut().try_for_each(|item| {
                    item.embeddings = pool(&item.embeddings, pool_factor, style)?;
                    // Rows are clusters now, not tokens.
                    item.tokens.clear();
                    item.token_ids.clear();
                    Ok::<_, crate::error::TesseraError>(())
                })?;
            }
            Ok(encoded)
        })?;
        finish(py, &options)?;
        if matches!(output, Output::Flat | Output::Arrow) {
            let matrices = encoded.into_iter().map(|item| item.embeddings).collect();
            let flat = PyRaggedEmbeddings::from_matrices(py, matrices, self.inner.dimension())?;
            let flat = Bound::new(py, flat)?;
            return if output == Output::Arrow {
                flat.call_method0("to_arrow")
            } else {
                Ok(flat.into_any())
            };
        }
        let list = PyList::empty(py);
        for item in encoded {
            if output == Output::Object {
                list.append(PyTokenEmbeddings::wrap(py, item)?)?;
            } else {
                list.append(matrix_to_numpy(py, item.embeddings)?)?;
            }
        }
        Ok(list.into_any())
    }

    fn matrix_of(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        is_query: bool,
        name: &str,
    ) -> PyResult<Matrix> {
        if let Ok(tokens) = value.cast::<PyTokenEmbeddings>() {
            return Ok(tokens.get().inner.embeddings.clone());
        }
        if value.is_instance_of::<PyString>() {
            let text = text_arg(value, name)?;
            let model = Arc::clone(&self.inner);
            return detached(py, move || {
                if is_query {
                    model.encode_query(&text)
                } else {
                    model.encode_document(&text)
                }
            });
        }
        let matrix = matrix_arg(value, name)?;
        if matrix.cols != self.inner.dimension() {
            return Err(crate::error::TesseraError::DimensionMismatch {
                expected: self.inner.dimension(),
                actual: matrix.cols,
            }
            .into());
        }
        Ok(matrix)
    }

    fn matrices_of(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        is_query: bool,
        name: &str,
    ) -> PyResult<Vec<Matrix>> {
        if value.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(format!(
                "{name} must be a sequence, not a single str"
            )));
        }
        let items: Vec<Bound<'_, PyAny>> = value
            .try_iter()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "{name} must be a sequence, not {}",
                    type_name(value)
                ))
            })?
            .collect::<PyResult<_>>()?;
        if !items.is_empty() && items.iter().all(|i| i.is_instance_of::<PyString>()) {
            let texts = texts_arg(value, name)?;
            let model = Arc::clone(&self.inner);
            return detached(py, move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                model.encode_batch(&refs, is_query, &EncodeOptions::default())
            });
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.matrix_of(py, item, is_query, &format!("{name}[{i}]")))
            .collect()
    }
}

/// A `quantization` builder argument: `QuantizationConfig` or its name.
pub struct QuantizationSetting(QuantizationConfig);

impl<'a, 'py> FromPyObject<'a, 'py> for QuantizationSetting {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        quantization_arg(&obj).map(QuantizationSetting)
    }
}

fn quantization_setting(value: QuantizationSetting) -> QuantizationConfig {
    value.0
}

/// Which side a call encodes, and how documents are pooled.
#[derive(Debug, Clone, Copy)]
struct Side {
    is_query: bool,
    pooling: Option<(usize, PoolingStyle)>,
}

impl Side {
    const QUERY: Side = Side {
        is_query: true,
        pooling: None,
    };

    fn new(is_query: bool, pool_factor: Option<Count>, protected_tokens: Count) -> PyResult<Self> {
        let pool_factor = pool_factor.map(pool_factor_arg).transpose()?;
        if is_query && pool_factor.is_some_and(|k| k > 1) {
            return Err(super::errors::config_error(
                "pool_factor pools documents; a query keeps every token",
            ));
        }
        Ok(Side {
            is_query,
            pooling: pool_factor.map(|k| {
                let style = PoolingStyle::PyLate {
                    protected: protected_tokens.get(),
                };
                (k, style)
            }),
        })
    }
}

py_builder!("TesseraMultiVectorBuilder", PyMultiVectorBuilder, MultiVectorBuilder, PyMultiVector, {
    max_length: Count => Count::get,
    quantize: QuantizeArg => QuantizeArg::get,
    query_length: Count => Count::get,
    dimension: Count => Count::get,
    quantization: QuantizationSetting => quantization_setting,
});

async_and_stream_methods!(PyMultiVector, merge = true,
    async { aencode => "encode", aencode_query => "encode_query", aencode_document => "encode_document" },
    stream { encode_stream => "encode" });
