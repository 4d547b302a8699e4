//! Vision-language document retrieval (ColPali): page images and queries become token
//! matrices scored with MaxSim, as transformers' `ColPaliProcessor` +
//! `ColPaliForRetrieval` compute them.
//!
//! A document's matrix holds every row the model returns: the `num_patches()` image
//! patch rows (raster order), then one row per token of the document prompt
//! (`<bos>Describe the image.\n`); MaxSim runs over all of them, as the reference's
//! `score_retrieval` does. A query's matrix has one row per token of
//! `<bos>Question: {query}<pad>×10\n`.

use candle_core::Tensor;
use rayon::prelude::*;
use serde_json::Value;

use crate::encoder::RuntimeOptions;
use crate::error::{Result, TesseraError};
use crate::hub::{HubOptions, ModelSource};
use crate::layout::{read_json, read_optional_json};
use crate::matrix::Matrix;
use crate::models::checkpoint::{weight_files, Checkpoint};
use crate::models::colpali::{ColPali, Config, CHECKPOINT_PREFIXES};
use crate::paradigms::common::{
    check_batch_size, check_common, common_builder_setters, resolve_model, EncodeOptions,
    InputTokens,
};
use crate::paradigms::multivector::TokenEmbeddings;
use crate::progress::Progress;
use crate::registry::Paradigm;
use crate::similarity::{maxsim, maxsim_matrix};
use crate::text::{length_sorted_batches, TextTokenizer};
use crate::vision::{ImageInput, ImagePreprocessor, ImageProcessorConfig};

/// Images per forward pass by default: a 448-px page is 1024 + 8 tokens through a 3B
/// model, so batches stay small.
pub const DEFAULT_VISION_BATCH_SIZE: usize = 4;

/// `ColPaliProcessor`'s query augmentation: this many `<pad>` tokens end each query.
const QUERY_AUGMENTATION_TOKENS: usize = 10;

/// Configures and loads a [`VisionEmbedder`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct VisionBuilder {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(flatten)]
    runtime: RuntimeOptions,
    #[serde(rename = "revision", with = "crate::hub::revision_only")]
    hub: HubOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_size: Option<usize>,
}

impl VisionBuilder {
    common_builder_setters!();

    pub fn new() -> Self {
        VisionBuilder {
            hub: HubOptions::from_env(),
            ..Default::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        check_common(&self.runtime, self.batch_size)
    }

    pub fn build(self) -> Result<VisionEmbedder> {
        self.validate()?;
        let source = resolve_model(&self.model, &self.hub, "colpali-v1.3-hf")?;
        VisionEmbedder::from_source(source, self)
    }
}

/// The prompt strings of `ColPaliProcessor`, from `processor_config.json` and
/// `tokenizer_config.json` (defaults as in transformers).
struct Prompts {
    bos: String,
    pad: String,
    query_prefix: String,
    visual_prompt_prefix: String,
}

impl Prompts {
    fn read(dir: &std::path::Path) -> Result<Self> {
        let processor: Value =
            read_optional_json(&dir.join("processor_config.json"))?.unwrap_or(Value::Null);
        let tokenizer: Value =
            read_optional_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let text = |config: &Value, key: &str, default: &str| {
            config
                .get(key)
                .and_then(|v| {
                    v.as_str()
                        .or_else(|| v.get("content").and_then(Value::as_str))
                })
                .unwrap_or(default)
                .to_string()
        };
        Ok(Prompts {
            bos: text(&tokenizer, "bos_token", "<bos>"),
            pad: text(&tokenizer, "pad_token", "<pad>"),
            query_prefix: text(&processor, "query_prefix", "Question: "),
            visual_prompt_prefix: text(&processor, "visual_prompt_prefix", "Describe the image."),
        })
    }
}

/// A loaded ColPali model.
pub struct VisionEmbedder {
    name: String,
    model: ColPali,
    tokenizer: TextTokenizer,
    preprocessor: ImagePreprocessor,
    /// Tokens after the image tokens of every document (`<bos>Describe the image.\n`).
    prompt_ids: Vec<u32>,
    prompts: Prompts,
    pad_id: u32,
    device: candle_core::Device,
    dtype: candle_core::DType,
    batch_size: usize,
}

impl VisionEmbedder {
    /// Loads a model with default options (registry id, repo id or directory).
    pub fn new(model: &str) -> Result<Self> {
        VisionBuilder::new().model(model).build()
    }

