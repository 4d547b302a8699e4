//! `TesseraSparse`, its builder and `SparseEmbedding`.

use std::sync::Arc;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::repr::{device_repr, html_card, str_repr};
use pyo3::types::{PyDict, PyList, PyString};

use super::builders::py_builder;
use super::calls::{async_and_stream_methods, count_tokens_with, finish, text_options, Output};
use super::convert::{detached, matrix_to_numpy, model_arg, text_arg, texts_arg, type_name, Count};
use super::device::{device_arg, dtype_arg, QuantizeArg};
use crate::paradigms::common::{EncodeOptions, InputTokens};
use crate::paradigms::sparse::{SparseBuilder, SparseEmbedder, SparseVector};

/// A sparse vector over a vocabulary: term ids (ascending) and their weights.
#[pyclass(name = "SparseEmbedding", module = "tessera", frozen)]
pub struct PySparseEmbedding {
    vector: SparseVector,
    indices: Py<PyArray1<i32>>,
    values: Py<PyArray1<f32>>,
    /// The model that made it, to decode term ids into token strings.
    model: Option<Arc<SparseEmbedder>>,
    /// How the text was read, when a model made it.
    input: Option<InputTokens>,
}

impl PySparseEmbedding {
    fn wrap(
        py: Python<'_>,
        vector: SparseVector,
        model: Option<Arc<SparseEmbedder>>,
        input: Option<InputTokens>,
    ) -> PyResult<Self> {
        let indices: Vec<i32> = vector.indices.iter().map(|&i| i as i32).collect();
        let indices = PyArray1::from_vec(py, indices);
        let values = PyArray1::from_vec(py, vector.values.clone());
        // Shared views must not change under the Rust copy used for scoring.
        indices.readwrite().make_nonwriteable();
        values.readwrite().make_nonwriteable();
        Ok(PySparseEmbedding {
            vector,
            indices: indices.unbind(),
            values: values.unbind(),
            model,
            input,
        })
    }
}

#[pymethods]
impl PySparseEmbedding {
    /// Builds a vector from term ids (any integer array or sequence) and weights, in any
    /// order, ids distinct.
    #[new]
    #[pyo3(signature = (indices, values, vocab_size, num_tokens=None, truncated=false))]
    fn new(
        py: Python<'_>,
        indices: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
        vocab_size: Count,
        num_tokens: Option<Count>,
        truncated: bool,
    ) -> PyResult<Self> {
        let vocab_size = vocab_size.get();
        let numpy = py.import("numpy")?;
        let ids = numpy.call_method1("asarray", (indices,))?;
        let kind: String = ids.getattr("dtype")?.getattr("kind")?.extract()?;
        if !matches!(kind.as_str(), "i" | "u") && ids.len()? > 0 {
            return Err(PyTypeError::new_err(format!(
                "indices must be integers, not dtype {}",
                ids.getattr("dtype")?
            )));
        }
        let ids: PyReadonlyArray1<'_, i64> = ids.call_method1("astype", ("int64",))?.extract()?;
        let weights: PyReadonlyArray1<'_, f32> = numpy
            .call_method1("asarray", (values, "float32"))?
            .extract()
            .map_err(|_| PyTypeError::new_err("values must be a 1-D array of numbers"))?;
        let ids = ids
            .as_array()
            .iter()
            .map(|&i| {
                u32::try_from(i).map_err(|_| {
                    PyValueError::new_err(format!("term id {i} is negative or too large"))
                })
            })
            .collect::<PyResult<Vec<u32>>>()?;
        let vector = SparseVector::new(ids, weights.as_array().to_vec(), vocab_size)?;
        let input = num_tokens.map(|n| InputTokens {
            num_tokens: n.get(),
            truncated,
        });
        Self::wrap(py, vector, None, input)
    }

    /// How many tokens the model read (special tokens included); None when unknown.
    #[getter]
    fn num_tokens(&self) -> Option<usize> {
        self.input.map(|i| i.num_tokens)
    }

