//! Multi-vector (late interaction) embeddings: one L2-normalised row per token
//! (ColBERT), as colbert-ai's `Checkpoint.queryFromText` / `docFromText` and PyLate's
//! `ColBERT.encode` compute them, scored with MaxSim.
//!
//! Two checkpoint layouts are read:
//! - colbert-ai `HF_ColBERT`: `config.json` + `model.safetensors` holding `bert.*` and
//!   `linear.weight`, settings in `artifact.metadata`;
//! - PyLate / sentence-transformers: `modules.json` (Transformer, then Dense modules
//!   with their own `model.safetensors`), settings in `config_sentence_transformers.json`.

use std::collections::HashSet;
use std::path::Path;

use candle_core::{DType as CandleDType, Tensor};
use serde_json::Value;

use crate::encoder::{RuntimeOptions, TextEncoder, ENCODER_PREFIXES};
use crate::error::{Result, TesseraError};
use crate::heads::normalize::l2_normalize;
use crate::heads::projection::{load_dense_modules, Projection};
use crate::hub::{HubOptions, ModelSource};
use crate::layout::{read_optional_json, SentenceTransformersLayout};
use crate::matrix::Matrix;
use crate::paradigms::common::{
    check_batch_size, check_common, common_builder_setters, quantize_setter, resolve_model,
    EncodeOptions, InputTokens, DEFAULT_BATCH_SIZE,
};
use crate::progress::Progress;
use crate::quantization::{maxsim_quantized, quantize, QuantizationConfig, QuantizedEmbeddings};
use crate::registry::{self, Paradigm};
use crate::similarity::{maxsim, maxsim_matrix, top_k};

/// Python's `string.punctuation`: the skip-list both reference libraries default to.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Shortest query / document length: `[CLS]`, marker, one piece, `[SEP]`.
const MIN_LENGTH: usize = 4;

/// Which reference library's checkpoint layout a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColbertLayout {
    /// colbert-ai `HF_ColBERT` (`artifact.metadata`).
    ColbertAi,
    /// PyLate / sentence-transformers (`modules.json` with a Dense module).
    PyLate,
}

/// Configures and loads a [`MultiVectorEmbedder`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MultiVectorBuilder {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(flatten)]
    runtime: RuntimeOptions,
    #[serde(rename = "revision", with = "crate::hub::revision_only")]
    hub: HubOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimension: Option<usize>,
    quantization: QuantizationConfig,
}

impl MultiVectorBuilder {
    common_builder_setters!();
    quantize_setter!();

    pub fn new() -> Self {
        MultiVectorBuilder {
            hub: HubOptions::from_env(),
            ..Default::default()
        }
    }

    /// Document length `Ld` (tokens the encoder sees, marker included).
    pub fn max_length(mut self, max_length: usize) -> Self {
        self.max_length = Some(max_length);
        self
    }

    /// Query length `Lq` (every query yields exactly this many rows with expansion).
    pub fn query_length(mut self, query_length: usize) -> Self {
        self.query_length = Some(query_length);
        self
    }

    /// Matryoshka: keep the first `dimension` components of each row and re-normalise.
    pub fn dimension(mut self, dimension: usize) -> Self {
        self.dimension = Some(dimension);
        self
    }

    pub fn quantization(mut self, quantization: QuantizationConfig) -> Self {
        self.quantization = quantization;
        self
    }

    /// Checks what can be checked before loading: sizes, and the dimension against
    /// the registry when the model is a registry entry.
    pub fn validate(&self) -> Result<()> {
        check_common(&self.runtime, self.batch_size)?;
        for (name, value) in [
            ("max_length", self.max_length),
            ("query_length", self.query_length),
        ] {
            if let Some(n) = value {
                check_length(name, n)?;
            }
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

    pub fn build(self) -> Result<MultiVectorEmbedder> {
        self.validate()?;
        let source = resolve_model(&self.model, &self.hub, "colbert-v2")?;
        MultiVectorEmbedder::from_source(source, self)
    }
}

fn check_length(name: &str, n: usize) -> Result<()> {
    if n < MIN_LENGTH {
        return Err(TesseraError::Config(format!(
            "{name} {n} is too small: ColBERT needs at least {MIN_LENGTH} tokens ([CLS], marker, text, [SEP])"
        )));
    }
    Ok(())
}

/// A text's token matrix with the token each row belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEmbeddings {
    pub text: String,
    /// `(num_tokens, dim)`, one L2-normalised row per returned token.
    pub embeddings: Matrix,
    pub token_ids: Vec<u32>,
    /// Vocabulary strings of `token_ids` (`##` pieces and markers as stored).
    pub tokens: Vec<String>,
    /// The text had more tokens than the model reads and was cut.
    pub truncated: bool,
}

impl TokenEmbeddings {
    pub fn num_tokens(&self) -> usize {
        self.embeddings.rows
    }

