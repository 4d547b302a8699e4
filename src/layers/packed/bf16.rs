//! bf16 products: weights rounded to bf16 at load, activation rows rounded at each call,
//! pairs multiplied and summed into f32 accumulators by AVX512-BF16's `vdpbf16ps`.

use half::bf16;

use super::{for_each_tile, pack_rows, Panels, MR, PANEL};
use crate::layers::kernels::with_simd;

/// Input values per packed group (one `u32` of two bf16).
const GROUP: usize = 2;

pub struct Bf16Weight {
    pub(super) panels: Panels,
}

/// Two bf16 (round to nearest even; zero past the slice's end) as one `u32`, the
/// first in the low half.
fn pair_of(values: &[f32], g: usize) -> u32 {
    let bits = |j: usize| {
        values
            .get(g * GROUP + j)
            .map_or(0, |v| u32::from(bf16::from_f32(*v).to_bits()))
    };
    bits(0) | (bits(1) << 16)
}

impl Bf16Weight {
    /// Rounds an f32 `[n, k]` weight, row-major.
    pub fn new(values: &[f32], n: usize, k: usize) -> Self {
        let groups = k.div_ceil(GROUP);
        let panels = Panels::build(n, k, groups, |c, g| pair_of(&values[c * k..(c + 1) * k], g));
        Bf16Weight { panels }
    }

    pub fn stack(parts: &[&Bf16Weight]) -> candle_core::Result<Self> {
        let panels: Vec<&Panels> = parts.iter().map(|p| &p.panels).collect();
        Ok(Bf16Weight {
            panels: Panels::stack(&panels)?,
        })
    }

    /// The stored weight `[n, k]` as f32 (exactly its bf16 values).
    #[cfg(test)]
    pub fn to_f32(&self) -> Vec<f32> {
        let (n, k, groups) = (self.panels.n, self.panels.k, self.panels.groups);
        (0..n)
            .flat_map(|c| {
                let mut row: Vec<f32> = (0..groups)
                    .flat_map(|g| unpair(self.panels.code(c, g)))
                    .collect();
                row.truncate(k);
                row
            })
            .collect()
    }

    /// `x Wᵀ` for `m` rows of `x` (`[m, k]`, row-major): `[m, n]`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k, groups) = (self.panels.n, self.panels.k, self.panels.groups);
        let activations = pack_rows(m, groups, |first, block| {
            let rows = block.len() / groups.max(1);
            round_rows(&x[first * k..(first + rows) * k], k, groups, block);
        });
        for_each_tile(m, n, k, |first_row, rows, p| {
            let a = &activations[first_row * groups..(first_row + rows) * groups];
            tile(a, rows, groups, self.panels.panel(p))
        })
    }
}

with_simd! {
    fn round_rows(x: &[f32], k: usize, groups: usize, out: &mut [u32]) {
        for (row, pairs) in x.chunks_exact(k).zip(out.chunks_exact_mut(groups)) {
            let (whole, tail) = row.split_at(k - k % GROUP);
            for (pair, v) in pairs.iter_mut().zip(whole.chunks_exact(GROUP)) {
                *pair = round_bits(v[0]) | (round_bits(v[1]) << 16);
            }
            if let (Some(last), Some(v)) = (pairs.last_mut(), tail.first()) {
                *last = round_bits(*v);
            }
        }
    }
}

