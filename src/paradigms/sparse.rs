//! Sparse lexical embeddings (SPLADE): one weight per vocabulary term, as
//! sentence-transformers' `SparseEncoder.encode` computes them.

use std::path::Path;

use rayon::prelude::*;
use serde::Deserialize;

use crate::encoder::{RuntimeOptions, TextEncoder, ENCODER_PREFIXES};
use crate::error::{Result, TesseraError};
use crate::heads::splade::{SpladeHead, SpladeHeadConfig};
use crate::hub::{HubOptions, ModelSource};
use crate::layout::{named_prompt, read_optional_json, PromptSide, SentenceTransformersLayout};
use crate::matrix::Matrix;
use crate::paradigms::common::{
    check_batch_size, check_common, check_max_length, common_builder_setters, quantize_setter,
    resolve_max_length, resolve_model, text_builder_setters, tokenize_checked, with_prefix,
    EncodeOptions, DEFAULT_BATCH_SIZE,
};

use crate::progress::Progress;
use crate::registry::Paradigm;

/// sentence-transformers modules a SPLADE pipeline may list; anything else (inference-free
/// routers, static embeddings, CSR) computes something this head does not.
const SPLADE_MODULES: &[&str] = &["MLMTransformer", "Transformer", "SpladePooling"];

/// A sparse vector over a vocabulary: ascending term ids and their (positive) weights.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
    pub vocab_size: usize,
}

/// The largest vocabulary a sparse vector may index (its term ids are int32 in Python).
pub const MAX_VOCAB_SIZE: usize = 1 << 31;

impl SparseVector {
    /// Builds a vector from term ids and weights in any order; ids must be distinct
    /// and inside the vocabulary.
    pub fn new(indices: Vec<u32>, values: Vec<f32>, vocab_size: usize) -> Result<Self> {
        if vocab_size > MAX_VOCAB_SIZE {
            return Err(TesseraError::Config(format!(
                "vocab_size {vocab_size} is larger than 2**31: term ids are int32"
            )));
        }
        if indices.len() != values.len() {
            return Err(TesseraError::DimensionMismatch {
                expected: indices.len(),
                actual: values.len(),
            });
        }
        let mut pairs: Vec<(u32, f32)> = indices.into_iter().zip(values).collect();
        pairs.sort_unstable_by_key(|&(id, _)| id);
        if let Some(&(id, _)) = pairs.iter().find(|&&(id, _)| id as usize >= vocab_size) {
            return Err(TesseraError::DimensionMismatch {
                expected: vocab_size,
                actual: id as usize + 1,
            });
        }
        if let Some(pair) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(TesseraError::Config(format!(
                "sparse vector lists term id {} twice",
                pair[0].0
            )));
        }
        let (indices, values) = pairs.into_iter().unzip();
        Ok(SparseVector {
            indices,
            values,
            vocab_size,
        })
    }

    /// The non-zero entries of a dense vector.
    pub fn from_dense(dense: &[f32]) -> Self {
        let (indices, values) = dense
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != 0.0)
            .map(|(i, &v)| (i as u32, v))
            .unzip();
        SparseVector {
            indices,
            values,
            vocab_size: dense.len(),
        }
    }

    /// Number of non-zero terms.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Fraction of vocabulary dimensions that are zero.
    pub fn sparsity(&self) -> f32 {
        if self.vocab_size == 0 {
            return 1.0;
        }
        1.0 - self.len() as f32 / self.vocab_size as f32
    }

    /// `(term id, weight)` pairs in ascending id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.indices
            .iter()
            .copied()
            .zip(self.values.iter().copied())
    }

    /// [`to_dense`](Self::to_dense), or `OutOfMemory` when the vocabulary is too large
    /// to hold densely.
    pub fn try_to_dense(&self) -> Result<Vec<f32>> {
        let mut dense = Vec::new();
        dense.try_reserve_exact(self.vocab_size).map_err(|_| {
            TesseraError::OutOfMemory(format!(
                "a dense vector of {} terms ({} MB) cannot be allocated; keep it sparse",
                self.vocab_size,
                self.vocab_size / (1 << 18)
            ))
        })?;
        dense.resize(self.vocab_size, 0.0);
        for (id, value) in self.iter() {
            dense[id as usize] = value;
        }
        Ok(dense)
    }

    pub fn to_dense(&self) -> Vec<f32> {
        let mut dense = vec![0.0; self.vocab_size];
        for (id, value) in self.iter() {
            dense[id as usize] = value;
        }
        dense
    }

    /// Dot product over the shared terms; both vectors must share a vocabulary.
    pub fn dot(&self, other: &SparseVector) -> Result<f32> {
        if self.vocab_size != other.vocab_size {
            return Err(TesseraError::DimensionMismatch {
                expected: self.vocab_size,
                actual: other.vocab_size,
            });
        }
        // Merge of two ascending id lists; f64 keeps sums over thousands of terms exact
        // enough that `a.dot(b) == b.dot(a)` and the order of terms does not matter.
        let (mut i, mut j, mut sum) = (0, 0, 0f64);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += f64::from(self.values[i]) * f64::from(other.values[j]);
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(sum as f32)
    }

    /// The `k` heaviest terms (all when `None`), heaviest first; equal weights go by
    /// lower id first so the order is deterministic.
    pub fn top(&self, k: Option<usize>) -> Vec<(u32, f32)> {
        let mut pairs: Vec<(u32, f32)> = self.iter().collect();
        pairs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        pairs.truncate(k.unwrap_or(usize::MAX));
        pairs
    }
}

