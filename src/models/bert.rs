//! BERT encoder (Devlin et al., 2019, <https://arxiv.org/abs/1810.04805>) over packed
//! token sequences.
//!
//! Matches Hugging Face `BertModel` in inference, but takes a batch as one packed row
//! of tokens: the dense layers run on `[total_tokens, hidden]` with no padding, and
//! attention runs per text at its exact length. candle-transformers' `BertModel` needs
//! a padded `[batch, max_len]` input, which is what this file exists to avoid.

use candle_core::{DType, Device, Module, Storage, Tensor};
use candle_nn::{Activation, Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

use super::cpu_kernels;
use crate::error::{Result, TesseraError};

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_activation")]
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

fn default_activation() -> Activation {
    Activation::Gelu
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if let Some(kind) = &self.position_embedding_type {
            if kind != "absolute" {
                return Err(TesseraError::Config(format!(
                    "BERT position_embedding_type '{kind}' is not supported (only 'absolute')"
                )));
            }
        }
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return Err(TesseraError::Config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        Ok(())
    }
}

/// One text inside a packed batch: rows `start .. start + len` of the packed tensor.
/// Only its first `attended` tokens are visible as attention keys (ColBERT query
/// expansion tokens may be excluded); every token still gets an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
    pub attended: usize,
}

/// Token ids of several texts laid end to end, with their spans.
#[derive(Debug, Clone)]
pub struct PackedBatch {
    pub ids: Vec<u32>,
    pub positions: Vec<u32>,
    pub spans: Vec<Span>,
}

impl PackedBatch {
    /// Packs sequences; `attended[i]` limits the keys of sequence `i` (None: all).
    pub fn new(sequences: &[Vec<u32>], attended: Option<&[usize]>) -> Self {
        let total = sequences.iter().map(Vec::len).sum();
        let mut ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        let mut spans = Vec::with_capacity(sequences.len());
        for (i, seq) in sequences.iter().enumerate() {
            let start = ids.len();
            ids.extend_from_slice(seq);
            positions.extend(0..seq.len() as u32);
            let keys = attended.map_or(seq.len(), |a| a[i].min(seq.len()));
            spans.push(Span {
                start,
                len: seq.len(),
                attended: keys,
            });
        }
        PackedBatch {
            ids,
            positions,
            spans,
        }
    }

    pub fn total_tokens(&self) -> usize {
        self.ids.len()
    }

    pub fn max_len(&self) -> usize {
        self.spans.iter().map(|s| s.len).max().unwrap_or(0)
    }

    /// Whether the spans lie end to end over all tokens, in order, each attending
    /// within itself (as [`PackedBatch::new`] builds them).
    fn is_tiled(&self) -> bool {
        let mut next = 0;
        for span in &self.spans {
            if span.start != next || span.attended > span.len {
                return false;
            }
            next += span.len;
        }
        next == self.ids.len()
    }
}

/// Runs `f` on the f32 elements of a contiguous CPU tensor.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("the CPU kernels need a CPU tensor")
    };
    let data = cpu.as_slice::<f32>()?;
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the CPU kernels need a contiguous tensor")
    };
    Ok(f(&data[start..end]))
}

