//! Fused f32 CPU kernels for the work between matrix multiplications.
//!
//! Candle runs a bias add, an activation, a residual add and a norm as separate passes,
//! each allocating its output. Here each of those steps is one pass over f32 slices,
//! spread over rayon's threads and compiled for AVX2 + FMA where the CPU has them
//! (chosen at run time). The matrix multiplications stay with Candle (the `gemm`
//! crate). The Candle path serves every other device and dtype, and the kernels agree
//! with it within 1e-5.

use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout};
use rayon::prelude::*;

use super::Activation;

/// The f32 elements of a contiguous CPU tensor's storage.
pub(crate) fn f32_elements<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the CPU kernels need contiguous tensors")
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

pub(crate) fn f32_elements_mut<'a>(
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

/// Elements one rayon task handles at least, so scheduling stays cheap next to the work.
const ELEMENTS_PER_TASK: usize = 1 << 14;

pub(crate) fn rows_per_task(width: usize) -> usize {
    (ELEMENTS_PER_TASK / width.max(1)).max(1)
}

/// The widest vector instructions the fused kernels use on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// The baseline target (SSE2 on x86-64), no FMA.
    Baseline,
    /// AVX2 and FMA: eight lanes.
    Avx2,
    /// AVX-512F (with AVX2 and FMA): sixteen lanes.
    Avx512,
}

impl SimdLevel {
    /// Detected once at run time, then capped by `TESSERA_SIMD` (`avx512`, `avx2` or
    /// `baseline`) when set, so the narrower paths can be tested on a wider CPU.
    pub fn current() -> SimdLevel {
        static LEVEL: std::sync::OnceLock<SimdLevel> = std::sync::OnceLock::new();
        *LEVEL.get_or_init(|| {
            let detected = Self::detected();
            match std::env::var("TESSERA_SIMD").as_deref() {
                Ok("baseline") => SimdLevel::Baseline,
                Ok("avx2") => detected.min(SimdLevel::Avx2),
                _ => detected,
            }
        })
    }

    fn detected() -> SimdLevel {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
                return SimdLevel::Avx512;
            }
            if avx2 {
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Baseline
    }
}

/// Defines `fn $name(args)` that runs `$body` compiled for the widest level of
/// [`SimdLevel::current`]: AVX-512F (sixteen-wide vectors for the loops the compiler
/// vectorises), AVX2 (eight-wide) with FMA, else the baseline target. Inside `$body`,
/// the const `FMA` says whether [`madd`] fuses; AVX2 and AVX-512 both fuse, and the
/// bodies accumulate in a fixed order, so the two give the same bits.
macro_rules! with_simd {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body<const FMA: bool>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                /// # Safety
                /// The CPU must support AVX-512F, AVX2 and FMA.
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body::<true>($($arg),*)
                }
                /// # Safety
                /// The CPU must support AVX2 and FMA.
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body::<true>($($arg),*)
                }
                match $crate::layers::kernels::SimdLevel::current() {
                    // SAFETY: the level was detected at run time (and only ever capped).
                    $crate::layers::kernels::SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::layers::kernels::SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::layers::kernels::SimdLevel::Baseline => {}
                }
            }
            body::<false>($($arg),*)
        }
    };
}
pub(crate) use with_simd;