/// The bf16 bits of `v` (round to nearest, ties to even) in the low half, as
/// `half::bf16::from_f32` computes them but in arithmetic that vectorises; NaNs stay
/// quiet NaNs.
#[inline(always)]
pub(crate) fn round_bits(v: f32) -> u32 {
    let bits = v.to_bits();
    if v.is_nan() {
        return (bits >> 16) | 0x40;
    }
    (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
}

fn unpair(code: u32) -> [f32; 2] {
    [
        bf16::from_bits(code as u16).to_f32(),
        bf16::from_bits((code >> 16) as u16).to_f32(),
    ]
}

/// The products of `rows` activation rows with a panel, with `vdpbf16ps` where the CPU
/// has it.
fn tile(a: &[u32], rows: usize, groups: usize, panel: &[u32]) -> [[f32; PANEL]; MR] {
    #[cfg(target_arch = "x86_64")]
    if super::bf16_supported() {
        // SAFETY: the CPU has AVX512-BF16; the slices hold the `rows × groups` and
        // `groups × PANEL` values read.
        return unsafe { x86::tile(a, rows, groups, panel) };
    }
    portable_tile(a, rows, groups, panel)
}

/// The same products in f32 arithmetic, for CPUs without AVX512-BF16.
fn portable_tile(a: &[u32], rows: usize, groups: usize, panel: &[u32]) -> [[f32; PANEL]; MR] {
    let mut out = [[0f32; PANEL]; MR];
    for (r, line) in out.iter_mut().take(rows).enumerate() {
        for g in 0..groups {
            let [x0, x1] = unpair(a[r * groups + g]);
            for (acc, w) in line.iter_mut().zip(&panel[g * PANEL..(g + 1) * PANEL]) {
                let [w0, w1] = unpair(*w);
                *acc += x0 * w0 + x1 * w1;
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
    /// The CPU must have AVX512-F and AVX512-BF16; `a` holds `rows × groups` values,
    /// `panel` `groups × PANEL`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn tile(a: &[u32], rows: usize, groups: usize, panel: &[u32]) -> [[f32; PANEL]; MR] {
        crate::layers::packed::for_rows!(rows, rows_of(a, groups, panel))
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn rows_of<const R: usize>(
        a: &[u32],
        groups: usize,
        panel: &[u32],
    ) -> [[f32; PANEL]; MR] {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let (a, b) = (a.as_ptr(), panel.as_ptr());
        for g in 0..groups {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(g * PANEL).cast()));
            let b1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(b.add(g * PANEL + 16).cast()));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*a.add(r * groups + g) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], x, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], x, b1);
            }
        }
        crate::layers::packed::store_rows(&acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut v = crate::layers::test_tensor(&[count.max(1)], seed)
            .to_vec1::<f32>()
            .unwrap();
        v.truncate(count);
        v
    }

    fn rounded(v: &[f32]) -> Vec<f64> {
        v.iter()
            .map(|x| f64::from(bf16::from_f32(*x).to_f32()))
            .collect()
    }

    /// Against the f64 product of the bf16-rounded operands: only the f32 accumulation
    /// differs.
    #[test]
    fn products_equal_the_rounded_operands_product() {
        for (m, k, n) in [
            (1, 2, 1),
            (3, 7, 33),
            (8, 64, 32),
            (13, 130, 70),
            (9, 384, 5),
        ] {
            let (wv, x) = (values(n * k, 1), values(m * k, 2));
            let w = Bf16Weight::new(&wv, n, k);
            let (wr, xr) = (rounded(&wv), rounded(&x));
            let got = w.matmul(&x, m);
            for r in 0..m {
                for c in 0..n {
                    let want: f64 = (0..k).map(|i| xr[r * k + i] * wr[c * k + i]).sum();
                    let magnitude: f64 =
                        (0..k).map(|i| (xr[r * k + i] * wr[c * k + i]).abs()).sum();
                    let error = (f64::from(got[r * n + c]) - want).abs();
                    assert!(
                        error <= 1e-6 * magnitude.max(1.0),
                        "{m}x{k}x{n} [{r},{c}]: {error}"
                    );
                }
            }
            let fast = crate::layers::packed::bf16_supported();
            // The portable tile computes the same products.
            let groups = k.div_ceil(GROUP);
            let a = x
                .chunks_exact(k)
                .flat_map(|row| (0..groups).map(move |g| pair_of(row, g)))
                .collect::<Vec<u32>>();
            let tile = portable_tile(&a, m.min(MR), groups, w.panels.panel(0));
            for r in 0..m.min(MR) {
                for c in 0..n.min(PANEL) {
                    let error = (tile[r][c] - got[r * n + c]).abs();
                    assert!(error <= 1e-5, "portable vs fast ({fast}): {error}");
                }
            }
        }
    }

    #[test]
    fn activation_rounding_is_half_crates() {
        let mut specials = vec![0.0, -0.0, 1.0, f32::MAX, f32::MIN_POSITIVE, f32::INFINITY];
        specials.extend([f32::NEG_INFINITY, f32::NAN, 1.0039062, 1.0117188, -3.3e-39]);
        let x: Vec<f32> = values(999, 4)
            .into_iter()
            .map(|v| v * 1e3)
            .chain(specials)
            .collect();
        let k = x.len();
        let mut pairs = vec![0u32; k.div_ceil(GROUP)];
        round_rows(&x, k, pairs.len(), &mut pairs);
        let got: Vec<u16> = pairs
            .iter()
            .flat_map(|p| [*p as u16, (*p >> 16) as u16])
            .take(k)
            .collect();
        for (v, bits) in x.iter().zip(got) {
            let want = bf16::from_f32(*v);
            if v.is_nan() {
                assert!(bf16::from_bits(bits).is_nan());
            } else {
                assert_eq!(bits, want.to_bits(), "{v}");
            }
        }
    }

    #[test]
    fn stored_values_are_the_rounded_weight() {
        let wv = values(3 * 5, 3);
        let w = Bf16Weight::new(&wv, 3, 5);
        let want: Vec<f32> = wv.iter().map(|v| bf16::from_f32(*v).to_f32()).collect();
        assert_eq!(w.to_f32(), want);
        let stacked = Bf16Weight::stack(&[&w, &w]).unwrap();
        assert_eq!(stacked.to_f32(), [want.clone(), want].concat());
    }
}
