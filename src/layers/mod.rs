//! What every encoder family is built from: linear layers with fused bias and
//! activation, residual + norm, rotary positions and packed attention. Each layer runs
//! the fused f32 CPU kernels where it can (CPU, f32, contiguous) and Candle's ops
//! everywhere else (GPU, f16 / bf16, f64).

pub mod attention;
pub mod kernels;
pub mod matmul;
pub mod packed;
pub mod rotary;

use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::error::{Result, TesseraError};

pub use attention::{packed_attention, AttentionShape, KeyMask};
pub use rotary::{Rotary, RotaryTable};

/// Whether a tensor can take the fused CPU kernels.
pub(crate) fn fused(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous()
}

fn f32_vec(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()
}

/// A deterministic tensor of values in [-0.5, 0.5) for unit tests (an LCG, no RNG crate).
#[cfg(test)]
pub(crate) fn test_tensor(shape: &[usize], seed: u64) -> Tensor {
    let count: usize = shape.iter().product();
    let mut state = seed;
    let data: Vec<f32> = (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    Tensor::from_vec(data, shape, &candle_core::Device::Cpu).expect("a CPU tensor of its own size")
}

/// A pointwise activation, by the names `config.json` files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Activation {
    /// The exact GELU, `x Φ(x)` (Hugging Face's `gelu`).
    GeluErf,
    /// GELU's tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// `x σ(x)` (`silu`, `swish`; the activation inside SwiGLU).
    Silu,
    /// `max(x, 0)` (T5's and Chronos-Bolt's feed-forward).
    Relu,
}

impl TryFrom<String> for Activation {
    type Error = String;

    fn try_from(name: String) -> std::result::Result<Self, String> {
        Activation::parse(&name)
    }
}

impl Activation {
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        match name {
            "gelu" | "gelu_python" => Ok(Activation::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "gelu_accurate" => {
                Ok(Activation::GeluTanh)
            }
            "silu" | "swish" | "swiglu" => Ok(Activation::Silu),
            "relu" => Ok(Activation::Relu),
            other => Err(format!(
                "activation '{other}' is not supported (gelu, gelu_new, gelu_pytorch_tanh, silu, \
                 swiglu, relu)"
            )),
        }
    }

    fn forward(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::GeluErf => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
            Activation::Silu => x.silu(),
            Activation::Relu => x.relu(),
        }
    }
}

/// `y = x W^T + b`, weight stored `[out, in]` as in PyTorch. On the CPU the weight
/// is packed at load (f32, or bf16 / int8 per [`packed::LoadingFormat`]); other devices and
/// dtypes keep the tensor for Candle. The bias stays f32.
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    /// The bias as f32, for the fused kernels.
    bias_f32: Option<Vec<f32>>,
}

enum Weight {
    /// On a GPU, or in f16 / bf16 / f64 tensors: Candle multiplies.
    Full(Tensor),
    /// A CPU weight in panels.
    Packed(packed::PackedWeight),
}