    pub fn embedding_dim(&self) -> usize {
        self.embeddings.cols
    }

    pub fn shape(&self) -> (usize, usize) {
        (self.embeddings.rows, self.embeddings.cols)
    }
}

/// The ColBERT settings read from the model files.
#[derive(Debug, Clone)]
struct ColbertSettings {
    layout: ColbertLayout,
    query_marker: u32,
    document_marker: u32,
    /// `[MASK]`: the query expansion token.
    expansion_id: u32,
    query_length: usize,
    document_length: usize,
    query_expansion: bool,
    attend_to_expansion: bool,
    /// Token ids whose rows are dropped from documents.
    document_skip: HashSet<u32>,
    /// colbert-ai turns a `[PAD]` id inside a query into `[MASK]`.
    query_pad_to_mask: Option<u32>,
}

/// A loaded multi-vector (ColBERT) model.
pub struct MultiVectorEmbedder {
    name: String,
    encoder: TextEncoder,
    projections: Vec<Projection>,
    settings: ColbertSettings,
    dimension: usize,
    full_dimension: usize,
    batch_size: usize,
    quantization: QuantizationConfig,
}

impl MultiVectorEmbedder {
    /// Loads a model with default options (registry id, repo id or directory).
    pub fn new(model: &str) -> Result<Self> {
        MultiVectorBuilder::new().model(model).build()
    }

    pub fn builder() -> MultiVectorBuilder {
        MultiVectorBuilder::new()
    }