    /// The text had more tokens than the model reads and was cut.
    #[getter]
    fn truncated(&self) -> bool {
        self.input.is_some_and(|i| i.truncated)
    }

    /// Term ids, ascending (int32).
    #[getter]
    fn indices<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i32>> {
        self.indices.bind(py).clone()
    }

    /// Weights of the terms in `indices` (float32).
    #[getter]
    fn values<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        self.values.bind(py).clone()
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.vector.vocab_size
    }

    /// Fraction of vocabulary dimensions that are zero.
    #[getter]
    fn sparsity(&self) -> f32 {
        self.vector.sparsity()
    }

    /// `{term id: weight}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (id, value) in self.vector.iter() {
            dict.set_item(id, value)?;
        }
        Ok(dict)
    }

    /// The heaviest terms as `(token, weight)`, heaviest first.
    #[pyo3(signature = (top_k=None))]
    fn tokens(&self, top_k: Option<Count>) -> PyResult<Vec<(String, f32)>> {
        match &self.model {
            Some(model) => Ok(model.tokens(&self.vector, top_k.map(Count::get))),
            None => Err(PyValueError::new_err(
                "this SparseEmbedding was not made by a model, so it has no vocabulary to decode; \
                 use TesseraSparse.decode(embedding)",
            )),
        }
    }

    /// The dense `(vocab_size,)` float32 vector.
    fn to_dense<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        Ok(PyArray1::from_vec(py, self.vector.try_to_dense()?))
    }

    /// A `scipy.sparse.csr_matrix` of shape `(1, vocab_size)`.
    fn to_scipy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let sparse = import_scipy_sparse(py)?;
        let indptr = PyList::new(py, [0usize, self.vector.len()])?;
        sparse.call_method1(
            "csr_matrix",
            (
                (self.values.bind(py), self.indices.bind(py), indptr),
                (1usize, self.vector.vocab_size),
            ),
        )
    }

    /// Dot product with another sparse embedding.
    fn dot(&self, other: &PySparseEmbedding) -> PyResult<f32> {
        Ok(self.vector.dot(&other.vector)?)
    }

    fn __len__(&self) -> usize {
        self.vector.len()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let this = slf.get();
        let indices: Vec<i64> = this.vector.indices.iter().map(|&i| i64::from(i)).collect();
        let args = (
            PyArray1::from_vec(py, indices),
            PyArray1::from_vec(py, this.vector.values.clone()),
            this.vector.vocab_size,
            this.input.map(|i| i.num_tokens),
            this.input.is_some_and(|i| i.truncated),
        )
            .into_pyobject(py)?
            .into_any();
        Ok((slf.get_type().into_any(), args))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PySparseEmbedding>()
            .is_ok_and(|o| o.get().vector == self.vector)
    }

    /// A card for notebooks: the size and the ten heaviest terms.
    fn _repr_html_(&self) -> String {
        let top: Vec<String> = match &self.model {
            Some(model) => model
                .tokens(&self.vector, Some(10))
                .into_iter()
                .map(|(token, w)| format!("{token} {w:.3}"))
                .collect(),
            None => self
                .vector
                .top(Some(10))
                .into_iter()
                .map(|(id, w)| format!("{id} {w:.3}"))
                .collect(),
        };
        html_card(
            "SparseEmbedding",
            &[
                ("non-zero terms", self.vector.len().to_string()),
                ("vocab_size", self.vector.vocab_size.to_string()),
                ("top terms", top.join(", ")),
            ],
        )
    }

    fn __repr__(&self) -> String {
        let top: Vec<String> = match &self.model {
            Some(model) => model
                .tokens(&self.vector, Some(3))
                .into_iter()
                .map(|(token, w)| format!("{}: {w:.3}", str_repr(&token)))
                .collect(),
            None => self
                .vector
                .top(Some(3))
                .into_iter()
                .map(|(id, w)| format!("{id}: {w:.3}"))
                .collect(),
        };
        format!(
            "SparseEmbedding(nnz={}, vocab_size={}, top={{{}}})",
            self.vector.len(),
            self.vector.vocab_size,
            top.join(", ")
        )
    }
}

