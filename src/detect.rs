//! Which paradigm a model belongs to: from the registry, else from its files.

use std::path::Path;

use crate::error::Result;
use crate::hub::ModelSource;
use crate::layout::{read_optional_json, SentenceTransformersLayout};
use crate::models::checkpoint::{weight_files, Checkpoint};
use crate::registry::Paradigm;

/// The paradigm of a resolved model (SPEC §1's detection rules, in order).
pub fn paradigm_of(source: &ModelSource) -> Result<Paradigm> {
    if let Some(spec) = source.spec {
        return Ok(spec.paradigm);
    }
    paradigm_of_dir(&source.dir)
}

pub fn paradigm_of_dir(dir: &Path) -> Result<Paradigm> {
    let config: serde_json::Value =
        read_optional_json(&dir.join("config.json"))?.unwrap_or(serde_json::Value::Null);
    if config.get("chronos_config").is_some() {
        return Ok(Paradigm::Timeseries);
    }
    let model_type = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if matches!(model_type, "colpali" | "paligemma") {
        return Ok(Paradigm::Vision);
    }
    let layout = SentenceTransformersLayout::read(dir)?;
    if is_colbert(dir, &layout) {
        return Ok(Paradigm::Multivector);
    }
    let masked_lm = config
        .get("architectures")
        .and_then(|a| a.as_array())
        .is_some_and(|a| {
            a.iter()
                .any(|v| v.as_str().is_some_and(|s| s.ends_with("ForMaskedLM")))
        });
    if masked_lm || layout.module("SpladePooling").is_some() {
        return Ok(Paradigm::Sparse);
    }
    Ok(Paradigm::Dense)
}

fn is_colbert(dir: &Path, layout: &SentenceTransformersLayout) -> bool {
    if dir.join("artifact.metadata").is_file() {
        return true;
    }
    let st_type = layout.st_config.get("model_type").and_then(|v| v.as_str());
    if st_type.is_some_and(|t| t.eq_ignore_ascii_case("colbert"))
        || layout.modules.iter().any(|m| m.kind.starts_with("pylate."))
    {
        return true;
    }
    // colbert-ai checkpoints without metadata still carry the projection next to BERT.
    weight_files(dir)
        .ok()
        .and_then(|files| Checkpoint::open(&files, &[]).ok())
        .is_some_and(|c| c.contains("linear.weight"))
}
