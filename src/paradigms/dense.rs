//! Dense embeddings: one vector per text (BGE, MiniLM, ...), as sentence-transformers'
//! `SentenceTransformer.encode` computes them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::encoder::{RuntimeOptions, TextEncoder, ENCODER_PREFIXES};
use crate::error::{Result, TesseraError};
use crate::heads::normalize::l2_normalize;
use crate::heads::pooling::pool;
use crate::heads::projection::{load_dense_modules, Projection};
use crate::hub::{HubOptions, ModelSource};
use crate::layout::{
    named_prompt, read_json, PoolingConfig, PromptSide, SentenceTransformersLayout,
};
use crate::matrix::Matrix;
use crate::paradigms::common::{
    check_batch_size, check_common, check_max_length, common_builder_setters, quantize_setter,
    resolve_max_length, resolve_model, text_builder_setters, tokenize_checked, with_prefix,
    EncodeOptions, DEFAULT_BATCH_SIZE,
};
use crate::progress::Progress;
use crate::registry::{self, Paradigm, PoolingKind};
use crate::similarity::SimilarityFunction;

/// Configures and loads a [`DenseEmbedder`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DenseBuilder {
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
    dimension: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normalize: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_prefix: Option<String>,
}

impl DenseBuilder {
    common_builder_setters!();
    quantize_setter!();
    text_builder_setters!();

    pub fn new() -> Self {
        DenseBuilder {
            hub: HubOptions::from_env(),
            ..Default::default()
        }
    }

    /// Matryoshka: keep the first `dimension` components and re-normalise.
    pub fn dimension(mut self, dimension: usize) -> Self {
        self.dimension = Some(dimension);
        self
    }

    pub fn normalize(mut self, normalize: bool) -> Self {
        self.normalize = Some(normalize);
        self
    }

    /// Checks what can be checked before loading: sizes, and the dimension against
    /// the registry when the model is a registry entry.
    pub fn validate(&self) -> Result<()> {
        check_common(&self.runtime, self.batch_size)?;
        if let Some(n) = self.max_length {
            check_max_length(n)?;
        }
        if let Some(dimension) = self.dimension {
            if dimension == 0 {
                return Err(TesseraError::Matryoshka(
                    "dimension must be at least 1".into(),
                ));
            }
            if let Some(spec) = self.model.as_deref().and_then(registry::find) {
                spec.check_dimension(dimension)?;
            }
        }
        Ok(())
    }

    pub fn build(self) -> Result<DenseEmbedder> {
        self.validate()?;
        let source = resolve_model(&self.model, &self.hub, "bge-small-en-v1.5")?;
        DenseEmbedder::from_source(source, self)
    }
}

/// A loaded dense embedding model.
pub struct DenseEmbedder {
    name: String,
    encoder: TextEncoder,
    pooling: PoolingKind,
    /// sentence-transformers `Dense` modules after pooling (EmbeddingGemma's two).
    projections: Vec<Projection>,
    normalize: bool,
    model_normalizes: bool,
    normalize_override: Option<bool>,
    dimension: usize,
    full_dimension: usize,
    truncated: bool,
    max_length: usize,
    batch_size: usize,
    query_prefix: Option<String>,
    document_prefix: Option<String>,
    /// `config_sentence_transformers.json`'s named prompts.
    prompts: BTreeMap<String, String>,
    similarity_function: SimilarityFunction,
}

impl DenseEmbedder {
    /// Loads a model with default options (registry id, repo id or directory).
    pub fn new(model: &str) -> Result<Self> {
        DenseBuilder::new().model(model).build()
    }

    pub fn builder() -> DenseBuilder {
        DenseBuilder::new()
    }

