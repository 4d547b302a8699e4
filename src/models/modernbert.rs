//! ModernBERT (Warner et al., 2024, <https://arxiv.org/abs/2412.13663>): a pre-norm
//! encoder with rotary positions, a GeGLU feed-forward, no biases, and attention that
//! alternates between global layers and local ones that see a sliding window.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::TextModel;
use crate::error::Result;
use crate::layers::{
    check_heads, gated, packed_attention, Activation, AttentionShape, Embedding, KeyMask, Linear,
    Norm, Rotary,
};
use crate::packing::PackedBatch;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "default_eps")]
    pub norm_eps: f64,
    #[serde(default)]
    pub norm_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_activation")]
    pub hidden_activation: Activation,
    #[serde(default = "default_every")]
    pub global_attn_every_n_layers: usize,
    #[serde(default = "default_window")]
    pub local_attention: usize,
    #[serde(default = "default_global_theta")]
    pub global_rope_theta: f64,
    #[serde(default = "default_local_theta")]
    pub local_rope_theta: f64,
    pub max_position_embeddings: usize,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_activation() -> Activation {
    Activation::GeluErf
}
fn default_every() -> usize {
    3
}
fn default_window() -> usize {
    128
}
fn default_global_theta() -> f64 {
    160_000.0
}
fn default_local_theta() -> f64 {
    10_000.0
}

struct Layer {
    /// Absent on layer 0, whose input is the (already normalised) embedding.
    attn_norm: Option<Norm>,
    qkv: Linear,
    wo: Linear,
    mlp_norm: Norm,
    wi: Linear,
    mlp_out: Linear,
    global: bool,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &Config, index: usize) -> candle_core::Result<Self> {
        let (h, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.norm_eps);
        let attn = vb.pp("attn");
        let mlp = vb.pp("mlp");
        let attn_norm = if index == 0 {
            None
        } else {
            Some(Norm::layer_norm(vb.pp("attn_norm"), h, eps, cfg.norm_bias)?)
        };
        Ok(Layer {
            attn_norm,
            qkv: Linear::load(attn.pp("Wqkv"), h, 3 * h, cfg.attention_bias)?,
            wo: Linear::load(attn.pp("Wo"), h, h, cfg.attention_bias)?,
            mlp_norm: Norm::layer_norm(vb.pp("mlp_norm"), h, eps, cfg.norm_bias)?,
            wi: Linear::load(mlp.pp("Wi"), h, 2 * i, cfg.mlp_bias)?,
            mlp_out: Linear::load(mlp.pp("Wo"), i, h, cfg.mlp_bias)?,
            global: index.is_multiple_of(cfg.global_attn_every_n_layers.max(1)),
        })
    }
}

pub struct ModernBertModel {
    embeddings: Embedding,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    final_norm: Norm,
    global_rotary: Rotary,
    local_rotary: Rotary,
    shape: AttentionShape,
    config: Config,
}

impl ModernBertModel {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let head_dim = check_heads(cfg.hidden_size, cfg.num_attention_heads)?;
        let (h, eps) = (cfg.hidden_size, cfg.norm_eps);
        let emb = vb.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("layers.{i}")), cfg, i))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(ModernBertModel {
            embeddings: Embedding::load(emb.pp("tok_embeddings"), cfg.vocab_size, h)?,
            embedding_norm: Norm::layer_norm(emb.pp("norm"), h, eps, cfg.norm_bias)?,
            layers,
            final_norm: Norm::layer_norm(vb.pp("final_norm"), h, eps, cfg.norm_bias)?,
            global_rotary: Rotary::new(head_dim, cfg.global_rope_theta),
            local_rotary: Rotary::new(head_dim, cfg.local_rope_theta),
            shape: AttentionShape::new(
                cfg.num_attention_heads,
                cfg.num_attention_heads,
                head_dim,
                1.0 / (head_dim as f32).sqrt(),
            ),
            config: cfg.clone(),
        })
    }
}

impl TextModel for ModernBertModel {
    fn forward(&self, batch: &PackedBatch) -> candle_core::Result<Tensor> {
        let device = self.embeddings.table().device();
        let ids = Tensor::from_slice(batch.ids(), batch.total_tokens(), device)?;
        let mut x = self
            .embedding_norm
            .forward(&self.embeddings.forward(&ids)?)?;
        let global = self.global_rotary.table(batch.positions());
        let local = self.local_rotary.table(batch.positions());
        let window = KeyMask::Window(self.config.local_attention / 2);
        for layer in &self.layers {
            let h = match &layer.attn_norm {
                Some(norm) => norm.forward(&x)?,
                None => x.clone(),
            };
            let (table, mask) = if layer.global {
                (&global, KeyMask::Bidirectional)
            } else {
                (&local, window)
            };
            let qkv = table.apply(layer.qkv.forward(&h)?, self.shape)?;
            drop(h);
            let context = packed_attention(&qkv, batch.spans(), self.shape, mask)?;
            drop(qkv);
            x = (x + layer.wo.forward(&context)?)?;
            let inner = gated(
                &layer.wi.forward(&layer.mlp_norm.forward(&x)?)?,
                self.config.hidden_activation,
                true,
            )?;
            x = (x + layer.mlp_out.forward(&inner)?)?;
        }
        self.final_norm.forward(&x)
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
