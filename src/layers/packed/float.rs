//! f32 weights packed in panels once, at load. A few rows (one short text) run a panel
//! kernel that reads each weight once with no packing per call, where a general GEMM
//! spends as long packing the weights as multiplying them; more rows run `gemm` on one
//! contiguous panel at a time.
//!
//! In the panel kernel each output is one chain of fused multiply-adds over the input in
//! order, so AVX-512 and AVX2 give the same bits (the baseline, without FMA, rounds apart).

use rayon::prelude::*;

use super::{for_each_tile, OutputRows, Panels, MR, PANEL};
use crate::layers::kernels::{madd, with_simd};

pub struct F32Weight {
    pub(super) panels: Panels,
}

impl F32Weight {
    /// Packs an f32 `[n, k]` weight, row-major.
    pub fn new(values: &[f32], n: usize, k: usize) -> Self {
        F32Weight {
            panels: Panels::build(n, k, k, |c, g| values[c * k + g].to_bits()),
        }
    }

    pub fn stack(parts: &[&F32Weight]) -> candle_core::Result<Self> {
        let panels: Vec<&Panels> = parts.iter().map(|p| &p.panels).collect();
        Ok(F32Weight {
            panels: Panels::stack(&panels)?,
        })
    }

    /// The weight `[n, k]`.
    #[cfg(test)]
    pub fn to_f32(&self) -> Vec<f32> {
        let (n, k) = (self.panels.n, self.panels.k);
        (0..n)
            .flat_map(|c| (0..k).map(move |g| f32::from_bits(self.panels.code(c, g))))
            .collect()
    }

    /// `x Wᵀ` for `m` rows of `x` (`[m, k]`, row-major): `[m, n]`. A few rows take the
    /// panel kernel; more go to `gemm`, one call per panel, whose weights then need no
    /// gathering (a panel is a contiguous `[k, PANEL]` matrix): on this layout `gemm` runs
    /// 10-40 % faster than on the weight as stored.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.panels.n, self.panels.k);
        if m <= PANEL_KERNEL_ROWS {
            return for_each_tile(m, n, k, |first_row, rows, p| {
                let rows_of = &x[first_row * k..(first_row + rows) * k];
                panel_tile(rows_of, rows, k, bytemuck::cast_slice(self.panels.panel(p)))
            });
        }
        let mut out = Vec::with_capacity(m * n);
        let writer = OutputRows {
            ptr: out.spare_capacity_mut().as_mut_ptr().cast::<f32>(),
        };
        let product = |p: usize| {
            let cols = PANEL.min(n - p * PANEL);
            let panel: &[f32] = bytemuck::cast_slice(self.panels.panel(p));
            // SAFETY: `x` is `m × k` row-major, the panel `k × PANEL` row-major, and
            // columns `p * PANEL .. + cols` of the `m × n` output lie inside it; each panel
            // writes only its own columns.
            unsafe {
                gemm::gemm(
                    m,
                    cols,
                    k,
                    writer.at(p * PANEL),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    panel.as_ptr(),
                    1,
                    PANEL as isize,
                    0f32,
                    1f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        };
        // Threads take whole panels: each output is one `gemm` call's, whatever the split.
        let panels = n.div_ceil(PANEL);
        if rayon::current_num_threads() == 1 {
            (0..panels).for_each(product);
        } else {
            (0..panels).into_par_iter().for_each(product);
        }
        // SAFETY: the panels cover all `n` columns of all `m` rows, written above.
        unsafe { out.set_len(m * n) };
        out
    }
}

/// One tile: all its rows in one pass with AVX-512, else at most four per pass.
fn panel_tile(a: &[f32], rows: usize, k: usize, panel: &[f32]) -> [[f32; PANEL]; MR] {
    #[cfg(target_arch = "x86_64")]
    if crate::layers::kernels::SimdLevel::current() == crate::layers::kernels::SimdLevel::Avx512 {
        // SAFETY: AVX-512F was detected; the slices hold `rows × k` and `k × PANEL`
        // values.
        return unsafe { x86::tile(a, rows, k, panel) };
    }
    tile(a, rows, k, panel)
}

/// Rows up to which the panel kernel beats `gemm` (one short text).
const PANEL_KERNEL_ROWS: usize = 48;

with_simd! {
    /// `rows` activation rows (`[rows][k]`) against one panel
    /// (`[k][PANEL]`).
    fn tile(a: &[f32], rows: usize, k: usize, panel: &[f32]) -> [[f32; PANEL]; MR] {
        let mut out = [[0f32; PANEL]; MR];
        // At most four rows per pass: 8 accumulators of 16 lanes stay in registers.
        match rows {
            1 => pass::<FMA, 1>(a, 0, k, panel, &mut out),
            2 => pass::<FMA, 2>(a, 0, k, panel, &mut out),
            3 => pass::<FMA, 3>(a, 0, k, panel, &mut out),
            4 => pass::<FMA, 4>(a, 0, k, panel, &mut out),
            5 => {
                pass::<FMA, 4>(a, 0, k, panel, &mut out);
                pass::<FMA, 1>(a, 4, k, panel, &mut out);
            }
            6 => {
                pass::<FMA, 4>(a, 0, k, panel, &mut out);
                pass::<FMA, 2>(a, 4, k, panel, &mut out);
            }
            7 => {
                pass::<FMA, 4>(a, 0, k, panel, &mut out);
                pass::<FMA, 3>(a, 4, k, panel, &mut out);
            }
            _ => {
                pass::<FMA, 4>(a, 0, k, panel, &mut out);
                pass::<FMA, 4>(a, 4, k, panel, &mut out);
            }
        }
        out
    }
}

/// Rows `first .. first + R` of a tile's rows in `a` (`[rows][k]`), with fixed-size
/// accumulators so that the compiler keeps them in vector registers.
#[inline(always)]
fn pass<const FMA: bool, const R: usize>(
    a: &[f32],
    first: usize,
    k: usize,
    panel: &[f32],
    out: &mut [[f32; PANEL]; MR],
) {
    let rows: [&[f32]; R] = std::array::from_fn(|r| &a[(first + r) * k..(first + r + 1) * k]);
    let mut acc = [[0f32; PANEL]; R];
    for (g, w) in panel.chunks_exact(PANEL).take(k).enumerate() {
        for (acc, row) in acc.iter_mut().zip(&rows) {
            let x = row[g];
            for (acc, w) in acc.iter_mut().zip(w) {
                *acc = madd::<FMA>(x, *w, *acc);
            }
        }
    }
    out[first..first + R].copy_from_slice(&acc);
}

/// All eight rows in one pass with AVX-512 (16 of its 32 registers accumulate), the
/// same chain of fused multiply-adds per output as the portable passes.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{MR, PANEL};