    fn from_source(source: ModelSource, options: MultiVectorBuilder) -> Result<Self> {
        let spec = source.spec;
        if let Some(spec) = spec {
            if spec.paradigm != Paradigm::Multivector {
                return Err(TesseraError::Config(format!(
                    "'{}' is a {} model, not a multi-vector one; use Tessera(\"{}\") or the {} class",
                    spec.id, spec.paradigm, spec.id, spec.paradigm
                )));
            }
        }
        let dir = source.dir.as_path();
        let st = SentenceTransformersLayout::read(dir)?;
        let metadata: Option<Value> = read_optional_json(&dir.join("artifact.metadata"))?;
        let runtime = options.runtime.resolve()?;
        let _packing = runtime.packing();
        let (encoder, root_vb) = TextEncoder::load(dir, &runtime, ENCODER_PREFIXES)?;
        // A repository may carry both layouts (colbert-ai checkpoints republished for
        // PyLate); colbert-ai's wins when its projection sits in the main weights.
        let has_linear = root_vb.contains_tensor("linear.weight");
        let pylate = st.module("Dense").is_some() || st.st_config.get("query_prefix").is_some();
        let layout = if has_linear && (metadata.is_some() || !pylate) {
            ColbertLayout::ColbertAi
        } else if pylate {
            ColbertLayout::PyLate
        } else {
            return Err(TesseraError::load(
                &source.name,
                "not a ColBERT checkpoint: no 'linear.weight' projection next to the encoder \
                 (colbert-ai layout) and no sentence-transformers Dense module (PyLate layout)",
            ));
        };
        let encoder = match layout {
            ColbertLayout::PyLate => TextEncoder {
                tokenizer: encoder
                    .tokenizer
                    .with_lowercase(st.sentence_bert.do_lower_case),
                ..encoder
            },
            ColbertLayout::ColbertAi => encoder,
        };
        let hidden = encoder.hidden_size();
        let projections = match layout {
            ColbertLayout::ColbertAi => {
                vec![Projection::load(&root_vb, hidden, false, &source.name)?]
            }
            ColbertLayout::PyLate => {
                let chain = load_dense_modules(dir, &st, hidden, &runtime, &source.name)?;
                if chain.is_empty() {
                    return Err(TesseraError::load(
                        &source.name,
                        "the PyLate layout has no Dense projection module in modules.json",
                    ));
                }
                chain
            }
        };
        let full_dimension = projections.last().map_or(hidden, Projection::out_dim);
        let settings = match layout {
            ColbertLayout::ColbertAi => {
                let metadata = metadata.unwrap_or(Value::Null);
                if let Some(dim) = metadata.get("dim").and_then(Value::as_u64) {
                    if dim as usize != full_dimension {
                        return Err(TesseraError::load(
                            &source.name,
                            format!(
                                "artifact.metadata says dim {dim} but 'linear.weight' projects to {full_dimension}"
                            ),
                        ));
                    }
                }
                colbert_ai_settings(&metadata, &encoder, dir, &source.name)?
            }
            ColbertLayout::PyLate => pylate_settings(&st.st_config, &encoder, dir, &source.name)?,
        };
        let positions = encoder.max_positions();
        let pick = |requested: Option<usize>,
                    from_files: Option<usize>,
                    registry: Option<usize>,
                    default: usize,
                    what: &str| {
            let length = match requested {
                Some(n) if n > positions => {
                    return Err(TesseraError::Config(format!(
                        "{what} {n} exceeds the model's {positions} position embeddings"
                    )))
                }
                Some(n) => n,
                None => from_files.or(registry).unwrap_or(default).min(positions),
            };
            check_length(what, length)?;
            Ok(length)
        };
        let settings = ColbertSettings {
            query_length: pick(
                options.query_length,
                settings.query_length,
                spec.and_then(|s| s.query_length),
                32,
                "query_length",
            )?,
            document_length: pick(
                options.max_length,
                settings.document_length,
                spec.and_then(|s| s.max_length),
                settings.default_document_length,
                "max_length",
            )?,
            ..settings.resolved
        };
        let dimension = match options.dimension {
            Some(d) => {
                if let Some(spec) = spec {
                    spec.check_dimension(d)?;
                }
                if d > full_dimension {
                    return Err(TesseraError::UnsupportedDimension {
                        model: source.name.clone(),
                        requested: d,
                        supported: vec![full_dimension],
                    });
                }
                d
            }
            None => full_dimension,
        };
        Ok(MultiVectorEmbedder {
            name: source.name,
            encoder,
            projections,
            settings,
            dimension,
            full_dimension,
            batch_size: options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            quantization: options.quantization,
        })
    }

    /// The model id it was built from.
    pub fn model(&self) -> &str {
        &self.name
    }

    /// Columns of every token matrix (the Matryoshka dimension when one was chosen).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Output size of the projection before any Matryoshka truncation.
    pub fn full_dimension(&self) -> usize {
        self.full_dimension
    }

    /// `Lq`: rows of every query matrix when query expansion is on.
    pub fn query_length(&self) -> usize {
        self.settings.query_length
    }

    /// `Ld`: the most tokens the encoder sees for a document (marker included).
    pub fn document_length(&self) -> usize {
        self.settings.document_length
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn layout(&self) -> ColbertLayout {
        self.settings.layout
    }

    /// The quantization chosen in the builder (`None` unless set).
    pub fn quantization(&self) -> QuantizationConfig {
        self.quantization
    }

    pub fn device(&self) -> &candle_core::Device {
        &self.encoder.device
    }

    /// Document-side token matrix (the SPEC's `encode`).
    pub fn encode(&self, text: &str) -> Result<Matrix> {
        self.encode_document(text)
    }

    /// Query matrix: `query_length()` rows with query expansion (fewer only when the
    /// model turns expansion off).
    pub fn encode_query(&self, text: &str) -> Result<Matrix> {
        self.single(text, true)
    }

    /// Document matrix: one row per token except skip-listed punctuation.
    pub fn encode_document(&self, text: &str) -> Result<Matrix> {
        self.single(text, false)
    }

    fn single(&self, text: &str, is_query: bool) -> Result<Matrix> {
        let mut rows = self.encode_rows(&[text], is_query, &EncodeOptions::default())?;
        rows.pop()
            .map(|(matrix, _)| matrix)
            .ok_or_else(|| TesseraError::Encoding("the encoder returned no matrix".into()))
    }

    /// Token matrices of many texts, in input order, computed in length-sorted batches.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        is_query: bool,
        options: &EncodeOptions,
    ) -> Result<Vec<Matrix>> {
        Ok(self
            .encode_rows(texts, is_query, options)?
            .into_iter()
            .map(|(matrix, _)| matrix)
            .collect())
    }