    pub fn builder() -> VisionBuilder {
        VisionBuilder::new()
    }

    fn from_source(source: ModelSource, options: VisionBuilder) -> Result<Self> {
        if let Some(spec) = source.spec {
            if spec.paradigm != Paradigm::Vision {
                return Err(TesseraError::Config(format!(
                    "'{}' is a {} model, not a vision one; use Tessera(\"{}\") or the {} class",
                    spec.id, spec.paradigm, spec.id, spec.paradigm
                )));
            }
        }
        let dir = source.dir.as_path();
        let load_error = |e: TesseraError| match e {
            TesseraError::Tensor(inner) => TesseraError::load(&source.name, inner.to_string()),
            TesseraError::Config(reason) => TesseraError::load(&source.name, reason),
            other => other,
        };
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(TesseraError::load(
                &source.name,
                "no config.json in the model directory",
            ));
        }
        let config = Config::from_json(&read_json(&config_path)?).map_err(load_error)?;
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let runtime = options.runtime.resolve_unquantized("vision")?;
        let _packing = runtime.packing();
        let (device, dtype) = (runtime.device.clone(), runtime.dtype);
        let vb = Checkpoint::open(&weight_files(dir)?, CHECKPOINT_PREFIXES)?
            .into_var_builder(dtype, &device);
        let model = ColPali::load(vb, &config).map_err(load_error)?;

        let image_size = model.image_size();
        let processor_path = dir.join("preprocessor_config.json");
        let preprocessor = match read_optional_json::<ImageProcessorConfig>(&processor_path)? {
            Some(processor) => {
                if let Some(n) = processor
                    .image_seq_length
                    .filter(|&n| n != model.num_patches())
                {
                    return Err(TesseraError::load(
                        &source.name,
                        format!(
                            "preprocessor_config.json has image_seq_length {n} but the vision tower \
                             yields {} patches",
                            model.num_patches()
                        ),
                    ));
                }
                ImagePreprocessor::new(&processor, image_size).map_err(load_error)?
            }
            None => ImagePreprocessor::new(&ImageProcessorConfig::default(), image_size)?,
        };
        if preprocessor.width != image_size || preprocessor.height != image_size {
            return Err(TesseraError::load(
                &source.name,
                format!(
                    "preprocessor_config.json resizes to {}x{} but the vision tower takes {image_size}x{image_size}",
                    preprocessor.width, preprocessor.height
                ),
            ));
        }

        let prompts = Prompts::read(dir)?;
        let token = |t: &str| {
            tokenizer.token_id(t).ok_or_else(|| {
                TesseraError::load(&source.name, format!("the tokenizer has no '{t}' token"))
            })
        };
        let pad_id = token(&prompts.pad)?;
        token(&prompts.bos)?;
        let document_prompt = format!("{}{}\n", prompts.bos, prompts.visual_prompt_prefix);
        let prompt_ids = encode_prompt(&tokenizer, &document_prompt)?;
        Ok(VisionEmbedder {
            name: source.name,
            model,
            tokenizer,
            preprocessor,
            prompt_ids,
            prompts,
            pad_id,
            device,
            dtype,
            batch_size: options.batch_size.unwrap_or(DEFAULT_VISION_BATCH_SIZE),
        })
    }

    /// The model id it was built from.
    pub fn model(&self) -> &str {
        &self.name
    }

    /// Columns of every token matrix (128 for the real ColPali models).
    pub fn embedding_dim(&self) -> usize {
        self.model.embedding_dim()
    }

    /// Image patch rows at the top of each document matrix (1024 for 448-px models).
    pub fn num_patches(&self) -> usize {
        self.model.num_patches()
    }

    /// Side of the square every image is resized to.
    pub fn image_size(&self) -> usize {
        self.model.image_size()
    }

    /// Rows of every document matrix: patches plus document prompt tokens.
    pub fn document_rows(&self) -> usize {
        self.num_patches() + self.prompt_ids.len()
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn device(&self) -> &candle_core::Device {
        &self.device
    }

    pub fn preprocessor(&self) -> &ImagePreprocessor {
        &self.preprocessor
    }

    /// The underlying model, for inspecting intermediate states.
    pub fn colpali(&self) -> &ColPali {
        &self.model
    }

    /// The token ids of every document: `<image>` × `num_patches()`, then the prompt.
    pub fn document_token_ids(&self) -> Vec<u32> {
        let mut ids = vec![self.model.image_token_index(); self.num_patches()];
        ids.extend_from_slice(&self.prompt_ids);
        ids
    }

    /// The token ids of a query: `<bos>Question: {text}<pad>×10\n`, text verbatim.
    pub fn query_token_ids(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.query_tokens(text)?.0)
    }