impl Linear {
    /// A layer over `weight`, packed in the format of the load in progress.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> candle_core::Result<Self> {
        Self::with_format(weight, bias, packed::LoadingFormat::current())
    }

    fn with_format(
        weight: Tensor,
        bias: Option<Tensor>,
        format: packed::WeightFormat,
    ) -> candle_core::Result<Self> {
        let bias_f32 = bias.as_ref().map(f32_vec).transpose()?;
        let weight = match packed::PackedWeight::pack(&weight, format)? {
            Some(packed) => Weight::Packed(packed),
            None => Weight::Full(weight),
        };
        Ok(Linear {
            weight,
            bias,
            bias_f32,
        })
    }

    /// `weight` `[out, in]` and, when `bias`, `bias` `[out]` under `vb`.
    pub fn load(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> candle_core::Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Linear::new(weight, bias)
    }

    /// Several linear layers over the same input stacked into one (a single larger
    /// matmul beats several small ones).
    pub fn stack(parts: &[Linear]) -> candle_core::Result<Self> {
        let bias = if parts.iter().all(|p| p.bias.is_some()) {
            let biases: Vec<&Tensor> = parts.iter().filter_map(|p| p.bias.as_ref()).collect();
            Some(Tensor::cat(&biases, 0)?)
        } else if parts.iter().all(|p| p.bias.is_none()) {
            None
        } else {
            candle_core::bail!("stacked linear layers must all have a bias or none")
        };
        let full: Vec<&Tensor> = parts
            .iter()
            .filter_map(|p| match &p.weight {
                Weight::Full(w) => Some(w),
                Weight::Packed(_) => None,
            })
            .collect();
        if full.len() == parts.len() {
            return Linear::with_format(Tensor::cat(&full, 0)?, bias, packed::WeightFormat::F32);
        }
        let packed: Vec<&packed::PackedWeight> = parts
            .iter()
            .filter_map(|p| match &p.weight {
                Weight::Packed(w) => Some(w),
                Weight::Full(_) => None,
            })
            .collect();
        if packed.len() != parts.len() {
            candle_core::bail!("cannot stack packed and full-precision linear layers")
        }
        Ok(Linear {
            weight: Weight::Packed(packed::PackedWeight::stack(&packed)?),
            bias_f32: bias.as_ref().map(f32_vec).transpose()?,
            bias,
        })
    }

    pub fn out_dim(&self) -> usize {
        match &self.weight {
            Weight::Full(w) => w.dims().first().copied().unwrap_or(0),
            Weight::Packed(w) => w.out_dim(),
        }
    }

    /// `x W^T` without the bias (for a bias fused into the next step).
    pub fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.weight {
            Weight::Full(w) => matmul::matmul(x, &w.t()?),
            Weight::Packed(w) => w.matmul(x),
        }
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.matmul(x)?;
        match (&self.bias, &self.bias_f32) {
            (None, _) => Ok(y),
            (Some(_), Some(bias)) if fused(&y) => {
                y.inplace_op1(&kernels::BiasAdd(bias))?;
                Ok(y)
            }
            (Some(bias), _) => y.broadcast_add(bias),
        }
    }

    /// `act(x W^T + b)`, bias and activation fused into one pass on the CPU.
    pub fn forward_activated(&self, x: &Tensor, act: Activation) -> candle_core::Result<Tensor> {
        let y = self.matmul(x)?;
        if fused(&y) {
            y.inplace_op1(&kernels::BiasActivation {
                bias: self.bias_f32.as_deref(),
                width: self.out_dim(),
                act,
            })?;
            return Ok(y);
        }
        let y = match &self.bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        act.forward(&y)
    }
}

/// A gated linear unit of `[rows, 2 * width]`: `act(a) * g` with `a` the first half of
/// each row when `activated_first` (ModernBERT, Qwen3, Gemma's `gate | up` stacking),
/// else the second (GTE's `up | gate`).
pub fn gated(x: &Tensor, act: Activation, activated_first: bool) -> candle_core::Result<Tensor> {
    let (rows, double) = x.dims2()?;
    let width = double / 2;
    if fused(x) {
        let (storage, layout) = x.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            candle_core::bail!("a CPU tensor without CPU storage")
        };
        let out = kernels::gated(
            kernels::f32_elements(cpu, layout)?,
            width,
            act,
            activated_first,
        );
        drop(storage);
        return Tensor::from_vec(out, (rows, width), x.device());
    }
    let (first, second) = (x.narrow(1, 0, width)?, x.narrow(1, width, width)?);
    let (a, g) = if activated_first {
        (first, second)
    } else {
        (second, first)
    };
    act.forward(&a)?.mul(&g)
}

/// LayerNorm (with or without a shift) or RMSNorm over the last axis.
pub struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
    rms: bool,
    gamma: Vec<f32>,
    beta: Option<Vec<f32>>,
}

impl Norm {
    fn new(weight: Tensor, bias: Option<Tensor>, eps: f64, rms: bool) -> candle_core::Result<Self> {
        Ok(Norm {
            gamma: f32_vec(&weight)?,
            beta: bias.as_ref().map(f32_vec).transpose()?,
            weight,
            bias,
            eps,
            rms,
        })
    }