fn import_scipy_sparse(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("scipy.sparse").map_err(|_| {
        pyo3::exceptions::PyImportError::new_err(
            "to_scipy() needs SciPy: pip install scipy (or pip install 'tessera[scipy]')",
        )
    })
}

/// Sparse lexical embeddings (SPLADE): one weight per vocabulary term.
#[pyclass(name = "TesseraSparse", module = "tessera", frozen)]
pub struct PySparse {
    inner: Arc<SparseEmbedder>,
    /// The builder's options as JSON, from which a pickled copy reloads the model.
    settings: String,
}

#[pymethods]
impl PySparse {
    #[new]
    #[pyo3(signature = (model, *, device=None, dtype=None, quantize=None, revision=None, max_length=None, batch_size=None, top_k=None, min_weight=None, query_prefix=None, document_prefix=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the builder's keyword options
    fn new(
        py: Python<'_>,
        model: &Bound<'_, PyAny>,
        device: Option<&Bound<'_, PyAny>>,
        dtype: Option<&str>,
        quantize: Option<QuantizeArg>,
        revision: Option<String>,
        max_length: Option<Count>,
        batch_size: Option<Count>,
        top_k: Option<Count>,
        min_weight: Option<f32>,
        query_prefix: Option<String>,
        document_prefix: Option<String>,
    ) -> PyResult<Self> {
        let max_length = max_length.map(Count::get);
        let batch_size = batch_size.map(Count::get);
        let top_k = top_k.map(Count::get);
        let mut builder = SparseBuilder::new()
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
        if let Some(v) = batch_size {
            builder = builder.batch_size(v);
        }
        if let Some(v) = top_k {
            builder = builder.top_k(v);
        }
        if let Some(v) = min_weight {
            builder = builder.min_weight(v);
        }
        if let Some(v) = query_prefix {
            builder = builder.query_prefix(v);
        }
        if let Some(v) = document_prefix {
            builder = builder.document_prefix(v);
        }
        Self::from_builder(py, builder)
    }

    #[staticmethod]
    fn builder() -> PySparseBuilder {
        PySparseBuilder::fresh()
    }