    /// Tokens of each whole query text, with no length limit and without the prompt's
    /// tokens: more than [`QUERY_MAX_TOKENS`] means the query is cut.
    pub fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>> {
        self.tokenizer.count_pieces(texts)
    }

    fn query_tokens(&self, text: &str) -> Result<(Vec<u32>, bool)> {
        let (text, truncated) = self.tokenizer.truncate_text(text, QUERY_MAX_TOKENS)?;
        let p = &self.prompts;
        let prompt = format!(
            "{}{}{text}{}\n",
            p.bos,
            p.query_prefix,
            p.pad.repeat(QUERY_AUGMENTATION_TOKENS)
        );
        Ok((encode_prompt(&self.tokenizer, &prompt)?, truncated))
    }

    /// A page image's token matrix `(num_patches() + prompt tokens, embedding_dim())`.
    pub fn encode_document(&self, image: &ImageInput) -> Result<Matrix> {
        self.encode_documents(std::slice::from_ref(image), &EncodeOptions::default())?
            .pop()
            .ok_or_else(|| TesseraError::Encoding("the model returned no matrix".into()))
    }

    /// Token matrices of many images, in input order. Images are decoded in parallel
    /// one batch at a time, so memory stays bounded by the batch size.
    pub fn encode_documents(
        &self,
        images: &[ImageInput],
        options: &EncodeOptions,
    ) -> Result<Vec<Matrix>> {
        let batch_size = options.batch_size.unwrap_or(self.batch_size);
        check_batch_size(batch_size)?;
        let progress = Progress::new(images.len(), "documents", options.show_progress);
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(batch_size) {
            crate::interrupt::checkpoint()?;
            let first = out.len();
            let pixels = chunk
                .par_iter()
                .enumerate()
                .map(|(k, image)| {
                    self.preprocessor
                        .pixel_values(image)
                        .map_err(|e| name_image(e, first + k))
                })
                .collect::<Result<Vec<_>>>()?;
            let (h, w) = (self.preprocessor.height, self.preprocessor.width);
            let pixel_values =
                Tensor::from_vec(pixels.concat(), (chunk.len(), 3, h, w), &self.device)?;
            out.extend(self.encode_pixel_values(&pixel_values)?);
            progress.advance(chunk.len());
        }
        Ok(out)
    }

    /// Token matrices of preprocessed images `(batch, 3, size, size)` (what
    /// `preprocessor().pixel_values` returns, stacked), in one forward pass.
    pub fn encode_pixel_values(&self, pixel_values: &Tensor) -> Result<Vec<Matrix>> {
        let pixel_values = pixel_values.to_device(&self.device)?.to_dtype(self.dtype)?;
        let hidden = self
            .model
            .document_hidden_states(&pixel_values, &self.prompt_ids)?;
        let embeddings = self.model.project(&hidden)?;
        (0..embeddings.dim(0)?)
            .map(|i| Matrix::from_tensor(&embeddings.get(i)?))
            .collect()
    }

    /// A query's token matrix: one row per prompt token.
    pub fn encode_query(&self, text: &str) -> Result<Matrix> {
        self.encode_queries(&[text], &EncodeOptions::default())?
            .pop()
            .ok_or_else(|| TesseraError::Encoding("the model returned no matrix".into()))
    }

    /// Token matrices of many queries, in input order, computed in length-sorted
    /// batches (padding is masked out and its rows dropped).
    pub fn encode_queries(&self, texts: &[&str], options: &EncodeOptions) -> Result<Vec<Matrix>> {
        let sequences = self.checked_queries(texts, options)?;
        self.query_matrices(&sequences, options)
    }

    /// Query token ids, recorded in `options.report` (the limit is on the query text).
    fn checked_queries(&self, texts: &[&str], options: &EncodeOptions) -> Result<Vec<Vec<u32>>> {
        let tokenized = texts
            .iter()
            .map(|t| self.query_tokens(t))
            .collect::<Result<Vec<_>>>()?;
        let inputs = tokenized
            .iter()
            .map(|(ids, truncated)| InputTokens {
                num_tokens: ids.len(),
                truncated: *truncated,
            })
            .collect();
        options.check_tokens(inputs, QUERY_MAX_TOKENS)?;
        Ok(tokenized.into_iter().map(|(ids, _)| ids).collect())
    }