    /// `weight` (and `bias` when `bias`) of size `size` under `vb`.
    pub fn layer_norm(
        vb: VarBuilder,
        size: usize,
        eps: f64,
        bias: bool,
    ) -> candle_core::Result<Self> {
        let weight = vb.get(size, "weight")?;
        let bias = if bias {
            Some(vb.get(size, "bias")?)
        } else {
            None
        };
        Norm::new(weight, bias, eps, false)
    }

    /// RMSNorm scaling by `offset + weight` (Gemma stores `w` and scales by `1 + w`).
    pub fn rms_norm(
        vb: VarBuilder,
        size: usize,
        eps: f64,
        offset: f64,
    ) -> candle_core::Result<Self> {
        let weight = (vb.get(size, "weight")? + offset)?;
        Norm::new(weight, None, eps, true)
    }

    fn weights(&self) -> kernels::NormWeights<'_> {
        kernels::NormWeights {
            rms: self.rms,
            gamma: &self.gamma,
            beta: self.beta.as_deref(),
            eps: self.eps as f32,
        }
    }

    /// `norm(x)` as a new tensor.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if fused(x) {
            let y = x.copy()?;
            y.inplace_op1(&kernels::AddNorm {
                bias: None,
                norm: self.weights(),
            })?;
            return Ok(y);
        }
        self.reference(x)
    }

    /// `norm(x + bias + residual)`, computed in `x`'s memory on the CPU.
    pub fn add_forward(
        &self,
        x: Tensor,
        bias: Option<&Linear>,
        residual: &Tensor,
    ) -> candle_core::Result<Tensor> {
        if fused(&x) && fused(residual) {
            x.inplace_op2(
                residual,
                &kernels::AddNorm {
                    bias: bias.and_then(|b| b.bias_f32.as_deref()),
                    norm: self.weights(),
                },
            )?;
            return Ok(x);
        }
        let x = match bias.and_then(|b| b.bias.as_ref()) {
            Some(b) => x.broadcast_add(b)?,
            None => x,
        };
        self.reference(&x.add(residual)?)
    }

    /// The Candle ops path, in f32 at least (as PyTorch's norms accumulate).
    fn reference(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dtype = x.dtype();
        let work = if matches!(dtype, DType::F16 | DType::BF16) {
            DType::F32
        } else {
            dtype
        };
        let x = x.to_dtype(work)?;
        let centred = if self.rms {
            x
        } else {
            x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?
        };
        let scale = (centred.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?;
        let y = centred
            .broadcast_div(&scale)?
            .broadcast_mul(&self.weight.to_dtype(work)?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(&b.to_dtype(work)?)?,
            None => y,
        };
        y.to_dtype(dtype)
    }

    /// The norm applied to each `size`-wide piece of every row (per-head q / k norms):
    /// `x` is `[rows, pieces * size]`, only columns `from .. from + count * size` change.
    pub fn forward_pieces(
        &self,
        x: Tensor,
        from: usize,
        count: usize,
    ) -> candle_core::Result<Tensor> {
        let size = self.gamma.len();
        let (rows, width) = x.dims2()?;
        if fused(&x) {
            x.inplace_op1(&PieceNorm {
                norm: self.weights(),
                width,
                from,
                count,
            })?;
            return Ok(x);
        }
        let before = x.narrow(1, 0, from)?;
        let pieces = x
            .narrow(1, from, count * size)?
            .reshape((rows * count, size))?;
        let normed = self.reference(&pieces)?.reshape((rows, count * size))?;
        let after = x.narrow(1, from + count * size, width - from - count * size)?;
        Tensor::cat(&[before, normed, after], 1)
    }
}

/// [`Norm::forward_pieces`] in place.
struct PieceNorm<'a> {
    norm: kernels::NormWeights<'a>,
    width: usize,
    from: usize,
    count: usize,
}

impl candle_core::InplaceOp1 for PieceNorm<'_> {
    fn name(&self) -> &'static str {
        "piece-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        kernels::norm_pieces(
            kernels::f32_elements_mut(storage, layout)?,
            self.width,
            self.from,
            self.count,
            self.norm,
        );
        Ok(())
    }
}

