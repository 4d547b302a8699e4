//! Pooling of packed token states into one vector per text.

use candle_core::Tensor;

use crate::error::Result;
use crate::packing::Span;
use crate::registry::PoolingKind;

/// Pools `hidden [total_tokens, dim]` into `[texts, dim]`, one row per span.
pub fn pool(hidden: &Tensor, spans: &[Span], kind: PoolingKind) -> Result<Tensor> {
    let device = hidden.device();
    let pooled = match kind {
        PoolingKind::Cls | PoolingKind::Last => {
            let rows: Vec<u32> = spans
                .iter()
                .map(|s| match kind {
                    PoolingKind::Cls => s.start as u32,
                    _ => (s.start + s.len.saturating_sub(1)) as u32,
                })
                .collect();
            let index = Tensor::from_vec(rows, spans.len(), device)?;
            hidden.index_select(&index, 0)?
        }
        PoolingKind::Mean => {
            // A [texts, tokens] averaging matrix turns the segment means into one matmul.
            let total = hidden.dim(0)?;
            let mut weights = vec![0f32; spans.len() * total];
            for (row, span) in spans.iter().enumerate() {
                let share = 1.0 / span.len.max(1) as f32;
                weights[row * total + span.start..row * total + span.start + span.len].fill(share);
            }
            let averaging = Tensor::from_vec(weights, (spans.len(), total), device)?
                .to_dtype(hidden.dtype())?;
            crate::layers::matmul::matmul(&averaging, hidden)?
        }
    };
    Ok(pooled)
}