    /// # Safety
    /// The CPU must have AVX-512F; `a` holds `rows × k` values, `panel` `k × PANEL`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile(a: &[f32], rows: usize, k: usize, panel: &[f32]) -> [[f32; PANEL]; MR] {
        crate::layers::packed::for_rows!(rows, rows_of(a, k, panel))
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn rows_of<const R: usize>(a: &[f32], k: usize, panel: &[f32]) -> [[f32; PANEL]; MR] {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let (a, w) = (a.as_ptr(), panel.as_ptr());
        for g in 0..k {
            let w0 = _mm512_loadu_ps(w.add(g * PANEL));
            let w1 = _mm512_loadu_ps(w.add(g * PANEL + 16));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.add(r * k + g));
                acc[0] = _mm512_fmadd_ps(x, w0, acc[0]);
                acc[1] = _mm512_fmadd_ps(x, w1, acc[1]);
            }
        }
        crate::layers::packed::store_rows(&acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_equal_ordered_fused_dot_products() {
        for (m, k, n) in [
            (1, 1, 1),
            (3, 7, 33),
            (8, 64, 32),
            (13, 130, 70),
            (9, 384, 5),
        ] {
            let w = crate::layers::test_tensor(&[n * k], 1)
                .to_vec1::<f32>()
                .unwrap();
            let x = crate::layers::test_tensor(&[m * k], 2)
                .to_vec1::<f32>()
                .unwrap();
            let packed = F32Weight::new(&w, n, k);
            assert_eq!(packed.to_f32(), w);
            let got = packed.matmul(&x, m);
            let fma = crate::layers::kernels::SimdLevel::current()
                >= crate::layers::kernels::SimdLevel::Avx2;
            for r in 0..m {
                for c in 0..n {
                    let mut want = 0f32;
                    for i in 0..k {
                        want = if fma {
                            x[r * k + i].mul_add(w[c * k + i], want)
                        } else {
                            x[r * k + i] * w[c * k + i] + want
                        };
                    }
                    assert_eq!(got[r * n + c], want, "{m}x{k}x{n} [{r},{c}]");
                }
            }
        }
    }
}
