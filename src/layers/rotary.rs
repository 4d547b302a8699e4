//! Rotary position embeddings (Su et al., 2021, <https://arxiv.org/abs/2104.09864>) in
//! the "rotate half" (GPT-NeoX) convention: `x' = x cos + rotate_half(x) sin` with
//! `rotate_half(x) = [-x[d/2:], x[:d/2]]`, applied to the query and key heads of a
//! packed `q | k | v` row.

use candle_core::{Tensor, D};

use super::{fused, kernels, AttentionShape};

/// The inverse frequencies of one rotary layer (`head_dim / 2` of them).
#[derive(Debug, Clone)]
pub struct Rotary {
    inv_freq: Vec<f32>,
}

impl Rotary {
    /// `inv_freq_i = θ^(-2i/d)`.
    pub fn new(head_dim: usize, theta: f64) -> Self {
        Rotary::ntk(head_dim, theta, 1.0)
    }

    /// GTE's NTK scaling: `inv_freq_i = (θ f)^(-2i/d) / f^(2/d)` (the identity at f = 1).
    pub fn ntk(head_dim: usize, theta: f64, factor: f64) -> Self {
        let d = head_dim as f64;
        let base = theta * factor;
        let shrink = factor.powf(2.0 / d);
        let inv_freq = (0..head_dim / 2)
            .map(|i| (base.powf(-((2 * i) as f64) / d) / shrink) as f32)
            .collect();
        Rotary { inv_freq }
    }

    /// Cosines and sines of every packed token's position.
    pub fn table(&self, positions: &[u32]) -> RotaryTable {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in &self.inv_freq {
                // The angle is rounded to f32 first, as the references compute it.
                let angle = f64::from(p as f32 * f);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RotaryTable { cos, sin, half }
    }
}

/// `[tokens, head_dim / 2]` cosines and sines.
pub struct RotaryTable {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl RotaryTable {
    /// Rotates the query and key heads of `qkv` (`[tokens, qkv_width]`).
    pub fn apply(&self, qkv: Tensor, shape: AttentionShape) -> candle_core::Result<Tensor> {
        let rotated = (shape.heads + shape.kv_heads) * shape.head_dim;
        if fused(&qkv) {
            qkv.inplace_op1(&RotateOp {
                table: self,
                width: shape.qkv_width(),
                rotated,
            })?;
            return Ok(qkv);
        }
        let tokens = qkv.dim(0)?;
        let heads = shape.heads + shape.kv_heads;
        let (d, half) = (shape.head_dim, self.half);
        let cos = Tensor::from_slice(&self.cos, (tokens, 1, half), qkv.device())?
            .to_dtype(qkv.dtype())?;
        let sin = Tensor::from_slice(&self.sin, (tokens, 1, half), qkv.device())?
            .to_dtype(qkv.dtype())?;
        let qk = qkv.narrow(1, 0, rotated)?.reshape((tokens, heads, d))?;
        let (x1, x2) = (
            qk.narrow(D::Minus1, 0, half)?,
            qk.narrow(D::Minus1, half, half)?,
        );
        let first = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
        let second = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
        let qk = Tensor::cat(&[first, second], D::Minus1)?.reshape((tokens, rotated))?;
        let v = qkv.narrow(1, rotated, shape.qkv_width() - rotated)?;
        Tensor::cat(&[qk, v], 1)
    }
}

struct RotateOp<'a> {
    table: &'a RotaryTable,
    width: usize,
    rotated: usize,
}

impl candle_core::InplaceOp1 for RotateOp<'_> {
    fn name(&self) -> &'static str {
        "rotary"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        use rayon::prelude::*;
        let half = self.table.half;
        let data = kernels::f32_elements_mut(storage, layout)?;
        let per_task = kernels::rows_per_task(self.width);
        data.par_chunks_mut(self.width * per_task)
            .enumerate()
            .for_each(|(task, rows)| {
                for (r, row) in rows.chunks_exact_mut(self.width).enumerate() {
                    let t = task * per_task + r;
                    let cos = &self.table.cos[t * half..(t + 1) * half];
                    let sin = &self.table.sin[t * half..(t + 1) * half];
                    for head in row[..self.rotated].chunks_exact_mut(2 * half) {
                        let (x1, x2) = head.split_at_mut(half);
                        for (((a, b), c), s) in x1.iter_mut().zip(x2.iter_mut()).zip(cos).zip(sin) {
                            let (u, v) = (*a, *b);
                            *a = u * c - v * s;
                            *b = v * c + u * s;
                        }
                    }
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn in_place_rotation_matches_candle_ops() -> candle_core::Result<()> {
        let shape = AttentionShape::new(4, 2, 8, 1.0);
        let tokens = 7;
        let data: Vec<f32> = (0..tokens * shape.qkv_width())
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.03)
            .collect();
        let positions: Vec<u32> = vec![0, 1, 2, 0, 1, 2, 3];
        let table = Rotary::ntk(8, 160000.0, 2.0).table(&positions);
        let qkv = Tensor::from_vec(data, (tokens, shape.qkv_width()), &Device::Cpu)?;
        let want = table
            .apply(qkv.to_dtype(DType::F64)?, shape)?
            .to_dtype(DType::F32)?;
        let got = table.apply(qkv.copy()?, shape)?;
        let diff = (got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff <= 1e-6, "{diff}");
        // Position 0 is the identity, and values are never rotated.
        let width = shape.qkv_width();
        let (first, original) = (
            want.get(0)?.to_vec1::<f32>()?,
            qkv.get(0)?.to_vec1::<f32>()?,
        );
        assert_eq!(first, original);
        let last = want.get(6)?.to_vec1::<f32>()?;
        let last_in = qkv.get(6)?.to_vec1::<f32>()?;
        assert_eq!(last[width - 16..], last_in[width - 16..]);
        Ok(())
    }
}
