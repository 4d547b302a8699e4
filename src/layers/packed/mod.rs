//! Linear-layer weights packed once at load on the CPU, and the products that read them:
//! f32 (a panel kernel for a few rows, `gemm` per panel for more), bf16 (AVX512-BF16 dot
//! products, f32 accumulation) and int8 (block-wise scales, exact integer dot products).
//! Everything around the products (norms, softmax, activations, residuals) stays f32.
//!
//! All formats share one layout: output channels in panels of [`PANEL`], the input
//! dimension in groups of 1 (f32), 2 (bf16) or 4 (int8) values held in one `u32`, so
//! that a microkernel broadcasts one group of an activation row against a whole panel.

pub mod bf16;
pub mod float;
pub mod int8;

use std::cell::Cell;

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use crate::error::{Result, TesseraError};

/// Calls `$kernel::<R>(args)` with `R` the row count (1 to [`MR`], larger counts as
/// `MR`), so that microkernels hold their accumulators in fixed-size arrays.
#[cfg(target_arch = "x86_64")]
macro_rules! for_rows {
    ($rows:expr, $kernel:ident($($arg:expr),* $(,)?)) => {
        match $rows {
            1 => $kernel::<1>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            5 => $kernel::<5>($($arg),*),
            6 => $kernel::<6>($($arg),*),
            7 => $kernel::<7>($($arg),*),
            _ => $kernel::<8>($($arg),*),
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use for_rows;

/// A tile's `R` rows of two 16-lane f32 accumulators, as the tile's values.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn store_rows<const R: usize>(
    acc: &[[std::arch::x86_64::__m512; 2]; R],
) -> [[f32; PANEL]; MR] {
    use std::arch::x86_64::_mm512_storeu_ps;
    let mut out = [[0f32; PANEL]; MR];
    for (line, acc) in out.iter_mut().zip(acc) {
        _mm512_storeu_ps(line.as_mut_ptr(), acc[0]);
        _mm512_storeu_ps(line.as_mut_ptr().add(16), acc[1]);
    }
    out
}

/// Output channels per packed panel: two 16-lane vectors.
pub(crate) const PANEL: usize = 32;

/// Activation rows one microkernel call handles.
pub(crate) const MR: usize = 8;

/// Row blocks a task takes: 64 rows, whose activations stay in L2 while the task's
/// panels pass.
const BLOCKS_PER_TASK: usize = 8;

/// Products smaller than this many multiply-adds run on one thread.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// How the linear layers of a model being loaded keep their weights on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    #[default]
    F32,
    Bf16,
    Int8,
}

impl WeightFormat {
    /// Checks that this CPU can run the format.
    pub fn check_supported(self) -> Result<()> {
        match self {
            WeightFormat::Bf16 if !bf16_supported() => Err(TesseraError::Device(
                "dtype 'bf16' on the CPU needs the AVX512_BF16 instructions (Intel Cooper \
                 Lake / Sapphire Rapids, AMD Zen 4 and later), which this CPU lacks: use \
                 dtype='f32', dtype='auto' or quantize='int8'"
                    .to_string(),
            )),
            _ => Ok(()),
        }
    }
}

/// Whether the CPU has AVX512-BF16 (and AVX-512 is not capped by `TESSERA_SIMD`).
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use super::kernels::SimdLevel;
        SimdLevel::current() == SimdLevel::Avx512
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the int8 products use AVX512-VNNI (else AVX2, else portable code).
pub fn vnni_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use super::kernels::SimdLevel;
        SimdLevel::current() == SimdLevel::Avx512
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

thread_local! {
    static LOADING_FORMAT: Cell<WeightFormat> = const { Cell::new(WeightFormat::F32) };
}

/// While alive, linear layers built on this thread pack their CPU f32 weights in
/// `format` (model code builds layers deep inside each family's loader; the format is
/// a property of the whole load, not of any one layer).
pub struct LoadingFormat {
    previous: WeightFormat,
}

impl LoadingFormat {
    pub fn enter(format: WeightFormat) -> Self {
        let previous = LOADING_FORMAT.with(|cell| cell.replace(format));
        LoadingFormat { previous }
    }

    pub fn current() -> WeightFormat {
        LOADING_FORMAT.with(Cell::get)
    }
}

impl Drop for LoadingFormat {
    fn drop(&mut self) {
        LOADING_FORMAT.with(|cell| cell.set(self.previous));
    }
}

/// A CPU weight `[n, k]` in a packed layout.
pub enum PackedWeight {
    F32(float::F32Weight),
    Bf16(bf16::Bf16Weight),
    Int8(int8::Int8Weight),
}

/// Every part's weight of one format, or None when the formats differ.
fn all_of<'a, T>(
    parts: &[&'a PackedWeight],
    pick: impl Fn(&'a PackedWeight) -> Option<&'a T>,
) -> Option<Vec<&'a T>> {
    parts.iter().map(|p| pick(p)).collect()
}

impl PackedWeight {
    /// Packs a CPU f32 `[n, k]` weight, or returns None for other devices, dtypes and
    /// ranks (which stay with Candle).
    pub fn pack(weight: &Tensor, format: WeightFormat) -> candle_core::Result<Option<Self>> {
        if !weight.device().is_cpu() || weight.dtype() != DType::F32 || weight.rank() != 2 {
            return Ok(None);
        }
        let (n, k) = weight.dims2()?;
        let values = weight.flatten_all()?.to_vec1::<f32>()?;
        Ok(Some(match format {
            WeightFormat::F32 => PackedWeight::F32(float::F32Weight::new(&values, n, k)),
            WeightFormat::Bf16 => PackedWeight::Bf16(bf16::Bf16Weight::new(&values, n, k)),
            WeightFormat::Int8 => PackedWeight::Int8(int8::Int8Weight::new(&values, n, k)),
        }))
    }

    fn panels(&self) -> &Panels {
        match self {
            PackedWeight::F32(w) => &w.panels,
            PackedWeight::Bf16(w) => &w.panels,
            PackedWeight::Int8(w) => &w.panels,
        }
    }

    pub fn out_dim(&self) -> usize {
        self.panels().n
    }

    /// Several weights over the same input as one, their output channels concatenated
    /// (the stored values are kept exactly: no rounding twice).
    pub fn stack(parts: &[&PackedWeight]) -> candle_core::Result<Self> {
        let stacked = match parts.first() {
            Some(PackedWeight::F32(_)) => all_of(parts, |p| match p {
                PackedWeight::F32(w) => Some(w),
                _ => None,
            })
            .map(|w| float::F32Weight::stack(&w).map(PackedWeight::F32)),
            Some(PackedWeight::Bf16(_)) => all_of(parts, |p| match p {
                PackedWeight::Bf16(w) => Some(w),
                _ => None,
            })
            .map(|w| bf16::Bf16Weight::stack(&w).map(PackedWeight::Bf16)),
            Some(PackedWeight::Int8(_)) => all_of(parts, |p| match p {
                PackedWeight::Int8(w) => Some(w),
                _ => None,
            })
            .map(|w| int8::Int8Weight::stack(&w).map(PackedWeight::Int8)),
            None => None,
        };
        stacked.unwrap_or_else(|| candle_core::bail!("cannot stack weights of different formats"))
    }

    /// `x Wᵀ` for `x` of any rank with `k` as its last dimension.
    pub fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("a product needs at least a vector")
        };
        let (expected_k, n) = (self.panels().k, self.panels().n);
        if k != expected_k {
            candle_core::bail!("input of width {k} for a weight of width {expected_k}")
        }
        let m: usize = lead.iter().product();
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let (storage, layout) = x.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            candle_core::bail!("packed weights run on the CPU only")
        };
        let values = super::kernels::f32_elements(cpu, layout)?;
        let out = match self {
            PackedWeight::F32(w) => w.matmul(values, m),
            PackedWeight::Bf16(w) => w.matmul(values, m),
            PackedWeight::Int8(w) => w.matmul(values, m),
        };
        drop(storage);
        let mut shape = lead.to_vec();
        shape.push(n);
        Tensor::from_vec(out, shape, x.device())
    }
}

