//! Fused f32 CPU kernels for the encoder's work between matrix multiplications.
//!
//! Candle runs a bias add, an activation, a residual add and a layer norm as separate
//! passes, each allocating its output, and attention of one text as a dozen small
//! tensor ops per layer. Here each of those steps is one pass over f32 slices, spread
//! over rayon's threads; the matrix multiplications stay with Candle (the `gemm`
//! crate). Used only for f32 tensors on the CPU; the Candle path serves every other
//! device and dtype, and the kernels agree with it within 1e-5.

use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout};
use rayon::prelude::*;

use super::bert::Span;

/// The f32 elements of a contiguous CPU tensor's storage.
fn f32_elements<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the CPU kernels need contiguous tensors")
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

fn f32_elements_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a mut [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the CPU kernels need contiguous tensors")
    };
    match storage {
        CpuStorage::F32(data) => Ok(&mut data[start..end]),
        _ => candle_core::bail!("the CPU kernels need f32 tensors"),
    }
}

/// [`bias_gelu`] as an in-place Candle op, so the matmul's output is reused.
pub struct BiasGelu<'a>(pub &'a [f32]);

impl InplaceOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        bias_gelu(f32_elements_mut(storage, layout)?, self.0);
        Ok(())
    }
}

/// [`bias_residual_layer_norm`] as an in-place Candle op; the residual is its operand.
pub struct BiasResidualLayerNorm<'a> {
    pub bias: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

impl InplaceOp2 for BiasResidualLayerNorm<'_> {
    fn name(&self) -> &'static str {
        "bias-residual-layer-norm"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        residual: &CpuStorage,
        residual_l: &Layout,
    ) -> candle_core::Result<()> {
        let residual = f32_elements(residual, residual_l)?;
        let x = f32_elements_mut(dst, dst_l)?;
        if residual.len() != x.len() {
            candle_core::bail!("residual of {} elements for {}", residual.len(), x.len())
        }
        bias_residual_layer_norm(x, self.bias, residual, self.gamma, self.beta, self.eps);
        Ok(())
    }
}

/// Elements one rayon task handles at least, so scheduling stays cheap next to the work.
const ELEMENTS_PER_TASK: usize = 1 << 14;

fn rows_per_task(width: usize) -> usize {
    (ELEMENTS_PER_TASK / width.max(1)).max(1)
}

/// Defines `fn $name(args)` that runs `$body` compiled for AVX2 and FMA where the CPU
/// has them (eight-wide vectors for the loops the compiler vectorises, and fused
/// multiply-adds where the body asks for them with [`madd`]), else for the baseline
/// target. Inside `$body`, the const `FMA` says which.
macro_rules! with_avx2 {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body<const FMA: bool>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                /// # Safety
                /// The CPU must support AVX2 and FMA.
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body::<true>($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: AVX2 and FMA support were just detected at run time.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body::<false>($($arg),*)
        }
    };
}

/// `a * b + c`, fused where the CPU does that in one instruction (without FMA,
/// `mul_add` would be a slow library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `exp(x)` as Cephes' `expf` computes it (range reduction by ln 2, a degree-5
/// polynomial, within 2 ulp), in plain arithmetic so that loops over it vectorise.
#[inline(always)]
fn exp<const FMA: bool>(x: f32) -> f32 {
    // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits; the 127
    // is the exponent bias, so those bits shifted into the exponent field are 2^n.
    const ROUND: f32 = 12_582_912.0 + 127.0;
    let x = x.clamp(-87.0, 88.0);
    let t = madd::<FMA>(x, std::f32::consts::LOG2_E, ROUND);
    let n = t - ROUND;
    let r = madd::<FMA>(n, 2.121_944_4e-4, madd::<FMA>(n, -0.693_359_4, x));
    let mut p = 1.987_569_1e-4;
    p = madd::<FMA>(p, r, 1.398_2e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5);
    let y = madd::<FMA>(p, r * r, r) + 1.0;
    y * f32::from_bits(t.to_bits() << 23)
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
    x.par_chunks_mut(width * rows_per_task(width))
        .for_each(|rows| bias_gelu_rows(rows, bias));
}

