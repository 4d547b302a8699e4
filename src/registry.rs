//! The model registry: `models.json`, embedded at build time, as typed [`ModelSpec`]s.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TesseraError};

const REGISTRY_JSON: &str = include_str!("../models.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Paradigm {
    Dense,
    Multivector,
    Sparse,
    Vision,
    Timeseries,
}

impl Paradigm {
    pub const ALL: [Paradigm; 5] = [
        Paradigm::Dense,
        Paradigm::Multivector,
        Paradigm::Sparse,
        Paradigm::Vision,
        Paradigm::Timeseries,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Paradigm::Dense => "dense",
            Paradigm::Multivector => "multivector",
            Paradigm::Sparse => "sparse",
            Paradigm::Vision => "vision",
            Paradigm::Timeseries => "timeseries",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        let wanted = name.trim().to_ascii_lowercase().replace(['-', '_'], "");
        Paradigm::ALL
            .into_iter()
            .find(|p| p.as_str() == wanted)
            .ok_or_else(|| {
                TesseraError::Config(format!(
                    "unknown paradigm '{name}'; expected one of dense, multivector, sparse, vision, timeseries"
                ))
            })
    }
}

impl std::fmt::Display for Paradigm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Pooling of token states into one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolingKind {
    Cls,
    Mean,
    Last,
}

/// One registry entry. Fields a paradigm does not use are `None` / empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSpec {
    pub id: String,
    pub paradigm: Paradigm,
    pub huggingface_id: String,
    pub architecture: String,
    #[serde(default)]
    pub dimension: Option<usize>,
    #[serde(default)]
    pub matryoshka_dimensions: Vec<usize>,
    #[serde(default)]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub query_length: Option<usize>,
    #[serde(default)]
    pub pooling: Option<PoolingKind>,
    #[serde(default)]
    pub normalize: Option<bool>,
    #[serde(default)]
    pub query_prefix: Option<String>,
    #[serde(default)]
    pub document_prefix: Option<String>,
    #[serde(default)]
    pub image_size: Option<usize>,
    #[serde(default)]
    pub num_patches: Option<usize>,
    #[serde(default)]
    pub context_length: Option<usize>,
    #[serde(default)]
    pub prediction_length: Option<usize>,
    pub license: String,
    pub parameters: String,
    pub size_mb: u64,
    pub description: String,
    /// Whether this build can run the model; entries that cannot are kept so users
    /// get a precise error rather than an unknown id.
    pub supported: bool,
}

#[derive(Deserialize)]
struct RegistryFile {
    models: Vec<ModelSpec>,
}

/// Every registry entry, parsed once.
pub fn all_models() -> &'static [ModelSpec] {
    static MODELS: OnceLock<Vec<ModelSpec>> = OnceLock::new();
    MODELS.get_or_init(|| {
        // The file is part of the crate and checked by the registry tests.
        serde_json::from_str::<RegistryFile>(REGISTRY_JSON)
            .expect("models.json embedded in the crate is valid")
            .models
    })
}

/// Entries of one paradigm, or all of them.
pub fn list_models(paradigm: Option<Paradigm>) -> Vec<&'static ModelSpec> {
    all_models()
        .iter()
        .filter(|m| paradigm.is_none_or(|p| m.paradigm == p))
        .collect()
}

/// Looks a name up by registry id or Hugging Face repo id, ignoring case.
pub fn find(name: &str) -> Option<&'static ModelSpec> {
    let wanted = name.trim();
    all_models().iter().find(|m| {
        m.id.eq_ignore_ascii_case(wanted) || m.huggingface_id.eq_ignore_ascii_case(wanted)
    })
}

/// The registry ids closest to `name`, best first, for "did you mean" messages.
pub fn suggestions(name: &str) -> Vec<String> {
    let wanted = name.trim().to_ascii_lowercase();
    let mut scored: Vec<(f64, &str)> = all_models()
        .iter()
        .map(|m| {
            let by_id = strsim::jaro_winkler(&wanted, &m.id.to_ascii_lowercase());
            let by_hf = strsim::jaro_winkler(&wanted, &m.huggingface_id.to_ascii_lowercase());
            (by_id.max(by_hf), m.id.as_str())
        })
        .filter(|(score, _)| *score >= 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(3)
        .map(|(_, id)| id.to_string())
        .collect()
}

impl ModelSpec {
    /// Checks a Matryoshka dimension against the registry; the full dimension is always valid.
    pub fn check_dimension(&self, requested: usize) -> Result<()> {
        let full = self.dimension.unwrap_or(0);
        if requested == full || self.matryoshka_dimensions.contains(&requested) {
            return Ok(());
        }
        let mut supported = self.matryoshka_dimensions.clone();
        if !supported.contains(&full) && full > 0 {
            supported.push(full);
        }
        supported.sort_unstable();
        Err(TesseraError::UnsupportedDimension {
            model: self.id.clone(),
            requested,
            supported,
        })
    }
}
