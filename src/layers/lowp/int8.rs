//! int8 products: weights quantized symmetrically per output channel at load (codes in
//! [-127, 127]), activations asymmetrically per row (token) at each call (codes in
//! [0, 255] around a zero point, which fits one-sided rows such as GELU outputs twice as
//! finely as a symmetric code). The dot products of the codes are exact in i32 on every
//! instruction set, so AVX512-VNNI, AVX2 and the portable loop give the same bits; the
//! result is `(dot − zero point × Σ w) × row scale × channel scale`.

use rayon::prelude::*;

use super::{for_each_tile, vnni_supported, Panels, MR, PANEL};
use crate::layers::kernels::{with_simd, SimdLevel};

/// Input values per packed group (one `u32` of four codes).
const GROUP: usize = 4;

pub struct Int8Weight {
    pub(super) panels: Panels,
    /// One scale per output channel (`w ≈ code × scale`), zero-padded to whole panels.
    scales: Vec<f32>,
    /// Each channel's sum of codes, for the activations' zero points; padded alike.
    code_sums: Vec<i32>,
}

/// Symmetric codes of `values` in [-127, 127] and their scale (`max |v| / 127`).
fn quantize_channel(values: &[f32], codes: &mut [i8]) -> f32 {
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let inverse = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    for (code, v) in codes.iter_mut().zip(values) {
        *code = (v * inverse).round().clamp(-127.0, 127.0) as i8;
    }
    amax / 127.0
}

/// A row's codes in [0, 255] with `x ≈ scale × (code − zero point)`; the range always
/// holds 0, so zero padding is exact. Returns `(scale, zero point)`.
#[inline(always)]
fn quantize_row(values: &[f32], codes: &mut [u8]) -> (f32, i32) {
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
    let (mut lo, mut hi) = (0f32, 0f32);
    for &v in low.iter().chain(&high).chain(chunks.remainder()) {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
    }
    if hi <= lo {
        codes.fill(0);
        return (0.0, 0);
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
    (scale, zero as i32)
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
        let mut codes = vec![0i8; n * k];
        let scales = if k == 0 {
            vec![0.0; n]
        } else {
            codes
                .chunks_exact_mut(k)
                .zip(values.chunks_exact(k))
                .map(|(codes, row)| quantize_channel(row, codes))
                .collect()
        };
        Self::from_codes(&codes, scales, n, k)
    }

    fn from_codes(codes: &[i8], scales: Vec<f32>, n: usize, k: usize) -> Self {
        let groups = k.div_ceil(GROUP);
        let row = |c: usize| &codes[c * k..(c + 1) * k];
        let panels = Panels::build(n, k, groups, |c, g| group_of(row(c), g));
        let code_sums = (0..n)
            .map(|c| row(c).iter().map(|&q| i32::from(q)).sum())
            .collect();
        Self::padded(panels, scales, code_sums)
    }

    /// Pads the per-channel values to whole panels.
    fn padded(panels: Panels, mut scales: Vec<f32>, mut code_sums: Vec<i32>) -> Self {
        let width = panels.n.div_ceil(PANEL) * PANEL;
        scales.resize(width, 0.0);
        code_sums.resize(width, 0);
        Int8Weight {
            panels,
            scales,
            code_sums,
        }
    }

    /// The codes of channel `c`.
    fn channel_codes(&self, c: usize) -> Vec<i8> {
        let mut codes: Vec<i8> = (0..self.panels.groups)
            .flat_map(|g| self.panels.code(c, g).to_le_bytes().map(|b| b as i8))
            .collect();
        codes.truncate(self.panels.k);
        codes
    }

    pub fn stack(parts: &[&Int8Weight]) -> candle_core::Result<Self> {
        let panels: Vec<&Panels> = parts.iter().map(|p| &p.panels).collect();
        let per_channel = |values: fn(&Int8Weight) -> &[f32]| -> Vec<f32> {
            parts
                .iter()
                .flat_map(|p| values(p)[..p.panels.n].to_vec())
                .collect()
        };
        let code_sums = parts
            .iter()
            .flat_map(|p| p.code_sums[..p.panels.n].to_vec())
            .collect();
        Ok(Self::padded(
            Panels::stack(&panels)?,
            per_channel(|p| &p.scales),
            code_sums,
        ))
    }

    /// The dequantized weight `[n, k]`.
    pub fn to_f32(&self) -> Vec<f32> {
        (0..self.panels.n)
            .flat_map(|c| {
                let scale = self.scales[c];
                self.channel_codes(c)
                    .into_iter()
                    .map(move |q| f32::from(q) * scale)
            })
            .collect()
    }

    /// `x Wᵀ` for `m` rows of `x` (`[m, k]`, row-major): `[m, n]`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k, groups) = (self.panels.n, self.panels.k, self.panels.groups);
        let kernel = Kernel::current();
        let (activations, rows) = quantize_activations(x, m, k, groups);
        let mut out = vec![0f32; m * n];
        for_each_tile(&mut out, m, n, k, |first_row, count, p| {
            let a = &activations[first_row * groups..(first_row + count) * groups];
            let dots = kernel.tile(a, count, groups, self.panels.panel(p));
            let channels = p * PANEL..(p + 1) * PANEL;
            scale_tile(
                &dots,
                &rows[first_row..first_row + count],
                &self.code_sums[channels.clone()],
                &self.scales[channels],
            )
        });
        out
    }
}

