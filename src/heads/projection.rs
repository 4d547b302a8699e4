//! The linear projection ColBERT puts on top of the encoder (colbert-ai's `linear`,
//! PyLate's `Dense` module): `y = x W^T (+ b)`, weight stored `[out, in]`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::{Result, TesseraError};

pub struct Projection {
    /// `[in, out]`: transposed once at load so every forward is a plain matmul.
    weight_t: Tensor,
    bias: Option<Tensor>,
    in_dim: usize,
    out_dim: usize,
}

impl Projection {
    /// Loads `linear.weight` (and `linear.bias` when `bias` is set) from `vb`; the
    /// output size comes from the stored weight, the input size must be `in_dim`.
    pub fn load(vb: &VarBuilder, in_dim: usize, bias: bool, source: &str) -> Result<Self> {
        let weight = vb.get_unchecked("linear.weight").map_err(|e| {
            TesseraError::load(
                source,
                format!("no ColBERT projection weight 'linear.weight': {e}"),
            )
        })?;
        let (out_dim, stored_in) = weight
            .dims2()
            .map_err(|_| TesseraError::load(source, "'linear.weight' is not a matrix"))?;
        if stored_in != in_dim {
            return Err(TesseraError::load(
                source,
                format!("'linear.weight' expects inputs of size {stored_in}, but the encoder produces {in_dim}"),
            ));
        }
        let bias = if bias {
            Some(
                vb.get(out_dim, "linear.bias")
                    .map_err(|e| TesseraError::load(source, e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Projection {
            weight_t: weight.t()?.contiguous()?,
            bias,
            in_dim,
            out_dim,
        })
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Projects rows `[n, in]` to `[n, out]`.
    pub fn forward(&self, rows: &Tensor) -> Result<Tensor> {
        let projected = rows.matmul(&self.weight_t)?;
        Ok(match &self.bias {
            Some(bias) => projected.broadcast_add(bias)?,
            None => projected,
        })
    }
}
