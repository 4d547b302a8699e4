//! BERT encoder (Devlin et al., 2019, <https://arxiv.org/abs/1810.04805>) over packed
//! token sequences, and RoBERTa-style position ids for XLM-RoBERTa.
//!
//! Matches Hugging Face `BertModel` in inference, but takes a batch as one packed row
//! of tokens: the dense layers run on `[total_tokens, hidden]` with no padding, and
//! attention runs per text at its exact length. candle-transformers' `BertModel` needs
//! a padded `[batch, max_len]` input, which is what this file exists to avoid.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::TextModel;
use crate::error::{Result, TesseraError};
use crate::layers::{
    check_heads, packed_attention, Activation, AttentionShape, Embedding, KeyMask, Linear, Norm,
};
use crate::packing::PackedBatch;

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
    Activation::GeluErf
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
                    "position_embedding_type '{kind}' is not supported (only 'absolute')"
                )));
            }
        }
        if self.type_vocab_size == 0 {
            return Err(TesseraError::Config(
                "type_vocab_size must be at least 1".into(),
            ));
        }
        check_heads(self.hidden_size, self.num_attention_heads)?;
        Ok(())
    }
}

/// How a token's position id is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// BERT: the index in the text.
    Absolute,
    /// RoBERTa / XLM-R: `pad + 1 + (non-pad tokens before it)` for a non-pad token,
    /// `pad` for a pad token.
    Roberta { pad: u32 },
}

impl Positions {
    fn ids(self, batch: &PackedBatch) -> Vec<u32> {
        match self {
            Positions::Absolute => batch.positions().to_vec(),
            Positions::Roberta { pad } => {
                let ids = batch.ids();
                let mut out = Vec::with_capacity(ids.len());
                for span in batch.spans() {
                    let mut count = 0;
                    for &id in &ids[span.start..span.start + span.len] {
                        if id == pad {
                            out.push(pad);
                        } else {
                            count += 1;
                            out.push(pad + count);
                        }
                    }
                }
                out
            }
        }
    }

    /// The first position id a text of `max_position_embeddings` rows can't reach.
    fn reserved(self) -> usize {
        match self {
            Positions::Absolute => 0,
            Positions::Roberta { pad } => pad as usize + 1,
        }
    }
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type_zero: Tensor,
    norm: Norm,
}

impl Embeddings {
    fn load(vb: VarBuilder, cfg: &Config) -> candle_core::Result<Self> {
        let word = Embedding::load(vb.pp("word_embeddings"), cfg.vocab_size, cfg.hidden_size)?;
        let position = Embedding::load(
            vb.pp("position_embeddings"),
            cfg.max_position_embeddings,
            cfg.hidden_size,
        )?;
        let token_types = Embedding::load(
            vb.pp("token_type_embeddings"),
            cfg.type_vocab_size,
            cfg.hidden_size,
        )?;
        // Every input here is a single segment, so token type 0 is a constant row.
        let token_type_zero = token_types.table().get(0)?;
        let norm = Norm::layer_norm(
            vb.pp("LayerNorm"),
            cfg.hidden_size,
            cfg.layer_norm_eps,
            true,
        )?;
        Ok(Embeddings {
            word,
            position,
            token_type_zero,
            norm,
        })
    }

    fn forward(&self, ids: &Tensor, positions: &Tensor) -> candle_core::Result<Tensor> {
        let summed = self
            .word
            .forward(ids)?
            .add(&self.position.forward(positions)?)?
            .broadcast_add(&self.token_type_zero)?;
        self.norm.forward(&summed)
    }
}

struct Layer {
    qkv: Linear,
    attention_output: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &Config) -> candle_core::Result<Self> {
        let hidden = cfg.hidden_size;
        let attention = vb.pp("attention");
        let part = |name: &str| Linear::load(attention.pp("self").pp(name), hidden, hidden, true);
        let qkv = Linear::stack(&[part("query")?, part("key")?, part("value")?])?;
        let out = attention.pp("output");
        Ok(Layer {
            qkv,
            attention_output: Linear::load(out.pp("dense"), hidden, hidden, true)?,
            attention_norm: Norm::layer_norm(
                out.pp("LayerNorm"),
                hidden,
                cfg.layer_norm_eps,
                true,
            )?,
            intermediate: Linear::load(
                vb.pp("intermediate").pp("dense"),
                hidden,
                cfg.intermediate_size,
                true,
            )?,
            output: Linear::load(
                vb.pp("output").pp("dense"),
                cfg.intermediate_size,
                hidden,
                true,
            )?,
            output_norm: Norm::layer_norm(
                vb.pp("output").pp("LayerNorm"),
                hidden,
                cfg.layer_norm_eps,
                true,
            )?,
        })
    }

    /// Post-norm: `x = norm(x + attention(x))`, `x = norm(x + ffn(x))`.
    fn forward(
        &self,
        hidden: &Tensor,
        batch: &PackedBatch,
        shape: AttentionShape,
        act: Activation,
    ) -> candle_core::Result<Tensor> {
        let qkv = self.qkv.forward(hidden)?;
        let context = packed_attention(&qkv, batch.spans(), shape, KeyMask::Bidirectional)?;
        drop(qkv);
        let attended = self.attention_norm.add_forward(
            self.attention_output.matmul(&context)?,
            Some(&self.attention_output),
            hidden,
        )?;
        drop(context);
        let inner = self.intermediate.forward_activated(&attended, act)?;
        self.output_norm
            .add_forward(self.output.matmul(&inner)?, Some(&self.output), &attended)
    }
}

/// The encoder stack; returns the last hidden state of every packed token.
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    config: Config,
    positions: Positions,
    shape: AttentionShape,
}

impl BertModel {
    /// Loads from a VarBuilder rooted at the encoder (keys `embeddings.*`, `encoder.*`).
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        BertModel::load_with_positions(vb, cfg, Positions::Absolute)
    }

    pub fn load_with_positions(vb: VarBuilder, cfg: &Config, positions: Positions) -> Result<Self> {
        cfg.validate()?;
        let head_dim = check_heads(cfg.hidden_size, cfg.num_attention_heads)?;
        if cfg.max_position_embeddings <= positions.reserved() {
            return Err(TesseraError::Config(format!(
                "max_position_embeddings {} leaves no position for text",
                cfg.max_position_embeddings
            )));
        }
        let embeddings = Embeddings::load(vb.pp("embeddings"), cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(BertModel {
            embeddings,
            layers,
            config: cfg.clone(),
            positions,
            shape: AttentionShape::new(
                cfg.num_attention_heads,
                cfg.num_attention_heads,
                head_dim,
                1.0 / (head_dim as f32).sqrt(),
            ),
        })
    }
}

impl TextModel for BertModel {
    fn forward(&self, batch: &PackedBatch) -> candle_core::Result<Tensor> {
        let device = self.embeddings.token_type_zero.device();
        let ids = Tensor::from_slice(batch.ids(), batch.total_tokens(), device)?;
        let positions = self.positions.ids(batch);
        let positions = Tensor::from_vec(positions, batch.total_tokens(), device)?;
        let mut hidden = self.embeddings.forward(&ids, &positions)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden, batch, self.shape, self.config.hidden_act)?;
        }
        Ok(hidden)
    }

    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    fn max_positions(&self) -> usize {
        self.config.max_position_embeddings - self.positions.reserved()
    }

    fn word_embeddings(&self) -> &Tensor {
        self.embeddings.word.table()
    }
}
