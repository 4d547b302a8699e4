//! ColPali: PaliGemma (SigLIP image tower, linear projector, Gemma decoder) whose
//! last hidden states are projected to small L2-normalised vectors, one per token,
//! for late-interaction (MaxSim) retrieval of page images.
//!
//! Paper: Faysse et al., "ColPali: Efficient Document Retrieval with Vision Language
//! Models" (2024).
//! Reference: transformers `models/colpali/modeling_colpali.py` (`ColPaliForRetrieval`)
//! and `models/paligemma/modeling_paligemma.py`.
//!
//! Two checkpoint layouts share this code, through the checkpoint's name prefixes:
//! `vlm.*` + `embedding_proj_layer` (transformers, `vidore/colpali-v1.3-hf`) and
//! `model.*` + `custom_text_proj` (colpali-engine, `vidore/colpali-v1.2-merged`).

use candle_core::{DType, Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, TesseraError};
use crate::heads::normalize::l2_normalize;
use crate::models::{gemma, siglip};

/// Prefixes the PaliGemma weights sit under, tried in this order.
pub const CHECKPOINT_PREFIXES: &[&str] = &["vlm.", "model."];

/// Names of the ColPali projection in the two layouts.
const HEAD_NAMES: &[&str] = &["embedding_proj_layer", "custom_text_proj"];

/// A PaliGemma config (`model_type: paligemma`).
#[derive(Debug, Clone, Deserialize)]
pub struct PaliGemmaConfig {
    pub vision_config: siglip::Config,
    pub text_config: gemma::Config,
    #[serde(default = "default_image_token_index")]
    pub image_token_index: u32,
}

fn default_image_token_index() -> u32 {
    256_000
}

/// A ColPali config: `model_type: colpali` (PaliGemma under `vlm_config`) or a bare
/// PaliGemma config (colpali-engine checkpoints), whose projection size then comes
/// from the weights.
#[derive(Debug, Clone)]
pub struct Config {
    pub vlm: PaliGemmaConfig,
    pub embedding_dim: Option<usize>,
}

impl Config {
    pub fn from_json(value: &Value) -> Result<Self> {
        let model_type = value
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let (vlm, embedding_dim) = match model_type {
            "colpali" => (
                value.get("vlm_config").cloned().ok_or_else(|| {
                    TesseraError::Config("a colpali config.json needs a vlm_config".into())
                })?,
                value
                    .get("embedding_dim")
                    .and_then(Value::as_u64)
                    .map(|d| d as usize),
            ),
            "paligemma" => (value.clone(), None),
            other => {
                return Err(TesseraError::Config(format!(
                    "config.json has model_type '{other}'; a ColPali model needs 'colpali' or 'paligemma'"
                )))
            }
        };
        let vlm: PaliGemmaConfig = serde_json::from_value(vlm)
            .map_err(|e| TesseraError::Config(format!("invalid PaliGemma config: {e}")))?;
        Ok(Config { vlm, embedding_dim })
    }
}

/// The ColPali retrieval model. Load it at the checkpoint root.
pub struct ColPali {
    vision_tower: siglip::VisionModel,
    multi_modal_projector: Linear,
    language_model: gemma::Model,
    embedding_proj: Linear,
    embedding_dim: usize,
    image_token_index: u32,
}

impl ColPali {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let vision = &cfg.vlm.vision_config;
        let text = &cfg.vlm.text_config;
        let vision_tower =
            siglip::VisionModel::load(vb.pp("vision_tower").pp("vision_model"), vision)?;
        let multi_modal_projector = linear(
            vision.hidden_size,
            text.hidden_size,
            vb.pp("multi_modal_projector").pp("linear"),
        )?;
        let language_model = gemma::Model::load(vb.pp("language_model").pp("model"), text)?;
        let head = HEAD_NAMES
            .iter()
            .find(|name| vb.contains_tensor(&format!("{name}.weight")))
            .ok_or_else(|| {
                TesseraError::Config(format!(
                    "no ColPali projection in the checkpoint (looked for {})",
                    HEAD_NAMES.join(", ")
                ))
            })?;
        let (embedding_dim, stored_in) = vb.pp(head).get_unchecked("weight")?.dims2()?;
        if let Some(configured) = cfg.embedding_dim.filter(|&d| d != embedding_dim) {
            return Err(TesseraError::Config(format!(
                "config.json says embedding_dim {configured} but '{head}.weight' projects to {embedding_dim}"
            )));
        }
        let embedding_proj = linear(stored_in, embedding_dim, vb.pp(head))?;
        Ok(ColPali {
            vision_tower,
            multi_modal_projector,
            language_model,
            embedding_proj,
            embedding_dim,
            image_token_index: cfg.vlm.image_token_index,
        })
    }

    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }

    pub fn image_token_index(&self) -> u32 {
        self.image_token_index
    }

    /// Patch rows per image.
    pub fn num_patches(&self) -> usize {
        self.vision_tower.config().num_patches()
    }

    /// Side of the square images the vision tower takes.
    pub fn image_size(&self) -> usize {
        self.vision_tower.config().image_size
    }

    /// SigLIP output `(batch, patches, vision_hidden)`.
    pub fn vision_hidden_states(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.vision_tower.forward(pixel_values)
    }

    /// Projected image features `(batch, patches, text_hidden)`; PaliGemma inserts them
    /// without Gemma's sqrt(hidden) embedding scale.
    pub fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let hidden = self.vision_hidden_states(pixel_values)?;
        Ok(self.multi_modal_projector.forward(&hidden)?)
    }

    /// Gemma's final hidden states of documents: the image features of `pixel_values`
    /// at the `<image>` positions, then the prompt tokens `prompt_ids`.
    pub fn document_hidden_states(
        &self,
        pixel_values: &Tensor,
        prompt_ids: &[u32],
    ) -> Result<Tensor> {
        let features = self.image_features(pixel_values)?;
        let batch = features.dim(0)?;
        let ids = Tensor::new(prompt_ids, features.device())?
            .unsqueeze(0)?
            .repeat((batch, 1))?;
        let prompt = self.language_model.embed(&ids)?;
        let embeds = Tensor::cat(&[&features.to_dtype(prompt.dtype())?, &prompt], 1)?;
        let len = embeds.dim(1)?;
        self.language_model
            .forward_embeds(&embeds, &vec![len; batch])
    }

    /// Gemma's final hidden states of text-only sequences `(batch, len)`, right-padded:
    /// `lengths[i]` tokens of row `i` are real.
    pub fn text_hidden_states(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let embeds = self.language_model.embed(ids)?;
        self.language_model.forward_embeds(&embeds, lengths)
    }

    /// The ColPali head: projection, then L2 normalisation of each row (float32).
    pub fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        let projected = self.embedding_proj.forward(hidden)?.to_dtype(DType::F32)?;
        l2_normalize(&projected)
    }
}
