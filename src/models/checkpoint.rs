//! Safetensors checkpoints with the naming variants real models ship: an architecture
//! prefix (`bert.`) or none, and legacy LayerNorm names (`gamma` / `beta`).
//!
//! Tensors are read from the file one at a time with positioned reads, straight into the
//! buffer the tensor keeps: loading costs the weights' size in memory and no more (a
//! memory map would keep every touched page of the file resident beside the copy).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::error::{Result, TesseraError};

/// Where one tensor lies in one file.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    /// Absolute byte range in the file.
    start: u64,
    end: u64,
}

#[derive(Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// Weights of one model, looked up under the names the model code asks for.
pub struct Checkpoint {
    files: Vec<(PathBuf, File)>,
    entries: HashMap<String, Entry>,
    names: HashSet<String>,
    prefixes: Vec<String>,
}

impl Checkpoint {
    /// Opens safetensors files; `prefixes` are tried in order when a name is absent.
    pub fn open(paths: &[PathBuf], prefixes: &[&str]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut entries = HashMap::new();
        for (index, path) in paths.iter().enumerate() {
            if !path.is_file() {
                return Err(TesseraError::load(
                    path.display().to_string(),
                    "weights file not found (only safetensors checkpoints are supported)",
                ));
            }
            let file = File::open(path).map_err(|e| TesseraError::io(path, e))?;
            for (name, entry) in read_header(&file, path, index)? {
                entries.insert(name, entry);
            }
            files.push((path.clone(), file));
        }
        let names = entries.keys().cloned().collect();
        Ok(Checkpoint {
            files,
            entries,
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

    /// Reads one stored tensor into memory of its own dtype, on the CPU.
    fn read(&self, stored: &str) -> candle_core::Result<Tensor> {
        let entry = self
            .entries
            .get(stored)
            .ok_or_else(|| candle_core::Error::Msg(format!("no tensor '{stored}'")))?;
        let (path, file) = &self.files[entry.file];
        let len = (entry.end - entry.start) as usize;
        let count: usize = entry.shape.iter().product();
        if len != count * entry.dtype.size_in_bytes() {
            candle_core::bail!(
                "tensor '{stored}' of {}: {len} bytes for shape {:?}",
                path.display(),
                entry.shape
            );
        }
        if entry.dtype == DType::F32 && cfg!(target_endian = "little") {
            // Straight into the tensor's own buffer: no second copy of a large table.
            let mut values = vec![0f32; count];
            read_at(file, bytemuck::cast_slice_mut(&mut values), entry.start)
                .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
            return Tensor::from_vec(values, entry.shape.clone(), &Device::Cpu);
        }
        let mut bytes = vec![0u8; len];
        read_at(file, &mut bytes, entry.start)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        Tensor::from_raw_buffer(&bytes, entry.dtype, &entry.shape, &Device::Cpu)
    }
}

/// The tensors a safetensors header lists, checked against the file's length.
fn read_header(file: &File, path: &Path, index: usize) -> Result<Vec<(String, Entry)>> {
    let corrupt = |reason: String| {
        TesseraError::load(
            path.display().to_string(),
            format!("not a valid safetensors file (truncated or corrupt?): {reason}"),
        )
    };
    let size = file
        .metadata()
        .map_err(|e| TesseraError::io(path, e))?
        .len();
    let mut prefix = [0u8; 8];
    read_at(file, &mut prefix, 0).map_err(|e| corrupt(format!("no header: {e}")))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > size.saturating_sub(8) || header_len > 100 << 20 {
        return Err(corrupt(format!(
            "a header of {header_len} bytes in a file of {size}"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    read_at(file, &mut header, 8).map_err(|e| corrupt(e.to_string()))?;
    let raw: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("header: {e}")))?;
    let data_start = 8 + header_len;
    let mut entries = Vec::with_capacity(raw.len());
    let mut data_end = 0;
    for (name, value) in raw {
        if name == "__metadata__" {
            continue;
        }
        let info: HeaderEntry =
            serde_json::from_value(value).map_err(|e| corrupt(format!("'{name}': {e}")))?;
        let dtype = match info.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F64" => DType::F64,
            "I64" => DType::I64,
            "U32" => DType::U32,
            "U8" => DType::U8,
            // Tensors of other types (int8 buffers, bools) are never asked for.
            _ => continue,
        };
        let (begin, end) = info.data_offsets;
        if begin > end || data_start + end > size {
            return Err(corrupt(format!(
                "tensor '{name}' lies past the end of the file ({} bytes)",
                size
            )));
        }
        data_end = data_end.max(end);
        entries.push((
            name,
            Entry {
                file: index,
                dtype,
                shape: info.shape,
                start: data_start + begin,
                end: data_start + end,
            },
        ));
    }
    if data_start + data_end > size {
        return Err(corrupt("the data is cut short".into()));
    }
    Ok(entries)
}

#[cfg(unix)]
fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buffer: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buffer.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_read(file, buffer, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer = &mut buffer[n..];
        offset += n as u64;
    }
    Ok(())
}

fn legacy_layer_norm_name(name: &str) -> Option<String> {
    if let Some(stem) = name.strip_suffix("LayerNorm.weight") {
        Some(format!("{stem}LayerNorm.gamma"))
    } else {
        name.strip_suffix("LayerNorm.bias")
            .map(|stem| format!("{stem}LayerNorm.beta"))
    }
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
        self.read(&stored)?.to_dtype(dtype)?.to_device(device)
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
