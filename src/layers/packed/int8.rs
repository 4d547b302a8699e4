//! int8 products in blocks of [`BLOCK`] input values. Weights are quantized
//! symmetrically per output channel and block at load (codes in [-127, 127]);
//! activations asymmetrically per row (token) and block at each call (codes in [0, 255]
//! around a zero point, which fits one-sided rows such as GELU outputs twice as finely).
//! Blocks keep a few large weights or activations (BERT's outlier features) from
//! coarsening a whole row: on all-MiniLM-L6-v2 they lift the worst cosine to f32 from
//! 0.993 (one scale per row) to 0.998.
//!
//! Per block, the dot product of the codes is exact in i32; it is corrected for the zero
//! point in i32, converted, and accumulated in f32 as `exact × (weight scale × row
//! scale)` with one fused multiply-add. AVX512-VNNI, AVX2 and the portable loop run
//! these same operations, so they give the same bits.

use rayon::prelude::*;

use super::{for_each_tile, vnni_supported, Panels, MR, PANEL};
use crate::layers::kernels::{with_simd, SimdLevel};

/// Input values per packed group (one `u32` of four codes).
const GROUP: usize = 4;

/// Input values sharing one scale (per weight channel, per activation row).
pub(crate) const BLOCK: usize = 64;

const GROUPS_PER_BLOCK: usize = BLOCK / GROUP;

/// The quantization of one block of one activation row: `x ≈ scale × (code − zero)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct RowBlock {
    scale: f32,
    zero: i32,
}

pub struct Int8Weight {
    pub(super) panels: Panels,
    /// Blocks per channel: `k / BLOCK`, rounded up.
    blocks: usize,
    /// Per panel, block and channel (`[panel][block][PANEL]`): `w ≈ code × scale`.
    scales: Vec<f32>,
    /// The same layout: each block's sum of codes, for the activations' zero points.
    sums: Vec<i32>,
}

/// Symmetric codes of `values` in [-127, 127] and their scale (`max |v| / 127`).
fn quantize_symmetric(values: &[f32], codes: &mut [i8]) -> f32 {
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let inverse = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    for (code, v) in codes.iter_mut().zip(values) {
        *code = (v * inverse).round().clamp(-127.0, 127.0) as i8;
    }
    amax / 127.0
}

/// Codes of `values` in [0, 255] with `x ≈ scale × (code − zero)`; the range always
/// holds 0, so zero padding is exact.
#[inline(always)]
fn quantize_asymmetric(values: &[f32], codes: &mut [u8]) -> RowBlock {
    // Sixteen running extremes, so the loop vectorises without reordering a reduction.
    const LANES: usize = 16;
    let (mut low, mut high) = ([0f32; LANES], [0f32; LANES]);
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for ((lo, hi), &v) in low.iter_mut().zip(high.iter_mut()).zip(chunk) {
            *lo = if v < *lo { v } else { *lo };
            *hi = if v > *hi { v } else { *hi };
        }
    }
    for &v in chunks.remainder() {
        low[0] = if v < low[0] { v } else { low[0] };
        high[0] = if v > high[0] { v } else { high[0] };
    }
    // Halving the lanes keeps the reduction in vector registers.
    let mut width = LANES / 2;
    while width > 0 {
        for j in 0..width {
            low[j] = if low[j + width] < low[j] {
                low[j + width]
            } else {
                low[j]
            };
            high[j] = if high[j + width] > high[j] {
                high[j + width]
            } else {
                high[j]
            };
        }
        width /= 2;
    }
    let (lo, hi) = (low[0], high[0]);
    if hi <= lo {
        codes.fill(0);
        return RowBlock::default();
    }
    let scale = (hi - lo) / 255.0;
    let inverse = 255.0 / (hi - lo);
    let zero = (-lo * inverse).round_ties_even().clamp(0.0, 255.0);
    for (code, v) in codes.iter_mut().zip(values) {
        // Adding 1.5 × 2^23 rounds to the nearest integer (ties to even) and leaves it
        // in the low mantissa bits: a float-to-byte conversion that vectorises.
        const ROUND: f32 = 12_582_912.0;
        *code = ((v * inverse + zero).clamp(0.0, 255.0) + ROUND).to_bits() as u8;
    }
    RowBlock {
        scale,
        zero: zero as i32,
    }
}

