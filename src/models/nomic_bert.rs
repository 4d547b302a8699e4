//! NomicBERT (Nussbaum et al., 2024, <https://arxiv.org/abs/2402.01613>), the encoder of
//! nomic-embed-text: BERT with rotary positions and a SwiGLU feed-forward, no biases
//! besides the norms'. `config.json` is the hub's remote-code one (`n_embd`, `n_head`,
//! ...), weights under its key names (`encoder.layers.N.attn.Wqkv`, ...).

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::TextModel;
use crate::error::{Result, TesseraError};
use crate::layers::{
    check_heads, gated, packed_attention, Activation, AttentionShape, Embedding, KeyMask, Linear,
    Norm, Rotary,
};
use crate::packing::PackedBatch;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_layer: usize,
    pub n_inner: Option<usize>,
    pub n_positions: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_activation")]
    pub activation_function: String,
    #[serde(default = "default_base")]
    pub rotary_emb_base: f64,
    #[serde(default = "default_fraction")]
    pub rotary_emb_fraction: f64,
    #[serde(default)]
    pub rotary_emb_interleaved: bool,
    #[serde(default)]
    pub rotary_scaling_factor: Option<f64>,
    #[serde(default)]
    pub qkv_proj_bias: bool,
    #[serde(default)]
    pub mlp_fc1_bias: bool,
    #[serde(default)]
    pub mlp_fc2_bias: bool,
    #[serde(default)]
    pub prenorm: bool,
    #[serde(default)]
    pub causal: bool,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
}

fn default_eps() -> f64 {
    1e-12
}
fn default_activation() -> String {
    "swiglu".into()
}
fn default_base() -> f64 {
    10_000.0
}
fn default_fraction() -> f64 {
    1.0
}
fn default_type_vocab_size() -> usize {
    2
}

impl Config {
    fn validate(&self) -> Result<Activation> {
        let unsupported = |what: &str| {
            Err(TesseraError::Config(format!(
                "NomicBERT with {what} is not supported"
            )))
        };
        if self.prenorm {
            return unsupported("prenorm true");
        }
        if self.causal {
            return unsupported("causal attention");
        }
        if self.rotary_emb_interleaved {
            return unsupported("interleaved rotary embeddings");
        }
        if (self.rotary_emb_fraction - 1.0).abs() > f64::EPSILON {
            return unsupported("a partial rotary_emb_fraction");
        }
        if self.rotary_scaling_factor.is_some() {
            return unsupported("rotary_scaling_factor (dynamic NTK scaling)");
        }
        match self.activation_function.as_str() {
            "swiglu" => Ok(Activation::Silu),
            "geglu" => Ok(Activation::GeluErf),
            other => Err(TesseraError::Config(format!(
                "NomicBERT activation_function '{other}' is not supported (swiglu, geglu)"
            ))),
        }
    }
}

struct Layer {
    qkv: Linear,
    out_proj: Linear,
    norm1: Norm,
    /// `fc11` and `fc12` stacked: the value half, then the gated half.
    fc1: Linear,
    fc2: Linear,
    norm2: Norm,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &Config, inner: usize) -> candle_core::Result<Self> {
        let h = cfg.n_embd;
        let attn = vb.pp("attn");
        let mlp = vb.pp("mlp");
        Ok(Layer {
            qkv: Linear::load(attn.pp("Wqkv"), h, 3 * h, cfg.qkv_proj_bias)?,
            out_proj: Linear::load(attn.pp("out_proj"), h, h, cfg.qkv_proj_bias)?,
            norm1: Norm::layer_norm(vb.pp("norm1"), h, cfg.layer_norm_epsilon, true)?,
            fc1: Linear::stack(&[
                Linear::load(mlp.pp("fc11"), h, inner, cfg.mlp_fc1_bias)?,
                Linear::load(mlp.pp("fc12"), h, inner, cfg.mlp_fc1_bias)?,
            ])?,
            fc2: Linear::load(mlp.pp("fc2"), inner, h, cfg.mlp_fc2_bias)?,
            norm2: Norm::layer_norm(vb.pp("norm2"), h, cfg.layer_norm_epsilon, true)?,
        })
    }
}

pub struct NomicBertModel {
    word: Embedding,
    token_type_zero: Option<Tensor>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    rotary: Rotary,
    shape: AttentionShape,
    activation: Activation,
    config: Config,
}

impl NomicBertModel {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let activation = cfg.validate()?;
        let head_dim = check_heads(cfg.n_embd, cfg.n_head)?;
        let inner = cfg.n_inner.unwrap_or(4 * cfg.n_embd);
        let emb = vb.pp("embeddings");
        let word = Embedding::load(emb.pp("word_embeddings"), cfg.vocab_size, cfg.n_embd)?;
        let token_type_zero = if cfg.type_vocab_size > 0 {
            let table = Embedding::load(
                emb.pp("token_type_embeddings"),
                cfg.type_vocab_size,
                cfg.n_embd,
            )?;
            Some(table.table().get(0)?)
        } else {
            None
        };
        let layers = (0..cfg.n_layer)
            .map(|i| Layer::load(vb.pp(format!("encoder.layers.{i}")), cfg, inner))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(NomicBertModel {
            word,
            token_type_zero,
            emb_norm: Norm::layer_norm(vb.pp("emb_ln"), cfg.n_embd, cfg.layer_norm_epsilon, true)?,
            layers,
            rotary: Rotary::new(head_dim, cfg.rotary_emb_base),
            shape: AttentionShape {
                heads: cfg.n_head,
                kv_heads: cfg.n_head,
                head_dim,
                scale: 1.0 / (head_dim as f32).sqrt(),
            },
            activation,
            config: cfg.clone(),
        })
    }
}

impl TextModel for NomicBertModel {
    fn forward(&self, batch: &PackedBatch) -> candle_core::Result<Tensor> {
        let device = self.word.table().device();
        let ids = Tensor::from_slice(batch.ids(), batch.total_tokens(), device)?;
        let mut x = self.word.forward(&ids)?;
        if let Some(tt) = &self.token_type_zero {
            x = x.broadcast_add(tt)?;
        }
        let mut x = self.emb_norm.forward(&x)?;
        let table = self.rotary.table(batch.positions());
        for layer in &self.layers {
            let qkv = table.apply(layer.qkv.forward(&x)?, self.shape)?;
            let context =
                packed_attention(&qkv, batch.spans(), self.shape, KeyMask::Bidirectional)?;
            drop(qkv);
            let attended = layer.norm1.add_forward(
                layer.out_proj.matmul(&context)?,
                Some(&layer.out_proj),
                &x,
            )?;
            let inner = gated(&layer.fc1.forward(&attended)?, self.activation, false)?;
            x = layer
                .norm2
                .add_forward(layer.fc2.matmul(&inner)?, Some(&layer.fc2), &attended)?;
        }
        Ok(x)
    }

    fn hidden_size(&self) -> usize {
        self.config.n_embd
    }

    fn max_positions(&self) -> usize {
        self.config.n_positions
    }

    fn word_embeddings(&self) -> &Tensor {
        self.word.table()
    }
}
