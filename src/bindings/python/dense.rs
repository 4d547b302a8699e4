//! `TesseraDense` and its builder.

use std::sync::Arc;

use pyo3::prelude::*;

use super::repr::{bool_repr, device_repr, str_repr};
use pyo3::types::{PyList, PyString};

use super::builders::py_builder;
use super::calls::{async_and_stream_methods, count_tokens_with, finish, text_options, Output};
use super::convert::{
    detached, matrix_arg, matrix_to_numpy, model_arg, text_arg, texts_arg, vector_arg,
    vector_to_numpy, Count,
};
use super::device::{device_arg, dtype_arg, QuantizeArg};
use super::outputs::PyDenseEmbedding;
use super::quantization::quantized_to_numpy;
use crate::matrix::Matrix;
use crate::paradigms::common::{EncodeOptions, InputTokens};
use crate::paradigms::dense::{DenseBuilder, DenseEmbedder};
use crate::quantization::{quantize_embeddings, Precision};

/// Dense text embeddings: one vector per text.
#[pyclass(name = "TesseraDense", module = "tessera", frozen)]
pub struct PyDense {
    inner: Arc<DenseEmbedder>,
    /// The builder's options as JSON, from which a pickled copy reloads the model.
    settings: String,
}

#[pymethods]
impl PyDense {
    #[new]
    #[pyo3(signature = (model, *, device=None, dtype=None, quantize=None, revision=None, max_length=None, batch_size=None, dimension=None, normalize=None, query_prefix=None, document_prefix=None))]
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

