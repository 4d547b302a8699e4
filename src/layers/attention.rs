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
    /// Query-key and probability-value products in bf16 on the CPU (f32 accumulation,
    /// f32 scores, softmax and context), as the model's linear layers.
    pub bf16: bool,
}

impl AttentionShape {
    /// A layer's heads, with bf16 products when the load in progress stores its linear
    /// weights in bf16 ([`super::packed::LoadingFormat`]).
    pub fn new(heads: usize, kv_heads: usize, head_dim: usize, scale: f32) -> Self {
        AttentionShape {
            heads,
            kv_heads,
            head_dim,
            scale,
            bf16: super::packed::LoadingFormat::current() == super::packed::WeightFormat::Bf16,
        }
    }

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

/// Columns per register block: one AVX-512 register of f32, or two AVX registers.
const LANES: usize = 16;
/// Query rows per register block where the CPU has AVX-512 (eight accumulators of one
/// register each) and elsewhere (four rows of two AVX registers: again eight), enough
/// independent multiply-adds to hide their latency. Each output value is the same sum
/// in the same order either way, so the two give the same bits.
const WIDE_BLOCK: usize = 8;
const NARROW_BLOCK: usize = 4;

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
    #[cfg(target_arch = "x86_64")]
    let bf16 =
        shape.bf16 && shape.head_dim.is_multiple_of(LANES) && super::packed::bf16_supported();
    parts.into_par_iter().for_each(|(span, part)| {
        let rows = &qkv[span.start * width..(span.start + span.len) * width];
        #[cfg(target_arch = "x86_64")]
        if bf16 {
            // SAFETY: the CPU has AVX512-BF16 (and AVX-512F), checked above.
            unsafe { x86::attend_text_bf16(rows, span.len, span.attended, shape, mask, part) };
            return;
        }
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
        let wide = super::kernels::SimdLevel::current() == super::kernels::SimdLevel::Avx512;
        let block = if wide { WIDE_BLOCK } else { NARROW_BLOCK };
        let operands = TextOperands::gather(rows, len, keys, shape, block);
        let mut probs = vec![0f32; block * operands.padded];
        for head in 0..shape.heads {
            if wide {
                attend_head::<FMA, WIDE_BLOCK>(&operands, head, shape, mask, &mut probs, out);
            } else {
                attend_head::<FMA, NARROW_BLOCK>(&operands, head, shape, mask, &mut probs, out);
            }
        }
    }
}

/// A text's queries, keys and values by head, each contiguous (the packed rows
/// interleave every head), gathered in one pass over the rows: f32 values, or (for bf16
/// products) `u32` pairs of adjacent values along each product's summed dimension.
struct TextOperands<T> {
    keys: usize,
    head_dim: usize,
    /// Rows per head in `queries`: the text's length rounded up to the query block.
    len_padded: usize,
    /// Keys rounded up to [`LANES`].
    padded: usize,
    /// Scaled queries `[heads][len_padded][head_dim]` (pairs: `head_dim / 2` channel
    /// pairs); rows past the text stay 0.
    queries: Vec<T>,
    /// Keys transposed, `[kv_heads][head_dim][padded]` (pairs: `head_dim / 2` rows of
    /// channel pairs).
    keys_t: Vec<T>,
    /// Values `[kv_heads][keys][head_dim]` (pairs: `padded / 2` rows of pairs of adjacent
    /// keys, a missing last key zero).
    values: Vec<T>,
}

impl TextOperands<f32> {
    #[inline(always)]
    fn gather(rows: &[f32], len: usize, keys: usize, shape: &AttentionShape, block: usize) -> Self {
        let (d, width) = (shape.head_dim, shape.qkv_width());
        let kv_width = shape.kv_heads * d;
        let (k_at, v_at) = (shape.heads * d, shape.heads * d + kv_width);
        let len_padded = len.div_ceil(block) * block;
        let padded = keys.div_ceil(LANES) * LANES;
        let mut queries = vec![0f32; shape.heads * len_padded * d];
        for (i, row) in rows.chunks_exact(width).take(len).enumerate() {
            for (h, query) in row[..k_at].chunks_exact(d).enumerate() {
                let target = &mut queries[(h * len_padded + i) * d..(h * len_padded + i + 1) * d];
                for (t, v) in target.iter_mut().zip(query) {
                    *t = v * shape.scale;
                }
            }
        }
        let mut values = vec![0f32; kv_width * keys];
        for (j, row) in rows.chunks_exact(width).take(keys).enumerate() {
            for (kv, value) in row[v_at..v_at + kv_width].chunks_exact(d).enumerate() {
                values[(kv * keys + j) * d..(kv * keys + j + 1) * d].copy_from_slice(value);
            }
        }
        let mut keys_t = vec![0f32; kv_width * padded];
        transpose(
            &rows[..keys * width],
            width,
            k_at,
            kv_width,
            &mut keys_t,
            padded,
        );
        TextOperands {
            keys,
            head_dim: d,
            len_padded,
            padded,
            queries,
            keys_t,
            values,
        }
    }
}

/// `dst[c * dst_stride + j] = src[j * src_stride + at + c]` for every row `j` of `src`
/// and `c < cols`: eight by eight in registers where the CPU has AVX2.
fn transpose(
    src: &[f32],
    src_stride: usize,
    at: usize,
    cols: usize,
    dst: &mut [f32],
    dst_stride: usize,
) {
    let rows = src.len() / src_stride.max(1);
    assert!(at + cols <= src_stride && cols.saturating_sub(1) * dst_stride + rows <= dst.len());
    let done = transpose_row_blocks(src, src_stride, at, cols, dst, dst_stride, rows);
    for (j, row) in src.chunks_exact(src_stride).enumerate().skip(done) {
        for (c, v) in row[at..at + cols].iter().enumerate() {
            dst[c * dst_stride + j] = *v;
        }
    }
}

/// The first `rows / 8 * 8` rows of [`transpose`] in 8 × 8 register blocks where the
/// CPU has AVX2; returns how many rows it did (0 elsewhere).
#[cfg(target_arch = "x86_64")]
fn transpose_row_blocks(
    src: &[f32],
    src_stride: usize,
    at: usize,
    cols: usize,
    dst: &mut [f32],
    dst_stride: usize,
    rows: usize,
) -> usize {
    if super::kernels::SimdLevel::current() < super::kernels::SimdLevel::Avx2 {
        return 0;
    }
    let done = rows / 8 * 8;
    for j in (0..done).step_by(8) {
        for c in (0..cols / 8 * 8).step_by(8) {
            // SAFETY: AVX2 was detected; rows `j .. j + 8` and columns `at + c .. + 8`
            // lie inside `src`, and rows `c .. c + 8` of `dst` hold columns `j .. j + 8`
            // (checked by the caller).
            unsafe {
                x86::transpose8(
                    src.as_ptr().add(j * src_stride + at + c),
                    src_stride,
                    dst.as_mut_ptr().add(c * dst_stride + j),
                    dst_stride,
                );
            }
        }
        for c in cols / 8 * 8..cols {
            for r in j..j + 8 {
                dst[c * dst_stride + r] = src[r * src_stride + at + c];
            }
        }
    }
    done
}

#[cfg(not(target_arch = "x86_64"))]
fn transpose_row_blocks(
    _src: &[f32],
    _src_stride: usize,
    _at: usize,
    _cols: usize,
    _dst: &mut [f32],
    _dst_stride: usize,
    _rows: usize,
) -> usize {
    0
}

/// `a b` for one register block: `a` holds `R` rows of `k` values, `a_stride` apart;
/// `b` has `k` rows, `b_stride` apart, of which the first [`LANES`] columns are used.
/// Returns `[R][LANES]`. Explicit AVX-512 / AVX2 code where the CPU has it (the
/// compiler's vectorisation of the loop below is not dependable): each value is the
/// same chain of fused multiply-adds on every path.
#[inline(always)]
fn block_product<const FMA: bool, const R: usize>(
    a: &[f32],
    a_stride: usize,
    b: &[f32],
    b_stride: usize,
    k: usize,
) -> [[f32; LANES]; R] {
    if k == 0 {
        return [[0f32; LANES]; R];
    }
    // Every read below lies inside the slices.
    assert!((R - 1) * a_stride + k <= a.len() && (k - 1) * b_stride + LANES <= b.len());
    #[cfg(target_arch = "x86_64")]
    if FMA {
        use super::kernels::SimdLevel;
        let (a, b) = (a.as_ptr(), b.as_ptr());
        match SimdLevel::current() {
            // SAFETY: the level was detected at run time; the reads are bounded above.
            SimdLevel::Avx512 => {
                return unsafe { x86::block_product_avx512::<R>(a, a_stride, b, b_stride, k) }
            }
            // SAFETY: as above.
            SimdLevel::Avx2 => {
                return unsafe { x86::block_product_avx2::<R>(a, a_stride, b, b_stride, k) }
            }
            SimdLevel::Baseline => {}
        }
    }
    let mut acc = [[0f32; LANES]; R];
    for p in 0..k {
        let b_row = &b[p * b_stride..p * b_stride + LANES];
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let a = a[r * a_stride + p];
            for (c, b) in acc_row.iter_mut().zip(b_row) {
                *c = madd::<FMA>(a, *b, *c);
            }
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{
        block_ranges, block_softmax, transpose, write_context, AttentionShape, KeyMask,
        TextOperands, LANES, WIDE_BLOCK,
    };
    use crate::layers::packed::bf16::round_bits;

    /// Two f32 as one `u32` of bf16s (round to nearest even), the first in the low half.
    #[inline(always)]
    fn pair(first: f32, second: f32) -> u32 {
        round_bits(first) | (round_bits(second) << 16)
    }

    impl TextOperands<u32> {
        #[inline(always)]
        fn gather_pairs(rows: &[f32], len: usize, keys: usize, shape: &AttentionShape) -> Self {
            let (d, width) = (shape.head_dim, shape.qkv_width());
            let (half, kv_width) = (d / 2, shape.kv_heads * d);
            let (k_at, v_at) = (shape.heads * d, shape.heads * d + kv_width);
            let len_padded = len.div_ceil(WIDE_BLOCK) * WIDE_BLOCK;
            let padded = keys.div_ceil(LANES) * LANES;
            let mut queries = vec![0u32; shape.heads * len_padded * half];
            for (i, row) in rows.chunks_exact(width).take(len).enumerate() {
                for (h, query) in row[..k_at].chunks_exact(d).enumerate() {
                    let at = (h * len_padded + i) * half;
                    for (t, v) in queries[at..at + half].iter_mut().zip(query.chunks_exact(2)) {
                        *t = pair(v[0] * shape.scale, v[1] * shape.scale);
                    }
                }
            }
            // Key pairs row by row, then transposed (bits moved, not changed).
            let key_width = kv_width / 2;
            let mut key_pairs = vec![0u32; keys * key_width];
            for (row, target) in rows
                .chunks_exact(width)
                .take(keys)
                .zip(key_pairs.chunks_exact_mut(key_width))
            {
                for (t, v) in target
                    .iter_mut()
                    .zip(row[k_at..k_at + kv_width].chunks_exact(2))
                {
                    *t = pair(v[0], v[1]);
                }
            }
            let mut keys_t = vec![0u32; key_width * padded];
            transpose(
                bytemuck::cast_slice(&key_pairs),
                key_width,
                0,
                key_width,
                bytemuck::cast_slice_mut(&mut keys_t),
                padded,
            );
            let pairs_per_head = padded / 2;
            let mut values = vec![0u32; shape.kv_heads * pairs_per_head * d];
            let missing = vec![0f32; kv_width];
            for p in 0..keys.div_ceil(2) {
                let first = &rows[2 * p * width + v_at..2 * p * width + v_at + kv_width];
                let second = if 2 * p + 1 < keys {
                    &rows[(2 * p + 1) * width + v_at..(2 * p + 1) * width + v_at + kv_width]
                } else {
                    &missing
                };
                for kv in 0..shape.kv_heads {
                    let at = (kv * pairs_per_head + p) * d;
                    for ((t, a), b) in values[at..at + d]
                        .iter_mut()
                        .zip(&first[kv * d..(kv + 1) * d])
                        .zip(&second[kv * d..(kv + 1) * d])
                    {
                        *t = pair(*a, *b);
                    }
                }
            }
            TextOperands {
                keys,
                head_dim: d,
                len_padded,
                padded,
                queries,
                keys_t,
                values,
            }
        }
    }

    /// Attention of one text with bf16 products (`vdpbf16ps`, f32 accumulation): queries,
    /// keys, values and probabilities rounded to bf16; scores, softmax and context f32.
    /// The head size must be a multiple of [`LANES`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX512-BF16.
    #[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
    pub unsafe fn attend_text_bf16(
        rows: &[f32],
        len: usize,
        keys: usize,
        shape: &AttentionShape,
        mask: KeyMask,
        out: &mut [f32],
    ) {
        if keys == 0 || len == 0 {
            return;
        }
        let s = TextOperands::gather_pairs(rows, len, keys, shape);
        let (d, half, padded) = (s.head_dim, s.head_dim / 2, s.padded);
        let out_width = shape.context_width();
        let mut probs = vec![0f32; WIDE_BLOCK * padded];
        let mut pairs = vec![0u32; WIDE_BLOCK * padded / 2];
        for head in 0..shape.heads {
            let kv = head / shape.group();
            let queries = &s.queries[head * s.len_padded * half..(head + 1) * s.len_padded * half];
            let keys_t = &s.keys_t[kv * half * padded..(kv + 1) * half * padded];
            let values = &s.values[kv * padded / 2 * d..(kv + 1) * padded / 2 * d];
            for (block, (queries, block_out)) in queries
                .chunks_exact(WIDE_BLOCK * half)
                .zip(out.chunks_mut(WIDE_BLOCK * out_width))
                .enumerate()
            {
                let real = block_out.len() / out_width;
                let (ranges, lo, hi) =
                    block_ranges::<WIDE_BLOCK>(mask, block * WIDE_BLOCK, real, s.keys);
                if lo >= hi {
                    continue;
                }
                for jb in (lo / LANES * LANES..hi).step_by(LANES) {
                    let acc =
                        pair_product::<WIDE_BLOCK>(queries, half, &keys_t[jb..], padded, half);
                    for (acc_row, probs) in acc.iter().zip(probs.chunks_exact_mut(padded)) {
                        probs[jb..jb + LANES].copy_from_slice(acc_row);
                    }
                }
                // Whole key pairs: the partner of an edge key is zeroed too.
                let (first_pair, end_pair) = (lo / 2, hi.div_ceil(2));
                let inv = block_softmax::<true, WIDE_BLOCK>(
                    &mut probs,
                    padded,
                    &ranges,
                    2 * first_pair,
                    2 * end_pair,
                );
                for (row, target) in probs
                    .chunks_exact(padded)
                    .zip(pairs.chunks_exact_mut(padded / 2))
                {
                    for (p, t) in target[first_pair..end_pair].iter_mut().enumerate() {
                        let j = 2 * (first_pair + p);
                        *t = pair(row[j], row[j + 1]);
                    }
                }
                for cb in (0..d).step_by(LANES) {
                    let acc = pair_product::<WIDE_BLOCK>(
                        &pairs[first_pair..],
                        padded / 2,
                        &values[first_pair * d + cb..],
                        d,
                        end_pair - first_pair,
                    );
                    write_context(&acc, &inv, block_out, out_width, head * d + cb);
                }
            }
        }
    }

    /// [`super::block_product`] over bf16 pairs: `a` holds `R` rows of `k` pairs,
    /// `a_stride` apart; `b` `k` rows of [`LANES`] pairs, `b_stride` apart.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    fn pair_product<const R: usize>(
        a: &[u32],
        a_stride: usize,
        b: &[u32],
        b_stride: usize,
        k: usize,
    ) -> [[f32; LANES]; R] {
        let mut out = [[0f32; LANES]; R];
        if k == 0 {
            return out;
        }
        assert!((R - 1) * a_stride + k <= a.len() && (k - 1) * b_stride + LANES <= b.len());
        let (a, b) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); R];
        for p in 0..k {
            // SAFETY: the reads are bounded by the assertion above.
            unsafe {
                let row: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(b.add(p * b_stride).cast()));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x: __m512bh =
                        std::mem::transmute(_mm512_set1_epi32(*a.add(r * a_stride + p) as i32));
                    *acc = _mm512_dpbf16_ps(*acc, x, row);
                }
            }
        }
        for (out, acc) in out.iter_mut().zip(acc) {
            // SAFETY: a row of `out` holds LANES floats.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), acc) };
        }
        out
    }

    /// Transposes the 8 × 8 block at `src` (rows `src_stride` apart) into `dst` (rows
    /// `dst_stride` apart).
    ///
    /// # Safety
    /// The CPU must have AVX2; both blocks must be inside their buffers.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn transpose8(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * src_stride)));
        // Pairs of rows interleaved, then pairs of pairs: each 128-bit half then holds
        // four values of one column (of rows 0-3 or 4-7).
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s = [
            _mm256_shuffle_ps::<0x44>(t0, t2),
            _mm256_shuffle_ps::<0xEE>(t0, t2),
            _mm256_shuffle_ps::<0x44>(t1, t3),
            _mm256_shuffle_ps::<0xEE>(t1, t3),
            _mm256_shuffle_ps::<0x44>(t4, t6),
            _mm256_shuffle_ps::<0xEE>(t4, t6),
            _mm256_shuffle_ps::<0x44>(t5, t7),
            _mm256_shuffle_ps::<0xEE>(t5, t7),
        ];
        for c in 0..4 {
            let low = _mm256_permute2f128_ps::<0x20>(s[c], s[c + 4]);
            let high = _mm256_permute2f128_ps::<0x31>(s[c], s[c + 4]);
            _mm256_storeu_ps(dst.add(c * dst_stride), low);
            _mm256_storeu_ps(dst.add((c + 4) * dst_stride), high);
        }
    }

    /// # Safety
    /// The CPU must have AVX-512F; `a` is readable at `r * a_stride + p` and `b` at
    /// `p * b_stride + c` for every `r < R`, `p < k`, `c < LANES`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn block_product_avx512<const R: usize>(
        a: *const f32,
        a_stride: usize,
        b: *const f32,
        b_stride: usize,
        k: usize,
    ) -> [[f32; LANES]; R] {
        let mut acc = [_mm512_setzero_ps(); R];
        for p in 0..k {
            let row = _mm512_loadu_ps(b.add(p * b_stride));
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(r * a_stride + p)), row, *acc);
            }
        }
        let mut out = [[0f32; LANES]; R];
        for (out, acc) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(out.as_mut_ptr(), acc);
        }
        out
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA; the reads are those of [`block_product_avx512`].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn block_product_avx2<const R: usize>(
        a: *const f32,
        a_stride: usize,
        b: *const f32,
        b_stride: usize,
        k: usize,
    ) -> [[f32; LANES]; R] {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for p in 0..k {
            let row = [
                _mm256_loadu_ps(b.add(p * b_stride)),
                _mm256_loadu_ps(b.add(p * b_stride + 8)),
            ];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_ps(*a.add(r * a_stride + p));
                acc[0] = _mm256_fmadd_ps(x, row[0], acc[0]);
                acc[1] = _mm256_fmadd_ps(x, row[1], acc[1]);
            }
        }
        let mut out = [[0f32; LANES]; R];
        for (out, acc) in out.iter_mut().zip(acc) {
            _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[1]);
        }
        out
    }
}

