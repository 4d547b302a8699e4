//! L2 normalisation of embedding rows.

use candle_core::{Tensor, D};

use crate::error::Result;

/// Divides each row by `max(||row||_2, 1e-12)`, as sentence-transformers' `Normalize`.
pub fn l2_normalize(rows: &Tensor) -> Result<Tensor> {
    let norms = rows
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12f64, f64::INFINITY)?;
    Ok(rows.broadcast_div(&norms)?)
}
