//! Similarities between embeddings: cosine, dot product and MaxSim.

use crate::error::{Result, TesseraError};

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Cosine similarity, each vector divided by `max(norm, 1e-12)` as sentence-transformers does.
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f32> {
    if a.len() != b.len() {
        return Err(TesseraError::DimensionMismatch {
            expected: a.len(),
            actual: b.len(),
        });
    }
    let norm = |v: &[f32]| dot(v, v).sqrt().max(1e-12);
    Ok(dot(a, b) / (norm(a) * norm(b)))
}