/// The packed codes of `m` rows of `x` (`groups` `u32`s each) and each row's
/// `(scale, zero point)`.
fn quantize_activations(
    x: &[f32],
    m: usize,
    k: usize,
    groups: usize,
) -> (Vec<u32>, Vec<(f32, i32)>) {
    let mut activations = vec![0u32; m * groups];
    let mut rows = vec![(0f32, 0i32); m];
    if k == 0 {
        return (activations, rows);
    }
    // Spread over the rayon pool for large inputs.
    let per_task = crate::layers::kernels::rows_per_task(k);
    activations
        .par_chunks_mut(groups * per_task)
        .zip(rows.par_chunks_mut(per_task))
        .zip(x.par_chunks(k * per_task))
        .for_each(|((packed, rows), x)| quantize_rows(x, k, groups, packed, rows));
    (activations, rows)
}

with_simd! {
    fn quantize_rows(x: &[f32], k: usize, groups: usize, packed: &mut [u32], rows: &mut [(f32, i32)]) {
        for ((row, packed), quantized) in x
            .chunks_exact(k)
            .zip(packed.chunks_exact_mut(groups))
            .zip(rows.iter_mut())
        {
            // The row's bytes, in the little-endian order the groups hold them; those
            // past `k` stay zero.
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(packed);
            *quantized = quantize_row(row, &mut bytes[..k]);
        }
    }
}

