//! Quantization of embeddings and similarities on the quantized form.
//!
//! Two families live here:
//! - [`QuantizedEmbeddings`]: token matrices of a multi-vector model stored as packed
//!   bits (binary) or as per-token scaled integers (int8, int4), with MaxSim on them;
//! - [`quantize_embeddings`]: sentence-transformers' `quantize_embeddings` for dense
//!   arrays (`binary`, `ubinary`, `int8`, `uint8` with batch or calibration ranges).

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

use crate::error::{Result, TesseraError};
use crate::matrix::Matrix;

/// How a multi-vector embedder stores its token matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum QuantizationConfig {
    #[default]
    None,
    Binary,
    Int8,
    Int4,
}

impl QuantizationConfig {
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "none" | "none_" | "" | "float32" | "f32" => Ok(QuantizationConfig::None),
            "binary" | "ubinary" => Ok(QuantizationConfig::Binary),
            "int8" => Ok(QuantizationConfig::Int8),
            "int4" => Ok(QuantizationConfig::Int4),
            other => Err(TesseraError::Quantization(format!(
                "unknown quantization '{other}'; expected one of none, binary, int8, int4"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QuantizationConfig::None => "none",
            QuantizationConfig::Binary => "binary",
            QuantizationConfig::Int8 => "int8",
            QuantizationConfig::Int4 => "int4",
        }
    }
}

crate::device::serde_as_str!(QuantizationConfig);

impl FromStr for QuantizationConfig {
    type Err = TesseraError;

    fn from_str(s: &str) -> Result<Self> {
        QuantizationConfig::parse(s)
    }
}

impl fmt::Display for QuantizationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token matrix `(num_tokens, original_dim)` in quantized form.
///
/// `data` is row-major `(num_tokens, row_bytes())`:
/// - binary: bit = component > 0, `np.packbits` order (component 0 is the most
///   significant bit of byte 0, the last byte zero-padded);
/// - int8: one signed byte per component (two's complement), `x ≈ q * scale`;
/// - int4: two components per byte, the first in the high nibble, each stored as
///   `q + 8` with `q` in `-7..=7`, `x ≈ q * scale`.
///
/// `scales` holds one factor per token for int8 / int4 and is empty for binary.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedEmbeddings {
    precision: QuantizationConfig,
    original_dim: usize,
    num_tokens: usize,
    data: Vec<u8>,
    scales: Vec<f32>,
}

impl QuantizedEmbeddings {
    /// Rebuilds quantized embeddings from their parts (e.g. arrays handed back from
    /// Python), checking that the sizes agree.
    pub fn from_parts(
        precision: QuantizationConfig,
        original_dim: usize,
        num_tokens: usize,
        data: Vec<u8>,
        scales: Vec<f32>,
    ) -> Result<Self> {
        if precision == QuantizationConfig::None {
            return Err(TesseraError::Quantization(
                "quantized embeddings need a precision other than none".into(),
            ));
        }
        let expected_data = num_tokens * row_bytes(precision, original_dim);
        let expected_scales = if precision == QuantizationConfig::Binary {
            0
        } else {
            num_tokens
        };
        if data.len() != expected_data || scales.len() != expected_scales {
            return Err(TesseraError::Quantization(format!(
                "{precision} embeddings of {num_tokens} tokens x {original_dim} need {expected_data} bytes and \
                 {expected_scales} scales, got {} and {}",
                data.len(),
                scales.len()
            )));
        }
        Ok(QuantizedEmbeddings {
            precision,
            original_dim,
            num_tokens,
            data,
            scales,
        })
    }

    pub fn precision(&self) -> QuantizationConfig {
        self.precision
    }

    pub fn original_dim(&self) -> usize {
        self.original_dim
    }

    pub fn num_tokens(&self) -> usize {
        self.num_tokens
    }

    /// Bytes per token row of `data`.
    pub fn row_bytes(&self) -> usize {
        row_bytes(self.precision, self.original_dim)
    }

