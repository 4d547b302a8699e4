//! Qwen3 (Qwen Team, 2025, <https://arxiv.org/abs/2505.09388>) as the decoder behind
//! Qwen3-Embedding: pre-norm RMSNorm blocks, grouped-query causal attention with
//! per-head query / key RMSNorm and rotary positions, and a SwiGLU feed-forward. Every
//! text is packed at its exact length, so the causal mask never crosses texts and the
//! last token (the appended `<|endoftext|>`) is each text's own.

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
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_activation")]
    pub hidden_act: Activation,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub use_sliding_window: bool,
    pub max_position_embeddings: usize,
}

fn default_activation() -> Activation {
    Activation::Silu
}
fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    1_000_000.0
}

impl Config {
    fn shape(&self) -> Result<AttentionShape> {
        if self.rope_scaling.as_ref().is_some_and(|s| !s.is_null()) {
            return Err(TesseraError::Config(
                "Qwen3 with rope_scaling is not supported".into(),
            ));
        }
        if self.use_sliding_window {
            return Err(TesseraError::Config(
                "Qwen3 with use_sliding_window is not supported".into(),
            ));
        }
        let (heads, kv_heads) = (self.num_attention_heads, self.num_key_value_heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(TesseraError::Config(format!(
                "{heads} attention heads are not a multiple of the {kv_heads} key / value heads"
            )));
        }
        let head_dim = match self.head_dim {
            Some(d) => d,
            None if self.hidden_size.is_multiple_of(heads) => self.hidden_size / heads,
            None => {
                return Err(TesseraError::Config(format!(
                    "hidden size {} is not a multiple of the {heads} attention heads",
                    self.hidden_size
                )))
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(TesseraError::Config(format!(
                "head_dim {head_dim} must be even for rotary positions"
            )));
        }
        Ok(AttentionShape::new(
            heads,
            kv_heads,
            head_dim,
            1.0 / (head_dim as f32).sqrt(),
        ))
    }
}

struct Layer {
    input_norm: Norm,
    qkv: Linear,
    q_norm: Norm,
    k_norm: Norm,
    o_proj: Linear,
    post_norm: Norm,
    /// `gate_proj` and `up_proj` stacked.
    gate_up: Linear,
    down: Linear,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &Config, shape: AttentionShape) -> candle_core::Result<Self> {
        let (h, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.rms_norm_eps);
        let d = shape.head_dim;
        let attn = vb.pp("self_attn");
        let mlp = vb.pp("mlp");
        let bias = cfg.attention_bias;
        Ok(Layer {
            input_norm: Norm::rms_norm(vb.pp("input_layernorm"), h, eps, 0.0)?,
            qkv: Linear::stack(&[
                Linear::load(attn.pp("q_proj"), h, shape.heads * d, bias)?,
                Linear::load(attn.pp("k_proj"), h, shape.kv_heads * d, bias)?,
                Linear::load(attn.pp("v_proj"), h, shape.kv_heads * d, bias)?,
            ])?,
            q_norm: Norm::rms_norm(attn.pp("q_norm"), d, eps, 0.0)?,
            k_norm: Norm::rms_norm(attn.pp("k_norm"), d, eps, 0.0)?,
            o_proj: Linear::load(attn.pp("o_proj"), shape.heads * d, h, bias)?,
            post_norm: Norm::rms_norm(vb.pp("post_attention_layernorm"), h, eps, 0.0)?,
            gate_up: Linear::stack(&[
                Linear::load(mlp.pp("gate_proj"), h, i, false)?,
                Linear::load(mlp.pp("up_proj"), h, i, false)?,
            ])?,
            down: Linear::load(mlp.pp("down_proj"), i, h, false)?,
        })
    }
}

pub struct Qwen3Model {
    embeddings: Embedding,
    layers: Vec<Layer>,
    norm: Norm,
    rotary: Rotary,
    shape: AttentionShape,
    config: Config,
}

impl Qwen3Model {
    /// Loads from a VarBuilder rooted at the decoder (`embed_tokens.*`, `layers.*`);
    /// causal-LM checkpoints put those under `model.`.
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let shape = cfg.shape()?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("layers.{i}")), cfg, shape))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Qwen3Model {
            embeddings: Embedding::load(vb.pp("embed_tokens"), cfg.vocab_size, cfg.hidden_size)?,
            layers,
            norm: Norm::rms_norm(vb.pp("norm"), cfg.hidden_size, cfg.rms_norm_eps, 0.0)?,
            rotary: Rotary::new(shape.head_dim, cfg.rope_theta),
            shape,
            config: cfg.clone(),
        })
    }
}

impl TextModel for Qwen3Model {
    fn forward(&self, batch: &PackedBatch) -> candle_core::Result<Tensor> {
        let device = self.embeddings.table().device();
        let ids = Tensor::from_slice(batch.ids(), batch.total_tokens(), device)?;
        let mut x = self.embeddings.forward(&ids)?;
        let table = self.rotary.table(batch.positions());
        for layer in &self.layers {
            let h = layer.input_norm.forward(&x)?;
            let qkv = layer.qkv.forward(&h)?;
            drop(h);
            let qkv = normed_rotary_qkv(qkv, &layer.q_norm, &layer.k_norm, &table, self.shape)?;
            let context = packed_attention(&qkv, batch.spans(), self.shape, KeyMask::Causal)?;
            drop(qkv);
            x = (x + layer.o_proj.forward(&context)?)?;
            let h = layer.post_norm.forward(&x)?;
            let inner = gated(&layer.gate_up.forward(&h)?, self.config.hidden_act, true)?;
            x = (x + layer.down.forward(&inner)?)?;
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