    /// Embeds a text (a `SparseEmbedding`) or a list of texts (a list of them), with no
    /// prompt unless `prompt` is given (sentence-transformers' `SparseEncoder.encode`
    /// keywords: `prompt`, `show_progress_bar`). `output="array"` gives dense float32
    /// rows instead, `output="arrow"` (lists) a pyarrow column.
    #[pyo3(signature = (text, *, output="object", batch_size=None, show_progress=false, show_progress_bar=None, prompt_name=None, prompt=None, on_truncation="ignore"))]
    #[allow(clippy::too_many_arguments)] // SparseEncoder.encode's keywords
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        output: &str,
        batch_size: Option<Count>,
        show_progress: bool,
        show_progress_bar: Option<bool>,
        prompt_name: Option<String>,
        prompt: Option<String>,
        on_truncation: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let show = show_progress || show_progress_bar == Some(true);
        let options = text_options(batch_size, show, on_truncation)?;
        let prompt = match (prompt, prompt_name) {
            (Some(prompt), _) => Some(prompt),
            (None, Some(name)) => Some(self.inner.prompt(&name)?.to_string()),
            (None, None) => None,
        };
        let side = prompt.map_or(Side::Plain, Side::Prompt);
        self.one_or_many(py, text, options, side, output)
    }

    /// Embeds many texts: a list of `SparseEmbedding` (dense rows with `output="array"`,
    /// a pyarrow column with `output="arrow"`).
    #[pyo3(signature = (texts, *, batch_size=None, show_progress=false, output="object", on_truncation="ignore"))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
        output: &str,
        on_truncation: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let output = Output::parse(output, true)?;
        let options = text_options(batch_size, show_progress, on_truncation)?;
        self.many(py, texts, options, Side::Plain, output)
    }

    /// Embeds query text(s) (the model's query prompt, if any).
    #[pyo3(signature = (text, *, batch_size=None, show_progress=false, output="object", on_truncation="ignore"))]
    fn encode_query<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
        output: &str,
        on_truncation: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = text_options(batch_size, show_progress, on_truncation)?;
        self.one_or_many(py, text, options, Side::Query, output)
    }

    /// Embeds document text(s) (the model's document prompt, if any).
    #[pyo3(signature = (text, *, batch_size=None, show_progress=false, output="object", on_truncation="ignore"))]
    fn encode_document<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
        output: &str,
        on_truncation: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = text_options(batch_size, show_progress, on_truncation)?;
        self.one_or_many(py, text, options, Side::Document, output)
    }

    /// Tokens of each whole text, special tokens included, before truncation (no
    /// prompt): more than `max_length()` means `encode` cuts it. An int for a str.
    #[pyo3(signature = (texts))]
    fn count_tokens<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let model = Arc::clone(&self.inner);
        count_tokens_with(py, texts, move |refs| model.count_tokens(refs))
    }

    /// Many texts as a `scipy.sparse.csr_matrix` of shape `(n, vocab_size)`.
    #[pyo3(signature = (texts, *, batch_size=None, show_progress=false, on_truncation="ignore"))]
    fn encode_csr<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
        on_truncation: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = text_options(batch_size, show_progress, on_truncation)?;
        import_scipy_sparse(py)?;
        let (vectors, _) = self.run(py, texts, options, Side::Plain)?;
        sparse_csr(py, &vectors, self.inner.vocab_size())
    }

    /// Dot product of two sparse embeddings (or texts).
    #[pyo3(signature = (a, b))]
    fn similarity(
        &self,
        py: Python<'_>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
    ) -> PyResult<f32> {
        let (a, b) = (self.vector_of(py, a, "a")?, self.vector_of(py, b, "b")?);
        Ok(self.inner.similarity(&a, &b)?)
    }

    /// Dot products `(len(queries), len(documents))` of embeddings or texts.
    #[pyo3(signature = (queries, documents))]
    fn similarity_matrix<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let queries = self.vectors_of(py, queries, "queries")?;
        let documents = self.vectors_of(py, documents, "documents")?;
        let model = Arc::clone(&self.inner);
        let matrix = detached(py, move || model.similarity_matrix(&queries, &documents))?;
        matrix_to_numpy(py, matrix)
    }

    /// `(token, weight)` pairs of an embedding, heaviest first.
    #[pyo3(signature = (embedding, top_k=None))]
    fn decode(&self, embedding: &PySparseEmbedding, top_k: Option<Count>) -> Vec<(String, f32)> {
        self.inner.tokens(&embedding.vector, top_k.map(Count::get))
    }

    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    fn model(&self) -> String {
        self.inner.model().to_string()
    }

    fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    /// Length of the vectors: the vocabulary size (the shared name of `vocab_size()`).
    fn dimension(&self) -> usize {
        self.inner.vocab_size()
    }

    /// sentence-transformers' name for `dimension()`.
    fn get_sentence_embedding_dimension(&self) -> usize {
        self.inner.vocab_size()
    }

    /// Token ids of a text as the model sees it.
    #[pyo3(signature = (text))]
    fn tokenize(&self, text: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        let text = text_arg(text, "text")?;
        Ok(self
            .inner
            .tokenize(&[text.as_str()])?
            .pop()
            .unwrap_or_default())
    }

    /// Pickles as the options it was built with: unpickling loads the model again
    /// (from the cache, or the hub), so embedders travel to worker processes.
    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, (&'static str, String))> {
        let restore = py.import("tessera._tessera")?.getattr("_restore")?;
        Ok((restore, ("sparse", self.settings.clone())))
    }

    fn __repr__(&self) -> String {
        format!(
            "TesseraSparse(model={}, vocab_size={}, device={})",
            str_repr(self.inner.model()),
            self.inner.vocab_size(),
            device_repr(self.inner.device())
        )
    }
}