with_avx2! {
    fn bias_gelu_rows(rows: &mut [f32], bias: &[f32]) {
        for row in rows.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                let u = *v + b;
                *v = (erf(u * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * u;
            }
        }
    }
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
            bias_residual_layer_norm_rows(rows, bias, residual, gamma, beta, eps)
        });
}

with_avx2! {
    fn bias_residual_layer_norm_rows(
        rows: &mut [f32],
        bias: &[f32],
        residual: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) {
        let width = bias.len();
        for (row, res) in rows.chunks_exact_mut(width).zip(residual.chunks_exact(width)) {
            for ((v, b), r) in row.iter_mut().zip(bias).zip(res) {
                *v += b + r;
            }
            layer_norm_row(row, gamma, beta, eps);
        }
    }
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
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
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
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(u, v)| u * v)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// Multi-head scaled dot-product attention of every text of a packed batch at its
/// exact length.
///
/// `qkv` is `[tokens, 3 * hidden]` (queries, keys, values side by side, before their
/// `bias`); the result is the context `[tokens, hidden]`, heads side by side. `spans`
/// must tile the tokens in order (as [`super::bert::PackedBatch`] lays them out).
pub fn attention(
    qkv: &[f32],
    bias: &[f32],
    spans: &[Span],
    heads: usize,
    head_dim: usize,
    scale: f32,
) -> Vec<f32> {
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
    let shape = HeadShape {
        heads,
        head_dim,
        scale,
    };
    parts.into_par_iter().for_each(|(span, part)| {
        let rows = &qkv[span.start * 3 * hidden..(span.start + span.len) * 3 * hidden];
        attend_text(rows, bias, span.attended, &shape, part);
    });
    context
}

with_avx2! {
    /// Every head of one text.
    fn attend_text(rows: &[f32], bias: &[f32], keys: usize, shape: &HeadShape, out: &mut [f32]) {
        let (d, hidden) = (shape.head_dim, shape.heads * shape.head_dim);
        if keys == 0 {
            // No visible keys: a zero context, as the empty softmax gives (`out` is zeroed).
            return;
        }
        if d % LANES != 0 {
            for head in 0..shape.heads {
                attend_head_plain(rows, bias, keys, head, shape, out);
            }
            return;
        }
        // Keys (transposed) and values of all heads in one sequential pass over the rows.
        let padded = keys.div_ceil(LANES) * LANES;
        let mut keys_t = vec![0f32; hidden * padded];
        let mut values = Vec::with_capacity(keys * hidden);
        let (k_bias, v_bias) = (&bias[hidden..2 * hidden], &bias[2 * hidden..]);
        for (j, row) in rows.chunks_exact(3 * hidden).take(keys).enumerate() {
            for (c, (v, b)) in row[hidden..2 * hidden].iter().zip(k_bias).enumerate() {
                keys_t[c * padded + j] = v + b;
            }
            values.extend(row[2 * hidden..].iter().zip(v_bias).map(|(v, b)| v + b));
        }
        let mut scratch = Scratch::default();
        for head in 0..shape.heads {
            let head_keys = &keys_t[head * d * padded..(head + 1) * d * padded];
            let head_values = &values[head * d..];
            attend_head::<FMA>(rows, bias, keys, head, shape, head_keys, head_values, out, &mut scratch);
        }
    }
}

struct HeadShape {
    heads: usize,
    head_dim: usize,
    scale: f32,
}

/// Buffers one thread reuses across the heads of a text.
#[derive(Default)]
struct Scratch {
    /// A block of queries, `[QUERY_BLOCK, head_dim]`.
    queries: Vec<f32>,
    /// Scores, then probabilities, of a block of queries, `[QUERY_BLOCK, padded keys]`.
    probs: Vec<f32>,
}

