//! A dense row-major `f32` matrix: the form every embedding leaves the crate in, so
//! the bindings can hand the buffer to NumPy without copying it again.

use candle_core::{DType, Tensor};

use crate::error::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn empty(cols: usize) -> Self {
        Matrix {
            rows: 0,
            cols,
            data: Vec::new(),
        }
    }

    /// Copies a 2-D tensor to the host as `f32`.
    pub fn from_tensor(tensor: &Tensor) -> Result<Self> {
        let (rows, cols) = tensor.dims2()?;
        let data = tensor
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(Matrix { rows, cols, data })
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.cols.max(1)).take(self.rows)
    }
}