/// Four weight codes (zero past the slice's end) as one little-endian `u32`.
fn group_of(codes: &[i8], g: usize) -> u32 {
    let mut bytes = [0u8; GROUP];
    for (j, b) in bytes.iter_mut().enumerate() {
        if let Some(code) = codes.get(g * GROUP + j) {
            *b = *code as u8;
        }
    }
    u32::from_le_bytes(bytes)
}

impl Int8Weight {
    /// Quantizes an f32 `[n, k]` weight, row-major.
    pub fn new(values: &[f32], n: usize, k: usize) -> Self {
        let blocks = k.div_ceil(BLOCK);
        let mut codes = vec![0i8; n * k];
        let mut scales = vec![0f32; n * blocks];
        if k > 0 {
            for ((codes, row), scales) in codes
                .chunks_exact_mut(k)
                .zip(values.chunks_exact(k))
                .zip(scales.chunks_exact_mut(blocks))
            {
                for ((codes, block), scale) in codes
                    .chunks_mut(BLOCK)
                    .zip(row.chunks(BLOCK))
                    .zip(scales.iter_mut())
                {
                    *scale = quantize_symmetric(block, codes);
                }
            }
        }
        Self::from_codes(&codes, &scales, n, k)
    }

    /// Packs channel-major codes `[n, k]` and block scales `[n, blocks]`.
    fn from_codes(codes: &[i8], scales: &[f32], n: usize, k: usize) -> Self {
        let (groups, blocks) = (k.div_ceil(GROUP), k.div_ceil(BLOCK));
        let row = |c: usize| &codes[c * k..(c + 1) * k];
        let panels = Panels::build(n, k, groups, |c, g| group_of(row(c), g));
        let width = n.div_ceil(PANEL) * PANEL;
        let (mut panel_scales, mut sums) = (vec![0f32; width * blocks], vec![0i32; width * blocks]);
        for c in 0..n {
            for b in 0..blocks {
                let at = ((c / PANEL) * blocks + b) * PANEL + c % PANEL;
                panel_scales[at] = scales[c * blocks + b];
                sums[at] = row(c)[b * BLOCK..((b + 1) * BLOCK).min(k)]
                    .iter()
                    .map(|&q| i32::from(q))
                    .sum();
            }
        }
        Int8Weight {
            panels,
            blocks,
            scales: panel_scales,
            sums,
        }
    }

    /// Channel `c`'s codes and block scales.
    fn channel(&self, c: usize) -> (Vec<i8>, Vec<f32>) {
        let mut codes: Vec<i8> = (0..self.panels.groups)
            .flat_map(|g| self.panels.code(c, g).to_le_bytes().map(|b| b as i8))
            .collect();
        codes.truncate(self.panels.k);
        let scales = (0..self.blocks)
            .map(|b| self.scales[((c / PANEL) * self.blocks + b) * PANEL + c % PANEL])
            .collect();
        (codes, scales)
    }

    pub fn stack(parts: &[&Int8Weight]) -> candle_core::Result<Self> {
        let Some(first) = parts.first() else {
            candle_core::bail!("nothing to stack")
        };
        let k = first.panels.k;
        if parts.iter().any(|p| p.panels.k != k) {
            candle_core::bail!("stacked weights must share their input width")
        }
        let (mut codes, mut scales) = (Vec::new(), Vec::new());
        for part in parts {
            for c in 0..part.panels.n {
                let (channel_codes, channel_scales) = part.channel(c);
                codes.extend(channel_codes);
                scales.extend(channel_scales);
            }
        }
        let n = parts.iter().map(|p| p.panels.n).sum();
        Ok(Self::from_codes(&codes, &scales, n, k))
    }

