//! `TesseraVision` (ColPali), its builder, `VisionEmbedding`, and image arguments.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray2, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyImportError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::repr::{device_repr, html_card, str_repr};
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString};

use super::builders::py_builder;
use super::calls::{async_and_stream_methods, count_tokens_with, finish, text_options, Output};
use super::convert::{
    array_protocol, detached, matrix_arg, matrix_to_numpy, model_arg, path_arg, text_arg,
    texts_arg, type_name, Count,
};
use super::device::{device_arg, dtype_arg};
use super::multivector::PyTokenEmbeddings;
use super::pooling::pool_factor_arg;
use super::ragged::PyRaggedEmbeddings;
use crate::matrix::Matrix;
use crate::paradigms::common::EncodeOptions;
use crate::paradigms::vision::{VisionBuilder, VisionEmbedder};
use crate::pooling::{pool_all, PoolingStyle};
use crate::vision::ImageInput;

/// A page image's token matrix: patch rows, then prompt-token rows.
#[pyclass(name = "VisionEmbedding", module = "tessera", frozen)]
pub struct PyVisionEmbedding {
    embeddings: Py<PyArray2<f32>>,
    matrix: Matrix,
    num_patches: usize,
    source: Option<String>,
}

impl PyVisionEmbedding {
    fn wrap(
        py: Python<'_>,
        matrix: Matrix,
        num_patches: usize,
        source: Option<String>,
    ) -> PyResult<Self> {
        let array = matrix_to_numpy(py, matrix.clone())?;
        array.readwrite().make_nonwriteable();
        Ok(PyVisionEmbedding {
            embeddings: array.unbind(),
            matrix,
            num_patches,
            source,
        })
    }
}

#[pymethods]
impl PyVisionEmbedding {
    #[new]
    #[pyo3(signature = (embeddings, num_patches, source=None))]
    fn new(
        py: Python<'_>,
        embeddings: &Bound<'_, PyAny>,
        num_patches: Count,
        source: Option<String>,
    ) -> PyResult<Self> {
        let num_patches = num_patches.get();
        let matrix = matrix_arg(embeddings, "embeddings")?;
        if num_patches > matrix.rows {
            return Err(PyValueError::new_err(format!(
                "num_patches {num_patches} exceeds the {} rows",
                matrix.rows
            )));
        }
        Self::wrap(py, matrix, num_patches, source)
    }

    /// `(rows, dim)` float32: the image patch rows, then the prompt-token rows.
    #[getter]
    fn embeddings<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f32>> {
        self.embeddings.bind(py).clone()
    }

    /// Rows that come from image patches (the first rows).
    #[getter]
    fn num_patches(&self) -> usize {
        self.num_patches
    }

    #[getter]
    fn embedding_dim(&self) -> usize {
        self.matrix.cols
    }

    /// The file the image came from, if it came from one.
    #[getter]
    fn source(&self) -> Option<String> {
        self.source.clone()
    }

    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.matrix.rows, self.matrix.cols)
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
        self.matrix.rows
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyVisionEmbedding>().is_ok_and(|o| {
            let o = o.get();
            o.matrix == self.matrix && o.num_patches == self.num_patches && o.source == self.source
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let this = slf.get();
        let args = (
            this.embeddings.bind(py).clone(),
            this.num_patches,
            this.source.clone(),
        )
            .into_pyobject(py)?
            .into_any();
        Ok((slf.get_type().into_any(), args))
    }

    /// A card for notebooks: where the page came from and the matrix shape.
    fn _repr_html_(&self) -> String {
        html_card(
            "VisionEmbedding",
            &[
                ("source", self.source.clone().unwrap_or_default()),
                (
                    "shape",
                    format!("({}, {})", self.matrix.rows, self.matrix.cols),
                ),
                ("image patches", self.num_patches.to_string()),
            ],
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "VisionEmbedding(rows={}, num_patches={}, embedding_dim={}, source={})",
            self.matrix.rows,
            self.num_patches,
            self.matrix.cols,
            self.source.as_deref().map_or("None".into(), str_repr)
        )
    }
}

/// Vision-language document retrieval (ColPali): page images and text queries as token
/// matrices, scored with MaxSim.
#[pyclass(name = "TesseraVision", module = "tessera", frozen)]
pub struct PyVision {
    inner: Arc<VisionEmbedder>,
    /// The builder's options as JSON, from which a pickled copy reloads the model.
    settings: String,
}