    /// Like `encode_batch`, with the token id and string of every returned row.
    pub fn encode_batch_with_tokens(
        &self,
        texts: &[&str],
        is_query: bool,
        options: &EncodeOptions,
    ) -> Result<Vec<TokenEmbeddings>> {
        let rows = self.encode_rows(texts, is_query, options)?;
        let (inputs, _) = options.report.get();
        Ok(texts
            .iter()
            .zip(rows)
            .zip(inputs)
            .map(|((text, (embeddings, token_ids)), input)| TokenEmbeddings {
                truncated: input.truncated,
                text: text.to_string(),
                tokens: token_ids
                    .iter()
                    .map(|&id| self.encoder.tokenizer.id_to_token(id))
                    .collect(),
                embeddings,
                token_ids,
            })
            .collect())
    }

    /// The token ids the encoder sees for each text (marker inserted, expansion
    /// `[MASK]`s appended for queries) and how many of them are attended to.
    pub fn tokenize(&self, texts: &[&str], is_query: bool) -> Result<Vec<(Vec<u32>, usize)>> {
        Ok(self
            .tokenize_flagged(texts, is_query)?
            .into_iter()
            .map(|(ids, attended, _)| (ids, attended))
            .collect())
    }

    /// The most tokens a query or document keeps, its marker included.
    pub fn length_limit(&self, is_query: bool) -> usize {
        if is_query {
            self.settings.query_length
        } else {
            self.settings.document_length
        }
    }

    /// Tokens of each whole text as `tokenize` would see it with no length limit (marker
    /// included, no query expansion).
    pub fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>> {
        let stripped = self.stripped(texts);
        Ok(self
            .encoder
            .tokenizer
            .count_tokens(&stripped)?
            .into_iter()
            .map(|n| n + 1)
            .collect())
    }