/// A copy of the f32 elements of a CPU tensor.
fn f32_vec(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// `x @ weight^T` (a Linear layer without its bias) for 2-D `x`.
fn project(x: &Tensor, linear: &Linear) -> candle_core::Result<Tensor> {
    x.matmul(&linear.weight().t()?)
}

/// The bias of a linear layer, and the scale and shift of a layer norm, as f32 slices
/// for the CPU kernels.
struct NormParams {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl NormParams {
    fn of(norm: &LayerNorm) -> candle_core::Result<Self> {
        let beta = match norm.bias() {
            Some(b) => f32_vec(b)?,
            None => vec![0.0; norm.weight().elem_count()],
        };
        Ok(NormParams {
            gamma: f32_vec(norm.weight())?,
            beta,
            eps: norm.eps() as f32,
        })
    }

    /// The in-place op `layer_norm(x + bias + residual)`.
    fn after<'a>(&'a self, bias: &'a [f32]) -> cpu_kernels::BiasResidualLayerNorm<'a> {
        cpu_kernels::BiasResidualLayerNorm {
            bias,
            gamma: &self.gamma,
            beta: &self.beta,
            eps: self.eps,
        }
    }
}

fn bias_of(linear: &Linear) -> candle_core::Result<Vec<f32>> {
    match linear.bias() {
        Some(b) => f32_vec(b),
        None => Ok(vec![0.0; linear.weight().dim(0)?]),
    }
}

/// What the CPU kernels of one layer read besides the weight matrices.
struct CpuLayerParams {
    qkv_bias: Vec<f32>,
    attention_bias: Vec<f32>,
    attention_norm: NormParams,
    intermediate_bias: Vec<f32>,
    output_bias: Vec<f32>,
    output_norm: NormParams,
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type_zero: Tensor,
    layer_norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, cfg: &Config) -> candle_core::Result<Self> {
        let word = candle_nn::embedding(cfg.vocab_size, cfg.hidden_size, vb.pp("word_embeddings"))?;
        let position = candle_nn::embedding(
            cfg.max_position_embeddings,
            cfg.hidden_size,
            vb.pp("position_embeddings"),
        )?;
        let token_types = candle_nn::embedding(
            cfg.type_vocab_size,
            cfg.hidden_size,
            vb.pp("token_type_embeddings"),
        )?;
        // Every input here is a single segment, so token type 0 is a constant row.
        let token_type_zero = token_types.embeddings().get(0)?;
        let layer_norm =
            candle_nn::layer_norm(cfg.hidden_size, cfg.layer_norm_eps, vb.pp("LayerNorm"))?;
        Ok(Embeddings {
            word,
            position,
            token_type_zero,
            layer_norm,
        })
    }

    fn forward(&self, ids: &Tensor, positions: &Tensor) -> candle_core::Result<Tensor> {
        let summed = self
            .word
            .forward(ids)?
            .add(&self.position.forward(positions)?)?
            .broadcast_add(&self.token_type_zero)?;
        self.layer_norm.forward(&summed)
    }
}

struct SelfAttention {
    qkv: Linear,
    output: Linear,
    output_norm: LayerNorm,
    heads: usize,
    head_dim: usize,
    scale: f64,
}

impl SelfAttention {
    fn load(vb: VarBuilder, cfg: &Config) -> candle_core::Result<Self> {
        let hidden = cfg.hidden_size;
        let self_vb = vb.pp("self");
        let part = |name: &str| -> candle_core::Result<(Tensor, Tensor)> {
            let p = self_vb.pp(name);
            Ok((p.get((hidden, hidden), "weight")?, p.get(hidden, "bias")?))
        };
        let (wq, bq) = part("query")?;
        let (wk, bk) = part("key")?;
        let (wv, bv) = part("value")?;
        // One fused projection: a single larger matmul beats three small ones.
        let qkv = Linear::new(
            Tensor::cat(&[wq, wk, wv], 0)?,
            Some(Tensor::cat(&[bq, bk, bv], 0)?),
        );
        let out_vb = vb.pp("output");
        let output = candle_nn::linear(hidden, hidden, out_vb.pp("dense"))?;
        let output_norm =
            candle_nn::layer_norm(hidden, cfg.layer_norm_eps, out_vb.pp("LayerNorm"))?;
        let head_dim = hidden / cfg.num_attention_heads;
        Ok(SelfAttention {
            qkv,
            output,
            output_norm,
            heads: cfg.num_attention_heads,
            head_dim,
            scale: 1.0 / (head_dim as f64).sqrt(),
        })
    }

    fn forward(&self, hidden: &Tensor, spans: &[Span]) -> candle_core::Result<Tensor> {
        let qkv = self.qkv.forward(hidden)?;
        let contexts = spans
            .iter()
            .map(|span| self.attend(&qkv, span))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let context = Tensor::cat(&contexts, 0)?;
        let projected = self.output.forward(&context)?;
        self.output_norm.forward(&projected.add(hidden)?)
    }

    /// Scaled dot-product attention of one text at its exact length.
    fn attend(&self, qkv: &Tensor, span: &Span) -> candle_core::Result<Tensor> {
        let (heads, head_dim) = (self.heads, self.head_dim);
        let rows = qkv.narrow(0, span.start, span.len)?;
        let hidden = heads * head_dim;
        let split = |offset: usize, len: usize| -> candle_core::Result<Tensor> {
            rows.narrow(0, 0, len)?
                .narrow(1, offset, hidden)?
                .reshape((len, heads, head_dim))?
                .transpose(0, 1)?
                .contiguous()
        };
        let q = (split(0, span.len)? * self.scale)?;
        let k = split(hidden, span.attended)?;
        let v = split(2 * hidden, span.attended)?;
        let scores = q.matmul(&k.t()?)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        weights
            .matmul(&v)?
            .transpose(0, 1)?
            .reshape((span.len, hidden))
    }
}

struct Layer {
    attention: SelfAttention,
    intermediate: Linear,
    activation: Activation,
    output: Linear,
    output_norm: LayerNorm,
    /// Present for f32 weights on the CPU with the erf GELU: the fused-kernel path.
    cpu: Option<CpuLayerParams>,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &Config) -> candle_core::Result<Self> {
        let mut layer = Layer {
            attention: SelfAttention::load(vb.pp("attention"), cfg)?,
            intermediate: candle_nn::linear(
                cfg.hidden_size,
                cfg.intermediate_size,
                vb.pp("intermediate").pp("dense"),
            )?,
            activation: cfg.hidden_act,
            output: candle_nn::linear(
                cfg.intermediate_size,
                cfg.hidden_size,
                vb.pp("output").pp("dense"),
            )?,
            output_norm: candle_nn::layer_norm(
                cfg.hidden_size,
                cfg.layer_norm_eps,
                vb.pp("output").pp("LayerNorm"),
            )?,
            cpu: None,
        };
        let weight = layer.intermediate.weight();
        if weight.device().is_cpu()
            && weight.dtype() == DType::F32
            && layer.activation == Activation::Gelu
        {
            layer.cpu = Some(CpuLayerParams {
                qkv_bias: bias_of(&layer.attention.qkv)?,
                attention_bias: bias_of(&layer.attention.output)?,
                attention_norm: NormParams::of(&layer.attention.output_norm)?,
                intermediate_bias: bias_of(&layer.intermediate)?,
                output_bias: bias_of(&layer.output)?,
                output_norm: NormParams::of(&layer.output_norm)?,
            });
        }
        Ok(layer)
    }

    fn forward(&self, hidden: &Tensor, spans: &[Span], tiled: bool) -> candle_core::Result<Tensor> {
        if let (Some(params), true) = (&self.cpu, tiled) {
            if hidden.device().is_cpu() && hidden.dtype() == DType::F32 {
                return self.forward_cpu(hidden, spans, params);
            }
        }
        let attended = self.attention.forward(hidden, spans)?;
        let inner = self
            .activation
            .forward(&self.intermediate.forward(&attended)?)?;
        let out = self.output.forward(&inner)?;
        self.output_norm.forward(&out.add(&attended)?)
    }

    /// The same layer with Candle's matmuls and the fused CPU kernels for the rest,
    /// applied in place on the matmul outputs.
    fn forward_cpu(
        &self,
        hidden: &Tensor,
        spans: &[Span],
        p: &CpuLayerParams,
    ) -> candle_core::Result<Tensor> {
        let (tokens, width) = hidden.dims2()?;
        let attention = &self.attention;
        let qkv = project(hidden, &attention.qkv)?;
        let context = with_f32(&qkv, |qkv| {
            cpu_kernels::attention(
                qkv,
                &p.qkv_bias,
                spans,
                attention.heads,
                attention.head_dim,
                attention.scale as f32,
            )
        })?;
        drop(qkv);
        let context = Tensor::from_vec(context, (tokens, width), hidden.device())?;
        let attended = project(&context, &attention.output)?;
        drop(context);
        attended.inplace_op2(hidden, &p.attention_norm.after(&p.attention_bias))?;
        let inner = project(&attended, &self.intermediate)?;
        inner.inplace_op1(&cpu_kernels::BiasGelu(&p.intermediate_bias))?;
        let out = project(&inner, &self.output)?;
        drop(inner);
        out.inplace_op2(&attended, &p.output_norm.after(&p.output_bias))?;
        Ok(out)
    }
}