/// `a * b + c`, fused where the CPU does that in one instruction (without FMA,
/// `mul_add` would be a slow library call).
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `exp(x)` as Cephes' `expf` computes it (range reduction by ln 2, a degree-5
/// polynomial, within 2 ulp), in plain arithmetic so that loops over it vectorise.
#[inline(always)]
pub(crate) fn exp<const FMA: bool>(x: f32) -> f32 {
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

/// `tanh(x) = 1 - 2 / (exp(2x) + 1)`, with the vectorisable `exp`.
#[inline(always)]
fn tanh<const FMA: bool>(x: f32) -> f32 {
    1.0 - 2.0 / (exp::<FMA>(2.0 * x) + 1.0)
}

#[inline(always)]
fn activate<const FMA: bool>(act: Activation, u: f32) -> f32 {
    match act {
        Activation::GeluErf => (erf(u * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * u,
        Activation::GeluTanh => {
            const C: f32 = 0.797_884_6; // sqrt(2 / pi)
            0.5 * u * (1.0 + tanh::<FMA>(C * madd::<FMA>(0.044_715 * u, u * u, u)))
        }
        Activation::Silu => u / (1.0 + exp::<FMA>(-u)),
        Activation::Relu => u.max(0.0),
    }
}

/// `act(x + bias)` of every row of `x`, in place.
pub fn bias_activation(x: &mut [f32], bias: Option<&[f32]>, width: usize, act: Activation) {
    x.par_chunks_mut(width * rows_per_task(width))
        .for_each(|rows| bias_activation_rows(rows, bias, width, act));
}

with_simd! {
    fn bias_activation_rows(rows: &mut [f32], bias: Option<&[f32]>, width: usize, act: Activation) {
        // One loop per activation, so each one vectorises on its own.
        macro_rules! each {
            ($act:expr) => {
                for row in rows.chunks_exact_mut(width) {
                    match bias {
                        Some(bias) => {
                            for (v, b) in row.iter_mut().zip(bias) {
                                *v = activate::<FMA>($act, *v + b);
                            }
                        }
                        None => {
                            for v in row.iter_mut() {
                                *v = activate::<FMA>($act, *v);
                            }
                        }
                    }
                }
            };
        }
        match act {
            Activation::GeluErf => each!(Activation::GeluErf),
            Activation::GeluTanh => each!(Activation::GeluTanh),
            Activation::Silu => each!(Activation::Silu),
            Activation::Relu => each!(Activation::Relu),
        }
    }
}

/// Gated linear unit of `[rows, 2 * width]` rows: `act(a) * b` where `a` is the first
/// half of each row when `activated_first`, else the second. Returns `[rows, width]`.
pub fn gated(x: &[f32], width: usize, act: Activation, activated_first: bool) -> Vec<f32> {
    let rows = x.len() / (2 * width);
    let mut out = vec![0f32; rows * width];
    let per_task = rows_per_task(width);
    out.par_chunks_mut(width * per_task)
        .zip(x.par_chunks(2 * width * per_task))
        .for_each(|(out, x)| gated_rows(out, x, width, act, activated_first));
    out
}

with_simd! {
    fn gated_rows(out: &mut [f32], x: &[f32], width: usize, act: Activation, activated_first: bool) {
        macro_rules! each {
            ($act:expr) => {
                for (o, row) in out.chunks_exact_mut(width).zip(x.chunks_exact(2 * width)) {
                    let (first, second) = row.split_at(width);
                    let (a, g) = if activated_first { (first, second) } else { (second, first) };
                    for ((o, a), g) in o.iter_mut().zip(a).zip(g) {
                        *o = activate::<FMA>($act, *a) * g;
                    }
                }
            };
        }
        match act {
            Activation::GeluErf => each!(Activation::GeluErf),
            Activation::GeluTanh => each!(Activation::GeluTanh),
            Activation::Silu => each!(Activation::Silu),
            Activation::Relu => each!(Activation::Relu),
        }
    }
}

/// The normalisation of a row: LayerNorm (centred, with a shift) or RMSNorm.
#[derive(Clone, Copy)]
pub struct NormWeights<'a> {
    pub rms: bool,
    pub gamma: &'a [f32],
    pub beta: Option<&'a [f32]>,
    pub eps: f32,
}

/// `norm(x + bias + residual)` of every row of `x`, in place (`bias` and `residual`
/// optional).
pub fn add_norm(x: &mut [f32], bias: Option<&[f32]>, residual: Option<&[f32]>, norm: NormWeights) {
    let width = norm.gamma.len();
    let chunk = width * rows_per_task(width);
    match residual {
        Some(residual) => x
            .par_chunks_mut(chunk)
            .zip(residual.par_chunks(chunk))
            .for_each(|(rows, residual)| add_norm_rows(rows, bias, Some(residual), norm)),
        None => x
            .par_chunks_mut(chunk)
            .for_each(|rows| add_norm_rows(rows, bias, None, norm)),
    }
}

with_simd! {
    fn add_norm_rows(rows: &mut [f32], bias: Option<&[f32]>, residual: Option<&[f32]>, norm: NormWeights) {
        let width = norm.gamma.len();
        for (i, row) in rows.chunks_exact_mut(width).enumerate() {
            if let Some(bias) = bias {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
            if let Some(residual) = residual {
                for (v, r) in row.iter_mut().zip(&residual[i * width..(i + 1) * width]) {
                    *v += r;
                }
            }
            norm_row(row, norm);
        }
    }
}

/// The norm applied to `count` pieces of `norm.gamma.len()` values in each `width`-wide
/// row, starting at column `from` (per-head query / key norms), in place.
pub fn norm_pieces(x: &mut [f32], width: usize, from: usize, count: usize, norm: NormWeights) {
    let size = norm.gamma.len();
    x.par_chunks_mut(width * rows_per_task(width))
        .for_each(|rows| {
            for row in rows.chunks_exact_mut(width) {
                add_norm_rows(&mut row[from..from + count * size], None, None, norm);
            }
        });
}

#[inline(always)]
fn norm_row(row: &mut [f32], norm: NormWeights) {
    let n = row.len() as f32;
    let mean = if norm.rms { 0.0 } else { sum(row) / n };
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
    let inv_std = 1.0 / (variance + norm.eps).sqrt();
    match norm.beta {
        Some(beta) => {
            for ((v, g), b) in row.iter_mut().zip(norm.gamma).zip(beta) {
                *v = (*v - mean) * inv_std * g + b;
            }
        }
        None => {
            for (v, g) in row.iter_mut().zip(norm.gamma) {
                *v = (*v - mean) * inv_std * g;
            }
        }
    }
}

/// Sum with eight independent accumulators, so it vectorises.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
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
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// [`bias_activation`] as an in-place Candle op, so the matmul's output is reused.
pub struct BiasActivation<'a> {
    pub bias: Option<&'a [f32]>,
    pub width: usize,
    pub act: Activation,
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        bias_activation(
            f32_elements_mut(storage, layout)?,
            self.bias,
            self.width,
            self.act,
        );
        Ok(())
    }
}

/// `x + bias` of every row, in place.
pub struct BiasAdd<'a>(pub &'a [f32]);