/// A token-embedding table `[vocab, hidden]`.
pub struct Embedding {
    table: Tensor,
}

impl Embedding {
    pub fn load(vb: VarBuilder, vocab: usize, hidden: usize) -> candle_core::Result<Self> {
        Ok(Embedding {
            table: vb.get((vocab, hidden), "weight")?,
        })
    }

    pub fn table(&self) -> &Tensor {
        &self.table
    }

    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.table.index_select(ids, 0)
    }
}

/// Checks a config's head split before any tensor is built.
pub fn check_heads(hidden: usize, heads: usize) -> Result<usize> {
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(TesseraError::Config(format!(
            "hidden size {hidden} is not a multiple of the {heads} attention heads"
        )));
    }
    Ok(hidden / heads)
}

/// A post-norm block with rotary attention and a gated feed-forward, as NomicBERT and
/// GTE build theirs: `x = norm(x + out(attn(rope(qkv x))))`, then
/// `x = norm(x + down(glu(up x)))`. The families differ only in names and the gate order.
pub struct PostNormGatedBlock {
    pub qkv: Linear,
    pub out: Linear,
    pub attention_norm: Norm,
    /// The value and gate halves stacked (`activated_first` says which is activated).
    pub up: Linear,
    pub down: Linear,
    pub mlp_norm: Norm,
    pub activation: Activation,
    pub activated_first: bool,
}

impl PostNormGatedBlock {
    pub fn forward(
        &self,
        x: &Tensor,
        spans: &[crate::packing::Span],
        table: &RotaryTable,
        shape: AttentionShape,
    ) -> candle_core::Result<Tensor> {
        let qkv = table.apply(self.qkv.forward(x)?, shape)?;
        let context = packed_attention(&qkv, spans, shape, KeyMask::Bidirectional)?;
        drop(qkv);
        let attended =
            self.attention_norm
                .add_forward(self.out.matmul(&context)?, Some(&self.out), x)?;
        let inner = gated(
            &self.up.forward(&attended)?,
            self.activation,
            self.activated_first,
        )?;
        self.mlp_norm
            .add_forward(self.down.matmul(&inner)?, Some(&self.down), &attended)
    }
}

/// Word embeddings plus the constant token-type-0 row (every input is one segment),
/// then a norm: the embedding layer of the BERT-like families without positions.
pub struct SegmentEmbeddings {
    pub word: Embedding,
    pub token_type_zero: Option<Tensor>,
    pub norm: Norm,
}

impl SegmentEmbeddings {
    /// `word_embeddings`, `token_type_embeddings` (when `type_vocab_size` > 0) under `vb`;
    /// the norm is loaded by the caller, whose key names differ.
    pub fn load(
        vb: VarBuilder,
        vocab: usize,
        hidden: usize,
        type_vocab_size: usize,
        norm: Norm,
    ) -> candle_core::Result<Self> {
        let word = Embedding::load(vb.pp("word_embeddings"), vocab, hidden)?;
        let token_type_zero = if type_vocab_size > 0 {
            let table = Embedding::load(vb.pp("token_type_embeddings"), type_vocab_size, hidden)?;
            Some(table.table().get(0)?)
        } else {
            None
        };
        Ok(SegmentEmbeddings {
            word,
            token_type_zero,
            norm,
        })
    }

    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.word.forward(ids)?;
        let x = match &self.token_type_zero {
            Some(tt) => x.broadcast_add(tt)?,
            None => x,
        };
        self.norm.forward(&x)
    }
}

/// Per-head RMS norms of the query and key heads, then rotary positions (Qwen3, Gemma 3).
pub fn normed_rotary_qkv(
    qkv: Tensor,
    q_norm: &Norm,
    k_norm: &Norm,
    table: &RotaryTable,
    shape: AttentionShape,
) -> candle_core::Result<Tensor> {
    let qkv = q_norm.forward_pieces(qkv, 0, shape.heads)?;
    let qkv = k_norm.forward_pieces(qkv, shape.heads * shape.head_dim, shape.kv_heads)?;
    table.apply(qkv, shape)
}
