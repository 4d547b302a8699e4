//! Multi-head attention over a packed batch: every text attends within itself at its
//! exact length, with grouped-query heads, an optional causal mask or sliding window,
//! and a key limit per text (ColBERT's unattended expansion tokens).

use candle_core::{Storage, Tensor};
use rayon::prelude::*;

use super::kernels::{dot, exp, madd, with_simd};
use crate::packing::Span;

/// Heads and scaling of one attention layer. Query head `h` reads key / value head
/// `h / (heads / kv_heads)`.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub scale: f32,
}

impl AttentionShape {
    /// Width of a packed `q | k | v` row.
    pub fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    /// Width of the context (all query heads side by side).
    pub fn context_width(&self) -> usize {
        self.heads * self.head_dim
    }

    fn group(&self) -> usize {
        (self.heads / self.kv_heads.max(1)).max(1)
    }
}

/// Which keys a query at position `i` sees, besides its text's key limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyMask {
    /// Every key of the text.
    #[default]
    Bidirectional,
    /// Keys `j <= i` (decoders).
    Causal,
    /// Keys with `|i - j| <= half` (ModernBERT's local layers, Gemma's sliding layers).
    Window(usize),
}

impl KeyMask {
    /// The key range `[lo, hi)` of the query at `i`, given the first `keys` are visible.
    #[inline(always)]
    fn range(self, i: usize, keys: usize) -> (usize, usize) {
        match self {
            KeyMask::Bidirectional => (0, keys),
            KeyMask::Causal => (0, keys.min(i + 1)),
            KeyMask::Window(half) => (i.saturating_sub(half), keys.min(i + half + 1)),
        }
    }
}

/// Attention of every text of a packed batch. `qkv` is `[tokens, qkv_width]` with
/// queries, keys and values side by side (biases, norms and rotary already applied);
/// the result is the context `[tokens, context_width]`.
pub fn packed_attention(
    qkv: &Tensor,
    spans: &[Span],
    shape: AttentionShape,
    mask: KeyMask,
) -> candle_core::Result<Tensor> {
    let tokens = qkv.dim(0)?;
    if qkv.device().is_cpu() && qkv.dtype() == candle_core::DType::F32 && qkv.is_contiguous() {
        let (storage, layout) = qkv.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            candle_core::bail!("a CPU tensor without CPU storage")
        };
        let data = super::kernels::f32_elements(cpu, layout)?;
        let context = attention_cpu(data, spans, &shape, mask);
        drop(storage);
        return Tensor::from_vec(context, (tokens, shape.context_width()), qkv.device());
    }
    attention_reference(qkv, spans, shape, mask)
}

/// The same attention in Candle ops, for other devices and dtypes.
pub fn attention_reference(
    qkv: &Tensor,
    spans: &[Span],
    shape: AttentionShape,
    mask: KeyMask,
) -> candle_core::Result<Tensor> {
    let (h, kv, d) = (shape.heads, shape.kv_heads, shape.head_dim);
    let mut contexts = Vec::with_capacity(spans.len());
    for span in spans {
        let rows = qkv.narrow(0, span.start, span.len)?;
        let split = |offset: usize, heads: usize, len: usize| -> candle_core::Result<Tensor> {
            rows.narrow(0, 0, len)?
                .narrow(1, offset * d, heads * d)?
                .reshape((len, heads, d))?
                .transpose(0, 1)?
                .contiguous()
        };
        let q = (split(0, h, span.len)? * f64::from(shape.scale))?;
        let repeat = |t: Tensor| -> candle_core::Result<Tensor> {
            if kv == h {
                return Ok(t);
            }
            let (_, len, _) = t.dims3()?;
            t.unsqueeze(1)?
                .expand((kv, shape.group(), len, d))?
                .reshape((h, len, d))
        };
        let k = repeat(split(h, kv, span.attended)?)?;
        let v = repeat(split(h + kv, kv, span.attended)?)?;
        let mut allowed = vec![f32::NEG_INFINITY; span.len * span.attended];
        let mut any = vec![0f32; span.len];
        for i in 0..span.len {
            let (lo, hi) = mask.range(i, span.attended);
            // A row with no visible key keeps finite scores and is zeroed after the
            // softmax: its context is zero, as the reference kernel gives.
            let visible = lo < hi;
            let (lo, hi) = if visible {
                (lo, hi)
            } else {
                (0, span.attended)
            };
            for j in lo..hi {
                allowed[i * span.attended + j] = 0.0;
            }
            any[i] = if visible { 1.0 } else { 0.0 };
        }
        let context = if span.attended == 0 {
            Tensor::zeros((span.len, h * d), qkv.dtype(), qkv.device())?
        } else {
            let bias = Tensor::from_vec(allowed, (span.len, span.attended), qkv.device())?
                .to_dtype(qkv.dtype())?;
            let scores = q.matmul(&k.t()?)?.broadcast_add(&bias)?;
            let keep =
                Tensor::from_vec(any, (1, span.len, 1), qkv.device())?.to_dtype(qkv.dtype())?;
            let weights = candle_nn::ops::softmax_last_dim(&scores)?.broadcast_mul(&keep)?;
            weights
                .matmul(&v)?
                .transpose(0, 1)?
                .reshape((span.len, h * d))?
        };
        contexts.push(context);
    }
    if contexts.is_empty() {
        return Tensor::zeros((0, h * d), qkv.dtype(), qkv.device());
    }
    Tensor::cat(&contexts, 0)
}