/// Query rows per register block of the attention kernel.
const QUERY_BLOCK: usize = 4;
/// Columns per register block (two AVX registers of f32): with [`QUERY_BLOCK`] rows,
/// eight independent accumulators, enough to hide the latency of the multiply-adds.
const LANES: usize = 16;

/// `a b` for one register block: `a` holds [`QUERY_BLOCK`] rows of `k` values, `a_stride`
/// apart; `b` has `k` rows, `b_stride` apart, of which the first [`LANES`] columns are
/// used. Returns `[QUERY_BLOCK][LANES]`.
#[inline(always)]
fn block_product<const FMA: bool>(
    a: &[f32],
    a_stride: usize,
    b: &[f32],
    b_stride: usize,
    k: usize,
) -> [[f32; LANES]; QUERY_BLOCK] {
    let mut acc = [[0f32; LANES]; QUERY_BLOCK];
    let a_rows: [&[f32]; QUERY_BLOCK] = std::array::from_fn(|r| &a[r * a_stride..r * a_stride + k]);
    for p in 0..k {
        let Some(b_row) = b[p * b_stride..].first_chunk::<LANES>() else {
            break;
        };
        for (acc_row, a_row) in acc.iter_mut().zip(&a_rows) {
            let a = a_row[p];
            for (c, b) in acc_row.iter_mut().zip(b_row) {
                *c = madd::<FMA>(a, *b, *c);
            }
        }
    }
    acc
}

/// Exponentiates `scores` less their maximum, in place, and returns the reciprocal of
/// their sum (0 for an empty row): the softmax, once scaled by it.
#[inline(always)]
fn softmax_unnormalised<const FMA: bool>(scores: &mut [f32]) -> f32 {
    let mut max = [f32::NEG_INFINITY; 8];
    let mut chunks = scores.chunks_exact(8);
    for chunk in &mut chunks {
        for (m, v) in max.iter_mut().zip(chunk) {
            *m = m.max(*v);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&max)
        .fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    let mut total = [0f32; 8];
    let mut chunks = scores.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (v, t) in chunk.iter_mut().zip(total.iter_mut()) {
            *v = exp::<FMA>(*v - max);
            *t += *v;
        }
    }
    let mut sum: f32 = total.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp::<FMA>(*v - max);
        sum += *v;
    }
    if sum > 0.0 {
        1.0 / sum
    } else {
        0.0
    }
}

/// One head of one text, written into its columns of `out` (`[len, hidden]`).
/// `keys_t` is the head's keys transposed, `[head_dim, keys rounded up to LANES]`;
/// `values` starts at the head's first value of a `[keys, hidden]` matrix.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_head<const FMA: bool>(
    rows: &[f32],
    bias: &[f32],
    keys: usize,
    head: usize,
    shape: &HeadShape,
    keys_t: &[f32],
    values: &[f32],
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let (d, hidden) = (shape.head_dim, shape.heads * shape.head_dim);
    let width = 3 * hidden;
    let q_at = head * d;
    let padded = keys.div_ceil(LANES) * LANES;
    let s = scratch;
    s.queries.resize(QUERY_BLOCK * d, 0.0);
    s.probs.resize(QUERY_BLOCK * padded, 0.0);
    let q_bias = &bias[q_at..q_at + d];
    for (block_rows, block_out) in rows
        .chunks(QUERY_BLOCK * width)
        .zip(out.chunks_mut(QUERY_BLOCK * hidden))
    {
        // Rows past the text's end stay zero queries: computed, never written out.
        s.queries.fill(0.0);
        for (row, query) in block_rows
            .chunks_exact(width)
            .zip(s.queries.chunks_exact_mut(d))
        {
            for ((q, v), b) in query.iter_mut().zip(&row[q_at..q_at + d]).zip(q_bias) {
                *q = (v + b) * shape.scale;
            }
        }
        for jb in (0..padded).step_by(LANES) {
            let acc = block_product::<FMA>(&s.queries, d, &keys_t[jb..], padded, d);
            for (acc_row, probs) in acc.iter().zip(s.probs.chunks_exact_mut(padded)) {
                probs[jb..jb + LANES].copy_from_slice(acc_row);
            }
        }
        let mut inv = [0f32; QUERY_BLOCK];
        for (inv, probs) in inv.iter_mut().zip(s.probs.chunks_exact_mut(padded)) {
            *inv = softmax_unnormalised::<FMA>(&mut probs[..keys]);
        }
        for cb in (0..d).step_by(LANES) {
            let acc = block_product::<FMA>(&s.probs, padded, &values[cb..], hidden, keys);
            for ((acc_row, inv), out_row) in
                acc.iter().zip(inv).zip(block_out.chunks_exact_mut(hidden))
            {
                for (o, v) in out_row[q_at + cb..q_at + cb + LANES]
                    .iter_mut()
                    .zip(acc_row)
                {
                    *o = v * inv;
                }
            }
        }
    }
}