    /// `(num_tokens, row_bytes())`: the shape of `data` as a NumPy uint8 array.
    pub fn shape(&self) -> (usize, usize) {
        (self.num_tokens, self.row_bytes())
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Bytes held: the packed values plus the per-token scales.
    pub fn memory_bytes(&self) -> usize {
        self.data.len() + self.scales.len() * std::mem::size_of::<f32>()
    }

    /// Size of the same matrix as float32 divided by `memory_bytes()` (32 for binary
    /// when the dimension is a multiple of 8).
    pub fn compression_ratio(&self) -> f32 {
        let float_bytes = self.num_tokens * self.original_dim * std::mem::size_of::<f32>();
        match self.memory_bytes() {
            0 => 1.0,
            stored => float_bytes as f32 / stored as f32,
        }
    }

    /// The approximate float matrix: `q * scale` for int8 / int4, `±1` per bit for binary.
    pub fn dequantize(&self) -> Matrix {
        let dim = self.original_dim;
        let mut data = Vec::with_capacity(self.num_tokens * dim);
        for t in 0..self.num_tokens {
            let row = self.row(t);
            match self.precision {
                QuantizationConfig::Binary | QuantizationConfig::None => {
                    data.extend((0..dim).map(|c| if bit(row, c) { 1.0 } else { -1.0 }));
                }
                QuantizationConfig::Int8 => {
                    let scale = self.scales[t];
                    data.extend(row.iter().map(|&b| b as i8 as f32 * scale));
                }
                QuantizationConfig::Int4 => {
                    let scale = self.scales[t];
                    data.extend((0..dim).map(|c| int4(row, c) as f32 * scale));
                }
            }
        }
        Matrix {
            rows: self.num_tokens,
            cols: dim,
            data,
        }
    }

    fn row(&self, t: usize) -> &[u8] {
        let width = self.row_bytes();
        &self.data[t * width..(t + 1) * width]
    }

    /// Similarity of one token row here with one token row of `other` (same precision
    /// and dimension, checked by the caller).
    fn token_similarity(&self, i: usize, other: &QuantizedEmbeddings, j: usize) -> f32 {
        let (a, b) = (self.row(i), other.row(j));
        match self.precision {
            QuantizationConfig::Binary | QuantizationConfig::None => {
                // Padding bits are 0 in both rows, so they never count as differences.
                let hamming: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
                1.0 - 2.0 * hamming as f32 / self.original_dim as f32
            }
            QuantizationConfig::Int8 => {
                let dot: i32 = a
                    .iter()
                    .zip(b)
                    .map(|(&x, &y)| x as i8 as i32 * y as i8 as i32)
                    .sum();
                dot as f32 * self.scales[i] * other.scales[j]
            }
            QuantizationConfig::Int4 => {
                let dot: i32 = (0..self.original_dim)
                    .map(|c| int4(a, c) as i32 * int4(b, c) as i32)
                    .sum();
                dot as f32 * self.scales[i] * other.scales[j]
            }
        }
    }
}

fn row_bytes(precision: QuantizationConfig, dim: usize) -> usize {
    match precision {
        QuantizationConfig::Binary | QuantizationConfig::None => dim.div_ceil(8),
        QuantizationConfig::Int8 => dim,
        QuantizationConfig::Int4 => dim.div_ceil(2),
    }
}

fn bit(row: &[u8], c: usize) -> bool {
    row[c / 8] & (0x80 >> (c % 8)) != 0
}

fn int4(row: &[u8], c: usize) -> i8 {
    let byte = row[c / 2];
    let nibble = if c.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0f
    };
    nibble as i8 - 8
}

/// Packs one row as `np.packbits(row > 0)`.
fn pack_bits(row: &[f32], out: &mut Vec<u8>) {
    for chunk in row.chunks(8) {
        let mut byte = 0u8;
        for (k, &x) in chunk.iter().enumerate() {
            if x > 0.0 {
                byte |= 0x80 >> k;
            }
        }
        out.push(byte);
    }
}

/// Per-token symmetric scale so that the largest magnitude maps to `levels`.
fn absmax_scale(row: &[f32], levels: f32) -> f32 {
    let absmax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
    if absmax > 0.0 {
        absmax / levels
    } else {
        1.0
    }
}