impl InplaceOp1 for BiasAdd<'_> {
    fn name(&self) -> &'static str {
        "bias-add"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let width = self.0.len();
        f32_elements_mut(storage, layout)?
            .par_chunks_mut(width * rows_per_task(width))
            .for_each(|rows| {
                for row in rows.chunks_exact_mut(width) {
                    for (v, b) in row.iter_mut().zip(self.0) {
                        *v += b;
                    }
                }
            });
        Ok(())
    }
}

/// [`add_norm`] as an in-place Candle op; the residual, when any, is its operand.
pub struct AddNorm<'a> {
    pub bias: Option<&'a [f32]>,
    pub norm: NormWeights<'a>,
}

impl InplaceOp1 for AddNorm<'_> {
    fn name(&self) -> &'static str {
        "norm"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        add_norm(
            f32_elements_mut(storage, layout)?,
            self.bias,
            None,
            self.norm,
        );
        Ok(())
    }
}

impl InplaceOp2 for AddNorm<'_> {
    fn name(&self) -> &'static str {
        "residual-norm"
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
        add_norm(x, self.bias, Some(residual), self.norm);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn check_activation(act: Activation, want: impl Fn(&Tensor) -> candle_core::Result<Tensor>) {
        let xs: Vec<f32> = (-12_000..12_000).map(|i| i as f32 * 1e-3).collect();
        let want = Tensor::new(xs.as_slice(), &Device::Cpu)
            .and_then(|t| want(&t))
            .and_then(|t| t.to_vec1::<f32>())
            .expect("candle activation");
        let mut got = xs.clone();
        bias_activation(&mut got, None, 1, act);
        for ((x, g), w) in xs.iter().zip(&got).zip(&want) {
            assert!(
                (g - w).abs() <= 2e-6 * (1.0 + w.abs()),
                "{act:?}({x}): {g} vs {w}"
            );
        }
    }

    #[test]
    fn activations_match_candle() {
        check_activation(Activation::GeluErf, |t| t.gelu_erf());
        check_activation(Activation::GeluTanh, |t| t.gelu());
        check_activation(Activation::Silu, |t| t.silu());
    }

    #[test]
    fn norms_match_candle() {
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
        for rms in [false, true] {
            let want = (|| {
                let x = Tensor::from_slice(&xs, (5, width), dev)?
                    .broadcast_add(&Tensor::from_slice(&bias, width, dev)?)?
                    .add(&Tensor::from_slice(&res, (5, width), dev)?)?;
                let g = Tensor::from_slice(&gamma, width, dev)?;
                let b = Tensor::from_slice(&beta, width, dev)?;
                let y = if rms {
                    candle_nn::ops::rms_norm(&x, &g, 1e-6)?
                } else {
                    candle_nn::ops::layer_norm(&x, &g, &b, 1e-12)?
                };
                y.flatten_all()?.to_vec1::<f32>()
            })()
            .expect("candle norm");
            let mut got = xs.clone();
            let norm = NormWeights {
                rms,
                gamma: &gamma,
                beta: (!rms).then_some(beta.as_slice()),
                eps: if rms { 1e-6 } else { 1e-12 },
            };
            add_norm(&mut got, Some(&bias), Some(&res), norm);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-5, "rms {rms}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn gated_unit_picks_the_activated_half() {
        let x = [1.0f32, -2.0, 3.0, 0.5];
        let first = gated(&x, 2, Activation::Silu, true);
        let silu = |v: f32| v / (1.0 + (-v).exp());
        assert!((first[0] - silu(1.0) * 3.0).abs() < 1e-6);
        assert!((first[1] - silu(-2.0) * 0.5).abs() < 1e-6);
        let second = gated(&x, 2, Activation::Silu, false);
        assert!((second[0] - silu(3.0) * 1.0).abs() < 1e-6);
    }
}
