//! Fused f32 CPU kernels for the encoder's work between matrix multiplications.
//!
//! Candle runs a bias add, an activation, a residual add and a layer norm as separate
//! passes, each allocating its output, and attention of one text as a dozen small
//! tensor ops per layer. Here each of those steps is one pass over f32 slices, spread
//! over rayon's threads; the matrix multiplications stay with Candle (the `gemm`
//! crate). Used only for f32 tensors on the CPU; the Candle path serves every other
//! device and dtype, and the kernels agree with it within 1e-5.

use rayon::prelude::*;

use super::bert::Span;

/// Elements one rayon task handles at least, so scheduling stays cheap next to the work.
const ELEMENTS_PER_TASK: usize = 1 << 14;

fn rows_per_task(width: usize) -> usize {
    (ELEMENTS_PER_TASK / width.max(1)).max(1)
}

/// Runs `body` compiled for AVX2 where the CPU has it (wider vectors for the loops the
/// compiler vectorises), else for the baseline target.
#[inline(always)]
fn dispatch<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU must support AVX2.
        #[target_feature(enable = "avx2")]
        unsafe fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was just detected at run time.
            return unsafe { with_avx2(body) };
        }
    }
    body()
}

/// The error function, as Eigen and XLA evaluate it in f32: a rational approximation
/// on [-4, 4] (beyond which erf is ±1 in f32), within a few ulp of libm's `erff`
/// and free of branches, so the loops around it vectorise.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_1e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_3e-3;
    q = x2 * q + -1.426_474e-2;
    x * p / q
}

/// `gelu(x + bias)` (the exact, erf form) of every row of `x`, in place.
pub fn bias_gelu(x: &mut [f32], bias: &[f32]) {
    let width = bias.len();
    x.par_chunks_mut(width * rows_per_task(width)).for_each(|rows| {
        dispatch(|| {
            for row in rows.chunks_exact_mut(width) {
                for (v, b) in row.iter_mut().zip(bias) {
                    let u = *v + b;
                    *v = (erf(u * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * u;
                }
            }
        })
    });
}

/// `layer_norm(x + bias + residual) * gamma + beta` of every row of `x`, in place.
pub fn bias_residual_layer_norm(
    x: &mut [f32],
    bias: &[f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let width = bias.len();
    let chunk = width * rows_per_task(width);
    x.par_chunks_mut(chunk)
        .zip(residual.par_chunks(chunk))
        .for_each(|(rows, residual)| {
            dispatch(|| {
                for (row, res) in rows.chunks_exact_mut(width).zip(residual.chunks_exact(width)) {
                    for ((v, b), r) in row.iter_mut().zip(bias).zip(res) {
                        *v += b + r;
                    }
                    layer_norm_row(row, gamma, beta, eps);
                }
            })
        });
}

/// `layer_norm(x) * gamma + beta` of every row of `x`, in place.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = gamma.len();
    x.par_chunks_mut(width * rows_per_task(width)).for_each(|rows| {
        dispatch(|| {
            for row in rows.chunks_exact_mut(width) {
                layer_norm_row(row, gamma, beta, eps);
            }
        })
    });
}

#[inline(always)]
fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let mut squares = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (s, v) in squares.iter_mut().zip(c) {
            *s += (v - mean) * (v - mean);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
    let variance = (squares.iter().sum::<f32>() + tail) / n;
    let inv_std = 1.0 / (variance + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv_std * g + b;
    }
}

/// Sum with eight independent accumulators, so it vectorises.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((s, u), v) in acc.iter_mut().zip(x).zip(y) {
            *s += u * v;
        }
    }
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(u, v)| u * v).sum();
    acc.iter().sum::<f32>() + tail
}

/// Multi-head scaled dot-product attention of every text of a packed batch at its
/// exact length.
///
/// `qkv` is `[tokens, 3 * hidden]` (queries, keys, values side by side, before their
/// `bias`); the result is the context `[tokens, hidden]`, heads side by side. `spans`
/// must tile the tokens in order (as [`super::bert::PackedBatch`] lays them out).
pub fn attention(qkv: &[f32], bias: &[f32], spans: &[Span], heads: usize, head_dim: usize, scale: f32) -> Vec<f32> {
    let hidden = heads * head_dim;
    let tokens = qkv.len() / (3 * hidden);
    let mut context = vec![0f32; tokens * hidden];
    let mut parts = Vec::with_capacity(spans.len());
    let mut rest = context.as_mut_slice();
    for span in spans {
        let (part, tail) = rest.split_at_mut(span.len * hidden);
        parts.push((span, part));
        rest = tail;
    }
    parts.into_par_iter().for_each(|(span, part)| {
        let per_head: Vec<Vec<f32>> = (0..heads)
            .into_par_iter()
            .map(|head| dispatch(|| attend_head(qkv, bias, span, head, heads, head_dim, scale)))
            .collect();
        for (head, values) in per_head.iter().enumerate() {
            for (row, out) in values.chunks_exact(head_dim).zip(part.chunks_exact_mut(hidden)) {
                out[head * head_dim..(head + 1) * head_dim].copy_from_slice(row);
            }
        }
    });
    context
}