    /// Embeds a text (`(dim,)`) or a list of texts (`(n, dim)`), with the keywords of
    /// sentence-transformers' `encode`: `prompt_name` (a prompt the model names) or
    /// `prompt` prepended to every text, `normalize_embeddings`, `truncate_dim` (cut, then
    /// normalised if asked), `precision` ("float32", "int8", "uint8", "binary", "ubinary"),
    /// `convert_to_numpy=False` for a list of vectors. `output="object"` gives
    /// `DenseEmbedding`s instead.
    #[pyo3(signature = (
        sentences, *, output="array", batch_size=None, show_progress=false,
        show_progress_bar=None, normalize_embeddings=false, prompt_name=None, prompt=None,
        truncate_dim=None, precision="float32", convert_to_numpy=true, on_truncation="ignore"
    ))]
    #[allow(clippy::too_many_arguments)] // sentence-transformers' keywords, one to one
    fn encode<'py>(
        &self,
        py: Python<'py>,
        sentences: &Bound<'py, PyAny>,
        output: &str,
        batch_size: Option<Count>,
        show_progress: bool,
        show_progress_bar: Option<bool>,
        normalize_embeddings: bool,
        prompt_name: Option<String>,
        prompt: Option<String>,
        truncate_dim: Option<Count>,
        precision: &str,
        convert_to_numpy: bool,
        on_truncation: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let objects = Output::is_object(output)?;
        let precision = Precision::parse(precision)?;
        let single = sentences.is_instance_of::<PyString>();
        if sentences.is_instance_of::<pyo3::types::PyBytes>() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "sentences must be str or a sequence of str, not bytes (decode it first)",
            ));
        }
        let texts = if single {
            vec![text_arg(sentences, "sentences")?]
        } else {
            texts_arg(sentences, "sentences")?
        };
        let prefix = match (prompt, prompt_name) {
            (Some(prompt), _) => Some(prompt),
            (None, Some(name)) => Some(self.inner.prompt(&name)?.to_string()),
            (None, None) => None,
        };
        let truncate_dim = truncate_dim.map(Count::get);
        if let Some(d) = truncate_dim {
            if d == 0 || d > self.inner.dimension() {
                return Err(crate::error::TesseraError::Matryoshka(format!(
                    "truncate_dim must be in 1..={}, got {d}",
                    self.inner.dimension()
                ))
                .into());
            }
        }
        let options = text_options(
            batch_size,
            show_progress || show_progress_bar == Some(true),
            on_truncation,
        )?;
        let model = Arc::clone(&self.inner);
        let call = options.clone();
        let call_prefix = prefix.clone();
        let (matrix, texts) = detached(py, move || {
            let prefixed: Vec<String> = match &call_prefix {
                Some(p) => texts.iter().map(|t| format!("{p}{t}")).collect(),
                None => texts.clone(),
            };
            let refs: Vec<&str> = prefixed.iter().map(String::as_str).collect();
            let matrix = model.encode_batch(&refs, &call)?;
            Ok((reshape(matrix, truncate_dim, normalize_embeddings), texts))
        })?;
        let inputs = finish(py, &options)?;
        if objects {
            let list = self.objects(py, &matrix, texts, prefix.as_deref(), &inputs)?;
            return Ok(if single {
                list.get_item(0)?
            } else {
                list.into_any()
            });
        }
        let array = match precision {
            // The float32 matrix goes to NumPy as it is: no copy on the default path.
            Precision::Float32 => matrix_to_numpy(py, matrix)?.into_any(),
            _ => quantized_to_numpy(py, quantize_embeddings(&matrix, precision, None, None)?)?,
        };
        if single {
            return array.get_item(0);
        }
        if convert_to_numpy {
            Ok(array)
        } else {
            Ok(PyList::new(py, array.try_iter()?.collect::<PyResult<Vec<_>>>()?)?.into_any())
        }
    }

    /// Length of the output vectors (sentence-transformers' name for `dimension()`).
    fn get_sentence_embedding_dimension(&self) -> usize {
        self.inner.dimension()
    }

    /// The similarity function `similarity` uses: "cosine" unless the model's
    /// `similarity_fn_name` names "dot", "euclidean" or "manhattan".
    #[getter]
    fn similarity_fn_name(&self) -> &'static str {
        self.inner.similarity_function().name()
    }

    /// Embeds many texts: an array of shape `(n, dim)` (rows in input order), or a list
    /// of `DenseEmbedding` when `output="object"`.
    #[pyo3(signature = (texts, *, batch_size=None, show_progress=false, output="array", on_truncation="ignore"))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
        output: &str,
        on_truncation: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let objects = Output::is_object(output)?;
        let texts = texts_arg(texts, "texts")?;
        let options = text_options(batch_size, show_progress, on_truncation)?;
        let model = Arc::clone(&self.inner);
        let call = options.clone();
        let (matrix, texts) = detached(py, move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.encode_batch(&refs, &call).map(|m| (m, texts))
        })?;
        let inputs = finish(py, &options)?;
        if !objects {
            return Ok(matrix_to_numpy(py, matrix)?.into_any());
        }
        Ok(self.objects(py, &matrix, texts, None, &inputs)?.into_any())
    }

    /// Embeds query text(s) with the model's query prefix: `(dim,)` for a str,
    /// `(n, dim)` for a sequence (`DenseEmbedding`s with `output="object"`).
    #[pyo3(signature = (text, *, batch_size=None, show_progress=false, output="array", on_truncation="ignore"))]
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
        self.encode_with_prefix(py, text, options, output, true)
    }

    /// Embeds document text(s) with the model's document prefix.
    #[pyo3(signature = (text, *, batch_size=None, show_progress=false, output="array", on_truncation="ignore"))]
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
        self.encode_with_prefix(py, text, options, output, false)
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

    /// Cosine similarity of two texts or two vectors.
    #[pyo3(signature = (a, b))]
    fn similarity<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'py, PyAny>,
        b: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let function = self.inner.similarity_function();
        if is_single(a) && is_single(b) {
            let (a, b) = (self.vector_of(py, a, "a")?, self.vector_of(py, b, "b")?);
            return Ok(function.score(&a, &b)?.into_pyobject(py)?.into_any());
        }
        let (a, b) = (self.matrix_of(py, a, "a")?, self.matrix_of(py, b, "b")?);
        let scores = detached(py, move || function.matrix(&a, &b))?;
        Ok(matrix_to_numpy(py, scores)?.into_any())
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

    /// Pickles as the options it was built with: unpickling loads the model again
    /// (from the cache, or the hub), so embedders travel to worker processes.
    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, (&'static str, String))> {
        let restore = py.import("tessera._tessera")?.getattr("_restore")?;
        Ok((restore, ("dense", self.settings.clone())))
    }

    fn __repr__(&self) -> String {
        format!(
            "TesseraDense(model={}, dimension={}, pooling={}, normalize={}, device={})",
            str_repr(self.inner.model()),
            self.inner.dimension(),
            str_repr(&format!("{:?}", self.inner.pooling()).to_lowercase()),
            bool_repr(self.inner.normalizes()),
            device_repr(self.inner.device())
        )
    }
}

/// A text or a 1-D vector (not a list of texts, not a 2-D array).
fn is_single(value: &Bound<'_, PyAny>) -> bool {
    if value.is_instance_of::<PyString>() {
        return true;
    }
    match value.getattr("ndim").and_then(|n| n.extract::<usize>()) {
        Ok(ndim) => ndim == 1,
        // A list of numbers is one vector; a list of texts or of lists is several.
        Err(_) => value
            .try_iter()
            .ok()
            .and_then(|mut items| items.next())
            .and_then(Result::ok)
            .is_some_and(|first| first.extract::<f64>().is_ok()),
    }
}