#[derive(Clone)]
enum Side {
    Plain,
    Query,
    Document,
    /// An explicit prompt before every text.
    Prompt(String),
}

impl PySparse {
    pub fn from_builder(py: Python<'_>, builder: SparseBuilder) -> PyResult<Self> {
        let settings = builder.to_json()?;
        let inner = detached(py, move || builder.build())?;
        Ok(PySparse {
            inner: Arc::new(inner),
            settings,
        })
    }

    fn run(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        options: EncodeOptions,
        side: Side,
    ) -> PyResult<(Vec<SparseVector>, Vec<InputTokens>)> {
        let texts = texts_arg(texts, "texts")?;
        let model = Arc::clone(&self.inner);
        let call = options.clone();
        let vectors = detached(py, move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            match side {
                Side::Plain => model.encode_batch(&refs, &call),
                Side::Query => model.encode_queries(&refs, &call),
                Side::Document => model.encode_documents(&refs, &call),
                Side::Prompt(prompt) => {
                    let prompted: Vec<String> =
                        refs.iter().map(|t| format!("{prompt}{t}")).collect();
                    let refs: Vec<&str> = prompted.iter().map(String::as_str).collect();
                    model.encode_batch(&refs, &call)
                }
            }
        })?;
        let inputs = finish(py, &options)?;
        Ok((vectors, inputs))
    }

    /// A batch in the asked form: `SparseEmbedding`s, dense rows `(n, vocab_size)`, or a
    /// pyarrow `StructArray` of `indices` / `values` lists.
    fn many<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        options: EncodeOptions,
        side: Side,
        output: Output,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (vectors, inputs) = self.run(py, texts, options, side)?;
        match output {
            Output::Object => {
                let list = PyList::empty(py);
                for (vector, input) in vectors.into_iter().zip(inputs) {
                    let model = Some(Arc::clone(&self.inner));
                    list.append(PySparseEmbedding::wrap(py, vector, model, Some(input))?)?;
                }
                Ok(list.into_any())
            }
            Output::Array => {
                let vocab = self.inner.vocab_size();
                let mut data = Vec::new();
                data.try_reserve_exact(vectors.len() * vocab).map_err(|_| {
                    crate::error::TesseraError::OutOfMemory(format!(
                        "{} dense rows of {vocab} floats do not fit in memory",
                        vectors.len()
                    ))
                })?;
                for vector in &vectors {
                    data.extend_from_slice(&vector.try_to_dense()?);
                }
                let matrix = crate::matrix::Matrix {
                    rows: vectors.len(),
                    cols: vocab,
                    data,
                };
                Ok(matrix_to_numpy(py, matrix)?.into_any())
            }
            Output::Flat => sparse_csr(py, &vectors, self.inner.vocab_size()),
            Output::Arrow => sparse_arrow(py, &vectors),
        }
    }

    fn one_or_many<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        options: EncodeOptions,
        side: Side,
        output: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let single = text.is_instance_of::<PyString>();
        let output = Output::parse(output, !single)?;
        if !single {
            return self.many(py, text, options, side, output);
        }
        let one = PyList::new(py, [text])?;
        self.many(py, one.as_any(), options, side, output)?
            .get_item(0)
    }

    fn vector_of(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        name: &str,
    ) -> PyResult<SparseVector> {
        if let Ok(embedding) = value.cast::<PySparseEmbedding>() {
            return Ok(embedding.get().vector.clone());
        }
        if value.is_instance_of::<PyString>() {
            let text = text_arg(value, name)?;
            let model = Arc::clone(&self.inner);
            return detached(py, move || model.encode(&text));
        }
        Err(PyTypeError::new_err(format!(
            "{name} must be a SparseEmbedding or str, not {}",
            type_name(value)
        )))
    }

    fn vectors_of(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        name: &str,
    ) -> PyResult<Vec<SparseVector>> {
        let items: Vec<Bound<'_, PyAny>> = value
            .try_iter()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "{name} must be a sequence, not {}",
                    type_name(value)
                ))
            })?
            .collect::<PyResult<_>>()?;
        if items.iter().all(|i| i.is_instance_of::<PyString>()) && !items.is_empty() {
            let texts = texts_arg(value, name)?;
            let model = Arc::clone(&self.inner);
            return detached(py, move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                model.encode_batch(&refs, &EncodeOptions::default())
            });
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.vector_of(py, item, &format!("{name}[{i}]")))
            .collect()
    }
}