#[pymethods]
impl PyVision {
    #[new]
    #[pyo3(signature = (model, *, device=None, dtype=None, revision=None, batch_size=None))]
    fn new(
        py: Python<'_>,
        model: &Bound<'_, PyAny>,
        device: Option<&Bound<'_, PyAny>>,
        dtype: Option<&str>,
        revision: Option<String>,
        batch_size: Option<Count>,
    ) -> PyResult<Self> {
        let batch_size = batch_size.map(Count::get);
        let mut builder = VisionBuilder::new()
            .model(model_arg(model)?)
            .device(device_arg(device)?)
            .dtype(dtype_arg(dtype)?);
        if let Some(v) = revision {
            builder = builder.revision(v);
        }
        if let Some(v) = batch_size {
            builder = builder.batch_size(v);
        }
        Self::from_builder(py, builder)
    }

    #[staticmethod]
    fn builder() -> PyVisionBuilder {
        PyVisionBuilder::fresh()
    }

    /// Embeds a page image: a path, raw bytes, a uint8 array `(H, W)`, `(H, W, 3)` or
    /// `(H, W, 4)`, or an object with the array interface (a PIL image). A
    /// `VisionEmbedding`, or its matrix with `output="array"`.
    /// `pool_factor=k` pools its rows as colpali-engine's `HierarchicalTokenPooler` does.
    #[pyo3(signature = (image, *, output="object", pool_factor=None))]
    fn encode_document<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        output: &str,
        pool_factor: Option<Count>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let output = Output::parse(output, false)?;
        let input = image_arg(image, "image")?;
        let source = input.source().map(|p| p.display().to_string());
        let pages = Pages::new(None, false, pool_factor)?;
        self.encode_pages(py, vec![input], vec![source], pages, output)?
            .get_item(0)
    }

    /// Embeds many page images (batched): a list of `VisionEmbedding` (of matrices with
    /// `output="array"`), or one `RaggedEmbeddings` (`"flat"`) or pyarrow column
    /// (`"arrow"`).
    #[pyo3(signature = (images, *, batch_size=None, show_progress=false, output="object", pool_factor=None))]
    fn encode_documents<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
        output: &str,
        pool_factor: Option<Count>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let output = Output::parse(output, true)?;
        let pages = Pages::new(batch_size, show_progress, pool_factor)?;
        if images.is_instance_of::<PyString>() || images.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "images must be a sequence of images; use encode_document() for one",
            ));
        }
        let inputs = images
            .try_iter()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "images must be a sequence, not {}",
                    type_name(images)
                ))
            })?
            .enumerate()
            .map(|(i, item)| image_arg(&item?, &format!("images[{i}]")))
            .collect::<PyResult<Vec<_>>>()?;
        let sources = inputs
            .iter()
            .map(|i| i.source().map(|p| p.display().to_string()))
            .collect();
        self.encode_pages(py, inputs, sources, pages, output)
    }

    /// Renders each page of a PDF (needs `pypdfium2`) and embeds it.
    #[pyo3(signature = (path, *, dpi=Count(144), batch_size=None, show_progress=false, output="object", pool_factor=None), text_signature = "(self, /, path, *, dpi=144, batch_size=None, show_progress=False, output='object', pool_factor=None)")]
    #[allow(clippy::too_many_arguments)] // the page keywords plus rendering's dpi
    fn encode_pdf<'py>(
        &self,
        py: Python<'py>,
        path: &Bound<'py, PyAny>,
        dpi: Count,
        batch_size: Option<Count>,
        show_progress: bool,
        output: &str,
        pool_factor: Option<Count>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let output = Output::parse(output, true)?;
        let pages = Pages::new(batch_size, show_progress, pool_factor)?;
        let dpi = dpi.get();
        if dpi == 0 || dpi > 1200 {
            return Err(PyValueError::new_err(format!(
                "dpi must be in 1..=1200, got {dpi}"
            )));
        }
        let path = path_arg(path, "path")?;
        if !std::path::Path::new(&path).is_file() {
            return Err(crate::error::TesseraError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "PDF file not found"),
            )
            .into());
        }
        let pdfium = py.import("pypdfium2").map_err(|_| {
            PyImportError::new_err(
                "encode_pdf needs pypdfium2: pip install pypdfium2 (or 'tessera-embeddings[pdf]')",
            )
        })?;
        let document = pdfium
            .call_method1("PdfDocument", (path.as_str(),))
            .map_err(|e| {
                crate::error::TesseraError::io(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("not a readable PDF: {}", e.value(py)),
                    ),
                )
            })?;
        let count = document.len()?;
        let mut inputs = Vec::with_capacity(count);
        for index in 0..count {
            let page = document.get_item(index)?;
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("scale", dpi as f64 / 72.0)?;
            let bitmap = page.call_method("render", (), Some(&kwargs))?;
            let image = bitmap.call_method0("to_pil")?;
            inputs.push(image_arg(&image, &format!("page {}", index + 1))?);
        }
        let sources = (1..=count)
            .map(|page| Some(format!("{path}#page={page}")))
            .collect();
        self.encode_pages(py, inputs, sources, pages, output)
    }

    /// A query's token matrix `(num_tokens, dim)`, or a list of them for a list of
    /// queries; `output="object"` gives `TokenEmbeddings` with the query's tokens.
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
        let single = text.is_instance_of::<PyString>();
        let output = Output::parse(output, !single)?;
        let options = text_options(batch_size, show_progress, on_truncation)?;
        if !single {
            return self.queries(py, text, options, output);
        }
        let one = PyList::new(py, [text])?;
        self.queries(py, one.as_any(), options, output)?.get_item(0)
    }

    /// The shared verb: a page (`VisionEmbedding`) or a list of pages (a list of them).
    #[pyo3(signature = (image, *, batch_size=None, show_progress=false, output="object", pool_factor=None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
        output: &str,
        pool_factor: Option<Count>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let many =
            image.is_instance_of::<PyList>() || image.is_instance_of::<pyo3::types::PyTuple>();
        if many {
            return self.encode_documents(
                py,
                image,
                batch_size,
                show_progress,
                output,
                pool_factor,
            );
        }
        self.encode_document(py, image, output, pool_factor)
    }

    /// The shared name of `encode_documents`.
    #[pyo3(signature = (images, *, batch_size=None, show_progress=false, output="object", pool_factor=None))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        batch_size: Option<Count>,
        show_progress: bool,
        output: &str,
        pool_factor: Option<Count>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.encode_documents(py, images, batch_size, show_progress, output, pool_factor)
    }

    /// The shared name of `search`: MaxSim of a query against a page.
    #[pyo3(signature = (query, document))]
    fn similarity(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        document: &Bound<'_, PyAny>,
    ) -> PyResult<f32> {
        self.search(py, query, document)
    }

    /// The shared name of `embedding_dim()`.
    fn dimension(&self) -> usize {
        self.inner.embedding_dim()
    }

    /// The most query tokens kept (longer queries are cut).
    fn max_length(&self) -> usize {
        crate::paradigms::vision::QUERY_MAX_TOKENS
    }

    /// Token matrices of many queries (`TokenEmbeddings` with `output="object"`, one
    /// `RaggedEmbeddings` with `"flat"`, a pyarrow column with `"arrow"`).
    #[pyo3(signature = (texts, *, output="array", batch_size=None, show_progress=false, on_truncation="ignore"))]
    fn encode_queries<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        output: &str,
        batch_size: Option<Count>,
        show_progress: bool,
        on_truncation: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let output = Output::parse(output, true)?;
        let options = text_options(batch_size, show_progress, on_truncation)?;
        self.queries(py, texts, options, output)
    }

    /// Tokens of each whole query text, before truncation (the prompt not counted): more
    /// than `max_length()` means `encode_query` cuts it. An int for a str.
    #[pyo3(signature = (texts))]
    fn count_tokens<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let model = Arc::clone(&self.inner);
        count_tokens_with(py, texts, move |refs| model.count_tokens(refs))
    }

    /// MaxSim of a query (matrix or text) against a document (`VisionEmbedding` or matrix).
    #[pyo3(signature = (query, document))]
    fn search(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        document: &Bound<'_, PyAny>,
    ) -> PyResult<f32> {
        let q = self.query_matrix(py, query, "query")?;
        let d = document_matrix(document, "document")?;
        Ok(self.inner.search(&q, &d)?)
    }

    /// Encodes a query and a page image and scores them.
    #[pyo3(signature = (query, image))]
    fn search_document(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        image: &Bound<'_, PyAny>,
    ) -> PyResult<f32> {
        let query = text_arg(query, "query")?;
        let input = image_arg(image, "image")?;
        let model = Arc::clone(&self.inner);
        detached(py, move || model.search_document(&query, &input))
    }

    /// MaxSim scores `(len(queries), len(documents))`.
    #[pyo3(signature = (queries, documents))]
    fn similarity_matrix<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let queries = queries
            .try_iter()?
            .enumerate()
            .map(|(i, q)| self.query_matrix(py, &q?, &format!("queries[{i}]")))
            .collect::<PyResult<Vec<_>>>()?;
        let documents = documents
            .try_iter()?
            .enumerate()
            .map(|(i, d)| document_matrix(&d?, &format!("documents[{i}]")))
            .collect::<PyResult<Vec<_>>>()?;
        let model = Arc::clone(&self.inner);
        let scores = detached(py, move || model.similarity_matrix(&queries, &documents))?;
        matrix_to_numpy(py, scores)
    }

    fn embedding_dim(&self) -> usize {
        self.inner.embedding_dim()
    }

    /// Image patch rows per document (1024 for the 448-pixel models).
    fn num_patches(&self) -> usize {
        self.inner.num_patches()
    }

    /// Side of the square the images are resized to.
    fn image_size(&self) -> usize {
        self.inner.image_size()
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
        Ok((restore, ("vision", self.settings.clone())))
    }

    fn __repr__(&self) -> String {
        format!(
            "TesseraVision(model={}, embedding_dim={}, num_patches={}, image_size={}, device={})",
            str_repr(self.inner.model()),
            self.inner.embedding_dim(),
            self.inner.num_patches(),
            self.inner.image_size(),
            device_repr(self.inner.device())
        )
    }
}