/// Output channels in panels of [`PANEL`], each panel `[groups][PANEL]` of `u32`s that
/// hold `per_group` consecutive input values of one channel. Channels past `n` and
/// values past `k` are zero.
pub struct Panels {
    pub n: usize,
    pub k: usize,
    /// Groups per channel: `k / per_group`, rounded up.
    pub groups: usize,
    pub data: Vec<u32>,
}

impl Panels {
    /// Packs `codes(channel, group)`, the `u32` of each channel's group.
    fn build(n: usize, k: usize, groups: usize, codes: impl Fn(usize, usize) -> u32) -> Self {
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0u32; panels * groups * PANEL];
        for (p, panel) in data.chunks_exact_mut(groups * PANEL).enumerate() {
            for (g, lanes) in panel.chunks_exact_mut(PANEL).enumerate() {
                for (c, lane) in lanes.iter_mut().enumerate() {
                    let channel = p * PANEL + c;
                    if channel < n {
                        *lane = codes(channel, g);
                    }
                }
            }
        }
        Panels { n, k, groups, data }
    }

    fn panel(&self, p: usize) -> &[u32] {
        &self.data[p * self.groups * PANEL..(p + 1) * self.groups * PANEL]
    }

    /// The `u32` of `channel`'s group `g`.
    fn code(&self, channel: usize, g: usize) -> u32 {
        let (p, c) = (channel / PANEL, channel % PANEL);
        self.data[(p * self.groups + g) * PANEL + c]
    }

    /// Stacks panel sets over the same input, channels in order.
    fn stack(parts: &[&Panels]) -> candle_core::Result<Self> {
        let Some(first) = parts.first() else {
            candle_core::bail!("nothing to stack")
        };
        if parts
            .iter()
            .any(|p| p.k != first.k || p.groups != first.groups)
        {
            candle_core::bail!("stacked weights must share their input width")
        }
        let owners: Vec<(usize, usize)> = parts
            .iter()
            .enumerate()
            .flat_map(|(i, p)| (0..p.n).map(move |c| (i, c)))
            .collect();
        Ok(Panels::build(
            owners.len(),
            first.k,
            first.groups,
            |channel, g| {
                let (part, c) = owners[channel];
                parts[part].code(c, g)
            },
        ))
    }
}

