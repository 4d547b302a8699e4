//! Gemma decoder as PaliGemma runs it: the hidden states of a whole prefix, with
//! bidirectional attention over every non-padding token (PaliGemma's prefix-LM
//! attention; ColPali marks every token as prefix), RoPE positions starting at 1.
//!
//! Paper: Gemma Team, "Gemma: Open Models Based on Gemini Research and Technology" (2024);
//! Beyer et al., "PaliGemma: A versatile 3B VLM for transfer" (2024).
//! Reference: transformers `models/gemma/modeling_gemma.py` and
//! `models/paligemma/modeling_paligemma.py`.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, Embedding, VarBuilder};

use crate::layers::matmul::matmul;
use crate::layers::Linear;
use serde::Deserialize;

use crate::error::{Result, TesseraError};
use crate::models::siglip::Activation;

/// `text_config` of a PaliGemma config (`gemma`); absent keys take transformers'
/// `GemmaConfig` defaults, as real configs list only the others.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "default_hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "default_intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "default_num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_num_key_value_heads")]
    pub num_key_value_heads: usize,
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
    /// The MLP activation. transformers' Gemma ignores `hidden_act` and falls back
    /// to the tanh GELU when this is absent, so only this key is read.
    pub hidden_activation: Option<String>,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub attention_bias: bool,
}

fn default_vocab_size() -> usize {
    256_000
}
fn default_hidden_size() -> usize {
    3072
}
fn default_intermediate_size() -> usize {
    24_576
}
fn default_num_hidden_layers() -> usize {
    28
}
fn default_num_attention_heads() -> usize {
    16
}
fn default_num_key_value_heads() -> usize {
    16
}
fn default_head_dim() -> usize {
    256
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_max_position_embeddings() -> usize {
    8192
}

impl Config {
    fn activation(&self) -> Result<Activation> {
        Activation::parse(
            self.hidden_activation
                .as_deref()
                .unwrap_or("gelu_pytorch_tanh"),
        )
    }
}

/// Gemma's RMSNorm: `x / sqrt(mean(x²) + eps) · (1 + w)`, computed in float32.
struct RmsNorm {
    scale: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        let weight = vb.get(size, "weight")?.to_dtype(DType::F32)?;
        Ok(RmsNorm {
            scale: (weight + 1.0)?,
            eps,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        let xs = xs.to_dtype(DType::F32)?;
        let mean_sq = xs.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = xs.broadcast_div(&(mean_sq + self.eps)?.sqrt()?)?;
        Ok(normed.broadcast_mul(&self.scale)?.to_dtype(dtype)?)
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(TesseraError::Config(format!(
                "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
            )));
        }
        let lin = |i: usize, o: usize, name: &str| -> candle_core::Result<Linear> {
            if cfg.attention_bias {
                Linear::load(vb.pp(name), i, o, true)
            } else {
                Linear::load(vb.pp(name), i, o, false)
            }
        };
        Ok(Attention {
            q_proj: lin(h, heads * d, "q_proj")?,
            k_proj: lin(h, kv_heads * d, "k_proj")?,
            v_proj: lin(h, kv_heads * d, "v_proj")?,
            o_proj: lin(heads * d, h, "o_proj")?,
            heads,
            kv_heads,
            head_dim: d,
        })
    }

    fn forward(&self, xs: &Tensor, rope: &Rope, key_mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, l, _) = xs.dims3()?;
        let d = self.head_dim;
        let split = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
            t.reshape((b, l, n, d))?.transpose(1, 2)?.contiguous()
        };
        let q = rope.apply(&split(self.q_proj.forward(xs)?, self.heads)?)?;
        let k = rope.apply(&split(self.k_proj.forward(xs)?, self.kv_heads)?)?;
        let v = split(self.v_proj.forward(xs)?, self.kv_heads)?;
        // Grouped-query attention without copying K/V: the heads sharing a KV head are
        // consecutive, so they stack into one `(groups * L, d)` block per KV head.
        let groups = self.heads / self.kv_heads;
        let q = q.reshape((b, self.kv_heads, groups * l, d))?;
        let scale = 1.0 / (d as f64).sqrt();
        let mut scores = (matmul(&q, &k.t()?)? * scale)?.to_dtype(DType::F32)?;
        if let Some(mask) = key_mask {
            scores = scores.broadcast_add(mask)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
        let out = matmul(&probs, &v)?
            .reshape((b, self.heads, l, d))?
            .transpose(1, 2)?
            .reshape((b, l, self.heads * d))?;
        Ok(self.o_proj.forward(&out)?)
    }
}

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl Mlp {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Mlp {
            gate_proj: Linear::load(vb.pp("gate_proj"), h, i, false)?,
            up_proj: Linear::load(vb.pp("up_proj"), h, i, false)?,
            down_proj: Linear::load(vb.pp("down_proj"), i, h, false)?,
            act: cfg.activation()?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gate = self.act.apply(&self.gate_proj.forward(xs)?)?;
        Ok(self
            .down_proj
            .forward(&(gate * self.up_proj.forward(xs)?)?)?)
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(DecoderLayer {
            input_layernorm: RmsNorm::load(vb.pp("input_layernorm"), h, eps)?,
            self_attn: Attention::load(vb.pp("self_attn"), cfg)?,
            post_attention_layernorm: RmsNorm::load(vb.pp("post_attention_layernorm"), h, eps)?,
            mlp: Mlp::load(vb.pp("mlp"), cfg)?,
        })
    }

    fn forward(&self, xs: &Tensor, rope: &Rope, key_mask: Option<&Tensor>) -> Result<Tensor> {
        let attended =
            self.self_attn
                .forward(&self.input_layernorm.forward(xs)?, rope, key_mask)?;
        let xs = (xs + attended)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&xs)?)?;
        Ok((xs + mlp)?)
    }
}