impl PyVision {
    pub fn from_builder(py: Python<'_>, builder: VisionBuilder) -> PyResult<Self> {
        let settings = builder.to_json()?;
        let inner = detached(py, move || builder.build())?;
        Ok(PyVision {
            inner: Arc::new(inner),
            settings,
        })
    }

    fn queries<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        options: EncodeOptions,
        output: Output,
    ) -> PyResult<Bound<'py, PyAny>> {
        let texts = texts_arg(texts, "texts")?;
        let model = Arc::clone(&self.inner);
        let call = options.clone();
        let queries = detached(py, move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.encode_query_tokens(&refs, &call)
        })?;
        finish(py, &options)?;
        if output == Output::Object {
            let list = PyList::empty(py);
            for query in queries {
                list.append(PyTokenEmbeddings::wrap(py, query)?)?;
            }
            return Ok(list.into_any());
        }
        let matrices = queries.into_iter().map(|q| q.embeddings).collect();
        self.matrices_as(py, matrices, output)
    }

    /// Pages in the asked form; `sources` name each (a path, or a PDF page).
    fn encode_pages<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<ImageInput>,
        sources: Vec<Option<String>>,
        pages: Pages,
        output: Output,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = EncodeOptions {
            batch_size: pages.batch_size,
            show_progress: pages.show_progress,
            ..EncodeOptions::default()
        };
        let model = Arc::clone(&self.inner);
        let matrices = detached(py, move || {
            let matrices = model.encode_documents(&inputs, &options)?;
            match pages.pool_factor {
                Some(k) => pool_all(matrices, k, PoolingStyle::ColPali),
                None => Ok(matrices),
            }
        })?;
        if output != Output::Object {
            return self.matrices_as(py, matrices, output);
        }
        let list = PyList::empty(py);
        for (matrix, source) in matrices.into_iter().zip(sources) {
            list.append(PyVisionEmbedding::wrap(
                py,
                matrix,
                self.inner.num_patches(),
                source,
            )?)?;
        }
        Ok(list.into_any())
    }

    /// Matrices as a list of arrays, one `RaggedEmbeddings`, or a pyarrow column.
    fn matrices_as<'py>(
        &self,
        py: Python<'py>,
        matrices: Vec<Matrix>,
        output: Output,
    ) -> PyResult<Bound<'py, PyAny>> {
        if output == Output::Array || output == Output::Object {
            let list = PyList::empty(py);
            for matrix in matrices {
                list.append(matrix_to_numpy(py, matrix)?)?;
            }
            return Ok(list.into_any());
        }
        let flat = PyRaggedEmbeddings::from_matrices(py, matrices, self.inner.embedding_dim())?;
        let flat = Bound::new(py, flat)?;
        if output == Output::Arrow {
            flat.call_method0("to_arrow")
        } else {
            Ok(flat.into_any())
        }
    }

    fn query_matrix(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        name: &str,
    ) -> PyResult<Matrix> {
        if value.is_instance_of::<PyString>() {
            let text = text_arg(value, name)?;
            let model = Arc::clone(&self.inner);
            return detached(py, move || model.encode_query(&text));
        }
        matrix_arg(value, name)
    }
}

