//! Gemma 3 (Gemma Team, 2025, <https://arxiv.org/abs/2503.19786>) with bidirectional
//! attention, the encoder of EmbeddingGemma: RMSNorms that scale by `1 + w` around both
//! sub-blocks, embeddings scaled by `sqrt(hidden)`, grouped-query attention with
//! per-head query / key norms, rotary positions with one base for sliding layers and
//! another for full ones, and a GeGLU (tanh) feed-forward.
//!
//! `models/gemma.rs` is the causal Gemma 1 inside PaliGemma; this is a different block.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::TextModel;
use crate::error::{Result, TesseraError};
use crate::layers::{
    gated, normed_rotary_qkv, packed_attention, Activation, AttentionShape, Embedding, KeyMask,
    Linear, Norm, Rotary,
};
use crate::packing::PackedBatch;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    #[serde(default = "default_activation")]
    pub hidden_activation: Activation,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    pub query_pre_attn_scalar: f64,
    #[serde(default)]
    pub sliding_window: Option<usize>,
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    #[serde(default = "default_pattern")]
    pub sliding_window_pattern: usize,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_local_theta")]
    pub rope_local_base_freq: f64,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub use_bidirectional_attention: bool,
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub attention_bias: bool,
    pub max_position_embeddings: usize,
}

fn default_activation() -> Activation {
    Activation::GeluTanh
}
fn default_eps() -> f64 {
    1e-6
}
fn default_pattern() -> usize {
    6
}
fn default_theta() -> f64 {
    1_000_000.0
}
fn default_local_theta() -> f64 {
    10_000.0
}

impl Config {
    fn check(&self) -> Result<AttentionShape> {
        let unsupported = |what: &str| {
            Err(TesseraError::Config(format!(
                "Gemma 3 with {what} is not supported"
            )))
        };
        if !self.use_bidirectional_attention {
            return unsupported(
                "causal attention (only the bidirectional encoder of EmbeddingGemma is)",
            );
        }
        if self.attn_logit_softcapping.is_some() {
            return unsupported("attention logit soft-capping");
        }
        if self.rope_scaling.as_ref().is_some_and(|s| !s.is_null()) {
            return unsupported("rope_scaling");
        }
        let (heads, kv_heads) = (self.num_attention_heads, self.num_key_value_heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(TesseraError::Config(format!(
                "{heads} attention heads are not a multiple of the {kv_heads} key / value heads"
            )));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return Err(TesseraError::Config(format!(
                "head_dim {} must be even for rotary positions",
                self.head_dim
            )));
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers {
                return Err(TesseraError::Config(format!(
                    "layer_types lists {} layers for num_hidden_layers {}",
                    types.len(),
                    self.num_hidden_layers
                )));
            }
            if let Some(bad) = types
                .iter()
                .find(|t| *t != "sliding_attention" && *t != "full_attention")
            {
                return Err(TesseraError::Config(format!(
                    "layer type '{bad}' is not supported (sliding_attention, full_attention)"
                )));
            }
        }
        Ok(AttentionShape::new(
            heads,
            kv_heads,
            self.head_dim,
            (1.0 / self.query_pre_attn_scalar.sqrt()) as f32,
        ))
    }

    /// Whether layer `i` attends within the sliding window.
    fn sliding(&self, i: usize) -> bool {
        match &self.layer_types {
            Some(types) => types[i] == "sliding_attention",
            None => !(i + 1).is_multiple_of(self.sliding_window_pattern.max(1)),
        }
    }
}

struct Layer {
    input_norm: Norm,
    qkv: Linear,
    q_norm: Norm,
    k_norm: Norm,
    o_proj: Linear,
    post_attention_norm: Norm,
    pre_feedforward_norm: Norm,
    gate_up: Linear,
    down: Linear,
    post_feedforward_norm: Norm,
    sliding: bool,
}

