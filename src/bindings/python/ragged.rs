//! `RaggedEmbeddings`: a batch of token matrices as one `(total_rows, dim)` array and
//! `(n + 1,)` offsets, handed to NumPy without a copy, and as an Arrow column on demand.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PySlice;

use super::convert::{array_protocol, matrix_arg};
use super::repr::html_card;
use crate::matrix::Matrix;

/// Document `i` is `values[offsets[i]:offsets[i + 1]]`.
#[pyclass(name = "RaggedEmbeddings", module = "tessera", frozen, sequence)]
pub struct PyRaggedEmbeddings {
    values: Py<PyArray2<f32>>,
    offsets: Py<PyArray1<i64>>,
    bounds: Vec<usize>,
    dim: usize,
}

impl PyRaggedEmbeddings {
    /// Moves the matrices into one buffer (the only copy) and gives it to NumPy.
    pub fn from_matrices(py: Python<'_>, matrices: Vec<Matrix>, dim: usize) -> PyResult<Self> {
        let total: usize = matrices.iter().map(|m| m.rows).sum();
        let mut data = Vec::new();
        data.try_reserve_exact(total * dim).map_err(|_| {
            crate::error::TesseraError::OutOfMemory(format!(
                "{total} rows of {dim} floats do not fit in memory"
            ))
        })?;
        let mut bounds = Vec::with_capacity(matrices.len() + 1);
        bounds.push(0);
        for matrix in matrices {
            if matrix.cols != dim {
                return Err(PyRuntimeError::new_err(format!(
                    "internal: a matrix of width {} in a batch of width {dim}",
                    matrix.cols
                )));
            }
            data.extend_from_slice(&matrix.data);
            bounds.push(bounds[bounds.len() - 1] + matrix.rows);
        }
        Self::from_parts(py, data, bounds, dim)
    }

    fn from_parts(
        py: Python<'_>,
        data: Vec<f32>,
        bounds: Vec<usize>,
        dim: usize,
    ) -> PyResult<Self> {
        let rows = bounds.last().copied().unwrap_or(0);
        let values = Array2::from_shape_vec((rows, dim), data)
            .map_err(|e| PyRuntimeError::new_err(format!("internal shape error: {e}")))?
            .into_pyarray(py);
        values.readwrite().make_nonwriteable();
        let offsets = PyArray1::from_vec(py, bounds.iter().map(|&b| b as i64).collect());
        offsets.readwrite().make_nonwriteable();
        Ok(PyRaggedEmbeddings {
            values: values.unbind(),
            offsets: offsets.unbind(),
            bounds,
            dim,
        })
    }

    fn view<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Bound<'py, PyAny>> {
        let slice = PySlice::new(
            py,
            self.bounds[index] as isize,
            self.bounds[index + 1] as isize,
            1,
        );
        self.values.bind(py).as_any().get_item(slice)
    }
}

#[pymethods]
impl PyRaggedEmbeddings {
    #[new]
    fn new(
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        offsets: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<Self> {
        let values = matrix_arg(values, "values")?;
        let offsets = offsets.as_array();
        let valid = offsets.first() == Some(&0)
            && offsets.windows(2).into_iter().all(|w| w[0] <= w[1])
            && offsets
                .last()
                .is_some_and(|&last| last as usize == values.rows);
        if !valid {
            return Err(PyValueError::new_err(format!(
                "offsets must rise from 0 to the number of rows ({}), one more than the documents",
                values.rows
            )));
        }
        let bounds = offsets.iter().map(|&o| o as usize).collect();
        Self::from_parts(py, values.data, bounds, values.cols)
    }

    /// Every row of every document, `(total_rows, dim)` float32.
    #[getter]
    fn values<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f32>> {
        self.values.bind(py).clone()
    }

    /// `(n + 1,)` int64: document `i` is `values[offsets[i]:offsets[i + 1]]`.
    #[getter]
    fn offsets<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.offsets.bind(py).clone()
    }

    /// Rows of each document.
    #[getter]
    fn lengths(&self) -> Vec<usize> {
        self.bounds.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.dim
    }

    fn __len__(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Document `index` as a view of `values` (no copy).
    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyAny>> {
        let n = self.bounds.len() as isize - 1;
        let i = if index < 0 { index + n } else { index };
        if !(0..n).contains(&i) {
            return Err(PyIndexError::new_err(format!(
                "index {index} out of range for {n} documents"
            )));
        }
        self.view(py, i as usize)
    }

    /// `values`, so `np.asarray(batch)` is the flat matrix.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        array_protocol(self.values.bind(py).as_any(), dtype, copy)
    }

    /// A pyarrow `LargeListArray` of `FixedSizeList<float32>[dim]`, one entry per
    /// document, over the same memory as `values` and `offsets`.
    fn to_arrow<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pa = py.import("pyarrow").map_err(|_| {
            pyo3::exceptions::PyImportError::new_err(
                "to_arrow needs pyarrow: pip install pyarrow (or 'tessera-embeddings[parquet]')",
            )
        })?;
        let flat = self.values.bind(py).call_method1("reshape", (-1,))?;
        let floats = pa.call_method1("array", (flat,))?;
        let rows = pa
            .getattr("FixedSizeListArray")?
            .call_method1("from_arrays", (floats, self.dim))?;
        let offsets = pa.call_method1("array", (self.offsets.bind(py),))?;
        pa.getattr("LargeListArray")?
            .call_method1("from_arrays", (offsets, rows))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let this = slf.get();
        let args = (this.values.bind(py).clone(), this.offsets.bind(py).clone())
            .into_pyobject(py)?
            .into_any();
        Ok((slf.get_type().into_any(), args))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<PyRaggedEmbeddings>() else {
            return Ok(false);
        };
        let other = other.get();
        Ok(self.bounds == other.bounds
            && self.values.bind(py).readonly().as_slice()?
                == other.values.bind(py).readonly().as_slice()?)
    }

    fn _repr_html_(&self) -> String {
        html_card(
            "RaggedEmbeddings",
            &[
                ("documents", self.__len__().to_string()),
                ("rows", self.bounds.last().copied().unwrap_or(0).to_string()),
                ("dim", self.dim.to_string()),
            ],
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "RaggedEmbeddings(documents={}, rows={}, dim={})",
            self.__len__(),
            self.bounds.last().copied().unwrap_or(0),
            self.dim
        )
    }
}