/// `m` rows of `groups` packed activation values each, row-major, that `pack(first_row,
/// block)` writes a block of up to [`MR`] rows at a time (`block` is `rows × groups`):
/// spread over the rayon pool for large inputs, and never zero-filled first.
pub(crate) fn pack_rows(
    m: usize,
    groups: usize,
    pack: impl Fn(usize, &mut [u32]) + Sync,
) -> Vec<u32> {
    let mut out = Vec::with_capacity(m * groups);
    if groups == 0 {
        return out;
    }
    let rows_per_task = crate::layers::kernels::rows_per_task(groups).div_ceil(MR) * MR;
    let run = |first_task_row: usize, target: &mut [std::mem::MaybeUninit<u32>]| {
        for (b, block) in target.chunks_mut(MR * groups).enumerate() {
            // SAFETY: `u32` has no invalid bit patterns and no drop; `pack` writes every
            // value of the block before anything reads it (checked by the tests).
            let block: &mut [u32] = unsafe { &mut *(block as *mut [_] as *mut [u32]) };
            pack(first_task_row + b * MR, block);
        }
    };
    let spare = &mut out.spare_capacity_mut()[..m * groups];
    if m <= rows_per_task || rayon::current_num_threads() == 1 {
        run(0, spare);
    } else {
        spare
            .par_chunks_mut(rows_per_task * groups)
            .enumerate()
            .for_each(|(task, target)| run(task * rows_per_task, target));
    }
    // SAFETY: the blocks cover all `m * groups` values, each written by `pack`.
    unsafe { out.set_len(m * groups) };
    out
}

/// Runs `tile(first_row, rows, panel)` for every block of up to [`MR`] rows and every
/// panel of an `m × n` product and returns the `[rows][PANEL]` values it gives as one
/// `m × n` row-major matrix (written once each, never zero-filled first). Large products are split over the rayon pool into blocks of
/// rows × runs of panels; every output value is computed by one call whatever the
/// split, so the result does not depend on the thread count.
pub(crate) fn for_each_tile(
    m: usize,
    n: usize,
    k: usize,
    tile: impl Fn(usize, usize, usize) -> [[f32; PANEL]; MR] + Sync,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * n);
    let panels = n.div_ceil(PANEL);
    let row_blocks = m.div_ceil(MR);
    let writer = OutputRows {
        ptr: out.spare_capacity_mut().as_mut_ptr().cast::<f32>(),
    };
    let threads = rayon::current_num_threads();
    if threads == 1 || m * n * k < PARALLEL_MIN_MACS {
        // Row chunks outermost: a chunk's activations stay in L2 across all panels.
        for first in (0..row_blocks).step_by(BLOCKS_PER_TASK) {
            let blocks = first..(first + BLOCKS_PER_TASK).min(row_blocks);
            run_tiles(&writer, m, n, blocks, 0..panels, &tile);
        }
    } else {
        run_tiles_in_parallel(&writer, m, n, row_blocks, panels, threads, &tile);
    }
    // SAFETY: the row blocks and panels cover the `m × n` matrix, each element written
    // once above (a panic in a tile leaves the length at 0).
    unsafe { out.set_len(m * n) };
    out
}