    /// PyLate strips every text first (sentence-transformers' tokenize does); with a
    /// byte-level tokenizer the surrounding whitespace would otherwise be tokens.
    fn stripped<'t>(&self, texts: &[&'t str]) -> Vec<&'t str> {
        match self.settings.layout {
            ColbertLayout::PyLate => texts.iter().map(|t| python_strip(t)).collect(),
            ColbertLayout::ColbertAi => texts.to_vec(),
        }
    }

    /// [`tokenize`](Self::tokenize), with the tokens before expansion and whether the
    /// text was cut.
    fn tokenize_flagged(
        &self,
        texts: &[&str],
        is_query: bool,
    ) -> Result<Vec<(Vec<u32>, usize, InputTokens)>> {
        let s = &self.settings;
        let (length, marker) = if is_query {
            (s.query_length, s.query_marker)
        } else {
            (s.document_length, s.document_marker)
        };
        let texts = self.stripped(texts);
        // One position is kept free for the marker inserted after [CLS].
        let encoded = self
            .encoder
            .tokenizer
            .encode_batch_flagged(&texts, length - 1)?;
        Ok(encoded
            .into_iter()
            .map(|(mut ids, truncated)| {
                ids.insert(1.min(ids.len()), marker);
                let input = InputTokens {
                    num_tokens: ids.len(),
                    truncated,
                };
                if !is_query {
                    let n = ids.len();
                    return (ids, n, input);
                }
                if let Some(pad) = s.query_pad_to_mask {
                    ids.iter_mut()
                        .filter(|id| **id == pad)
                        .for_each(|id| *id = s.expansion_id);
                }
                let real = ids.len();
                if s.query_expansion {
                    ids.resize(length, s.expansion_id);
                }
                let attended = if s.attend_to_expansion {
                    ids.len()
                } else {
                    real
                };
                (ids, attended, input)
            })
            .collect())
    }

    fn encode_rows(
        &self,
        texts: &[&str],
        is_query: bool,
        options: &EncodeOptions,
    ) -> Result<Vec<(Matrix, Vec<u32>)>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batch_size = options.batch_size.unwrap_or(self.batch_size);
        check_batch_size(batch_size)?;
        let mut sequences = Vec::with_capacity(texts.len());
        let mut attended = Vec::with_capacity(texts.len());
        let mut inputs = Vec::with_capacity(texts.len());
        for (ids, seen, input) in self.tokenize_flagged(texts, is_query)? {
            sequences.push(ids);
            attended.push(seen);
            inputs.push(input);
        }
        options.check_tokens(inputs, self.length_limit(is_query))?;
        let progress = Progress::new(
            texts.len(),
            if is_query { "queries" } else { "documents" },
            options.show_progress,
        );
        self.encoder.run(
            &sequences,
            Some(&attended),
            batch_size,
            &progress,
            |packed, hidden| {
                let rows = Matrix::from_tensor(&self.project(hidden)?)?;
                Ok(packed
                    .spans()
                    .iter()
                    .map(|span| {
                        let ids = &packed.ids()[span.start..span.start + span.len];
                        let keep = |id: &u32| is_query || !self.settings.document_skip.contains(id);
                        let mut data = Vec::with_capacity(span.len * rows.cols);
                        let mut kept = Vec::with_capacity(span.len);
                        for (k, id) in ids.iter().enumerate() {
                            if keep(id) {
                                data.extend_from_slice(rows.row(span.start + k));
                                kept.push(*id);
                            }
                        }
                        let matrix = Matrix {
                            rows: kept.len(),
                            cols: rows.cols,
                            data,
                        };
                        (matrix, kept)
                    })
                    .collect())
            },
        )
    }

    /// Projection, Matryoshka truncation and row normalisation of packed hidden states.
    fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        let mut rows = hidden.clone();
        for projection in &self.projections {
            rows = projection.forward(&rows)?;
        }
        let mut rows = rows.to_dtype(CandleDType::F32)?;
        if self.dimension < self.full_dimension {
            rows = rows.narrow(1, 0, self.dimension)?;
        }
        l2_normalize(&rows)
    }

    /// MaxSim of a query matrix against a document matrix.
    pub fn similarity(&self, query: &Matrix, document: &Matrix) -> Result<f32> {
        maxsim(query, document)
    }

    /// MaxSim of every query against every document: `(queries, documents)`.
    pub fn similarity_matrix(&self, queries: &[Matrix], documents: &[Matrix]) -> Result<Matrix> {
        maxsim_matrix(queries, documents)
    }

    /// Documents ranked by MaxSim against `query`: `(index, score)`, best first.
    pub fn rank(
        &self,
        query: &Matrix,
        documents: &[Matrix],
        top: usize,
    ) -> Result<Vec<(usize, f32)>> {
        let scores = maxsim_matrix(std::slice::from_ref(query), documents)?;
        Ok(top_k(&scores.data, top))
    }

    /// The quantization `quantize` applies: the builder's, binary when none was chosen.
    fn effective_quantization(&self) -> QuantizationConfig {
        match self.quantization {
            QuantizationConfig::None => QuantizationConfig::Binary,
            chosen => chosen,
        }
    }

    /// Quantizes a token matrix with the model's quantization (binary by default).
    pub fn quantize(&self, embeddings: &Matrix) -> Result<QuantizedEmbeddings> {
        quantize(embeddings, self.effective_quantization())
    }

    pub fn encode_quantized(&self, text: &str, is_query: bool) -> Result<QuantizedEmbeddings> {
        self.quantize(&self.single(text, is_query)?)
    }

    /// MaxSim on quantized matrices (see `quantization::maxsim_quantized`).
    pub fn similarity_quantized(
        &self,
        query: &QuantizedEmbeddings,
        document: &QuantizedEmbeddings,
    ) -> Result<f32> {
        maxsim_quantized(query, document)
    }
}

/// Settings as found in the files, before builder overrides and registry fallbacks.
struct FileSettings {
    resolved: ColbertSettings,
    query_length: Option<usize>,
    document_length: Option<usize>,
    default_document_length: usize,
}