/// Rotate-half RoPE tables for positions `1..=L`.
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(cfg: &Config, len: usize, dtype: DType, device: &Device) -> Result<Self> {
        let d = cfg.head_dim;
        // float32 like transformers: inv_freq = 1 / theta^(2i/d), angles pos * inv_freq.
        let inv_freq: Vec<f32> = (0..d / 2)
            .map(|i| 1.0 / (cfg.rope_theta as f32).powf((2 * i) as f32 / d as f32))
            .collect();
        let angles: Vec<f32> = (1..=len)
            .flat_map(|pos| inv_freq.iter().map(move |f| pos as f32 * f))
            .collect();
        let angles = Tensor::from_vec(angles, (len, d / 2), device)?;
        Ok(Rope {
            cos: angles.cos()?.to_dtype(dtype)?,
            sin: angles.sin()?.to_dtype(dtype)?,
        })
    }

    fn apply(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::rotary_emb::rope(xs, &self.cos, &self.sin)
    }
}

/// `GemmaModel`: token embeddings, decoder layers, final norm. Load it at the
/// `language_model.model` prefix (the tied `lm_head` is not needed).
pub struct Model {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// `sqrt(hidden)` in the weights' dtype, as Gemma scales its embeddings.
    normalizer: Tensor,
    config: Config,
}

impl Model {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let embed_tokens = embedding(cfg.vocab_size, cfg.hidden_size, vb.pp("embed_tokens"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(vb.pp("layers").pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(vb.pp("norm"), cfg.hidden_size, cfg.rms_norm_eps)?;
        let normalizer =
            Tensor::new((cfg.hidden_size as f32).sqrt(), vb.device())?.to_dtype(vb.dtype())?;
        Ok(Model {
            embed_tokens,
            layers,
            norm,
            normalizer,
            config: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Scaled token embeddings `(batch, len) -> (batch, len, hidden)`.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self
            .embed_tokens
            .forward(ids)?
            .broadcast_mul(&self.normalizer)?)
    }

    /// Final hidden states of input embeddings `(batch, len, hidden)`, every token seeing
    /// every other. `lengths[i]` real tokens lead row `i`; the rest is padding that no
    /// token attends to (its own output rows are meaningless).
    pub fn forward_embeds(&self, embeds: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (b, l, _) = embeds.dims3()?;
        let device = embeds.device();
        let rope = Rope::new(&self.config, l, embeds.dtype(), device)?;
        let key_mask = if lengths.iter().any(|&n| n < l) {
            let mask: Vec<f32> = lengths
                .iter()
                .flat_map(|&n| (0..l).map(move |j| if j < n { 0.0 } else { f32::NEG_INFINITY }))
                .collect();
            Some(Tensor::from_vec(mask, (b, 1, 1, l), device)?)
        } else {
            None
        };
        let mut xs = embeds.clone();
        for layer in &self.layers {
            xs = layer.forward(&xs, &rope, key_mask.as_ref())?;
        }
        self.norm.forward(&xs)
    }
}