/// The encoder stack; returns the last hidden state of every packed token.
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    config: Config,
    device: Device,
}

impl BertModel {
    /// Loads from a VarBuilder rooted at the encoder (keys `embeddings.*`, `encoder.*`).
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        cfg.validate()?;
        let device = vb.device().clone();
        let embeddings = Embeddings::load(vb.pp("embeddings"), cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(BertModel {
            embeddings,
            layers,
            config: cfg.clone(),
            device,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.embeddings.token_type_zero.dtype()
    }

    /// Word-embedding matrix `[vocab, hidden]` (the tied MLM decoder of SPLADE).
    pub fn word_embeddings(&self) -> &Tensor {
        self.embeddings.word.embeddings()
    }

    /// Last hidden states `[total_tokens, hidden]` of a packed batch, in the model's dtype.
    pub fn forward(&self, batch: &PackedBatch) -> Result<Tensor> {
        if batch.total_tokens() == 0 {
            return Ok(Tensor::zeros(
                (0, self.config.hidden_size),
                self.dtype(),
                &self.device,
            )?);
        }
        let longest = batch.max_len();
        if longest > self.config.max_position_embeddings {
            return Err(TesseraError::Encoding(format!(
                "a sequence of {longest} tokens exceeds the model's {} position embeddings",
                self.config.max_position_embeddings
            )));
        }
        if let Some(bad) = batch
            .ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(TesseraError::Encoding(format!(
                "token id {bad} is outside the model's vocabulary of {}",
                self.config.vocab_size
            )));
        }
        let tiled = batch.is_tiled();
        let fused = tiled && self.layers.iter().all(|l| l.cpu.is_some());
        if !fused || batch.total_tokens() <= CPU_CHUNK_TOKENS {
            return Ok(self.forward_spans(&batch.ids, &batch.positions, &batch.spans, tiled)?);
        }
        // Whole texts in chunks of about CPU_CHUNK_TOKENS tokens: every token's result is
        // the same, and the activations of a chunk stay in cache and in reused memory.
        let mut outputs = Vec::new();
        let mut first = 0;
        while first < batch.spans.len() {
            let start = batch.spans[first].start;
            let mut last = first + 1;
            while last < batch.spans.len()
                && batch.spans[last].start + batch.spans[last].len - start <= CPU_CHUNK_TOKENS
            {
                last += 1;
            }
            let end = batch.spans[last - 1].start + batch.spans[last - 1].len;
            let spans: Vec<Span> = batch.spans[first..last]
                .iter()
                .map(|s| Span {
                    start: s.start - start,
                    ..*s
                })
                .collect();
            outputs.push(self.forward_spans(
                &batch.ids[start..end],
                &batch.positions[start..end],
                &spans,
                true,
            )?);
            first = last;
        }
        Ok(Tensor::cat(&outputs, 0)?)
    }

    fn forward_spans(
        &self,
        ids: &[u32],
        positions: &[u32],
        spans: &[Span],
        tiled: bool,
    ) -> candle_core::Result<Tensor> {
        let ids = Tensor::from_slice(ids, ids.len(), &self.device)?;
        let positions = Tensor::from_slice(positions, positions.len(), &self.device)?;
        let mut hidden = self.embeddings.forward(&ids, &positions)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden, spans, tiled)?;
        }
        Ok(hidden)
    }
}