fn run_tiles_in_parallel(
    writer: &OutputRows,
    m: usize,
    n: usize,
    row_blocks: usize,
    panels: usize,
    threads: usize,
    tile: &(impl Fn(usize, usize, usize) -> [[f32; PANEL]; MR] + Sync),
) {
    // Enough panel runs make at least two tasks per thread.
    let blocks_per_task = BLOCKS_PER_TASK;
    let row_tasks = row_blocks.div_ceil(blocks_per_task);
    let panel_tasks = (2 * threads).div_ceil(row_tasks).clamp(1, panels);
    let panels_per_task = panels.div_ceil(panel_tasks);
    (0..row_tasks * panel_tasks)
        .into_par_iter()
        .for_each(|task| {
            let (rt, pt) = (task / panel_tasks, task % panel_tasks);
            let blocks = rt * blocks_per_task..((rt + 1) * blocks_per_task).min(row_blocks);
            let runs = pt * panels_per_task..((pt + 1) * panels_per_task).min(panels);
            run_tiles(writer, m, n, blocks, runs, tile);
        });
}

/// The output buffer shared by tasks that write disjoint rectangles of it.
pub(crate) struct OutputRows {
    pub(crate) ptr: *mut f32,
}

impl OutputRows {
    /// The element at `offset` (within the buffer's capacity).
    pub(crate) fn at(&self, offset: usize) -> *mut f32 {
        self.ptr.wrapping_add(offset)
    }
}

// SAFETY: tasks write disjoint (row block, panel) rectangles, never the same element.
unsafe impl Sync for OutputRows {}

fn run_tiles(
    out: &OutputRows,
    m: usize,
    n: usize,
    blocks: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    tile: &impl Fn(usize, usize, usize) -> [[f32; PANEL]; MR],
) {
    for p in panels {
        let first_col = p * PANEL;
        let cols = PANEL.min(n - first_col);
        for block in blocks.clone() {
            let first_row = block * MR;
            let rows = MR.min(m - first_row);
            let values = tile(first_row, rows, p);
            for (r, row) in values.iter().take(rows).enumerate() {
                let start = (first_row + r) * n + first_col;
                // SAFETY: `start + cols <= m * n`, the buffer's length, and this task
                // alone writes this row's columns of this panel. A whole panel is a
                // fixed-size copy (inlined, not a library call per row).
                unsafe {
                    if cols == PANEL {
                        out.ptr
                            .add(start)
                            .cast::<[f32; PANEL]>()
                            .write_unaligned(*row);
                    } else {
                        std::ptr::copy_nonoverlapping(row.as_ptr(), out.ptr.add(start), cols);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacking_panels_keeps_every_code() {
        let a = Panels::build(5, 8, 2, |c, g| (c * 10 + g) as u32);
        let b = Panels::build(40, 8, 2, |c, g| (1000 + c * 10 + g) as u32);
        let both = Panels::stack(&[&a, &b]).unwrap();
        assert_eq!(both.n, 45);
        for c in 0..45 {
            for g in 0..2 {
                let want = if c < 5 {
                    a.code(c, g)
                } else {
                    b.code(c - 5, g)
                };
                assert_eq!(both.code(c, g), want);
            }
        }
    }

    /// Every row lands in its place, serially and split over two threads.
    #[test]
    fn packing_places_every_row() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (m, groups) in [(1, 1), (7, 3), (9, 192), (200, 5), (1000, 192)] {
            let pack = |first: usize, block: &mut [u32]| {
                for (i, v) in block.iter_mut().enumerate() {
                    *v = (first * groups + i) as u32;
                }
            };
            for got in [
                pack_rows(m, groups, pack),
                pool.install(|| pack_rows(m, groups, pack)),
            ] {
                let want: Vec<u32> = (0..(m * groups) as u32).collect();
                assert_eq!(got, want, "{m}x{groups}");
            }
        }
    }

    #[test]
    fn tiles_cover_the_output_once() {
        for (m, n) in [(1, 1), (9, 33), (70, 65), (17, 200)] {
            let out = for_each_tile(m, n, 1 << 20, |row, rows, p| {
                let mut t = [[0f32; PANEL]; MR];
                for (r, line) in t.iter_mut().take(rows).enumerate() {
                    for (c, v) in line.iter_mut().enumerate() {
                        *v = ((row + r) * 1000 + p * PANEL + c) as f32;
                    }
                }
                t
            });
            for r in 0..m {
                for c in 0..n {
                    assert_eq!(out[r * n + c], (r * 1000 + c) as f32);
                }
            }
        }
    }
}