    fn from_source(source: ModelSource, options: DenseBuilder) -> Result<Self> {
        if let Some(spec) = source.spec {
            if spec.paradigm != Paradigm::Dense {
                return Err(TesseraError::Config(format!(
                    "'{}' is a {} model, not a dense one; use Tessera(\"{}\") or the {} class",
                    spec.id, spec.paradigm, spec.id, spec.paradigm
                )));
            }
        }
        let dir = source.dir.as_path();
        let layout = SentenceTransformersLayout::read(dir)?;
        let runtime = options.runtime.resolve()?;
        let _packing = runtime.packing();
        let (encoder, _) = TextEncoder::load(dir, &runtime, ENCODER_PREFIXES)?;
        let encoder = TextEncoder {
            tokenizer: encoder
                .tokenizer
                .with_lowercase(layout.sentence_bert.do_lower_case),
            ..encoder
        };
        let spec = source.spec;
        let pooling = match layout.module_dir(dir, "Pooling") {
            Some(pool_dir) => read_pooling(&pool_dir.join("config.json"))?,
            None => spec.and_then(|s| s.pooling).unwrap_or(PoolingKind::Mean),
        };
        let model_normalizes = layout.module("Normalize").is_some()
            || (layout.modules.is_empty() && spec.and_then(|s| s.normalize).unwrap_or(false));
        let normalize = options.normalize.unwrap_or(model_normalizes);
        let projections =
            load_dense_modules(dir, &layout, encoder.hidden_size(), &runtime, &source.name)?;
        let full_dimension = projections
            .last()
            .map_or(encoder.hidden_size(), Projection::out_dim);
        let dimension = match options.dimension {
            Some(d) => {
                match spec {
                    Some(spec) => spec.check_dimension(d)?,
                    // Without a registry entry nothing lists the trained Matryoshka
                    // dimensions: like sentence-transformers' truncate_dim, any prefix
                    // length up to the full dimension is allowed.
                    None if d > full_dimension => {
                        return Err(TesseraError::UnsupportedDimension {
                            model: source.name.clone(),
                            requested: d,
                            supported: (1..=full_dimension).collect(),
                        })
                    }
                    None => {}
                }
                d
            }
            None => full_dimension,
        };
        let max_length = resolve_max_length(
            options.max_length,
            layout.max_seq_length().or(spec.and_then(|s| s.max_length)),
            encoder.max_positions(),
        )?;
        Ok(DenseEmbedder {
            name: source.name,
            pooling,
            projections,
            normalize,
            model_normalizes,
            normalize_override: options.normalize,
            dimension,
            full_dimension,
            truncated: dimension < full_dimension,
            max_length,
            batch_size: options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
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
            prompts: layout.prompts(),
            similarity_function: match layout
                .st_config
                .get("similarity_fn_name")
                .and_then(|v| v.as_str())
            {
                Some(name) => SimilarityFunction::parse(name)
                    .map_err(|e| TesseraError::load(dir.display().to_string(), e.to_string()))?,
                None => SimilarityFunction::Cosine,
            },
            encoder,
        })
    }

    /// A prompt the model names in `config_sentence_transformers.json` (`prompt_name=`).
    pub fn prompt(&self, name: &str) -> Result<&str> {
        named_prompt(&self.prompts, name)
    }

    /// The model's similarity function (`similarity_fn_name`; cosine by default).
    pub fn similarity_function(&self) -> SimilarityFunction {
        self.similarity_function
    }

    /// The model id it was built from.
    pub fn model(&self) -> &str {
        &self.name
    }