    /// Queries with the text, token ids and token strings each row belongs to.
    pub fn encode_query_tokens(
        &self,
        texts: &[&str],
        options: &EncodeOptions,
    ) -> Result<Vec<TokenEmbeddings>> {
        let sequences = self.checked_queries(texts, options)?;
        let matrices = self.query_matrices(&sequences, options)?;
        let (inputs, _) = options.report.get();
        Ok(texts
            .iter()
            .zip(sequences)
            .zip(matrices)
            .zip(inputs)
            .map(|(((text, token_ids), embeddings), input)| TokenEmbeddings {
                truncated: input.truncated,
                text: text.to_string(),
                tokens: token_ids
                    .iter()
                    .map(|&id| self.tokenizer.id_to_token(id))
                    .collect(),
                token_ids,
                embeddings,
            })
            .collect())
    }

    fn query_matrices(
        &self,
        sequences: &[Vec<u32>],
        options: &EncodeOptions,
    ) -> Result<Vec<Matrix>> {
        let batch_size = options.batch_size.unwrap_or(self.batch_size);
        check_batch_size(batch_size)?;
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let progress = Progress::new(sequences.len(), "queries", options.show_progress);
        let mut results: Vec<Option<Matrix>> = vec![None; sequences.len()];
        for batch in length_sorted_batches(&lengths, batch_size) {
            crate::interrupt::checkpoint()?;
            let longest = batch.iter().map(|&i| lengths[i]).max().unwrap_or(0);
            let mut ids = Vec::with_capacity(batch.len() * longest);
            for &i in &batch {
                ids.extend_from_slice(&sequences[i]);
                ids.resize(ids.len() + longest - lengths[i], self.pad_id);
            }
            let ids = Tensor::from_vec(ids, (batch.len(), longest), &self.device)?;
            let batch_lengths: Vec<usize> = batch.iter().map(|&i| lengths[i]).collect();
            let hidden = self.model.text_hidden_states(&ids, &batch_lengths)?;
            let embeddings = self.model.project(&hidden)?;
            for (row, &i) in batch.iter().enumerate() {
                let rows = embeddings.get(row)?.narrow(0, 0, lengths[i])?;
                results[i] = Some(Matrix::from_tensor(&rows)?);
            }
            progress.advance(batch.len());
        }
        results
            .into_iter()
            .map(|m| {
                m.ok_or_else(|| TesseraError::Encoding("a batch returned too few rows".into()))
            })
            .collect()
    }

    /// MaxSim of a query matrix against a document matrix (all document rows).
    pub fn search(&self, query: &Matrix, document: &Matrix) -> Result<f32> {
        maxsim(query, document)
    }

    /// Encodes a query and a page image and scores them.
    pub fn search_document(&self, query: &str, image: &ImageInput) -> Result<f32> {
        maxsim(&self.encode_query(query)?, &self.encode_document(image)?)
    }

    /// MaxSim of every query against every document: `(queries, documents)`.
    pub fn similarity_matrix(&self, queries: &[Matrix], documents: &[Matrix]) -> Result<Matrix> {
        maxsim_matrix(queries, documents)
    }
}

/// Query text beyond this many tokens is cut. The reference has no limit, but a query
/// this long is a document, and an unbounded one would cost unbounded memory and time.
pub const QUERY_MAX_TOKENS: usize = 512;

/// Says which image of a batch an input error is about.
fn name_image(error: TesseraError, index: usize) -> TesseraError {
    match error {
        TesseraError::Encoding(m) => TesseraError::Encoding(format!("image {index}: {m}")),
        TesseraError::Config(m) => TesseraError::Config(format!("image {index}: {m}")),
        other => other,
    }
}

/// Token ids of a prompt that carries its special tokens literally: the tokenizer's
/// post-processor is skipped (`ColPaliProcessor` adds no `<bos>` of its own).
fn encode_prompt(tokenizer: &TextTokenizer, prompt: &str) -> Result<Vec<u32>> {
    let encoding = tokenizer
        .inner()
        .encode(prompt, false)
        .map_err(|e| TesseraError::Tokenization(e.to_string()))?;
    Ok(encoding.get_ids().to_vec())
}
