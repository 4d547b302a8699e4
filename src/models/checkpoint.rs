//! Safetensors checkpoints with the naming variants real models ship: an architecture
//! prefix (`bert.`) or none, and legacy LayerNorm names (`gamma` / `beta`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::error::{Result, TesseraError};

/// Weights of one model, looked up under the names the model code asks for.
pub struct Checkpoint {
    tensors: MmapedSafetensors,
    names: HashSet<String>,
    prefixes: Vec<String>,
}

impl Checkpoint {
    /// Opens safetensors files; `prefixes` are tried in order when a name is absent.
    pub fn open(paths: &[PathBuf], prefixes: &[&str]) -> Result<Self> {
        for path in paths {
            if !path.is_file() {
                return Err(TesseraError::load(
                    path.display().to_string(),
                    "weights file not found (only safetensors checkpoints are supported)",
                ));
            }
        }
        // SAFETY: the files are mapped read-only; like every mmap-based loader we rely on
        // nobody rewriting a checkpoint while a model built from it is alive.
        let tensors = unsafe { MmapedSafetensors::multi(paths) }.map_err(|e| {
            TesseraError::load(
                display_paths(paths),
                format!("not a valid safetensors file (truncated or corrupt?): {e}"),
            )
        })?;
        let names = tensors
            .tensors()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        Ok(Checkpoint {
            tensors,
            names,
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        })
    }

    /// The stored name for a requested one, if any variant exists.
    pub fn resolve(&self, name: &str) -> Option<String> {
        let legacy = legacy_layer_norm_name(name);
        let bases = std::iter::once(name.to_string()).chain(legacy);
        for base in bases {
            if self.names.contains(&base) {
                return Some(base);
            }
            for prefix in &self.prefixes {
                let prefixed = format!("{prefix}{base}");
                if self.names.contains(&prefixed) {
                    return Some(prefixed);
                }
            }
        }
        None
    }

    pub fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    /// A VarBuilder over this checkpoint, converting to `dtype` on `device`.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }
}

fn legacy_layer_norm_name(name: &str) -> Option<String> {
    if let Some(stem) = name.strip_suffix("LayerNorm.weight") {
        Some(format!("{stem}LayerNorm.gamma"))
    } else {
        name.strip_suffix("LayerNorm.bias")
            .map(|stem| format!("{stem}LayerNorm.beta"))
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl SimpleBackend for Checkpoint {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.get_unchecked(name, dtype, device)?;
        if tensor.shape() != &shape {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for weight '{name}'"),
                expected: shape,
                got: tensor.shape().clone(),
            });
        }
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let stored = self.resolve(name).ok_or_else(|| {
            candle_core::Error::Msg(format!("weight '{name}' is missing from the checkpoint"))
        })?;
        self.tensors.load(&stored, device)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}

/// The safetensors files of a model directory: `model.safetensors`, or the shards
/// listed by `model.safetensors.index.json`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        return Ok(shard_names(&index)?
            .into_iter()
            .map(|s| dir.join(s))
            .collect());
    }
    let has_other_weights = [
        "pytorch_model.bin",
        "model.bin",
        "tf_model.h5",
        "model.onnx",
    ]
    .iter()
    .any(|f| dir.join(f).exists());
    let reason = if has_other_weights {
        "no model.safetensors: only safetensors weights are loaded (convert the checkpoint with \
         `safetensors` first)"
    } else {
        "no model.safetensors (or model.safetensors.index.json) in the model directory"
    };
    Err(TesseraError::load(dir.display().to_string(), reason))
}

/// The shard files a `model.safetensors.index.json` maps weights to, sorted, once each.
pub fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| TesseraError::io(index, e))?;
    let parsed: HashMap<String, serde_json::Value> = serde_json::from_str(&text).map_err(|e| {
        TesseraError::load(index.display().to_string(), format!("invalid JSON: {e}"))
    })?;
    let mut shards: Vec<String> = parsed
        .get("weight_map")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    shards.sort();
    shards.dedup();
    if shards
        .iter()
        .any(|s| s.contains("..") || s.starts_with('/'))
    {
        return Err(TesseraError::load(
            index.display().to_string(),
            "the index names a shard outside the model directory",
        ));
    }
    Ok(shards)
}