/// Query rows per register block of the attention kernel.
const QUERY_BLOCK: usize = 4;
/// Columns per register block (two AVX registers of f32): with [`QUERY_BLOCK`] rows,
/// eight independent accumulators, enough to hide the latency of the multiply-adds.
const LANES: usize = 16;

fn attention_cpu(qkv: &[f32], spans: &[Span], shape: &AttentionShape, mask: KeyMask) -> Vec<f32> {
    let (width, out_width) = (shape.qkv_width(), shape.context_width());
    let tokens = qkv.len() / width;
    let mut context = vec![0f32; tokens * out_width];
    let mut parts = Vec::with_capacity(spans.len());
    let mut rest = context.as_mut_slice();
    for span in spans {
        let (part, tail) = rest.split_at_mut(span.len * out_width);
        parts.push((span, part));
        rest = tail;
    }
    parts.into_par_iter().for_each(|(span, part)| {
        let rows = &qkv[span.start * width..(span.start + span.len) * width];
        attend_text(rows, span.len, span.attended, shape, mask, part);
    });
    context
}

with_simd! {
    /// Every head of one text.
    fn attend_text(rows: &[f32], len: usize, keys: usize, shape: &AttentionShape, mask: KeyMask, out: &mut [f32]) {
        let d = shape.head_dim;
        if keys == 0 || len == 0 {
            // No visible keys: a zero context, as the empty softmax gives (`out` is zeroed).
            return;
        }
        if !d.is_multiple_of(LANES) {
            for head in 0..shape.heads {
                attend_head_plain(rows, keys, head, shape, mask, out);
            }
            return;
        }
        let width = shape.qkv_width();
        let kv_width = shape.kv_heads * d;
        let k_at = shape.heads * d;
        // Keys (transposed) and values of all heads in one sequential pass over the rows.
        let padded = keys.div_ceil(LANES) * LANES;
        let mut keys_t = vec![0f32; kv_width * padded];
        let mut values = Vec::with_capacity(keys * kv_width);
        for (j, row) in rows.chunks_exact(width).take(keys).enumerate() {
            for (c, v) in row[k_at..k_at + kv_width].iter().enumerate() {
                keys_t[c * padded + j] = *v;
            }
            values.extend_from_slice(&row[k_at + kv_width..k_at + 2 * kv_width]);
        }
        let mut scratch = Scratch::default();
        for head in 0..shape.heads {
            let kv = head / shape.group();
            let head_keys = &keys_t[kv * d * padded..(kv + 1) * d * padded];
            let head_values = &values[kv * d..];
            attend_head::<FMA>(rows, keys, head, shape, mask, head_keys, head_values, out, &mut scratch);
        }
    }
}

/// Buffers one thread reuses across the heads of a text.
#[derive(Default)]
struct Scratch {
    /// A block of queries, `[QUERY_BLOCK, head_dim]`.
    queries: Vec<f32>,
    /// Scores, then probabilities, of a block of queries, `[QUERY_BLOCK, padded keys]`.
    probs: Vec<f32>,
}

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