/// Exponentiates `scores` less their maximum, in place, and returns the reciprocal of
/// their sum (0 for an empty row): the softmax, once scaled by it.
#[inline(always)]
fn softmax_unnormalised<const FMA: bool>(scores: &mut [f32]) -> f32 {
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut chunks = scores.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, v) in max.iter_mut().zip(chunk) {
            // A plain comparison vectorises (`f32::max`'s NaN rule does not).
            *m = if *v > *m { *v } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&max)
        .fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    let mut total = [0f32; LANES];
    let mut chunks = scores.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (v, t) in chunk.iter_mut().zip(total.iter_mut()) {
            *v = exp::<FMA>(*v - max);
            *t += *v;
        }
    }
    // The tail in one full-width pass too: lanes past it add exactly zero.
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut lanes = [max; LANES];
        lanes[..tail.len()].copy_from_slice(tail);
        for (i, (v, t)) in lanes.iter_mut().zip(total.iter_mut()).enumerate() {
            let e = exp::<FMA>(*v - max);
            *v = if i < tail.len() { e } else { 0.0 };
            *t += *v;
        }
        tail.copy_from_slice(&lanes[..tail.len()]);
    }
    let sum: f32 = total.iter().sum();
    if sum > 0.0 {
        1.0 / sum
    } else {
        0.0
    }
}