/// Optional pruning of every encoded vector.
#[derive(Debug, Clone, Copy, Default)]
struct Pruning {
    top_k: Option<usize>,
    min_weight: Option<f32>,
}

impl Pruning {
    /// The positive weights of a dense row that survive the pruning.
    fn apply(&self, row: &[f32]) -> SparseVector {
        let floor = self.min_weight.unwrap_or(0.0);
        let mut pairs: Vec<(u32, f32)> = row
            .iter()
            .enumerate()
            .filter(|(_, &v)| v > 0.0 && v >= floor)
            .map(|(i, &v)| (i as u32, v))
            .collect();
        if let Some(k) = self.top_k.filter(|&k| k < pairs.len()) {
            pairs.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            pairs.truncate(k);
            pairs.sort_unstable_by_key(|&(id, _)| id);
        }
        let (indices, values) = pairs.into_iter().unzip();
        SparseVector {
            indices,
            values,
            vocab_size: row.len(),
        }
    }
}

fn check_top_k(top_k: usize) -> Result<()> {
    if top_k == 0 {
        return Err(TesseraError::Config("top_k must be at least 1".into()));
    }
    Ok(())
}

fn check_min_weight(min_weight: f32) -> Result<()> {
    if !min_weight.is_finite() || min_weight < 0.0 {
        return Err(TesseraError::Config(format!(
            "min_weight must be a finite number >= 0, got {min_weight}"
        )));
    }
    Ok(())
}

/// Configures and loads a [`SparseEmbedder`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SparseBuilder {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(flatten)]
    runtime: RuntimeOptions,
    #[serde(rename = "revision", with = "crate::hub::revision_only")]
    hub: HubOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_weight: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_prefix: Option<String>,
}

impl SparseBuilder {
    common_builder_setters!();
    quantize_setter!();
    text_builder_setters!();

    pub fn new() -> Self {
        SparseBuilder {
            hub: HubOptions::from_env(),
            ..Default::default()
        }
    }

    /// Keeps only the `top_k` heaviest terms of each vector.
    pub fn top_k(mut self, top_k: usize) -> Self {
        self.top_k = Some(top_k);
        self
    }

    /// Drops terms whose weight is below `min_weight`.
    pub fn min_weight(mut self, min_weight: f32) -> Self {
        self.min_weight = Some(min_weight);
        self
    }

    /// Checks what can be checked before loading.
    pub fn validate(&self) -> Result<()> {
        check_common(&self.runtime, self.batch_size)?;
        if let Some(n) = self.max_length {
            check_max_length(n)?;
        }
        if let Some(k) = self.top_k {
            check_top_k(k)?;
        }
        if let Some(w) = self.min_weight {
            check_min_weight(w)?;
        }
        Ok(())
    }

    pub fn build(self) -> Result<SparseEmbedder> {
        self.validate()?;
        let source = resolve_model(&self.model, &self.hub, "splade-v3")?;
        SparseEmbedder::from_source(source, self)
    }
}

/// `1_SpladePooling/config.json`.
#[derive(Debug, Deserialize)]
struct SpladePoolingConfig {
    #[serde(default = "default_strategy")]
    pooling_strategy: String,
    #[serde(default = "default_activation")]
    activation_function: String,
}

fn default_strategy() -> String {
    "max".into()
}

fn default_activation() -> String {
    "relu".into()
}

/// A loaded SPLADE model.
pub struct SparseEmbedder {
    name: String,
    encoder: TextEncoder,
    head: SpladeHead,
    max_length: usize,
    batch_size: usize,
    pruning: Pruning,
    query_prefix: Option<String>,
    document_prefix: Option<String>,
    /// `config_sentence_transformers.json`'s named prompts.
    prompts: std::collections::BTreeMap<String, String>,
}