/// One head of one text, written into its columns of `out` (`[len, context_width]`).
/// `keys_t` is the head's keys transposed, `[head_dim, keys rounded up to LANES]`;
/// `values` starts at the head's first value of a `[keys, kv_width]` matrix.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_head<const FMA: bool>(
    rows: &[f32],
    keys: usize,
    head: usize,
    shape: &AttentionShape,
    mask: KeyMask,
    keys_t: &[f32],
    values: &[f32],
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let d = shape.head_dim;
    let (width, out_width, kv_width) =
        (shape.qkv_width(), shape.context_width(), shape.kv_heads * d);
    let q_at = head * d;
    let padded = keys.div_ceil(LANES) * LANES;
    let s = scratch;
    s.queries.resize(QUERY_BLOCK * d, 0.0);
    s.probs.resize(QUERY_BLOCK * padded, 0.0);
    for (block, (block_rows, block_out)) in rows
        .chunks(QUERY_BLOCK * width)
        .zip(out.chunks_mut(QUERY_BLOCK * out_width))
        .enumerate()
    {
        let first = block * QUERY_BLOCK;
        let real = block_rows.len() / width;
        // Rows past the text's end stay zero queries: computed, never written out.
        s.queries.fill(0.0);
        for (row, query) in block_rows
            .chunks_exact(width)
            .zip(s.queries.chunks_exact_mut(d))
        {
            for (q, v) in query.iter_mut().zip(&row[q_at..q_at + d]) {
                *q = v * shape.scale;
            }
        }
        let ranges: [(usize, usize); QUERY_BLOCK] = std::array::from_fn(|r| {
            if r < real {
                mask.range(first + r, keys)
            } else {
                (0, 0)
            }
        });
        let lo = ranges[..real].iter().map(|r| r.0).min().unwrap_or(0);
        let hi = ranges[..real].iter().map(|r| r.1).max().unwrap_or(0);
        if lo >= hi {
            continue;
        }
        for jb in (lo / LANES * LANES..hi).step_by(LANES) {
            let acc = block_product::<FMA>(&s.queries, d, &keys_t[jb..], padded, d);
            for (acc_row, probs) in acc.iter().zip(s.probs.chunks_exact_mut(padded)) {
                probs[jb..jb + LANES].copy_from_slice(acc_row);
            }
        }
        let mut inv = [0f32; QUERY_BLOCK];
        for ((inv, probs), &(a, b)) in inv
            .iter_mut()
            .zip(s.probs.chunks_exact_mut(padded))
            .zip(&ranges)
        {
            if a < b {
                *inv = softmax_unnormalised::<FMA>(&mut probs[a..b]);
                probs[lo..a].fill(0.0);
                probs[b..hi].fill(0.0);
            } else {
                probs[lo..hi].fill(0.0);
            }
        }
        for cb in (0..d).step_by(LANES) {
            let acc = block_product::<FMA>(
                &s.probs[lo..],
                padded,
                &values[lo * kv_width + cb..],
                kv_width,
                hi - lo,
            );
            for ((acc_row, inv), out_row) in acc
                .iter()
                .zip(inv)
                .zip(block_out.chunks_exact_mut(out_width))
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
    keys: usize,
    head: usize,
    shape: &AttentionShape,
    mask: KeyMask,
    out: &mut [f32],
) {
    let d = shape.head_dim;
    let (width, out_width) = (shape.qkv_width(), shape.context_width());
    let kv = head / shape.group();
    let q_at = head * d;
    let k_at = shape.heads * d + kv * d;
    let v_at = (shape.heads + shape.kv_heads) * d + kv * d;
    let gather = |at: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(keys * d);
        for row in rows.chunks_exact(width).take(keys) {
            out.extend_from_slice(&row[at..at + d]);
        }
        out
    };
    let (key_rows, value_rows) = (gather(k_at), gather(v_at));
    let mut query = vec![0f32; d];
    let mut scores = vec![0f32; keys];
    for (i, (row, out_row)) in rows
        .chunks_exact(width)
        .zip(out.chunks_exact_mut(out_width))
        .enumerate()
    {
        let context = &mut out_row[q_at..q_at + d];
        context.fill(0.0);
        let (lo, hi) = mask.range(i, keys);
        if lo >= hi {
            continue;
        }
        for (q, v) in query.iter_mut().zip(&row[q_at..q_at + d]) {
            *q = v * shape.scale;
        }
        let mut max = f32::NEG_INFINITY;
        for (s, key) in scores[lo..hi]
            .iter_mut()
            .zip(key_rows[lo * d..hi * d].chunks_exact(d))
        {
            *s = dot(&query, key);
            max = max.max(*s);
        }
        let mut total = 0f32;
        for s in scores[lo..hi].iter_mut() {
            *s = (*s - max).exp();
            total += *s;
        }
        let inv = if total > 0.0 { 1.0 / total } else { 0.0 };
        for (s, value) in scores[lo..hi]
            .iter()
            .zip(value_rows[lo * d..hi * d].chunks_exact(d))
        {
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
    use crate::packing::PackedBatch;
    use candle_core::{DType, Device};

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
            })
            .collect()
    }

    /// The kernel (both head-size paths, grouped heads, every mask) against the Candle
    /// ops in f64.
    #[test]
    fn kernel_matches_candle_ops() -> candle_core::Result<()> {
        let lens = [1usize, 5, 17, 40, 3];
        let seqs: Vec<Vec<u32>> = lens.iter().map(|&n| vec![0; n]).collect();
        let batches = [
            PackedBatch::new(&seqs, None),
            PackedBatch::new(&seqs, Some(&[1, 5, 12, 33, 0])),
        ];
        for (heads, kv_heads, head_dim) in [(4, 4, 16), (4, 2, 16), (4, 1, 8), (2, 2, 12)] {
            let shape = AttentionShape {
                heads,
                kv_heads,
                head_dim,
                scale: 1.0 / (head_dim as f32).sqrt(),
            };
            for batch in &batches {
                let tokens = batch.total_tokens();
                let data = values(tokens * shape.qkv_width(), (heads * 31 + kv_heads) as u64);
                let qkv = Tensor::from_vec(data, (tokens, shape.qkv_width()), &Device::Cpu)?;
                for mask in [KeyMask::Bidirectional, KeyMask::Causal, KeyMask::Window(3)] {
                    let got = packed_attention(&qkv, batch.spans(), shape, mask)?;
                    let want = attention_reference(
                        &qkv.to_dtype(DType::F64)?,
                        batch.spans(),
                        shape,
                        mask,
                    )?
                    .to_dtype(DType::F32)?;
                    let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert!(
                        diff <= 1e-5,
                        "{heads}/{kv_heads} heads of {head_dim}, {mask:?}: {diff}"
                    );
                }
            }
        }
        Ok(())
    }
}