/// One head of one text, from its gathered operands, written into its columns of `out`
/// (`[len, context_width]`), `R` queries at a time; `probs` holds `[R][padded]` scores.
#[inline(always)]
fn attend_head<const FMA: bool, const R: usize>(
    s: &TextOperands<f32>,
    head: usize,
    shape: &AttentionShape,
    mask: KeyMask,
    probs: &mut [f32],
    out: &mut [f32],
) {
    let (d, padded, keys) = (s.head_dim, s.padded, s.keys);
    let out_width = shape.context_width();
    let q_at = head * d;
    let kv = head / shape.group();
    let head_queries = &s.queries[head * s.len_padded * d..(head + 1) * s.len_padded * d];
    let keys_t = &s.keys_t[kv * d * padded..(kv + 1) * d * padded];
    let values = &s.values[kv * keys * d..(kv + 1) * keys * d];
    for (block, (queries, block_out)) in head_queries
        .chunks_exact(R * d)
        .zip(out.chunks_mut(R * out_width))
        .enumerate()
    {
        // Rows past the text's end are zero queries: computed, never written out.
        let real = block_out.len() / out_width;
        let (ranges, lo, hi) = block_ranges::<R>(mask, block * R, real, keys);
        if lo >= hi {
            continue;
        }
        for jb in (lo / LANES * LANES..hi).step_by(LANES) {
            let acc = block_product::<FMA, R>(queries, d, &keys_t[jb..], padded, d);
            for (acc_row, probs) in acc.iter().zip(probs.chunks_exact_mut(padded)) {
                probs[jb..jb + LANES].copy_from_slice(acc_row);
            }
        }
        let inv = block_softmax::<FMA, R>(probs, padded, &ranges, lo, hi);
        for cb in (0..d).step_by(LANES) {
            let acc =
                block_product::<FMA, R>(&probs[lo..], padded, &values[lo * d + cb..], d, hi - lo);
            write_context(&acc, &inv, block_out, out_width, q_at + cb);
        }
    }
}