impl Layer {
    fn load(
        vb: VarBuilder,
        cfg: &Config,
        shape: AttentionShape,
        index: usize,
    ) -> candle_core::Result<Self> {
        let (h, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.rms_norm_eps);
        let d = shape.head_dim;
        let attn = vb.pp("self_attn");
        let mlp = vb.pp("mlp");
        let norm = |name: &str, size: usize| Norm::rms_norm(vb.pp(name), size, eps, 1.0);
        let bias = cfg.attention_bias;
        Ok(Layer {
            input_norm: norm("input_layernorm", h)?,
            qkv: Linear::stack(&[
                Linear::load(attn.pp("q_proj"), h, shape.heads * d, bias)?,
                Linear::load(attn.pp("k_proj"), h, shape.kv_heads * d, bias)?,
                Linear::load(attn.pp("v_proj"), h, shape.kv_heads * d, bias)?,
            ])?,
            q_norm: Norm::rms_norm(attn.pp("q_norm"), d, eps, 1.0)?,
            k_norm: Norm::rms_norm(attn.pp("k_norm"), d, eps, 1.0)?,
            o_proj: Linear::load(attn.pp("o_proj"), shape.heads * d, h, bias)?,
            post_attention_norm: norm("post_attention_layernorm", h)?,
            pre_feedforward_norm: norm("pre_feedforward_layernorm", h)?,
            gate_up: Linear::stack(&[
                Linear::load(mlp.pp("gate_proj"), h, i, false)?,
                Linear::load(mlp.pp("up_proj"), h, i, false)?,
            ])?,
            down: Linear::load(mlp.pp("down_proj"), i, h, false)?,
            post_feedforward_norm: norm("post_feedforward_layernorm", h)?,
            sliding: cfg.sliding(index),
        })
    }
}

pub struct Gemma3Model {
    embeddings: Embedding,
    layers: Vec<Layer>,
    norm: Norm,
    global_rotary: Rotary,
    local_rotary: Rotary,
    shape: AttentionShape,
    config: Config,
}

impl Gemma3Model {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let shape = cfg.check()?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("layers.{i}")), cfg, shape, i))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Gemma3Model {
            embeddings: Embedding::load(vb.pp("embed_tokens"), cfg.vocab_size, cfg.hidden_size)?,
            layers,
            norm: Norm::rms_norm(vb.pp("norm"), cfg.hidden_size, cfg.rms_norm_eps, 1.0)?,
            global_rotary: Rotary::new(shape.head_dim, cfg.rope_theta),
            local_rotary: Rotary::new(shape.head_dim, cfg.rope_local_base_freq),
            shape,
            config: cfg.clone(),
        })
    }
}

impl TextModel for Gemma3Model {
    fn forward(&self, batch: &PackedBatch) -> candle_core::Result<Tensor> {
        let device = self.embeddings.table().device();
        let ids = Tensor::from_slice(batch.ids(), batch.total_tokens(), device)?;
        // The scale is rounded to f32 first, as the reference multiplies by an f32 tensor.
        let scale = (self.config.hidden_size as f64).sqrt() as f32;
        let mut x = (self.embeddings.forward(&ids)? * f64::from(scale))?;
        let global = self.global_rotary.table(batch.positions());
        let local = self.local_rotary.table(batch.positions());
        let window = KeyMask::Window(self.config.sliding_window.unwrap_or(usize::MAX / 4) / 2);
        for layer in &self.layers {
            let h = layer.input_norm.forward(&x)?;
            let qkv = layer.qkv.forward(&h)?;
            drop(h);
            let (table, mask) = if layer.sliding {
                (&local, window)
            } else {
                (&global, KeyMask::Bidirectional)
            };
            let qkv = normed_rotary_qkv(qkv, &layer.q_norm, &layer.k_norm, table, self.shape)?;
            let context = packed_attention(&qkv, batch.spans(), self.shape, mask)?;
            drop(qkv);
            x = (x + layer
                .post_attention_norm
                .forward(&layer.o_proj.forward(&context)?)?)?;
            let h = layer.pre_feedforward_norm.forward(&x)?;
            let inner = gated(
                &layer.gate_up.forward(&h)?,
                self.config.hidden_activation,
                true,
            )?;
            x = (x + layer
                .post_feedforward_norm
                .forward(&layer.down.forward(&inner)?)?)?;
        }
        self.norm.forward(&x)
    }

    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    fn word_embeddings(&self) -> &Tensor {
        self.embeddings.table()
    }
}