/// `truncate_dim` and `normalize_embeddings`, in sentence-transformers' order.
fn reshape(matrix: Matrix, truncate_dim: Option<usize>, normalize: bool) -> Matrix {
    if truncate_dim.is_none_or(|d| d >= matrix.cols) && !normalize {
        return matrix;
    }
    let cols = truncate_dim.unwrap_or(matrix.cols).min(matrix.cols);
    let mut data = Vec::with_capacity(matrix.rows * cols);
    for row in matrix.iter_rows() {
        let start = data.len();
        data.extend_from_slice(&row[..cols]);
        if normalize {
            let norm = data[start..]
                .iter()
                .map(|v| v * v)
                .sum::<f32>()
                .sqrt()
                .max(1e-12);
            data[start..].iter_mut().for_each(|v| *v /= norm);
        }
    }
    Matrix {
        rows: matrix.rows,
        cols,
        data,
    }
}

impl PyDense {
    pub fn from_builder(py: Python<'_>, builder: DenseBuilder) -> PyResult<Self> {
        let settings = builder.to_json()?;
        let inner = detached(py, move || builder.build())?;
        Ok(PyDense {
            inner: Arc::new(inner),
            settings,
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

    /// Rows to compare: a list of texts (encoded), a 2-D array, or one text / vector.
    fn matrix_of(&self, py: Python<'_>, value: &Bound<'_, PyAny>, name: &str) -> PyResult<Matrix> {
        if is_single(value) {
            let row = self.vector_of(py, value, name)?;
            return Ok(Matrix {
                rows: 1,
                cols: row.len(),
                data: row,
            });
        }
        let is_texts = value
            .try_iter()
            .ok()
            .and_then(|mut items| items.next())
            .and_then(Result::ok)
            .is_some_and(|first| first.is_instance_of::<PyString>());
        if is_texts {
            let texts = texts_arg(value, name)?;
            let model = Arc::clone(&self.inner);
            return detached(py, move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                model.encode_batch(&refs, &EncodeOptions::default())
            });
        }
        matrix_arg(value, name)
    }

    fn encode_with_prefix<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        options: EncodeOptions,
        output: &str,
        query: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let objects = Output::is_object(output)?;
        let single = text.is_instance_of::<PyString>();
        let texts = if single {
            vec![text_arg(text, "text")?]
        } else {
            texts_arg(text, "texts")?
        };
        let model = Arc::clone(&self.inner);
        let call = options.clone();
        let (matrix, texts) = detached(py, move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let matrix = if query {
                model.encode_queries(&refs, &call)
            } else {
                model.encode_documents(&refs, &call)
            };
            matrix.map(|m| (m, texts))
        })?;
        let inputs = finish(py, &options)?;
        if objects {
            let prefix = if query {
                self.inner.query_prefix()
            } else {
                self.inner.document_prefix()
            };
            let list = self.objects(py, &matrix, texts, prefix, &inputs)?;
            return if single {
                list.get_item(0)
            } else {
                Ok(list.into_any())
            };
        }
        if single {
            Ok(vector_to_numpy(py, matrix.data).into_any())
        } else {
            Ok(matrix_to_numpy(py, matrix)?.into_any())
        }
    }

    /// `DenseEmbedding`s of encoded rows: each with its text, the tokens the model read
    /// (`prefix` included) and whether the text was cut.
    fn objects<'py>(
        &self,
        py: Python<'py>,
        matrix: &Matrix,
        texts: Vec<String>,
        prefix: Option<&str>,
        inputs: &[InputTokens],
    ) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for (i, (row, text)) in matrix.iter_rows().zip(texts).enumerate() {
            let seen = match prefix {
                Some(p) => format!("{p}{text}"),
                None => text.clone(),
            };
            let tokens = self.inner.token_strings(&seen)?;
            let truncated = inputs.get(i).is_some_and(|input| input.truncated);
            list.append(PyDenseEmbedding::wrap(
                py,
                row.to_vec(),
                Some(text),
                Some(tokens),
                truncated,
            ))?;
        }
        Ok(list)
    }
}

py_builder!("TesseraDenseBuilder", PyDenseBuilder, DenseBuilder, PyDense, {
    max_length: Count => Count::get,
    quantize: QuantizeArg => QuantizeArg::get,
    dimension: Count => Count::get,
    normalize: bool,
    query_prefix: String,
    document_prefix: String,
});

async_and_stream_methods!(PyDense, merge = true,
    async { aencode => "encode", aencode_query => "encode_query", aencode_document => "encode_document" },
    stream { encode_stream => "encode" });
