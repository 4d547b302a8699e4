//! GTE's "new" encoder (Li et al., 2023, <https://arxiv.org/abs/2308.03281>; the
//! gte-*-en-v1.5 and gte-multilingual models): post-norm BERT with NTK-scaled rotary
//! positions, a fused `qkv_proj` and a gated GELU feed-forward (`up | gate`). The
//! `config.json` is the hub's remote-code one (`model_type` "new").

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::TextModel;
use crate::error::{Result, TesseraError};
use crate::layers::{
    check_heads, Activation, AttentionShape, Linear, Norm, PostNormGatedBlock, Rotary,
    SegmentEmbeddings,
};
use crate::packing::PackedBatch;

#[derive(Debug, Clone, Deserialize)]
pub struct RopeScaling {
    #[serde(rename = "type", alias = "rope_type")]
    pub kind: String,
    pub factor: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_activation")]
    pub hidden_act: Activation,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_norm_type")]
    pub layer_norm_type: String,
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    pub logn_attention_scale: bool,
    #[serde(default)]
    pub type_vocab_size: usize,
    pub max_position_embeddings: usize,
}

fn default_activation() -> Activation {
    Activation::GeluErf
}
fn default_eps() -> f64 {
    1e-12
}
fn default_norm_type() -> String {
    "layer_norm".into()
}
fn default_position_type() -> String {
    "rope".into()
}
fn default_theta() -> f64 {
    10_000.0
}

impl Config {
    fn validate(&self) -> Result<f64> {
        let unsupported = |what: String| {
            Err(TesseraError::Config(format!(
                "GTE with {what} is not supported"
            )))
        };
        if self.position_embedding_type != "rope" {
            return unsupported(format!(
                "position_embedding_type '{}'",
                self.position_embedding_type
            ));
        }
        if self.layer_norm_type != "layer_norm" {
            return unsupported(format!("layer_norm_type '{}'", self.layer_norm_type));
        }
        if self.logn_attention_scale {
            return unsupported("logn_attention_scale".into());
        }
        match &self.rope_scaling {
            None => Ok(1.0),
            Some(s) if s.kind == "ntk" => Ok(s.factor),
            Some(s) => unsupported(format!("rope_scaling type '{}'", s.kind)),
        }
    }
}

fn load_block(vb: VarBuilder, cfg: &Config) -> candle_core::Result<PostNormGatedBlock> {
    let (h, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
    let attn = vb.pp("attention");
    let mlp = vb.pp("mlp");
    Ok(PostNormGatedBlock {
        qkv: Linear::load(attn.pp("qkv_proj"), h, 3 * h, true)?,
        out: Linear::load(attn.pp("o_proj"), h, h, true)?,
        attention_norm: Norm::layer_norm(vb.pp("attn_ln"), h, eps, true)?,
        // `up | gate`: the gated half second.
        up: Linear::load(mlp.pp("up_gate_proj"), h, 2 * i, false)?,
        down: Linear::load(mlp.pp("down_proj"), i, h, true)?,
        mlp_norm: Norm::layer_norm(vb.pp("mlp_ln"), h, eps, true)?,
        activation: cfg.hidden_act,
        activated_first: false,
    })
}

pub struct GteModel {
    embeddings: SegmentEmbeddings,
    layers: Vec<PostNormGatedBlock>,
    rotary: Rotary,
    shape: AttentionShape,
    config: Config,
}

impl GteModel {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let factor = cfg.validate()?;
        let head_dim = check_heads(cfg.hidden_size, cfg.num_attention_heads)?;
        let emb = vb.pp("embeddings");
        // gte-base-en-v1.5 has type_vocab_size 0 and no token-type table.
        let embeddings = SegmentEmbeddings::load(
            emb.clone(),
            cfg.vocab_size,
            cfg.hidden_size,
            cfg.type_vocab_size,
            Norm::layer_norm(
                emb.pp("LayerNorm"),
                cfg.hidden_size,
                cfg.layer_norm_eps,
                true,
            )?,
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| load_block(vb.pp(format!("encoder.layer.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(GteModel {
            embeddings,
            layers,
            rotary: Rotary::ntk(head_dim, cfg.rope_theta, factor),
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

impl TextModel for GteModel {
    fn forward(&self, batch: &PackedBatch) -> candle_core::Result<Tensor> {
        let device = self.embeddings.word.table().device();
        let ids = Tensor::from_slice(batch.ids(), batch.total_tokens(), device)?;
        let mut x = self.embeddings.forward(&ids)?;
        let table = self.rotary.table(batch.positions());
        for layer in &self.layers {
            x = layer.forward(&x, batch.spans(), &table, self.shape)?;
        }
        Ok(x)
    }

    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    fn word_embeddings(&self) -> &Tensor {
        self.embeddings.word.table()
    }
}
