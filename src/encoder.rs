//! A text encoder: tokenizer plus BERT-family transformer loaded from a model
//! directory, run over length-sorted packed batches.

use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::device::{DType, Device};
use crate::error::{Result, TesseraError};
use crate::layout::read_json;
use crate::models::bert::{BertModel, Config as BertConfig, PackedBatch};
use crate::models::checkpoint::{weight_files, Checkpoint};
use crate::progress::Progress;
use crate::text::{length_sorted_batches, TextTokenizer};

/// Architectures a BERT-family encoder can be built from, by `config.json` `model_type`.
const BERT_MODEL_TYPES: &[&str] = &["bert"];

pub struct TextEncoder {
    pub tokenizer: TextTokenizer,
    pub model: BertModel,
    pub device: candle_core::Device,
}

/// What every text paradigm's builder shares.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    pub device: Device,
    pub dtype: DType,
}

impl TextEncoder {
    /// Loads `config.json`, `tokenizer.json` and the safetensors weights of `dir`.
    /// `prefixes` are the state-dict prefixes the encoder may sit under.
    /// Also returns the root VarBuilder, from which heads load their own weights.
    pub fn load(
        dir: &Path,
        runtime: &RuntimeOptions,
        prefixes: &[&str],
    ) -> Result<(Self, VarBuilder<'static>)> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(TesseraError::load(
                dir.display().to_string(),
                "no config.json in the model directory",
            ));
        }
        let raw: serde_json::Value = read_json(&config_path)?;
        let model_type = raw
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("bert");
        if !BERT_MODEL_TYPES.contains(&model_type) {
            return Err(TesseraError::load(
                dir.display().to_string(),
                format!(
                    "architecture '{model_type}' is not supported yet for text models (supported: {})",
                    BERT_MODEL_TYPES.join(", ")
                ),
            ));
        }
        let config: BertConfig = serde_json::from_value(raw).map_err(|e| {
            TesseraError::load(
                config_path.display().to_string(),
                format!("invalid BERT config: {e}"),
            )
        })?;
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let device = runtime.device.to_candle()?;
        let vb = Checkpoint::open(&weight_files(dir)?, prefixes)?
            .into_var_builder(runtime.dtype.to_candle(), &device);
        let model = BertModel::load(vb.clone(), &config).map_err(|e| match e {
            TesseraError::Tensor(inner) => {
                TesseraError::load(dir.display().to_string(), inner.to_string())
            }
            other => other,
        })?;
        Ok((
            TextEncoder {
                tokenizer,
                model,
                device,
            },
            vb,
        ))
    }

    /// Longest input the position embeddings allow.
    pub fn max_positions(&self) -> usize {
        self.model.config().max_position_embeddings
    }

    /// Runs `sequences` through the encoder in length-sorted packed batches of
    /// `batch_size` and maps each batch's hidden states with `head`; results come back in
    /// input order. `attended[i]` limits the attention keys of sequence `i`.
    pub fn run<T: Send>(
        &self,
        sequences: &[Vec<u32>],
        attended: Option<&[usize]>,
        batch_size: usize,
        progress: &Progress,
        head: impl Fn(&PackedBatch, &Tensor) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let mut results: Vec<Option<T>> = (0..sequences.len()).map(|_| None).collect();
        for batch in length_sorted_batches(&lengths, batch_size) {
            let seqs: Vec<Vec<u32>> = batch.iter().map(|&i| sequences[i].clone()).collect();
            let keys: Option<Vec<usize>> = attended.map(|a| batch.iter().map(|&i| a[i]).collect());
            let packed = PackedBatch::new(&seqs, keys.as_deref());
            let hidden = self.model.forward(&packed)?;
            let outputs = head(&packed, &hidden)?;
            for (index, output) in batch.iter().zip(outputs) {
                results[*index] = Some(output);
            }
            progress.advance(batch.len());
        }
        results
            .into_iter()
            .map(|r| {
                r.ok_or_else(|| TesseraError::Encoding("a batch returned too few rows".into()))
            })
            .collect()
    }
}