/// One head of one text: `[len, head_dim]`.
#[inline(always)]
fn attend_head(
    qkv: &[f32],
    bias: &[f32],
    span: &Span,
    head: usize,
    heads: usize,
    head_dim: usize,
    scale: f32,
) -> Vec<f32> {
    let hidden = heads * head_dim;
    let width = 3 * hidden;
    let rows = &qkv[span.start * width..(span.start + span.len) * width];
    let (q_at, k_at, v_at) = (head * head_dim, hidden + head * head_dim, 2 * hidden + head * head_dim);
    let gather = |at: usize, count: usize| -> Vec<f32> {
        let b = &bias[at..at + head_dim];
        let mut out = Vec::with_capacity(count * head_dim);
        for row in rows.chunks_exact(width).take(count) {
            out.extend(row[at..at + head_dim].iter().zip(b).map(|(v, b)| v + b));
        }
        out
    };
    let keys = gather(k_at, span.attended);
    let values = gather(v_at, span.attended);
    let q_bias = &bias[q_at..q_at + head_dim];
    let mut query = vec![0f32; head_dim];
    let mut scores = vec![0f32; span.attended];
    let mut out = vec![0f32; span.len * head_dim];
    for (row, out_row) in rows.chunks_exact(width).zip(out.chunks_exact_mut(head_dim)) {
        for ((q, v), b) in query.iter_mut().zip(&row[q_at..q_at + head_dim]).zip(q_bias) {
            *q = (v + b) * scale;
        }
        let mut max = f32::NEG_INFINITY;
        for (s, key) in scores.iter_mut().zip(keys.chunks_exact(head_dim)) {
            *s = dot(&query, key);
            max = max.max(*s);
        }
        let mut total = 0f32;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            total += *s;
        }
        let inv = 1.0 / total;
        for (s, value) in scores.iter().zip(values.chunks_exact(head_dim)) {
            let p = s * inv;
            for (o, v) in out_row.iter_mut().zip(value) {
                *o += p * v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn erf_gelu_matches_candle() {
        let xs: Vec<f32> = (-12_000..12_000).map(|i| i as f32 * 1e-3).collect();
        let want = Tensor::new(xs.as_slice(), &Device::Cpu)
            .and_then(|t| t.gelu_erf())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("candle gelu");
        let mut got = xs.clone();
        bias_gelu(&mut got, &[0.0; 1]);
        for ((x, g), w) in xs.iter().zip(&got).zip(&want) {
            assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()), "gelu({x}): {g} vs {w}");
        }
    }

    #[test]
    fn layer_norm_matches_candle() {
        let width = 24;
        let xs: Vec<f32> = (0..width * 5).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.07).collect();
        let res: Vec<f32> = (0..width * 5).map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.1).collect();
        let bias: Vec<f32> = (0..width).map(|i| i as f32 * 0.01).collect();
        let gamma: Vec<f32> = (0..width).map(|i| 1.0 + i as f32 * 0.02).collect();
        let beta: Vec<f32> = (0..width).map(|i| i as f32 * -0.03).collect();
        let dev = &Device::Cpu;
        let want = (|| {
            let x = Tensor::from_slice(&xs, (5, width), dev)?
                .broadcast_add(&Tensor::from_slice(&bias, width, dev)?)?
                .add(&Tensor::from_slice(&res, (5, width), dev)?)?;
            let g = Tensor::from_slice(&gamma, width, dev)?;
            let b = Tensor::from_slice(&beta, width, dev)?;
            candle_nn::ops::layer_norm(&x, &g, &b, 1e-12)?.flatten_all()?.to_vec1::<f32>()
        })()
        .expect("candle layer norm");
        let mut got = xs.clone();
        bias_residual_layer_norm(&mut got, &bias, &res, &gamma, &beta, 1e-12);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5, "{g} vs {w}");
        }
    }
}