/// [`attend_head`] for head sizes that are not a multiple of [`LANES`].
fn attend_head_plain(
    rows: &[f32],
    bias: &[f32],
    keys: usize,
    head: usize,
    shape: &HeadShape,
    out: &mut [f32],
) {
    let (d, hidden) = (shape.head_dim, shape.heads * shape.head_dim);
    let width = 3 * hidden;
    let (q_at, k_at, v_at) = (head * d, hidden + head * d, 2 * hidden + head * d);
    let gather = |at: usize| -> Vec<f32> {
        let b = &bias[at..at + d];
        let mut out = Vec::with_capacity(keys * d);
        for row in rows.chunks_exact(width).take(keys) {
            out.extend(row[at..at + d].iter().zip(b).map(|(v, b)| v + b));
        }
        out
    };
    let (key_rows, value_rows) = (gather(k_at), gather(v_at));
    let q_bias = &bias[q_at..q_at + d];
    let mut query = vec![0f32; d];
    let mut scores = vec![0f32; keys];
    for (row, out_row) in rows.chunks_exact(width).zip(out.chunks_exact_mut(hidden)) {
        for ((q, v), b) in query.iter_mut().zip(&row[q_at..q_at + d]).zip(q_bias) {
            *q = (v + b) * shape.scale;
        }
        let mut max = f32::NEG_INFINITY;
        for (s, key) in scores.iter_mut().zip(key_rows.chunks_exact(d)) {
            *s = dot(&query, key);
            max = max.max(*s);
        }
        let mut total = 0f32;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            total += *s;
        }
        let inv = if total > 0.0 { 1.0 / total } else { 0.0 };
        let context = &mut out_row[q_at..q_at + d];
        context.fill(0.0);
        for (s, value) in scores.iter().zip(value_rows.chunks_exact(d)) {
            let p = s * inv;
            for (o, v) in context.iter_mut().zip(value) {
                *o += p * v;
            }
        }
    }
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
            assert!(
                (g - w).abs() <= 2e-6 * (1.0 + w.abs()),
                "gelu({x}): {g} vs {w}"
            );
        }
    }

    #[test]
    fn layer_norm_matches_candle() {
        let width = 24;
        let xs: Vec<f32> = (0..width * 5)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.07)
            .collect();
        let res: Vec<f32> = (0..width * 5)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.1)
            .collect();
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
            candle_nn::ops::layer_norm(&x, &g, &b, 1e-12)?
                .flatten_all()?
                .to_vec1::<f32>()
        })()
        .expect("candle layer norm");
        let mut got = xs.clone();
        bias_residual_layer_norm(&mut got, &bias, &res, &gamma, &beta, 1e-12);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5, "{g} vs {w}");
        }
    }
}