/// Quantizes a token matrix. `QuantizationConfig::None` is not a quantization and
/// is refused.
pub fn quantize(matrix: &Matrix, config: QuantizationConfig) -> Result<QuantizedEmbeddings> {
    check_finite(matrix)?;
    let dim = matrix.cols;
    let mut data = Vec::with_capacity(matrix.rows * row_bytes(config, dim));
    let mut scales = Vec::new();
    match config {
        QuantizationConfig::None => {
            return Err(TesseraError::Quantization(
                "quantization 'none' was requested; choose binary, int8 or int4".into(),
            ))
        }
        QuantizationConfig::Binary => {
            for row in matrix.iter_rows() {
                pack_bits(row, &mut data);
            }
        }
        QuantizationConfig::Int8 => {
            for row in matrix.iter_rows() {
                let scale = absmax_scale(row, 127.0);
                scales.push(scale);
                data.extend(
                    row.iter()
                        .map(|&x| (x / scale).round().clamp(-127.0, 127.0) as i8 as u8),
                );
            }
        }
        QuantizationConfig::Int4 => {
            for row in matrix.iter_rows() {
                let scale = absmax_scale(row, 7.0);
                scales.push(scale);
                let level = |x: f32| ((x / scale).round().clamp(-7.0, 7.0) as i8 + 8) as u8;
                for pair in row.chunks(2) {
                    let high = level(pair[0]);
                    let low = pair.get(1).map_or(0, |&x| level(x));
                    data.push((high << 4) | low);
                }
            }
        }
    }
    Ok(QuantizedEmbeddings {
        precision: config,
        original_dim: dim,
        num_tokens: matrix.rows,
        data,
        scales,
    })
}

fn check_finite(matrix: &Matrix) -> Result<()> {
    if matrix.data.len() != matrix.rows * matrix.cols {
        return Err(TesseraError::Quantization(format!(
            "matrix of shape ({}, {}) holds {} values",
            matrix.rows,
            matrix.cols,
            matrix.data.len()
        )));
    }
    if matrix.data.iter().any(|x| !x.is_finite()) {
        return Err(TesseraError::Quantization(
            "embeddings contain NaN or infinite values".into(),
        ));
    }
    Ok(())
}

/// MaxSim on quantized matrices: per (query token, document token) the quantized
/// similarity (binary: `1 - 2 * hamming / dim`; int8 / int4: the dot product of the
/// dequantized rows), max over document tokens, summed over query tokens.
pub fn maxsim_quantized(
    query: &QuantizedEmbeddings,
    document: &QuantizedEmbeddings,
) -> Result<f32> {
    if query.original_dim != document.original_dim {
        return Err(TesseraError::DimensionMismatch {
            expected: query.original_dim,
            actual: document.original_dim,
        });
    }
    if query.precision != document.precision {
        return Err(TesseraError::Quantization(format!(
            "cannot compare {} embeddings with {} embeddings",
            query.precision, document.precision
        )));
    }
    let score = (0..query.num_tokens)
        .map(|i| {
            (0..document.num_tokens)
                .map(|j| query.token_similarity(i, document, j))
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .filter(|best| best.is_finite())
        .sum();
    Ok(score)
}

/// Quantized MaxSim of every query against every document: `(queries, documents)`.
pub fn maxsim_quantized_matrix(
    queries: &[QuantizedEmbeddings],
    documents: &[QuantizedEmbeddings],
) -> Result<Matrix> {
    // Parallel over pairs, not queries, so ranking one query still uses every core.
    let n = documents.len();
    let data = (0..queries.len() * n)
        .into_par_iter()
        .map(|k| maxsim_quantized(&queries[k / n], &documents[k % n]))
        .collect::<Result<Vec<f32>>>()?;
    Ok(Matrix {
        rows: queries.len(),
        cols: documents.len(),
        data,
    })
}

/// Output precisions of sentence-transformers' `quantize_embeddings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Float32,
    Int8,
    Uint8,
    Binary,
    Ubinary,
}

impl Precision {
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "float32" => Ok(Precision::Float32),
            "int8" => Ok(Precision::Int8),
            "uint8" => Ok(Precision::Uint8),
            "binary" => Ok(Precision::Binary),
            "ubinary" => Ok(Precision::Ubinary),
            other => Err(TesseraError::Quantization(format!(
                "unknown precision '{other}'; expected one of float32, int8, uint8, binary, ubinary"
            ))),
        }
    }
}

impl FromStr for Precision {
    type Err = TesseraError;

    fn from_str(s: &str) -> Result<Self> {
        Precision::parse(s)
    }
}

/// A quantized dense array, row-major `(rows, cols)`; `cols` is `ceil(dim / 8)` for
/// the binary precisions.
#[derive(Debug, Clone, PartialEq)]
pub enum QuantizedArray {
    Float32(Matrix),
    Int8 {
        rows: usize,
        cols: usize,
        data: Vec<i8>,
    },
    Uint8 {
        rows: usize,
        cols: usize,
        data: Vec<u8>,
    },
}