fn colbert_ai_settings(
    metadata: &Value,
    encoder: &TextEncoder,
    dir: &Path,
    source: &str,
) -> Result<FileSettings> {
    let text = |key: &str, default: &str| {
        metadata
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let flag = |key: &str, default: bool| {
        metadata
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(default)
    };
    let length = |key: &str| {
        metadata
            .get(key)
            .and_then(Value::as_u64)
            .map(|n| n as usize)
    };
    let tokens = SpecialTokens::read(dir)?;
    let query_marker = token(encoder, &text("query_token_id", "[unused0]"), source)?;
    let document_marker = token(encoder, &text("doc_token_id", "[unused1]"), source)?;
    let expansion_id = token(encoder, &tokens.mask, source)?;
    let pad_id = encoder.tokenizer.token_id(&tokens.pad);
    // colbert-ai looks each symbol up with `tokenizer.encode(symbol)[0]`.
    let mut document_skip: HashSet<u32> = if flag("mask_punctuation", true) {
        PUNCTUATION
            .chars()
            .filter_map(|c| first_piece(encoder, &c.to_string()))
            .collect()
    } else {
        HashSet::new()
    };
    // colbert-ai's document mask also drops every [PAD] id, literal ones included.
    document_skip.extend(pad_id);
    Ok(FileSettings {
        resolved: ColbertSettings {
            layout: ColbertLayout::ColbertAi,
            query_marker,
            document_marker,
            expansion_id,
            query_length: 0,
            document_length: 0,
            query_expansion: true,
            attend_to_expansion: flag("attend_to_mask_tokens", false),
            document_skip,
            query_pad_to_mask: pad_id,
        },
        query_length: length("query_maxlen"),
        document_length: length("doc_maxlen"),
        default_document_length: 220,
    })
}

fn pylate_settings(
    config: &Value,
    encoder: &TextEncoder,
    dir: &Path,
    source: &str,
) -> Result<FileSettings> {
    let text = |key: &str, default: &str| {
        config
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let flag =
        |key: &str, default: bool| config.get(key).and_then(Value::as_bool).unwrap_or(default);
    let length = |key: &str| config.get(key).and_then(Value::as_u64).map(|n| n as usize);
    let tokens = SpecialTokens::read(dir)?;
    let query_expansion = flag("do_query_expansion", true);
    let unk = encoder.tokenizer.token_id(&tokens.unk);
    // PyLate looks words up with `convert_tokens_to_ids`: a word missing from the
    // vocabulary becomes [UNK].
    let words: Vec<String> = match config.get("skiplist_words").and_then(Value::as_array) {
        Some(words) => words
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        None => PUNCTUATION.chars().map(|c| c.to_string()).collect(),
    };
    let document_skip = words
        .iter()
        .filter_map(|w| encoder.tokenizer.token_id(w).or(unk))
        .collect();
    Ok(FileSettings {
        resolved: ColbertSettings {
            layout: ColbertLayout::PyLate,
            query_marker: token(encoder, &text("query_prefix", "[Q] "), source)?,
            document_marker: token(encoder, &text("document_prefix", "[D] "), source)?,
            expansion_id: token(encoder, &tokens.mask, source)?,
            query_length: 0,
            document_length: 0,
            query_expansion,
            attend_to_expansion: query_expansion && flag("attend_to_expansion_tokens", false),
            document_skip,
            query_pad_to_mask: None,
        },
        query_length: length("query_length"),
        document_length: length("document_length"),
        default_document_length: 180,
    })
}

/// Special-token strings from `tokenizer_config.json` (a plain string or an
/// `{"content": ...}` object), with BERT's defaults.
struct SpecialTokens {
    mask: String,
    pad: String,
    unk: String,
}

impl SpecialTokens {
    fn read(dir: &Path) -> Result<Self> {
        let config: Value =
            read_optional_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let get = |key: &str, default: &str| {
            config
                .get(key)
                .and_then(|v| {
                    v.as_str()
                        .or_else(|| v.get("content").and_then(Value::as_str))
                })
                .unwrap_or(default)
                .to_string()
        };
        Ok(SpecialTokens {
            mask: get("mask_token", "[MASK]"),
            pad: get("pad_token", "[PAD]"),
            unk: get("unk_token", "[UNK]"),
        })
    }
}

/// Python's `str.strip()`: Unicode whitespace plus the separators U+001C..U+001F.
fn python_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn token(encoder: &TextEncoder, name: &str, source: &str) -> Result<u32> {
    encoder.tokenizer.token_id(name).ok_or_else(|| {
        TesseraError::load(
            source,
            format!("the ColBERT token '{name}' is not in the tokenizer's vocabulary"),
        )
    })
}

fn first_piece(encoder: &TextEncoder, word: &str) -> Option<u32> {
    encoder
        .tokenizer
        .inner()
        .encode(word, false)
        .ok()
        .and_then(|e| e.get_ids().first().copied())
}
