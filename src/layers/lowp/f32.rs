//! f32 weights packed in panels once, at load. A product then reads each weight once,
//! with no packing per call: what a handful of rows (one short text) needs, where a
//! general GEMM spends as long packing the weights as multiplying them.
//!
//! Each output is one chain of fused multiply-adds over the input in order, so AVX-512
//! and AVX2 give the same bits (the baseline, without FMA, rounds apart).

use super::{for_each_tile, Panels, MR, PANEL};
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
    pub fn to_f32(&self) -> Vec<f32> {
        let (n, k) = (self.panels.n, self.panels.k);
        (0..n)
            .flat_map(|c| (0..k).map(move |g| f32::from_bits(self.panels.code(c, g))))
            .collect()
    }

    /// `x Wᵀ` for `m` rows of `x` (`[m, k]`, row-major): `[m, n]`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.panels.n, self.panels.k);
        let bits: Vec<u32> = x[..m * k].iter().map(|v| v.to_bits()).collect();
        let activations = super::interleave_row_blocks(&bits, m, k);
        for_each_tile(m, n, k, |first_row, rows, p| {
            let a: &[f32] = bytemuck::cast_slice(&activations[first_row * k..(first_row + rows) * k]);
            tile(a, rows, k, bytemuck::cast_slice(self.panels.panel(p)))
        })
    }
}

with_simd! {
    /// `rows` interleaved activation rows (`a[g * rows + r]`) against one panel
    /// (`[k][PANEL]`).
    fn tile(a: &[f32], rows: usize, k: usize, panel: &[f32]) -> [[f32; PANEL]; MR] {
        let mut out = [[0f32; PANEL]; MR];
        // Fixed-size accumulators, so that the compiler keeps them in vector registers.
        macro_rules! rows {
            ($r:literal) => {{
                let mut acc = [[0f32; PANEL]; $r];
                for (x, w) in a.chunks_exact($r).zip(panel.chunks_exact(PANEL)).take(k) {
                    for r in 0..$r {
                        for c in 0..PANEL {
                            acc[r][c] = madd::<FMA>(x[r], w[c], acc[r][c]);
                        }
                    }
                }
                out[..$r].copy_from_slice(&acc);
            }};
        }
        match rows {
            1 => rows!(1),
            2 => rows!(2),
            3 => rows!(3),
            4 => rows!(4),
            5 => rows!(5),
            6 => rows!(6),
            7 => rows!(7),
            _ => rows!(8),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_equal_ordered_fused_dot_products() {
        for (m, k, n) in [(1, 1, 1), (3, 7, 33), (8, 64, 32), (13, 130, 70), (9, 384, 5)] {
            let w = crate::layers::test_tensor(&[n * k], 1).to_vec1::<f32>().unwrap();
            let x = crate::layers::test_tensor(&[m * k], 2).to_vec1::<f32>().unwrap();
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