/// The key range of each of a block's `R` queries from row `first` (empty for the rows
/// past the text's `real` ones) and the union `lo..hi` of the ranges.
#[inline(always)]
fn block_ranges<const R: usize>(
    mask: KeyMask,
    first: usize,
    real: usize,
    keys: usize,
) -> ([(usize, usize); R], usize, usize) {
    let ranges: [(usize, usize); R] = std::array::from_fn(|r| {
        if r < real {
            mask.range(first + r, keys)
        } else {
            (0, 0)
        }
    });
    let lo = ranges[..real].iter().map(|r| r.0).min().unwrap_or(0);
    let hi = ranges[..real].iter().map(|r| r.1).max().unwrap_or(0);
    (ranges, lo, hi)
}

/// The unnormalised softmax of each row of `probs` (`[R][padded]`) over its range, in
/// place, zero over the rest of `zero_lo..zero_hi`; returns each row's normaliser.
#[inline(always)]
fn block_softmax<const FMA: bool, const R: usize>(
    probs: &mut [f32],
    padded: usize,
    ranges: &[(usize, usize); R],
    zero_lo: usize,
    zero_hi: usize,
) -> [f32; R] {
    let mut inv = [0f32; R];
    for ((inv, probs), &(a, b)) in inv
        .iter_mut()
        .zip(probs.chunks_exact_mut(padded))
        .zip(ranges)
    {
        if a < b {
            *inv = softmax_unnormalised::<FMA>(&mut probs[a..b]);
            probs[zero_lo..a].fill(0.0);
            probs[b..zero_hi].fill(0.0);
        } else {
            probs[zero_lo..zero_hi].fill(0.0);
        }
    }
    inv
}