/// How a call encodes pages.
#[derive(Debug, Clone, Copy)]
struct Pages {
    batch_size: Option<usize>,
    show_progress: bool,
    /// Pool each page's rows as colpali-engine's `HierarchicalTokenPooler` does.
    pool_factor: Option<usize>,
}

impl Pages {
    fn new(
        batch_size: Option<Count>,
        show_progress: bool,
        pool_factor: Option<Count>,
    ) -> PyResult<Self> {
        Ok(Pages {
            batch_size: batch_size.map(Count::get),
            show_progress,
            pool_factor: pool_factor.map(pool_factor_arg).transpose()?,
        })
    }
}

fn document_matrix(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Matrix> {
    if let Ok(embedding) = value.cast::<PyVisionEmbedding>() {
        return Ok(embedding.get().matrix.clone());
    }
    matrix_arg(value, name)
}

/// An image argument: a path, bytes, a uint8 array or an array-interface object.
fn image_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<ImageInput> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(ImageInput::Path(PathBuf::from(s.to_cow()?.into_owned())));
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(ImageInput::Bytes(bytes.as_bytes().to_vec()));
    }
    if let Ok(bytes) = value.cast::<PyByteArray>() {
        return Ok(ImageInput::Bytes(bytes.to_vec()));
    }
    let py = value.py();
    // Anything else must at least look like an array or an image.
    let array_like = [
        "__array__",
        "__array_interface__",
        "__array_struct__",
        "shape",
        "mode",
    ]
    .iter()
    .any(|attr| value.hasattr(*attr).unwrap_or(false));
    if value.is_none()
        || !(array_like
            || value.hasattr("__fspath__")?
            || value.is_instance_of::<pyo3::types::PyList>())
    {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a path, bytes, a uint8 array or a PIL image, not {}",
            type_name(value)
        )));
    }
    if value.hasattr("__fspath__")? {
        let path: String = py
            .import("os")?
            .call_method1("fspath", (value,))?
            .extract()?;
        return Ok(ImageInput::Path(PathBuf::from(path)));
    }
    // PIL images in modes other than L / RGB / RGBA (palette, 16-bit, CMYK...) are
    // converted by Pillow first, as the reference's processor does.
    let mut value = value.clone();
    if let Ok(mode) = value.getattr("mode").and_then(|m| m.extract::<String>()) {
        if !matches!(mode.as_str(), "L" | "RGB" | "RGBA") {
            let transparent = mode.ends_with('A')
                || value
                    .getattr("info")
                    .and_then(|info| info.contains("transparency"))
                    .unwrap_or(false);
            value = value.call_method1("convert", (if transparent { "RGBA" } else { "RGB" },))?;
        }
    }
    let array = py
        .import("numpy")?
        .call_method1("asarray", (&value,))
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{name} must be a path, bytes, a uint8 array or a PIL image, not {}",
                type_name(&value)
            ))
        })?;
    let array = array.cast_into::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a path, bytes, a uint8 array or a PIL image"
        ))
    })?;
    if array.dtype().kind() != b'u' || array.dtype().itemsize() != 1 {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a uint8 image array, not dtype {} (scale floats to 0..255 and cast)",
            array.dtype()
        )));
    }
    let shape = array.shape().to_vec();
    let (height, width, channels) = match shape.as_slice() {
        [h, w] => (*h, *w, 1),
        [h, w, c] if matches!(c, 1 | 3 | 4) => (*h, *w, *c),
        [_, _, c] => {
            return Err(PyValueError::new_err(format!(
                "{name} has {c} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)"
            )))
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "{name} must be (H, W), (H, W, 3) or (H, W, 4), got {} dimensions",
                other.len()
            )))
        }
    };
    let contiguous = py
        .import("numpy")?
        .call_method1("ascontiguousarray", (&array,))?
        .cast_into::<numpy::PyArrayDyn<u8>>()?;
    let data = contiguous.readonly().as_slice()?.to_vec();
    Ok(ImageInput::Pixels {
        height,
        width,
        channels,
        data,
    })
}

py_builder!(
    "TesseraVisionBuilder",
    PyVisionBuilder,
    VisionBuilder,
    PyVision,
    {}
);

async_and_stream_methods!(PyVision, merge = true,
    async { aencode => "encode", aencode_query => "encode_query", aencode_document => "encode" },
    stream { encode_stream => "encode_documents" });