/// Tokens per chunk of a packed batch on the fused CPU path (see [`BertModel::forward`]).
/// Measured on all-MiniLM-L6-v2 (2 cores, 32 MiB L3): 2048 beat 512, 1024 and 4096 by
/// 1-5% and one unchunked pass by about 8%.
const CPU_CHUNK_TOKENS: usize = 2048;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A small random BERT: the fused CPU path against the Candle ops path.
    fn model(heads: usize) -> candle_core::Result<BertModel> {
        let (hidden, inner, vocab, positions) = (64, 96, 40, 64);
        let mut shapes: Vec<(String, Vec<usize>)> = vec![
            (
                "embeddings.word_embeddings.weight".into(),
                vec![vocab, hidden],
            ),
            (
                "embeddings.position_embeddings.weight".into(),
                vec![positions, hidden],
            ),
            (
                "embeddings.token_type_embeddings.weight".into(),
                vec![2, hidden],
            ),
            ("embeddings.LayerNorm.weight".into(), vec![hidden]),
            ("embeddings.LayerNorm.bias".into(), vec![hidden]),
        ];
        for i in 0..2 {
            let p = format!("encoder.layer.{i}");
            for part in ["query", "key", "value"] {
                shapes.push((
                    format!("{p}.attention.self.{part}.weight"),
                    vec![hidden, hidden],
                ));
                shapes.push((format!("{p}.attention.self.{part}.bias"), vec![hidden]));
            }
            for (name, shape) in [
                ("attention.output.dense.weight", vec![hidden, hidden]),
                ("attention.output.dense.bias", vec![hidden]),
                ("attention.output.LayerNorm.weight", vec![hidden]),
                ("attention.output.LayerNorm.bias", vec![hidden]),
                ("intermediate.dense.weight", vec![inner, hidden]),
                ("intermediate.dense.bias", vec![inner]),
                ("output.dense.weight", vec![hidden, inner]),
                ("output.dense.bias", vec![hidden]),
                ("output.LayerNorm.weight", vec![hidden]),
                ("output.LayerNorm.bias", vec![hidden]),
            ] {
                shapes.push((format!("{p}.{name}"), shape));
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut tensors = HashMap::new();
        for (name, shape) in shapes {
            let count = shape.iter().product();
            let values: Vec<f32> = (0..count)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.6
                })
                .collect();
            tensors.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
        }
        let config = Config {
            vocab_size: vocab,
            hidden_size: hidden,
            num_hidden_layers: 2,
            num_attention_heads: heads,
            intermediate_size: inner,
            hidden_act: Activation::Gelu,
            max_position_embeddings: positions,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            position_embedding_type: None,
            pad_token_id: None,
        };
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        BertModel::load(vb, &config).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }

    #[test]
    fn fused_cpu_path_matches_candle_ops() -> candle_core::Result<()> {
        let sequences: Vec<Vec<u32>> = [1usize, 5, 17, 32, 3]
            .iter()
            .enumerate()
            .map(|(t, &len)| (0..len).map(|i| ((i * 7 + t * 3) % 40) as u32).collect())
            .collect();
        let attended = [1, 5, 12, 32, 2];
        // Head sizes 16 (the blocked kernel) and 8 (the plain one).
        for heads in [4, 8] {
            let model = model(heads)?;
            assert!(model.layers.iter().all(|l| l.cpu.is_some()));
            // More tokens than CPU_CHUNK_TOKENS, so the batch runs in chunks.
            let many: Vec<Vec<u32>> = (0..150)
                .map(|t| {
                    (0..t * 7 % 60 + 1)
                        .map(|i| ((i * 5 + t) % 40) as u32)
                        .collect()
                })
                .collect();
            let cases = [
                PackedBatch::new(&sequences, None),
                PackedBatch::new(&sequences, Some(&attended)),
                PackedBatch::new(&many, None),
            ];
            assert!(cases[2].total_tokens() > CPU_CHUNK_TOKENS);
            for (case, batch) in cases.iter().enumerate() {
                let fused = model
                    .forward(batch)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let ids = Tensor::from_slice(&batch.ids, batch.ids.len(), &Device::Cpu)?;
                let positions =
                    Tensor::from_slice(&batch.positions, batch.positions.len(), &Device::Cpu)?;
                let mut reference = model.embeddings.forward(&ids, &positions)?;
                for layer in &model.layers {
                    reference = layer.forward(&reference, &batch.spans, false)?;
                }
                let diff = (fused - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(
                    diff <= 1e-5,
                    "{heads} heads, case {case}: max difference {diff}"
                );
            }
        }
        Ok(())
    }
}