with_simd! {
    /// `(dot − zero point × Σ w) × row scale × channel scale` of a tile's exact dots.
    fn scale_tile(
        dots: &[[i32; PANEL]; MR],
        rows: &[(f32, i32)],
        code_sums: &[i32],
        scales: &[f32],
    ) -> [[f32; PANEL]; MR] {
        let mut out = [[0f32; PANEL]; MR];
        for ((line, dots), &(row_scale, zero)) in out.iter_mut().zip(dots).zip(rows) {
            for (((v, dot), sum), scale) in line.iter_mut().zip(dots).zip(code_sums).zip(scales) {
                *v = (dot - zero * sum) as f32 * row_scale * scale;
            }
        }
        out
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

    /// The i32 dot products of `rows` activation rows (`groups` each) with a panel.
    fn tile(self, a: &[u32], rows: usize, groups: usize, panel: &[u32]) -> [[i32; PANEL]; MR] {
        debug_assert!(a.len() >= rows * groups && panel.len() >= groups * PANEL);
        match self {
            // SAFETY: `Vnni` and `Avx2` are only chosen where the CPU has them, and the
            // slices hold the `rows × groups` and `groups × PANEL` values read.
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => unsafe { x86::vnni_tile(a, rows, groups, panel) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { x86::avx2_tile(a, rows, groups, panel) },
            _ => portable_tile(a, rows, groups, panel),
        }
    }
}

fn portable_tile(a: &[u32], rows: usize, groups: usize, panel: &[u32]) -> [[i32; PANEL]; MR] {
    let mut out = [[0i32; PANEL]; MR];
    for (r, line) in out.iter_mut().take(rows).enumerate() {
        for g in 0..groups {
            let x = a[r * groups + g].to_le_bytes();
            for (acc, w) in line.iter_mut().zip(&panel[g * PANEL..(g + 1) * PANEL]) {
                let w = w.to_le_bytes();
                for j in 0..GROUP {
                    *acc += i32::from(x[j]) * i32::from(w[j] as i8);
                }
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{MR, PANEL};

    /// # Safety
    /// The CPU must have AVX512-F/BW/VNNI; `a` holds `rows × groups` values, `panel`
    /// `groups × PANEL`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn vnni_tile(
        a: &[u32],
        rows: usize,
        groups: usize,
        panel: &[u32],
    ) -> [[i32; PANEL]; MR] {
        match rows {
            1 => vnni_rows::<1>(a, groups, panel),
            2 => vnni_rows::<2>(a, groups, panel),
            3 => vnni_rows::<3>(a, groups, panel),
            4 => vnni_rows::<4>(a, groups, panel),
            5 => vnni_rows::<5>(a, groups, panel),
            6 => vnni_rows::<6>(a, groups, panel),
            7 => vnni_rows::<7>(a, groups, panel),
            _ => vnni_rows::<8>(a, groups, panel),
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn vnni_rows<const R: usize>(
        a: &[u32],
        groups: usize,
        panel: &[u32],
    ) -> [[i32; PANEL]; MR] {
        let mut acc = [[_mm512_setzero_si512(); 2]; R];
        let (a, b) = (a.as_ptr(), panel.as_ptr());
        for g in 0..groups {
            let b0 = _mm512_loadu_si512(b.add(g * PANEL).cast());
            let b1 = _mm512_loadu_si512(b.add(g * PANEL + 16).cast());
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_epi32(*a.add(r * groups + g) as i32);
                acc[0] = _mm512_dpbusd_epi32(acc[0], x, b0);
                acc[1] = _mm512_dpbusd_epi32(acc[1], x, b1);
            }
        }
        let mut out = [[0i32; PANEL]; MR];
        for (line, acc) in out.iter_mut().zip(&acc) {
            _mm512_storeu_si512(line.as_mut_ptr().cast(), acc[0]);
            _mm512_storeu_si512(line.as_mut_ptr().add(16).cast(), acc[1]);
        }
        out
    }

    /// Bytes widened to i16 and multiplied pairwise (`vpmaddwd`): exact, where AVX2's
    /// byte multiply (`vpmaddubsw`) would saturate.
    ///
    /// # Safety
    /// The CPU must have AVX2; the slices as for [`vnni_tile`].
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2_tile(
        a: &[u32],
        rows: usize,
        groups: usize,
        panel: &[u32],
    ) -> [[i32; PANEL]; MR] {
        let mut out = [[0i32; PANEL]; MR];
        let mut first = 0;
        while first < rows {
            let rest = &a[first * groups..];
            if rows - first >= 2 {
                avx2_rows::<2>(rest, groups, panel, &mut out[first..first + 2]);
                first += 2;
            } else {
                avx2_rows::<1>(rest, groups, panel, &mut out[first..first + 1]);
                first += 1;
            }
        }
        out
    }

    #[target_feature(enable = "avx2")]
    unsafe fn avx2_rows<const R: usize>(
        a: &[u32],
        groups: usize,
        panel: &[u32],
        out: &mut [[i32; PANEL]],
    ) {
        let (a, b) = (a.as_ptr(), panel.as_ptr());
        // Two halves of 16 channels, four channels (16 bytes) per vector.
        for half in 0..2 {
            let mut acc = [[_mm256_setzero_si256(); 4]; R];
            for g in 0..groups {
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

    /// Each row's exact integer dot products with every channel, from the codes.
    fn exact_dots(w: &Int8Weight, x: &[f32], m: usize) -> Vec<i64> {
        let (n, k) = (w.panels.n, w.panels.k);
        let mut codes = vec![0u8; k];
        let mut out = Vec::with_capacity(m * n);
        for row in x.chunks_exact(k).take(m) {
            let (_, zero) = quantize_row(row, &mut codes);
            for c in 0..n {
                let dot: i64 = codes
                    .iter()
                    .zip(w.channel_codes(c))
                    .map(|(a, b)| (i64::from(*a) - i64::from(zero)) * i64::from(b))
                    .sum();
                out.push(dot);
            }
        }
        out
    }

    #[test]
    fn every_kernel_gives_the_exact_integer_products() {
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
            let want = exact_dots(&w, &x, m);
            let groups = k.div_ceil(GROUP);
            let (a, rows) = quantize_activations(&x, m, k, groups);
            for kernel in &kernels {
                for first in (0..m).step_by(MR) {
                    let count = MR.min(m - first);
                    for p in 0..n.div_ceil(PANEL) {
                        let dots =
                            kernel.tile(&a[first * groups..], count, groups, w.panels.panel(p));
                        for (r, line) in dots.iter().enumerate().take(count) {
                            let zero = rows[first + r].1;
                            for (c, dot) in line.iter().enumerate().take(PANEL.min(n - p * PANEL)) {
                                let channel = p * PANEL + c;
                                let got = dot - zero * w.code_sums[channel];
                                assert_eq!(
                                    i64::from(got),
                                    want[(first + r) * n + channel],
                                    "{kernel:?} {m}x{k}x{n}"
                                );
                            }
                        }
                    }
                }
            }
            // The product scales those integers by the row's and the channel's scale.
            let got = w.matmul(&x, m);
            for (i, g) in got.iter().enumerate() {
                let (r, c) = (i / n, i % n);
                let e = want[i] as f64 * f64::from(rows[r].0) * f64::from(w.scales[c]);
                assert!(
                    (f64::from(*g) - e).abs() <= 1e-5 * e.abs().max(1e-3),
                    "{g} vs {e}"
                );
            }
        }
    }

    #[test]
    fn activation_codes_round_to_the_nearest_step() {
        let row = values(300, 9);
        let mut codes = vec![0u8; row.len()];
        let (scale, zero) = quantize_row(&row, &mut codes);
        for (v, q) in row.iter().zip(&codes) {
            let back = scale * (f32::from(*q) - zero as f32);
            assert!((back - v).abs() <= 0.5 * scale * 1.001 + 1e-7);
        }
        // A one-sided row (as after GELU) uses the whole code range.
        let positive: Vec<f32> = row.iter().map(|v| v.abs()).collect();
        let (_, zero) = quantize_row(&positive, &mut codes);
        assert_eq!(zero, 0);
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
            assert!(dot / norms > 0.999, "row {r}: cosine {}", dot / norms);
        }
    }

    #[test]
    fn codes_survive_stacking_and_dequantization() {
        let (k, n) = (10, 3);
        let wv = values(n * k, 7);
        let w = Int8Weight::new(&wv, n, k);
        for (got, want) in w.to_f32().iter().zip(&wv) {
            // Rounding to the nearest code is off by at most half a step (max |w| / 127).
            assert!((got - want).abs() <= 0.5 * 0.5 / 127.0 + 1e-7);
        }
        let stacked = Int8Weight::stack(&[&w, &w]).unwrap();
        assert_eq!(stacked.panels.n, 2 * n);
        let twice = [w.to_f32(), w.to_f32()].concat();
        assert_eq!(stacked.to_f32(), twice);
    }

    #[test]
    fn zero_rows_and_channels_give_zeros() {
        let w = Int8Weight::new(&[0.0; 8], 2, 4);
        assert_eq!(w.matmul(&[1.0, -2.0, 3.0, 4.0], 1), vec![0.0, 0.0]);
        let w = Int8Weight::new(&values(8, 1), 2, 4);
        assert_eq!(w.matmul(&[0.0; 4], 1), vec![0.0, 0.0]);
    }
}
