//! `DenseEmbedding`: one text's vector with the text and its tokens.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;

use super::repr::{html_card, str_repr};

use super::convert::array_protocol;

/// A dense vector with the text it came from and the tokens the model saw.
#[pyclass(name = "DenseEmbedding", module = "tessera", frozen)]
pub struct PyDenseEmbedding {
    embedding: Py<PyArray1<f32>>,
    values: Vec<f32>,
    text: Option<String>,
    tokens: Option<Vec<String>>,
}

impl PyDenseEmbedding {
    pub fn wrap(
        py: Python<'_>,
        values: Vec<f32>,
        text: Option<String>,
        tokens: Option<Vec<String>>,
    ) -> Self {
        let array = PyArray1::from_vec(py, values.clone());
        array.readwrite().make_nonwriteable();
        PyDenseEmbedding {
            embedding: array.unbind(),
            values,
            text,
            tokens,
        }
    }
}

#[pymethods]
impl PyDenseEmbedding {
    #[new]
    #[pyo3(signature = (embedding, text=None, tokens=None))]
    fn new(
        py: Python<'_>,
        embedding: PyReadonlyArray1<'_, f32>,
        text: Option<String>,
        tokens: Option<Vec<String>>,
    ) -> Self {
        Self::wrap(py, embedding.as_array().to_vec(), text, tokens)
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