py_builder!("TesseraSparseBuilder", PySparseBuilder, SparseBuilder, PySparse, {
    max_length: Count => Count::get,
    quantize: QuantizeArg => QuantizeArg::get,
    top_k: Count => Count::get,
    min_weight: f32,
    query_prefix: String,
    document_prefix: String,
});

/// A pyarrow `StructArray` with `indices` (large list of int32) and `values` (large list of
/// float32), one entry per vector.
fn sparse_arrow<'py>(py: Python<'py>, vectors: &[SparseVector]) -> PyResult<Bound<'py, PyAny>> {
    let pa = py.import("pyarrow").map_err(|_| {
        pyo3::exceptions::PyImportError::new_err(
            "output='arrow' needs pyarrow: pip install pyarrow (or 'tessera-embeddings[parquet]')",
        )
    })?;
    let mut offsets = Vec::with_capacity(vectors.len() + 1);
    offsets.push(0i64);
    let (mut ids, mut weights) = (Vec::new(), Vec::new());
    for v in vectors {
        ids.extend(v.indices.iter().map(|&i| i as i32));
        weights.extend_from_slice(&v.values);
        offsets.push(ids.len() as i64);
    }
    let offsets = pa.call_method1("array", (PyArray1::from_vec(py, offsets),))?;
    let large_list = pa.getattr("LargeListArray")?;
    let indices = large_list.call_method1(
        "from_arrays",
        (
            &offsets,
            pa.call_method1("array", (PyArray1::from_vec(py, ids),))?,
        ),
    )?;
    let values = large_list.call_method1(
        "from_arrays",
        (
            &offsets,
            pa.call_method1("array", (PyArray1::from_vec(py, weights),))?,
        ),
    )?;
    pa.getattr("StructArray")?.call_method1(
        "from_arrays",
        (vec![indices, values], vec!["indices", "values"]),
    )
}

/// A `scipy.sparse.csr_matrix` `(n, vocab_size)` of the vectors.
fn sparse_csr<'py>(
    py: Python<'py>,
    vectors: &[SparseVector],
    vocab_size: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let sparse = import_scipy_sparse(py)?;
    let mut indptr = Vec::with_capacity(vectors.len() + 1);
    let (mut indices, mut values) = (Vec::new(), Vec::new());
    indptr.push(0i64);
    for v in vectors {
        indices.extend(v.indices.iter().map(|&i| i as i32));
        values.extend_from_slice(&v.values);
        indptr.push(indices.len() as i64);
    }
    sparse.call_method1(
        "csr_matrix",
        (
            (
                PyArray1::from_vec(py, values),
                PyArray1::from_vec(py, indices),
                PyArray1::from_vec(py, indptr),
            ),
            (vectors.len(), vocab_size),
        ),
    )
}

async_and_stream_methods!(PySparse, merge = true,
    async { aencode => "encode", aencode_query => "encode_query", aencode_document => "encode_document" },
    stream { encode_stream => "encode" });
