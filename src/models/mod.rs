//! Model architectures. Each returns hidden states only; pooling, projection and
//! the SPLADE head live in `heads/`. Text encoders are chosen by `config.json`
//! `model_type` in [`load_text_model`].

pub mod bert;
pub mod checkpoint;
pub mod chronos_bolt;
pub mod colpali;
pub mod gemma;
pub mod gemma3;
pub mod gte;
pub mod modernbert;
pub mod nomic_bert;
pub mod qwen3;
pub mod siglip;
pub mod xlm_roberta;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;

use crate::error::{Result, TesseraError};
use crate::packing::PackedBatch;

/// A text encoder over packed batches.
pub trait TextModel: Send + Sync {
    /// Last hidden states `[total_tokens, hidden]` of a packed batch, in the model's dtype.
    fn forward(&self, batch: &PackedBatch) -> candle_core::Result<Tensor>;

    fn hidden_size(&self) -> usize;

    /// The longest text (in tokens) the position encoding covers.
    fn max_positions(&self) -> usize;

    /// Word-embedding matrix `[vocab, hidden]` (the tied MLM decoder of SPLADE).
    fn word_embeddings(&self) -> &Tensor;
}

/// The `model_type` values a text encoder can be built from.
pub const TEXT_MODEL_TYPES: &[&str] = &[
    "bert",
    "xlm-roberta",
    "roberta",
    "nomic_bert",
    "new",
    "gte",
    "modernbert",
    "qwen3",
    "gemma3_text",
];

fn parse<T: DeserializeOwned>(raw: serde_json::Value, family: &str) -> Result<T> {
    serde_json::from_value(raw)
        .map_err(|e| TesseraError::Config(format!("invalid {family} config.json: {e}")))
}

/// Builds the encoder family `model_type` names from its `config.json` and weights.
pub fn load_text_model(
    model_type: &str,
    raw: serde_json::Value,
    vb: VarBuilder,
) -> Result<Box<dyn TextModel>> {
    Ok(match model_type {
        "bert" => Box::new(bert::BertModel::load(vb, &parse(raw, "BERT")?)?),
        "xlm-roberta" | "roberta" => Box::new(xlm_roberta::load(vb, &parse(raw, "XLM-RoBERTa")?)?),
        "nomic_bert" => Box::new(nomic_bert::NomicBertModel::load(
            vb,
            &parse(raw, "NomicBERT")?,
        )?),
        "new" | "gte" => Box::new(gte::GteModel::load(vb, &parse(raw, "GTE")?)?),
        "modernbert" => Box::new(modernbert::ModernBertModel::load(
            vb,
            &parse(raw, "ModernBERT")?,
        )?),
        "qwen3" => Box::new(qwen3::Qwen3Model::load(vb, &parse(raw, "Qwen3")?)?),
        "gemma3_text" => Box::new(gemma3::Gemma3Model::load(vb, &parse(raw, "Gemma 3")?)?),
        other => {
            return Err(TesseraError::Config(format!(
                "architecture '{other}' is not supported for text models (supported model_type values: {})",
                TEXT_MODEL_TYPES.join(", ")
            )))
        }
    })
}
