//! A text encoder: tokenizer plus the transformer family `config.json` names, run over
//! length-sorted packed batches.

use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::device::{precision, DType, Device, Quantize};
use crate::error::{Result, TesseraError};
use crate::layers::packed::{LoadingFormat, WeightFormat};
use crate::layout::read_json;
use crate::models::checkpoint::{weight_files, Checkpoint};
use crate::models::{load_text_model, TextModel};
use crate::packing::PackedBatch;
use crate::progress::Progress;
use crate::text::{length_sorted_batches, TextTokenizer};

/// State-dict prefixes an encoder may sit under in task checkpoints (`BertForMaskedLM`,
/// `XLMRobertaForMaskedLM`, `ModernBertForMaskedLM`, colbert-ai's `HF_ColBERT`).
pub const ENCODER_PREFIXES: &[&str] = &["bert.", "roberta.", "model."];

/// Tokens per chunk of a packed batch on the CPU (see [`PackedBatch::chunks`]).
/// Measured on all-MiniLM-L6-v2 (2 cores, 32 MiB L3): 2048 beat 512, 1024 and 4096 by
/// 1-5% and one unchunked pass by about 8%.
const CPU_CHUNK_TOKENS: usize = 2048;

pub struct TextEncoder {
    pub tokenizer: TextTokenizer,
    pub model: Box<dyn TextModel>,
    pub device: candle_core::Device,
    /// `config.json` as read, for heads that need more of it.
    pub config: serde_json::Value,
}

/// What every text paradigm's builder shares.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RuntimeOptions {
    pub device: Device,
    pub dtype: DType,
    /// Weight quantization (text encoders on the CPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantize: Option<Quantize>,
}

/// Where a model loads and in what precision, resolved once per load.
pub struct Resolved {
    pub device: candle_core::Device,
    /// The dtype tensors load in.
    pub dtype: candle_core::DType,
    /// How linear-layer weights are stored (CPU).
    pub weights: WeightFormat,
}

impl RuntimeOptions {
    /// Opens the device and checks it can run the dtype and quantization.
    pub fn resolve(&self) -> Result<Resolved> {
        let device = self.device.to_candle()?;
        let (dtype, weights) = precision(self.dtype, self.quantize, &device)?;
        Ok(Resolved {
            device,
            dtype,
            weights,
        })
    }

    /// [`Self::resolve`] for the families int8 weights are not offered for.
    pub fn resolve_unquantized(&self, family: &str) -> Result<Resolved> {
        if let Some(quantize) = self.quantize {
            return Err(TesseraError::Config(format!(
                "quantize='{quantize}' is offered for the text encoders (dense, multi-vector, \
                 sparse), not for {family} models"
            )));
        }
        self.resolve()
    }
}

impl Resolved {
    /// Packs the weights of linear layers built while the guard lives.
    pub fn packing(&self) -> LoadingFormat {
        LoadingFormat::enter(self.weights)
    }
}

impl TextEncoder {
    /// Loads `config.json`, `tokenizer.json` and the safetensors weights of `dir`.
    /// `prefixes` are the state-dict prefixes the encoder may sit under.
    /// Also returns the root VarBuilder, from which heads load their own weights.
    pub fn load(
        dir: &Path,
        runtime: &Resolved,
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
            .unwrap_or("bert")
            .to_string();
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let device = runtime.device.clone();
        let _packing = runtime.packing();
        let vb = Checkpoint::open(&weight_files(dir)?, prefixes)?
            .into_var_builder(runtime.dtype, &device);
        // A config that contradicts the weights (or itself) is a broken model directory.
        let model = load_text_model(&model_type, raw.clone(), vb.clone()).map_err(|e| match e {
            TesseraError::Tensor(inner) => {
                TesseraError::load(dir.display().to_string(), inner.to_string())
            }
            TesseraError::Config(message) => TesseraError::load(dir.display().to_string(), message),
            other => other,
        })?;
        Ok((
            TextEncoder {
                tokenizer,
                model,
                device,
                config: raw,
            },
            vb,
        ))
    }

    /// `config.json`'s `model_type` (BERT when absent).
    pub fn model_type(&self) -> &str {
        self.config
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("bert")
    }

    /// Longest input the position encoding allows.
    pub fn max_positions(&self) -> usize {
        self.model.max_positions()
    }

    pub fn hidden_size(&self) -> usize {
        self.model.hidden_size()
    }

    /// Last hidden states of a packed batch, checked against the model's limits.
    pub fn forward(&self, batch: &PackedBatch) -> Result<Tensor> {
        let hidden = self.model.hidden_size();
        let table = self.model.word_embeddings();
        if batch.total_tokens() == 0 {
            return Ok(Tensor::zeros((0, hidden), table.dtype(), &self.device)?);
        }
        let longest = batch.max_len();
        if longest > self.model.max_positions() {
            return Err(TesseraError::Encoding(format!(
                "a sequence of {longest} tokens exceeds the model's {} positions",
                self.model.max_positions()
            )));
        }
        let vocab = table.dims().first().copied().unwrap_or(0);
        if let Some(bad) = batch.ids().iter().find(|&&id| id as usize >= vocab) {
            return Err(TesseraError::Encoding(format!(
                "token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
        if !self.device.is_cpu() {
            return Ok(self.model.forward(batch)?);
        }
        crate::threads::with_busy_helpers(|| {
            if batch.total_tokens() <= CPU_CHUNK_TOKENS {
                return Ok(self.model.forward(batch)?);
            }
            let outputs = batch
                .chunks(CPU_CHUNK_TOKENS)
                .iter()
                .map(|chunk| self.model.forward(chunk))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Tensor::cat(&outputs, 0)?)
        })
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
            crate::interrupt::checkpoint()?;
            let seqs: Vec<Vec<u32>> = batch.iter().map(|&i| sequences[i].clone()).collect();
            let keys: Option<Vec<usize>> = attended.map(|a| batch.iter().map(|&i| a[i]).collect());
            let packed = PackedBatch::new(&seqs, keys.as_deref());
            let hidden = self.forward(&packed)?;
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