impl SparseEmbedder {
    /// A prompt the model names in `config_sentence_transformers.json` (`prompt_name=`).
    pub fn prompt(&self, name: &str) -> Result<&str> {
        named_prompt(&self.prompts, name)
    }

    /// Loads a model with default options (registry id, repo id or directory).
    pub fn new(model: &str) -> Result<Self> {
        SparseBuilder::new().model(model).build()
    }

    pub fn builder() -> SparseBuilder {
        SparseBuilder::new()
    }

    fn from_source(source: ModelSource, options: SparseBuilder) -> Result<Self> {
        if let Some(spec) = source.spec {
            if spec.paradigm != Paradigm::Sparse {
                return Err(TesseraError::Config(format!(
                    "'{}' is a {} model, not a sparse one; use Tessera(\"{}\") or the {} class",
                    spec.id, spec.paradigm, spec.id, spec.paradigm
                )));
            }
        }
        let dir = source.dir.as_path();
        let model_name = dir.display().to_string();
        let layout = SentenceTransformersLayout::read(dir)?;
        check_pipeline(dir, &layout)?;
        let runtime = options.runtime.resolve()?;
        let _packing = runtime.packing();
        let (encoder, vb) = TextEncoder::load(dir, &runtime, ENCODER_PREFIXES)?;
        let encoder = TextEncoder {
            tokenizer: encoder
                .tokenizer
                .with_lowercase(layout.sentence_bert.do_lower_case),
            ..encoder
        };
        let model_type = encoder.model_type();
        let head = SpladeHeadConfig::for_model(
            model_type,
            &encoder.config,
            encoder.hidden_size(),
            encoder.model.word_embeddings().dims()[0],
        )
        .and_then(|config| SpladeHead::load(&vb, encoder.model.word_embeddings(), &config))
        .map_err(|e| {
            let reason = match e {
                TesseraError::Tensor(inner) => inner.to_string(),
                TesseraError::Config(message) => message,
                other => return other,
            };
            TesseraError::load(
                model_name.clone(),
                format!("no usable masked-LM head, so not a SPLADE model: {reason}"),
            )
        })?;
        let spec = source.spec;
        let max_length = resolve_max_length(
            options.max_length,
            layout.max_seq_length().or(spec.and_then(|s| s.max_length)),
            encoder.max_positions(),
        )?;
        Ok(SparseEmbedder {
            prompts: layout.prompts(),
            name: source.name,
            max_length,
            batch_size: options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            pruning: Pruning {
                top_k: options.top_k,
                min_weight: options.min_weight,
            },
            query_prefix: layout.resolve_prompt(
                &options.query_prefix,
                spec.and_then(|s| s.query_prefix.as_ref()),
                PromptSide::Query,
            ),
            document_prefix: layout.resolve_prompt(
                &options.document_prefix,
                spec.and_then(|s| s.document_prefix.as_ref()),
                PromptSide::Document,
            ),
            encoder,
            head,
        })
    }

    /// The model id it was built from.
    pub fn model(&self) -> &str {
        &self.name
    }

    /// Number of dimensions of every vector (the MLM vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.head.vocab_size()
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn top_k(&self) -> Option<usize> {
        self.pruning.top_k
    }

    pub fn min_weight(&self) -> Option<f32> {
        self.pruning.min_weight
    }

    pub fn query_prefix(&self) -> Option<&str> {
        self.query_prefix.as_deref()
    }

    pub fn document_prefix(&self) -> Option<&str> {
        self.document_prefix.as_deref()
    }

    pub fn device(&self) -> &candle_core::Device {
        &self.encoder.device
    }

    /// Embeds one text.
    pub fn encode(&self, text: &str) -> Result<SparseVector> {
        self.single(self.encode_batch(&[text], &EncodeOptions::default())?)
    }