    /// The dequantized weight `[n, k]`.
    #[cfg(test)]
    pub fn to_f32(&self) -> Vec<f32> {
        (0..self.panels.n)
            .flat_map(|c| {
                let (codes, scales) = self.channel(c);
                codes
                    .into_iter()
                    .enumerate()
                    .map(move |(i, q)| f32::from(q) * scales[i / BLOCK])
            })
            .collect()
    }

    /// `x Wᵀ` for `m` rows of `x` (`[m, k]`, row-major): `[m, n]`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.panels.n, self.panels.k);
        let kernel = Kernel::current();
        let (activations, row_blocks) = quantize_activations(x, m, k);
        for_each_tile(m, n, k, |first_row, rows, p| {
            kernel.run(&self.tile(&activations, &row_blocks, first_row, rows, p))
        })
    }

    /// Rows `first_row ..` (`rows` of them) of the row-major activations against panel
    /// `p`.
    fn tile<'a>(
        &'a self,
        activations: &'a [u32],
        row_blocks: &'a [RowBlock],
        first_row: usize,
        rows: usize,
        p: usize,
    ) -> Tile<'a> {
        let (groups, blocks) = (self.panels.groups, self.blocks);
        let per_panel = blocks * PANEL;
        Tile {
            activations: &activations[first_row * groups..(first_row + rows) * groups],
            row_blocks: &row_blocks[first_row * blocks..(first_row + rows) * blocks],
            rows,
            groups,
            blocks,
            codes: self.panels.panel(p),
            scales: &self.scales[p * per_panel..(p + 1) * per_panel],
            sums: &self.sums[p * per_panel..(p + 1) * per_panel],
        }
    }
}

/// The packed codes of `m` rows of `x` (`k / 4` `u32`s each, rounded up) and each row's
/// block quantizations (`[m][blocks]`), spread over the rayon pool for large inputs.
fn quantize_activations(x: &[f32], m: usize, k: usize) -> (Vec<u32>, Vec<RowBlock>) {
    let (groups, blocks) = (k.div_ceil(GROUP), k.div_ceil(BLOCK));
    let mut activations = vec![0u32; m * groups];
    let mut row_blocks = vec![RowBlock::default(); m * blocks];
    if k == 0 {
        return (activations, row_blocks);
    }
    let per_task = crate::layers::kernels::rows_per_task(k);
    activations
        .par_chunks_mut(groups * per_task)
        .zip(row_blocks.par_chunks_mut(blocks * per_task))
        .zip(x.par_chunks(k * per_task))
        .for_each(|((packed, row_blocks), x)| {
            quantize_rows(x, k, groups, blocks, packed, row_blocks)
        });
    (activations, row_blocks)
}

with_simd! {
    fn quantize_rows(
        x: &[f32],
        k: usize,
        groups: usize,
        blocks: usize,
        packed: &mut [u32],
        row_blocks: &mut [RowBlock],
    ) {
        for ((row, packed), row_blocks) in x
            .chunks_exact(k)
            .zip(packed.chunks_exact_mut(groups))
            .zip(row_blocks.chunks_exact_mut(blocks))
        {
            // The row's bytes, in the little-endian order the groups hold them; those
            // past `k` stay zero.
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(packed);
            for ((codes, values), quantized) in bytes[..k]
                .chunks_mut(BLOCK)
                .zip(row.chunks(BLOCK))
                .zip(row_blocks.iter_mut())
            {
                *quantized = quantize_asymmetric(values, codes);
            }
        }
    }
}

