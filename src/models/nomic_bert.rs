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
    check_heads, Activation, AttentionShape, Linear, Norm, PostNormGatedBlock, Rotary,
    SegmentEmbeddings,
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

fn load_block(
    vb: VarBuilder,
    cfg: &Config,
    inner: usize,
    activation: Activation,
) -> candle_core::Result<PostNormGatedBlock> {
    let h = cfg.n_embd;
    let attn = vb.pp("attn");
    let mlp = vb.pp("mlp");
    Ok(PostNormGatedBlock {
        qkv: Linear::load(attn.pp("Wqkv"), h, 3 * h, cfg.qkv_proj_bias)?,
        out: Linear::load(attn.pp("out_proj"), h, h, cfg.qkv_proj_bias)?,
        attention_norm: Norm::layer_norm(vb.pp("norm1"), h, cfg.layer_norm_epsilon, true)?,
        // `fc11(x) * act(fc12(x))`: the value half first, the gated half second.
        up: Linear::stack(&[
            Linear::load(mlp.pp("fc11"), h, inner, cfg.mlp_fc1_bias)?,
            Linear::load(mlp.pp("fc12"), h, inner, cfg.mlp_fc1_bias)?,
        ])?,
        down: Linear::load(mlp.pp("fc2"), inner, h, cfg.mlp_fc2_bias)?,
        mlp_norm: Norm::layer_norm(vb.pp("norm2"), h, cfg.layer_norm_epsilon, true)?,
        activation,
        activated_first: false,
    })
}

pub struct NomicBertModel {
    embeddings: SegmentEmbeddings,
    layers: Vec<PostNormGatedBlock>,
    rotary: Rotary,
    shape: AttentionShape,
    config: Config,
}

impl NomicBertModel {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let activation = cfg.validate()?;
        let head_dim = check_heads(cfg.n_embd, cfg.n_head)?;
        let inner = cfg.n_inner.unwrap_or(4 * cfg.n_embd);
        let embeddings = SegmentEmbeddings::load(
            vb.pp("embeddings"),
            cfg.vocab_size,
            cfg.n_embd,
            cfg.type_vocab_size,
            Norm::layer_norm(vb.pp("emb_ln"), cfg.n_embd, cfg.layer_norm_epsilon, true)?,
        )?;
        let layers = (0..cfg.n_layer)
            .map(|i| load_block(vb.pp(format!("encoder.layers.{i}")), cfg, inner, activation))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(NomicBertModel {
            embeddings,
            layers,
            rotary: Rotary::new(head_dim, cfg.rotary_emb_base),
            shape: AttentionShape::new(
                cfg.n_head,
                cfg.n_head,
                head_dim,
                1.0 / (head_dim as f32).sqrt(),
            ),
            config: cfg.clone(),
        })
    }
}

impl TextModel for NomicBertModel {
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
        self.config.n_embd
    }

    fn max_positions(&self) -> usize {
        self.config.n_positions
    }

    fn word_embeddings(&self) -> &Tensor {
        self.embeddings.word.table()
    }
}