/// Each row of `acc`, scaled by its normaliser, into columns `at .. at + LANES` of the
/// block's output rows (only the block's real rows exist in `block_out`).
#[inline(always)]
fn write_context<const R: usize>(
    acc: &[[f32; LANES]; R],
    inv: &[f32; R],
    block_out: &mut [f32],
    out_width: usize,
    at: usize,
) {
    for ((acc_row, inv), out_row) in acc
        .iter()
        .zip(inv)
        .zip(block_out.chunks_exact_mut(out_width))
    {
        for (o, v) in out_row[at..at + LANES].iter_mut().zip(acc_row) {
            *o = v * inv;
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

    /// The kernel (both head-size paths, grouped heads, every mask, f32 and bf16
    /// products) against the Candle ops in f64.
    #[test]
    fn kernel_matches_candle_ops() -> candle_core::Result<()> {
        let lens = [1usize, 5, 17, 40, 3];
        let seqs: Vec<Vec<u32>> = lens.iter().map(|&n| vec![0; n]).collect();
        let batches = [
            PackedBatch::new(&seqs, None),
            PackedBatch::new(&seqs, Some(&[1, 5, 12, 33, 0])),
        ];
        let bf16_runs = crate::layers::packed::bf16_supported();
        let shapes = [(4, 4, 16), (4, 2, 16), (2, 1, 32), (4, 1, 8), (2, 2, 12)];
        for ((heads, kv_heads, head_dim), bf16) in
            shapes.into_iter().flat_map(|s| [(s, false), (s, true)])
        {
            let shape = AttentionShape {
                bf16,
                ..AttentionShape::new(heads, kv_heads, head_dim, 1.0 / (head_dim as f32).sqrt())
            };
            // bf16 rounds every operand (relative error 2^-9): values in [-1, 1] then
            // stay within 2e-2; it applies where the head size is a multiple of 16.
            let rounded = bf16 && bf16_runs && head_dim % 16 == 0;
            let tolerance = if rounded { 2e-2 } else { 1e-5 };
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
                    let context =
                        format!("{heads}/{kv_heads} heads of {head_dim}, bf16 {bf16}, {mask:?}");
                    assert!(diff <= tolerance, "{context}: {diff}");
                    if rounded {
                        // The bf16 products ran: their rounding shows.
                        assert!(diff > 1e-5, "{context}: {diff}");
                    }
                }
            }
        }
        Ok(())
    }
}
