//! Matrix products of CPU f32 tensors straight through `gemm`, the library Candle's CPU
//! matmul calls. Candle asks the OS for the core count on every product (it reads
//! `/proc/cpuinfo` unless `RAYON_NUM_THREADS` is set), which costs more than a small
//! model's whole forward pass; here the thread count is the running rayon pool's, and the
//! arithmetic is the same call with the same strides, so the bits are Candle's.

use candle_core::{DType, Storage, Tensor};
use gemm::Parallelism;

/// `a @ b` over the last two dimensions, any strides: the leading dimensions of `a` are
/// batches, which `b` shares or (2-D) broadcasts. Other devices and dtypes go to Candle.
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if !(a.device().is_cpu() && a.dtype() == DType::F32 && b.dtype() == DType::F32)
        || a.rank() < 2
        || b.rank() < 2
    {
        return a.broadcast_matmul(b);
    }
    let (a_dims, b_dims) = (a.dims(), b.dims());
    let (lead, [m, k]) = a_dims.split_at(a_dims.len() - 2) else {
        return a.broadcast_matmul(b);
    };
    let (b_lead, [k2, n]) = b_dims.split_at(b_dims.len() - 2) else {
        return a.broadcast_matmul(b);
    };
    let (m, k, n) = (*m, *k, *n);
    let b_batched = !b_lead.is_empty();
    if *k2 != k || (b_batched && b_lead != lead) {
        return a.broadcast_matmul(b);
    }
    let batch: usize = lead.iter().product();
    let (a_storage, a_layout) = a.storage_and_layout();
    let (b_storage, b_layout) = b.storage_and_layout();
    let (Storage::Cpu(a_cpu), Storage::Cpu(b_cpu)) = (&*a_storage, &*b_storage) else {
        candle_core::bail!("a CPU tensor without CPU storage")
    };
    let (lhs, rhs) = (a_cpu.as_slice::<f32>()?, b_cpu.as_slice::<f32>()?);
    let (a_strides, b_strides) = (a_layout.stride(), b_layout.stride());
    let (a_row, a_col) = last_two(a_strides);
    let (b_row, b_col) = last_two(b_strides);
    // A shared rhs under row-stacked batches is one product of `batch * m` rows, as
    // Candle folds it (the same rows, so the same bits).
    let stacked =
        !b_batched && batch > 1 && lead.len() == 1 && a_strides[0] as isize == m as isize * a_row;
    let (steps, rows) = if stacked { (1, batch * m) } else { (batch, m) };
    let mut shape = lead.to_vec();
    shape.extend([m, n]);
    let mut out = vec![0f32; batch * m * n];
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    for step in 0..steps {
        let a_start = a_layout.start_offset() + batch_offset(step, lead, a_strides);
        let b_start = b_layout.start_offset()
            + if b_batched {
                batch_offset(step, lead, b_strides)
            } else {
                0
            };
        let dst = &mut out[step * rows * n..(step + 1) * rows * n];
        // SAFETY: the offsets and strides come from the tensors' own layouts, so every
        // element gemm reads lies inside `lhs` / `rhs`, and `dst` is `rows * n` row-major.
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                false,
                lhs[a_start..].as_ptr(),
                a_col,
                a_row,
                rhs[b_start..].as_ptr(),
                b_col,
                b_row,
                0f32,
                1f32,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    Tensor::from_vec(out, shape, a.device())
}

fn last_two(strides: &[usize]) -> (isize, isize) {
    let rank = strides.len();
    (strides[rank - 2] as isize, strides[rank - 1] as isize)
}

/// The element offset of flat batch `index` over the leading dimensions `lead`.
fn batch_offset(mut index: usize, lead: &[usize], strides: &[usize]) -> usize {
    let mut offset = 0;
    for (dim, stride) in lead.iter().zip(strides).rev() {
        offset += (index % dim) * stride;
        index /= dim;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        crate::layers::test_tensor(shape, seed)
    }

    #[test]
    fn same_bits_as_candle_for_every_layout() {
        let x = random(&[70, 33], 1);
        let w = random(&[19, 33], 2);
        let batched = random(&[3, 5, 8], 3);
        let other = random(&[3, 8, 6], 4);
        let cases = [
            (x.clone(), w.t().unwrap()), // x Wᵀ: a transposed view
            (x.clone(), w.t().unwrap().contiguous().unwrap()),
            (batched.clone(), other.clone()), // per-batch products
            (batched.clone(), random(&[8, 6], 5)), // one rhs for every batch
            (
                batched.clone(),
                other
                    .transpose(1, 2)
                    .unwrap()
                    .contiguous()
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap(),
            ),
            (x.narrow(0, 2, 40).unwrap(), w.t().unwrap()), // an offset view
            // attention's (batch, heads, rows, d) with transposed keys
            (
                random(&[2, 5, 3, 4], 6).transpose(1, 2).unwrap(),
                random(&[2, 3, 6, 4], 7).transpose(2, 3).unwrap(),
            ),
            (random(&[2, 3, 5, 4], 8), random(&[2, 3, 4, 6], 9)),
        ];
        for (index, (a, b)) in cases.into_iter().enumerate() {
            let ours = matmul(&a, &b).unwrap();
            // Candle wants collapsible batch dimensions; its copy computes the same.
            let candle = a.contiguous().unwrap().broadcast_matmul(&b).unwrap();
            assert_eq!(ours.dims(), candle.dims());
            let (ours, candle) = (
                ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                candle.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert_eq!(ours, candle, "case {index}");
        }
    }
}