    /// Embeds many texts, in input order.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        options: &EncodeOptions,
    ) -> Result<Vec<SparseVector>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batch_size = options.batch_size.unwrap_or(self.batch_size);
        check_batch_size(batch_size)?;
        let sequences = tokenize_checked(&self.encoder.tokenizer, texts, self.max_length, options)?;
        let progress = Progress::new(texts.len(), "encoding", options.show_progress);
        self.encoder
            .run(&sequences, None, batch_size, &progress, |packed, hidden| {
                let weights = self.head.forward(hidden, packed.spans())?;
                Ok(weights
                    .iter_rows()
                    .map(|row| self.pruning.apply(row))
                    .collect())
            })
    }

    fn single(&self, mut vectors: Vec<SparseVector>) -> Result<SparseVector> {
        vectors
            .pop()
            .ok_or_else(|| TesseraError::Encoding("the model returned no vector".into()))
    }

    /// Embeds one query (with the query prefix, if the model or builder sets one).
    pub fn encode_query(&self, text: &str) -> Result<SparseVector> {
        self.single(self.encode_queries(&[text], &EncodeOptions::default())?)
    }

    /// Embeds one document (with the document prefix, if any).
    pub fn encode_document(&self, text: &str) -> Result<SparseVector> {
        self.single(self.encode_documents(&[text], &EncodeOptions::default())?)
    }

    pub fn encode_queries(
        &self,
        texts: &[&str],
        options: &EncodeOptions,
    ) -> Result<Vec<SparseVector>> {
        with_prefix(texts, self.query_prefix.as_deref(), |t| {
            self.encode_batch(t, options)
        })
    }

    pub fn encode_documents(
        &self,
        texts: &[&str],
        options: &EncodeOptions,
    ) -> Result<Vec<SparseVector>> {
        with_prefix(texts, self.document_prefix.as_deref(), |t| {
            self.encode_batch(t, options)
        })
    }

    /// Dot product of two sparse vectors (the similarity SPLADE is trained for).
    pub fn similarity(&self, a: &SparseVector, b: &SparseVector) -> Result<f32> {
        a.dot(b)
    }

    /// Dot products of every vector of `a` with every vector of `b`: `(a.len(), b.len())`.
    pub fn similarity_matrix(&self, a: &[SparseVector], b: &[SparseVector]) -> Result<Matrix> {
        if let Some(first) = a.iter().chain(b).next() {
            if let Some(other) = a.iter().chain(b).find(|v| v.vocab_size != first.vocab_size) {
                return Err(TesseraError::DimensionMismatch {
                    expected: first.vocab_size,
                    actual: other.vocab_size,
                });
            }
        }
        let rows: Vec<Vec<f32>> = a
            .par_iter()
            .map(|x| b.iter().map(|y| x.dot(y)).collect::<Result<Vec<f32>>>())
            .collect::<Result<_>>()?;
        Ok(Matrix {
            rows: a.len(),
            cols: b.len(),
            data: rows.concat(),
        })
    }

    /// The `top_k` heaviest terms (all when `None`) as vocabulary strings, heaviest first
    /// (`##` continuation pieces as stored; equal weights by lower id first).
    pub fn tokens(&self, vector: &SparseVector, top_k: Option<usize>) -> Vec<(String, f32)> {
        vector
            .top(top_k)
            .into_iter()
            .map(|(id, value)| (self.encoder.tokenizer.id_to_token(id), value))
            .collect()
    }

    /// Tokens of each whole text, special tokens included, before any truncation: more
    /// than `max_length()` means `encode` cuts it.
    pub fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>> {
        self.encoder.tokenizer.count_tokens(texts)
    }

    /// Token ids of each text exactly as the model sees them (special tokens added,
    /// truncated to `max_length()`).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        self.encoder.tokenizer.encode_batch(texts, self.max_length)
    }
}

/// Refuses sentence-transformers pipelines that compute something other than SPLADE
/// max pooling of `log(1 + relu(logits))`.
fn check_pipeline(dir: &Path, layout: &SentenceTransformersLayout) -> Result<()> {
    if let Some(module) = layout
        .modules
        .iter()
        .find(|m| !SPLADE_MODULES.contains(&m.class_name()))
    {
        return Err(TesseraError::load(
            dir.display().to_string(),
            format!(
                "sparse module '{}' is not supported (only MLMTransformer + SpladePooling)",
                module.class_name()
            ),
        ));
    }
    let Some(pool_dir) = layout.module_dir(dir, "SpladePooling") else {
        return Ok(()); // a bare BertForMaskedLM checkpoint: SPLADE's max / relu
    };
    let path = pool_dir.join("config.json");
    let config: SpladePoolingConfig = read_optional_json(&path)?.unwrap_or(SpladePoolingConfig {
        pooling_strategy: default_strategy(),
        activation_function: default_activation(),
    });
    if config.pooling_strategy != "max" || config.activation_function != "relu" {
        return Err(TesseraError::load(
            path.display().to_string(),
            format!(
                "SpladePooling with pooling_strategy '{}' and activation_function '{}' is not \
                 supported (only 'max' with 'relu')",
                config.pooling_strategy, config.activation_function
            ),
        ));
    }
    Ok(())
}
