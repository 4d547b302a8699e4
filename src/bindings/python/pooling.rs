//! `tessera.pool_embeddings` and the `pool_factor` keyword: hierarchical token pooling
//! of token matrices, as PyLate or colpali-engine pool them.

use pyo3::prelude::*;

use super::convert::{detached, matrix_arg, matrix_to_numpy, Count};
use crate::pooling::{pool, PoolingStyle};

/// The `style=` keyword with its protected-token count.
pub fn pooling_style(style: &str, protected_tokens: usize) -> PyResult<PoolingStyle> {
    match style {
        "pylate" => Ok(PoolingStyle::PyLate {
            protected: protected_tokens,
        }),
        "colpali" => Ok(PoolingStyle::ColPali),
        other => Err(super::errors::config_error(format!(
            "style must be 'pylate' or 'colpali', got {other:?}"
        ))),
    }
}

/// A checked `pool_factor` (at least 1).
pub fn pool_factor_arg(pool_factor: Count) -> PyResult<usize> {
    match pool_factor.get() {
        0 => Err(super::errors::config_error(
            "pool_factor must be at least 1",
        )),
        n => Ok(n),
    }
}

/// Hierarchical pooling of one token matrix `(n, dim)`: Ward clusters of its rows, each
/// replaced by its mean; `max(n // pool_factor, 1)` clusters at most. `style="pylate"`
/// (PyLate's documents: the first `protected_tokens` rows kept, plain means) or
/// `"colpali"` (colpali-engine's pooler: every row pooled, means normalised).
#[pyfunction]
#[pyo3(signature = (embeddings, pool_factor, *, style="pylate", protected_tokens=Count(1)), text_signature = "(embeddings, pool_factor, *, style='pylate', protected_tokens=1)")]
pub fn pool_embeddings<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyAny>,
    pool_factor: Count,
    style: &str,
    protected_tokens: Count,
) -> PyResult<Bound<'py, numpy::PyArray2<f32>>> {
    let style = pooling_style(style, protected_tokens.get())?;
    let pool_factor = pool_factor_arg(pool_factor)?;
    let matrix = matrix_arg(embeddings, "embeddings")?;
    let pooled = detached(py, move || pool(&matrix, pool_factor, style))?;
    matrix_to_numpy(py, pooled)
}