/// One microkernel call: up to [`MR`] activation rows against one panel.
struct Tile<'a> {
    /// `[rows][groups]` packed activation codes.
    activations: &'a [u32],
    /// `[rows][blocks]`.
    row_blocks: &'a [RowBlock],
    rows: usize,
    groups: usize,
    blocks: usize,
    /// `[groups][PANEL]` packed weight codes.
    codes: &'a [u32],
    /// `[blocks][PANEL]` weight scales and code sums.
    scales: &'a [f32],
    sums: &'a [i32],
}

/// Adds one block's exact dot products of one row to its accumulators: the operations
/// (and so the bits) every kernel uses.
#[inline(always)]
fn accumulate(acc: &mut [f32], dots: &[i32], block: RowBlock, scales: &[f32], sums: &[i32]) {
    for (((acc, dot), scale), sum) in acc.iter_mut().zip(dots).zip(scales).zip(sums) {
        let exact = dot - block.zero * sum;
        *acc = (exact as f32).mul_add(scale * block.scale, *acc);
    }
}

/// The instructions the integer dot products run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Vnni,
    Avx2,
    Portable,
}

impl Kernel {
    fn current() -> Kernel {
        if vnni_supported() {
            Kernel::Vnni
        } else if SimdLevel::current() >= SimdLevel::Avx2 {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    }

    fn run(self, tile: &Tile) -> [[f32; PANEL]; MR] {
        debug_assert!(tile.activations.len() >= tile.rows * tile.groups);
        debug_assert!(tile.row_blocks.len() >= tile.rows * tile.blocks);
        debug_assert!(tile.codes.len() >= tile.groups * PANEL);
        debug_assert!(tile.scales.len() >= tile.blocks * PANEL);
        match self {
            // SAFETY: `Vnni` and `Avx2` are only chosen where the CPU has them, and the
            // tile's slices hold every value read (checked above in debug builds; the
            // caller builds them from the same sizes).
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => unsafe { x86::vnni_tile(tile) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { x86::avx2_tile(tile) },
            _ => portable_tile(tile),
        }
    }
}

fn portable_tile(tile: &Tile) -> [[f32; PANEL]; MR] {
    let mut out = [[0f32; PANEL]; MR];
    for (r, acc) in out.iter_mut().take(tile.rows).enumerate() {
        for b in 0..tile.blocks {
            let mut dots = [0i32; PANEL];
            let first = b * GROUPS_PER_BLOCK;
            for g in first..(first + GROUPS_PER_BLOCK).min(tile.groups) {
                let x = tile.activations[r * tile.groups + g].to_le_bytes();
                for (dot, w) in dots.iter_mut().zip(&tile.codes[g * PANEL..(g + 1) * PANEL]) {
                    let w = w.to_le_bytes();
                    for j in 0..GROUP {
                        *dot += i32::from(x[j]) * i32::from(w[j] as i8);
                    }
                }
            }
            let panel = b * PANEL..(b + 1) * PANEL;
            accumulate(
                acc,
                &dots,
                tile.row_blocks[r * tile.blocks + b],
                &tile.scales[panel.clone()],
                &tile.sums[panel],
            );
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{accumulate, Tile, GROUPS_PER_BLOCK, MR, PANEL};

    /// # Safety
    /// The CPU must have AVX512-F/BW/VNNI; the tile's slices must hold its sizes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn vnni_tile(tile: &Tile) -> [[f32; PANEL]; MR] {
        let mut out = [[0f32; PANEL]; MR];
        crate::layers::packed::for_rows!(tile.rows, vnni_rows(tile, &mut out));
        out
    }

    /// The integer accumulators of `R` rows stay in registers over a block; the float
    /// ones live in `out` (in L1), touched once per block.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn vnni_rows<const R: usize>(tile: &Tile, out: &mut [[f32; PANEL]; MR]) {
        let (groups, blocks) = (tile.groups, tile.blocks);
        let a = tile.activations.as_ptr();
        let quantized = tile.row_blocks.as_ptr();
        let b = tile.codes.as_ptr();
        for block in 0..blocks {
            let mut dots = [[_mm512_setzero_si512(); 2]; R];
            let start = block * GROUPS_PER_BLOCK;
            for g in start..(start + GROUPS_PER_BLOCK).min(groups) {
                let b0 = _mm512_loadu_si512(b.add(g * PANEL).cast());
                let b1 = _mm512_loadu_si512(b.add(g * PANEL + 16).cast());
                for (r, dots) in dots.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32(*a.add(r * groups + g) as i32);
                    dots[0] = _mm512_dpbusd_epi32(dots[0], x, b0);
                    dots[1] = _mm512_dpbusd_epi32(dots[1], x, b1);
                }
            }
            let scales = tile.scales.as_ptr().add(block * PANEL);
            let sums = tile.sums.as_ptr().add(block * PANEL);
            let scale = [_mm512_loadu_ps(scales), _mm512_loadu_ps(scales.add(16))];
            let sum = [
                _mm512_loadu_si512(sums.cast()),
                _mm512_loadu_si512(sums.add(16).cast()),
            ];
            for (r, (line, dots)) in out.iter_mut().zip(&dots).enumerate() {
                let row = *quantized.add(r * blocks + block);
                let (row_scale, zero) = (_mm512_set1_ps(row.scale), _mm512_set1_epi32(row.zero));
                for h in 0..2 {
                    let acc = line.as_mut_ptr().add(16 * h);
                    let exact = _mm512_sub_epi32(dots[h], _mm512_mullo_epi32(zero, sum[h]));
                    let factor = _mm512_mul_ps(scale[h], row_scale);
                    let total =
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), factor, _mm512_loadu_ps(acc));
                    _mm512_storeu_ps(acc, total);
                }
            }
        }
    }

    /// Bytes widened to i16 and multiplied pairwise (`vpmaddwd`): exact, where AVX2's
    /// byte multiply (`vpmaddubsw`) would saturate.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; the tile's slices must hold its sizes.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2_tile(tile: &Tile) -> [[f32; PANEL]; MR] {
        let mut out = [[0f32; PANEL]; MR];
        for block in 0..tile.blocks {
            let mut first = 0;
            while first < tile.rows {
                let mut dots = [[0i32; PANEL]; 2];
                let rows = if tile.rows - first >= 2 { 2 } else { 1 };
                if rows == 2 {
                    avx2_block::<2>(tile, first, block, &mut dots);
                } else {
                    avx2_block::<1>(tile, first, block, &mut dots);
                }
                let panel = block * PANEL..(block + 1) * PANEL;
                for (r, dots) in dots.iter().take(rows).enumerate() {
                    accumulate(
                        &mut out[first + r],
                        dots,
                        tile.row_blocks[(first + r) * tile.blocks + block],
                        &tile.scales[panel.clone()],
                        &tile.sums[panel.clone()],
                    );
                }
                first += rows;
            }
        }
        out
    }

    /// The exact dot products of `R` rows from `first` with the panel over one block.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_block<const R: usize>(
        tile: &Tile,
        first: usize,
        block: usize,
        out: &mut [[i32; PANEL]; 2],
    ) {
        let groups = tile.groups;
        let a = tile.activations.as_ptr().add(first * groups);
        let b = tile.codes.as_ptr();
        let start = block * GROUPS_PER_BLOCK;
        let end = (start + GROUPS_PER_BLOCK).min(groups);
        // Two halves of 16 channels, four channels (16 bytes) per vector.
        for half in 0..2 {
            let mut acc = [[_mm256_setzero_si256(); 4]; R];
            for g in start..end {
                let base = b.add(g * PANEL + half * 16).cast::<__m128i>();
                let w = [
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(base)),
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(base.add(1))),
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(base.add(2))),
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(base.add(3))),
                ];
                for (r, acc) in acc.iter_mut().enumerate() {
                    let codes = _mm_cvtsi32_si128(*a.add(r * groups + g) as i32);
                    let x = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(codes));
                    for (acc, w) in acc.iter_mut().zip(&w) {
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(*w, x));
                    }
                }
            }
            // Each vector holds two partial sums per channel, side by side.
            for (line, acc) in out.iter_mut().zip(&acc) {
                for (j, vector) in acc.iter().enumerate() {
                    let mut lanes = [0i32; 8];
                    _mm256_storeu_si256(lanes.as_mut_ptr().cast(), *vector);
                    for q in 0..4 {
                        line[half * 16 + 4 * j + q] = lanes[2 * q] + lanes[2 * q + 1];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize, seed: u64) -> Vec<f32> {
        let t = crate::layers::test_tensor(&[count.max(1)], seed);
        let mut v = t.to_vec1::<f32>().unwrap();
        v.truncate(count);
        v
    }

    /// The product in f64 from the codes and scales, block by block.
    fn reference(w: &Int8Weight, x: &[f32], m: usize) -> Vec<f64> {
        let (n, k) = (w.panels.n, w.panels.k);
        let mut out = Vec::with_capacity(m * n);
        for row in x.chunks_exact(k).take(m) {
            let mut codes = vec![0u8; k];
            let quantized: Vec<RowBlock> = codes
                .chunks_mut(BLOCK)
                .zip(row.chunks(BLOCK))
                .map(|(c, v)| quantize_asymmetric(v, c))
                .collect();
            for c in 0..n {
                let (wc, ws) = w.channel(c);
                let mut total = 0f64;
                for (b, q) in quantized.iter().enumerate() {
                    let range = b * BLOCK..((b + 1) * BLOCK).min(k);
                    let exact: i64 = range
                        .map(|i| (i64::from(codes[i]) - i64::from(q.zero)) * i64::from(wc[i]))
                        .sum();
                    total += exact as f64 * f64::from(q.scale) * f64::from(ws[b]);
                }
                out.push(total);
            }
        }
        out
    }

    #[test]
    fn every_kernel_gives_the_same_bits_as_the_block_arithmetic() {
        let mut kernels = vec![Kernel::Portable];
        if SimdLevel::current() >= SimdLevel::Avx2 {
            kernels.push(Kernel::Avx2);
        }
        if vnni_supported() {
            kernels.push(Kernel::Vnni);
        }
        for (m, k, n) in [
            (1, 4, 1),
            (3, 7, 33),
            (8, 64, 32),
            (13, 130, 70),
            (9, 384, 5),
        ] {
            let w = Int8Weight::new(&values(n * k, 3), n, k);
            let x = values(m * k, 4);
            let want = reference(&w, &x, m);
            let (a, row_blocks) = quantize_activations(&x, m, k);
            let mut first_kernel: Option<Vec<f32>> = None;
            for kernel in &kernels {
                let mut got = vec![0f32; m * n];
                for first in (0..m).step_by(MR) {
                    let rows = MR.min(m - first);
                    for p in 0..n.div_ceil(PANEL) {
                        let values = kernel.run(&w.tile(&a, &row_blocks, first, rows, p));
                        for (r, line) in values.iter().take(rows).enumerate() {
                            for (c, v) in line.iter().enumerate().take(PANEL.min(n - p * PANEL)) {
                                got[(first + r) * n + p * PANEL + c] = *v;
                            }
                        }
                    }
                }
                for (g, e) in got.iter().zip(&want) {
                    let error = (f64::from(*g) - e).abs();
                    assert!(
                        error <= 1e-5 * e.abs().max(1e-2),
                        "{kernel:?} {m}x{k}x{n}: {g} vs {e}"
                    );
                }
                match &first_kernel {
                    None => first_kernel = Some(got),
                    Some(bits) => assert_eq!(bits, &got, "{kernel:?} {m}x{k}x{n}"),
                }
            }
            assert_eq!(first_kernel, Some(w.matmul(&x, m)));
        }
    }

    #[test]
    fn activation_codes_round_to_the_nearest_step() {
        let row = values(300, 9);
        let mut codes = vec![0u8; row.len()];
        let q = quantize_asymmetric(&row, &mut codes);
        for (v, code) in row.iter().zip(&codes) {
            let back = q.scale * (f32::from(*code) - q.zero as f32);
            assert!((back - v).abs() <= 0.5 * q.scale * 1.001 + 1e-7);
        }
        // A one-sided block (as after GELU) uses the whole code range.
        let positive: Vec<f32> = row.iter().map(|v| v.abs()).collect();
        let q = quantize_asymmetric(&positive, &mut codes);
        assert_eq!(q.zero, 0);
        assert_eq!(codes.iter().max(), Some(&255));
    }

    #[test]
    fn quantized_product_is_close_to_the_float_product() {
        let (m, k, n) = (20, 256, 48);
        let (wv, x) = (values(n * k, 5), values(m * k, 6));
        let w = Int8Weight::new(&wv, n, k);
        let got = w.matmul(&x, m);
        for r in 0..m {
            let exact: Vec<f32> = (0..n)
                .map(|c| (0..k).map(|i| x[r * k + i] * wv[c * k + i]).sum())
                .collect();
            let row = &got[r * n..(r + 1) * n];
            let dot: f32 = row.iter().zip(&exact).map(|(a, b)| a * b).sum();
            let norms = row.iter().map(|a| a * a).sum::<f32>().sqrt()
                * exact.iter().map(|a| a * a).sum::<f32>().sqrt();
            assert!(dot / norms > 0.9995, "row {r}: cosine {}", dot / norms);
        }
    }

    #[test]
    fn a_large_weight_only_coarsens_its_own_block() {
        let (k, n) = (256, 2);
        let mut wv = values(n * k, 8);
        wv[3] = 40.0; // an outlier in channel 0's first block
        let w = Int8Weight::new(&wv, n, k);
        let back = w.to_f32();
        // Every other block keeps the step of values below 0.5: max / 127.
        for (i, (got, want)) in back.iter().zip(&wv).enumerate().skip(BLOCK) {
            assert!((got - want).abs() <= 0.5 * 0.5 / 127.0 + 1e-7, "{i}");
        }
        // The outlier's own block is coarse, and exact at the outlier.
        assert_eq!(back[3], 40.0);
    }

    #[test]
    fn codes_survive_stacking_and_dequantization() {
        let (k, n) = (70, 3);
        let wv = values(n * k, 7);
        let w = Int8Weight::new(&wv, n, k);
        for (got, want) in w.to_f32().iter().zip(&wv) {
            // Rounding to the nearest code is off by at most half a step (max |w| / 127).
            assert!((got - want).abs() <= 0.5 * 0.5 / 127.0 + 1e-7);
        }
        let stacked = Int8Weight::stack(&[&w, &w]).unwrap();
        assert_eq!(stacked.panels.n, 2 * n);
        assert_eq!(stacked.to_f32(), [w.to_f32(), w.to_f32()].concat());
        let x = values(2 * k, 1);
        let (one, both) = (w.matmul(&x, 2), stacked.matmul(&x, 2));
        for r in 0..2 {
            assert_eq!(both[r * 2 * n..r * 2 * n + n], one[r * n..(r + 1) * n]);
        }
    }

    #[test]
    fn zero_rows_and_channels_give_zeros() {
        let w = Int8Weight::new(&[0.0; 8], 2, 4);
        assert_eq!(w.matmul(&[1.0, -2.0, 3.0, 4.0], 1), vec![0.0, 0.0]);
        let w = Int8Weight::new(&values(8, 1), 2, 4);
        assert_eq!(w.matmul(&[0.0; 4], 1), vec![0.0, 0.0]);
    }
}