impl QuantizedArray {
    pub fn shape(&self) -> (usize, usize) {
        match self {
            QuantizedArray::Float32(m) => (m.rows, m.cols),
            QuantizedArray::Int8 { rows, cols, .. } | QuantizedArray::Uint8 { rows, cols, .. } => {
                (*rows, *cols)
            }
        }
    }
}

/// Per-dimension `[min; max]` over the rows of `embeddings`: a `(2, dim)` matrix, the
/// ranges sentence-transformers derives for int8 / uint8.
pub fn embedding_ranges(embeddings: &Matrix) -> Result<Matrix> {
    check_finite(embeddings)?;
    if embeddings.rows == 0 {
        return Err(TesseraError::Quantization(
            "cannot derive quantization ranges from zero embeddings".into(),
        ));
    }
    let dim = embeddings.cols;
    let mut data = vec![f32::INFINITY; dim];
    data.extend(std::iter::repeat_n(f32::NEG_INFINITY, dim));
    for row in embeddings.iter_rows() {
        for (c, &x) in row.iter().enumerate() {
            data[c] = data[c].min(x);
            data[dim + c] = data[dim + c].max(x);
        }
    }
    Ok(Matrix {
        rows: 2,
        cols: dim,
        data,
    })
}

/// sentence-transformers' `quantize_embeddings(embeddings, precision, ranges,
/// calibration_embeddings)` on a dense `(n, dim)` array.
///
/// - `ubinary`: `np.packbits(x > 0)` per row as uint8; `binary`: the same bytes minus
///   128 as int8;
/// - `int8` / `uint8`: `start = ranges[0]`, `step = (ranges[1] - ranges[0]) / 255` (a
///   zero step becomes 1), `q = clip(floor((x - start) / step), 0, 255)`, minus 128 for
///   int8. Ranges are the given ones, else the `[min; max]` of the calibration
///   embeddings, else of `embeddings` itself.
pub fn quantize_embeddings(
    embeddings: &Matrix,
    precision: Precision,
    ranges: Option<&Matrix>,
    calibration: Option<&Matrix>,
) -> Result<QuantizedArray> {
    check_finite(embeddings)?;
    let (rows, dim) = (embeddings.rows, embeddings.cols);
    match precision {
        Precision::Float32 => Ok(QuantizedArray::Float32(embeddings.clone())),
        Precision::Binary | Precision::Ubinary => {
            let mut packed = Vec::with_capacity(rows * dim.div_ceil(8));
            for row in embeddings.iter_rows() {
                pack_bits(row, &mut packed);
            }
            let cols = dim.div_ceil(8);
            Ok(if precision == Precision::Ubinary {
                QuantizedArray::Uint8 {
                    rows,
                    cols,
                    data: packed,
                }
            } else {
                let data = packed
                    .into_iter()
                    .map(|b| b.wrapping_sub(128) as i8)
                    .collect();
                QuantizedArray::Int8 { rows, cols, data }
            })
        }
        Precision::Int8 | Precision::Uint8 => {
            let derived;
            let ranges = match (ranges, calibration) {
                (Some(r), _) => r,
                (None, Some(calibration)) => {
                    derived = embedding_ranges(calibration)?;
                    &derived
                }
                (None, None) => {
                    derived = embedding_ranges(embeddings)?;
                    &derived
                }
            };
            if ranges.rows != 2 || ranges.cols != dim || ranges.data.len() != 2 * dim {
                return Err(TesseraError::DimensionMismatch {
                    expected: dim,
                    actual: ranges.cols,
                });
            }
            let (starts, ends) = ranges.data.split_at(dim);
            let steps: Vec<f32> = starts
                .iter()
                .zip(ends)
                .map(|(s, e)| {
                    let step = (e - s) / 255.0;
                    if step == 0.0 {
                        1.0
                    } else {
                        step
                    }
                })
                .collect();
            let level = |c: usize, x: f32| ((x - starts[c]) / steps[c]).floor().clamp(0.0, 255.0);
            let levels = embeddings
                .iter_rows()
                .flat_map(|row| row.iter().enumerate().map(|(c, &x)| level(c, x)))
                .collect::<Vec<f32>>();
            Ok(if precision == Precision::Uint8 {
                QuantizedArray::Uint8 {
                    rows,
                    cols: dim,
                    data: levels.into_iter().map(|q| q as u8).collect(),
                }
            } else {
                QuantizedArray::Int8 {
                    rows,
                    cols: dim,
                    data: levels.into_iter().map(|q| (q - 128.0) as i8).collect(),
                }
            })
        }
    }
}