    /// Length of the output vectors (the Matryoshka dimension when one was chosen).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn pooling(&self) -> PoolingKind {
        self.pooling
    }

    /// Whether output vectors are unit length.
    pub fn normalizes(&self) -> bool {
        if self.truncated {
            self.normalize_override != Some(false)
        } else {
            self.normalize
        }
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

    /// Embeds one text: a vector of `dimension()` floats.
    pub fn encode(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.encode_batch(&[text], &EncodeOptions::default())?.data)
    }

    /// Embeds many texts: a `(texts, dimension())` matrix, rows in input order.
    pub fn encode_batch(&self, texts: &[&str], options: &EncodeOptions) -> Result<Matrix> {
        if texts.is_empty() {
            return Ok(Matrix::empty(self.dimension));
        }
        let batch_size = options.batch_size.unwrap_or(self.batch_size);
        check_batch_size(batch_size)?;
        let sequences = tokenize_checked(&self.encoder.tokenizer, texts, self.max_length, options)?;
        let progress = Progress::new(texts.len(), "encoding", options.show_progress);
        let rows =
            self.encoder
                .run(&sequences, None, batch_size, &progress, |packed, hidden| {
                    let mut pooled = pool(hidden, packed.spans(), self.pooling)?;
                    for projection in &self.projections {
                        pooled = projection.forward(&pooled)?;
                    }
                    let vectors = self.finish(pooled)?;
                    Ok(Matrix::from_tensor(&vectors)?
                        .iter_rows()
                        .map(<[f32]>::to_vec)
                        .collect())
                })?;
        let mut data = Vec::with_capacity(texts.len() * self.dimension);
        for row in rows {
            data.extend_from_slice(&row);
        }
        Ok(Matrix {
            rows: texts.len(),
            cols: self.dimension,
            data,
        })
    }

    /// Token ids of each text exactly as the model sees them (special tokens added,
    /// truncated to `max_length()`).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        self.encoder.tokenizer.encode_batch(texts, self.max_length)
    }

    /// Tokens of each whole text, special tokens included, before any truncation: more
    /// than `max_length()` means `encode` cuts it.
    pub fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>> {
        self.encoder.tokenizer.count_tokens(texts)
    }

    /// The token strings of a text as the model sees it.
    pub fn token_strings(&self, text: &str) -> Result<Vec<String>> {
        let ids = self.tokenize(&[text])?.pop().unwrap_or_default();
        Ok(ids
            .into_iter()
            .map(|id| self.encoder.tokenizer.id_to_token(id))
            .collect())
    }

    /// Embeds texts with the query prefix (e.g. nomic's `search_query: `).
    pub fn encode_queries(&self, texts: &[&str], options: &EncodeOptions) -> Result<Matrix> {
        with_prefix(texts, self.query_prefix.as_deref(), |t| {
            self.encode_batch(t, options)
        })
    }

    /// Embeds texts with the document prefix.
    pub fn encode_documents(&self, texts: &[&str], options: &EncodeOptions) -> Result<Matrix> {
        with_prefix(texts, self.document_prefix.as_deref(), |t| {
            self.encode_batch(t, options)
        })
    }

    /// The similarity of two texts, by the model's similarity function (cosine unless
    /// its `similarity_fn_name` says otherwise).
    pub fn similarity(&self, a: &str, b: &str) -> Result<f32> {
        let both = self.encode_batch(&[a, b], &EncodeOptions::default())?;
        self.similarity_function.score(both.row(0), both.row(1))
    }

    /// Normalisation, then Matryoshka truncation: the first `dimension` components of
    /// the model's output, L2-normalised again (unless normalisation was turned off).
    fn finish(&self, pooled: candle_core::Tensor) -> Result<candle_core::Tensor> {
        let pooled = pooled.to_dtype(candle_core::DType::F32)?;
        if !self.truncated {
            return if self.normalize {
                l2_normalize(&pooled)
            } else {
                Ok(pooled)
            };
        }
        let full = if self.model_normalizes {
            l2_normalize(&pooled)?
        } else {
            pooled
        };
        let prefix = full.narrow(1, 0, self.dimension)?;
        if self.normalize_override == Some(false) {
            Ok(prefix)
        } else {
            l2_normalize(&prefix)
        }
    }

    /// Size of the encoder's hidden state before any Matryoshka truncation.
    pub fn full_dimension(&self) -> usize {
        self.full_dimension
    }
}

fn read_pooling(path: &Path) -> Result<PoolingKind> {
    let config: PoolingConfig = read_json(path)?;
    config.kind(path)
}
