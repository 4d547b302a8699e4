//! Similarities between embeddings: cosine, dot product and MaxSim.

use rayon::prelude::*;

use crate::error::{Result, TesseraError};
use crate::matrix::Matrix;

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
    if a.is_empty() {
        return Err(TesseraError::Config(
            "cosine similarity needs non-empty vectors, got two of length 0".into(),
        ));
    }
    let norm = |v: &[f32]| dot(v, v).sqrt().max(1e-12);
    Ok(dot(a, b) / (norm(a) * norm(b)))
}

/// Dot product over eight independent accumulators, which the compiler vectorises
/// (a single running sum cannot be reordered); MaxSim spends its time here.
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = dot(a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((lane, p), q) in lanes.iter_mut().zip(x).zip(y) {
            *lane += p * q;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// MaxSim (late interaction): for each query row the best dot product with any
/// document row, summed over query rows. A document without rows contributes nothing.
pub fn maxsim(query: &Matrix, document: &Matrix) -> Result<f32> {
    if query.cols != document.cols {
        return Err(TesseraError::DimensionMismatch {
            expected: query.cols,
            actual: document.cols,
        });
    }
    if document.rows == 0 {
        return Ok(0.0);
    }
    Ok(query
        .iter_rows()
        .map(|q| {
            document
                .iter_rows()
                .map(|d| dot_lanes(q, d))
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .sum())
}

/// MaxSim of every query against every document: a `(queries, documents)` matrix,
/// computed in parallel.
pub fn maxsim_matrix(queries: &[Matrix], documents: &[Matrix]) -> Result<Matrix> {
    // Parallel over pairs, not queries, so ranking one query still uses every core.
    let n = documents.len();
    let data = (0..queries.len() * n)
        .into_par_iter()
        .map(|k| maxsim(&queries[k / n], &documents[k % n]))
        .collect::<Result<Vec<f32>>>()?;
    Ok(Matrix {
        rows: queries.len(),
        cols: documents.len(),
        data,
    })
}

/// Indices and scores of the `top_k` highest scores, best first (ties keep input order).
pub fn top_k(scores: &[f32], top_k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(top_k);
    ranked
}

/// sentence-transformers' similarity functions, by the names `similarity_fn_name` uses
/// in `config_sentence_transformers.json`. Distances are negated, so higher is closer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimilarityFunction {
    #[default]
    Cosine,
    Dot,
    Euclidean,
    Manhattan,
}

impl SimilarityFunction {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cosine" => Ok(SimilarityFunction::Cosine),
            "dot" | "dot_product" => Ok(SimilarityFunction::Dot),
            "euclidean" => Ok(SimilarityFunction::Euclidean),
            "manhattan" => Ok(SimilarityFunction::Manhattan),
            other => Err(TesseraError::Config(format!(
                "similarity function '{other}' is not one of cosine, dot, euclidean, manhattan"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SimilarityFunction::Cosine => "cosine",
            SimilarityFunction::Dot => "dot",
            SimilarityFunction::Euclidean => "euclidean",
            SimilarityFunction::Manhattan => "manhattan",
        }
    }

    /// The score of two vectors of one length.
    pub fn score(self, a: &[f32], b: &[f32]) -> Result<f32> {
        if a.len() != b.len() {
            return Err(TesseraError::DimensionMismatch {
                expected: a.len(),
                actual: b.len(),
            });
        }
        Ok(match self {
            SimilarityFunction::Cosine => return cosine(a, b),
            SimilarityFunction::Dot => dot(a, b),
            SimilarityFunction::Euclidean => -a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt(),
            SimilarityFunction::Manhattan => {
                -a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>()
            }
        })
    }

    /// Scores of every row of `a` against every row of `b`: `(a.rows, b.rows)`.
    pub fn matrix(self, a: &Matrix, b: &Matrix) -> Result<Matrix> {
        if a.cols != b.cols {
            return Err(TesseraError::DimensionMismatch {
                expected: a.cols,
                actual: b.cols,
            });
        }
        let data = a
            .iter_rows()
            .collect::<Vec<_>>()
            .par_iter()
            .map(|row| {
                b.iter_rows()
                    .map(|other| self.score(row, other))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?
            .concat();
        Ok(Matrix {
            rows: a.rows,
            cols: b.rows,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_functions_follow_their_definitions() {
        let a = Matrix {
            rows: 2,
            cols: 2,
            data: vec![3.0, 4.0, 1.0, 0.0],
        };
        let b = Matrix {
            rows: 1,
            cols: 2,
            data: vec![0.0, 2.0],
        };
        let scores = |f: SimilarityFunction| f.matrix(&a, &b).unwrap().data;
        assert_eq!(scores(SimilarityFunction::Dot), vec![8.0, 0.0]);
        assert_eq!(scores(SimilarityFunction::Cosine), vec![0.8, 0.0]);
        assert_eq!(
            scores(SimilarityFunction::Euclidean),
            vec![-(13f32).sqrt(), -(5f32).sqrt()]
        );
        assert_eq!(scores(SimilarityFunction::Manhattan), vec![-5.0, -3.0]);
        assert!(SimilarityFunction::parse("jaccard").is_err());
    }
}
