//! What the paradigms share: batch options, truncation reports and their validation.

use std::sync::{Arc, Mutex};

use crate::error::{Result, TesseraError};
use crate::text::TextTokenizer;

pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Per-call options of the batch methods.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    pub batch_size: Option<usize>,
    pub show_progress: bool,
    /// What to do when an input is longer than the model reads.
    pub on_truncation: OnTruncation,
    /// Filled by the call with each input's token count and whether it was cut.
    pub report: TokenReport,
}

/// What an encode call does with inputs longer than the model's limit. Like
/// sentence-transformers, the default cuts them silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnTruncation {
    #[default]
    Ignore,
    /// Cut them; the caller warns after the call (see [`TokenReport`]).
    Warn,
    /// Refuse the call before any model work, naming the inputs.
    Error,
}

impl OnTruncation {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "ignore" => Ok(OnTruncation::Ignore),
            "warn" => Ok(OnTruncation::Warn),
            "error" => Ok(OnTruncation::Error),
            other => Err(TesseraError::Config(format!(
                "on_truncation must be 'ignore', 'warn' or 'error', got {other:?}"
            ))),
        }
    }
}

/// How one input was tokenized: the tokens the model saw, and whether the text had more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputTokens {
    pub num_tokens: usize,
    pub truncated: bool,
}

/// Per-input token counts of the last call it was passed to, in input order, with the
/// limit the inputs were cut at. Shared, so a caller keeps a handle while the call runs
/// on a worker thread.
#[derive(Debug, Clone, Default)]
pub struct TokenReport(Arc<Mutex<(Vec<InputTokens>, usize)>>);

impl TokenReport {
    /// The inputs of the call, and the token limit they were held to.
    pub fn get(&self) -> (Vec<InputTokens>, usize) {
        match self.0.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, inputs: Vec<InputTokens>, limit: usize) {
        match self.0.lock() {
            Ok(mut guard) => *guard = (inputs, limit),
            Err(poisoned) => *poisoned.into_inner() = (inputs, limit),
        }
    }
}

impl EncodeOptions {
    /// Records how the inputs were tokenized and applies the truncation policy: with
    /// `Error`, a call that would cut any input fails here, before the model runs.
    pub fn check_tokens(&self, inputs: Vec<InputTokens>, limit: usize) -> Result<()> {
        if self.on_truncation == OnTruncation::Error {
            let cut: Vec<usize> = (0..inputs.len()).filter(|&i| inputs[i].truncated).collect();
            if !cut.is_empty() {
                return Err(TesseraError::Tokenization(format!(
                    "{} {}: {} of {} {} longer than the model's limit of {limit} tokens; \
                     shorten {}, or pass on_truncation='warn' or 'ignore' to cut them",
                    if cut.len() == 1 { "input" } else { "inputs" },
                    list_positions(&cut),
                    cut.len(),
                    inputs.len(),
                    if cut.len() == 1 { "is" } else { "are" },
                    if cut.len() == 1 { "it" } else { "them" },
                )));
            }
        }
        self.report.set(inputs, limit);
        Ok(())
    }
}

/// Token ids of each text cut to `max_length`, recorded in `options.report` under its
/// truncation policy.
pub fn tokenize_checked(
    tokenizer: &TextTokenizer,
    texts: &[&str],
    max_length: usize,
    options: &EncodeOptions,
) -> Result<Vec<Vec<u32>>> {
    let flagged = tokenizer.encode_batch_flagged(texts, max_length)?;
    let inputs = flagged
        .iter()
        .map(|(ids, truncated)| InputTokens {
            num_tokens: ids.len(),
            truncated: *truncated,
        })
        .collect();
    options.check_tokens(inputs, max_length)?;
    Ok(flagged.into_iter().map(|(ids, _)| ids).collect())
}

/// `3, 7, 9` or, past eight, `3, 7, 9, ... (12 in all)`.
fn list_positions(positions: &[usize]) -> String {
    const SHOWN: usize = 8;
    let head: Vec<String> = positions.iter().take(SHOWN).map(usize::to_string).collect();
    if positions.len() > SHOWN {
        format!("{}, ... ({} in all)", head.join(", "), positions.len())
    } else {
        head.join(", ")
    }
}

pub fn check_batch_size(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(TesseraError::Config("batch_size must be at least 1".into()));
    }
    Ok(())
}

pub fn check_max_length(max_length: usize) -> Result<()> {
    if max_length < 3 {
        return Err(TesseraError::Config(format!(
            "max_length {max_length} is too small: it must leave room for special tokens and text"
        )));
    }
    Ok(())
}

/// The setters every builder shares, over its `model`, `runtime`, `hub` and
/// `batch_size` fields. Expands inside the builder's `impl` block.
macro_rules! common_builder_setters {
    () => {
        /// The options set so far, as JSON: what `from_json` rebuilds the builder from
        /// (the hub token is never part of it; see `hub::revision_only`).
        pub fn to_json(&self) -> $crate::error::Result<String> {
            serde_json::to_string(self).map_err(|e| {
                $crate::error::TesseraError::Config(format!("cannot save the options: {e}"))
            })
        }

        pub fn from_json(json: &str) -> $crate::error::Result<Self> {
            serde_json::from_str(json).map_err(|e| {
                $crate::error::TesseraError::Config(format!("invalid saved options: {e}"))
            })
        }

        /// A registry id, a Hugging Face repo id or a local directory.
        pub fn model(mut self, model: impl Into<String>) -> Self {
            self.model = Some(model.into());
            self
        }

        pub fn device(mut self, device: $crate::device::Device) -> Self {
            self.runtime.device = device;
            self
        }

        pub fn dtype(mut self, dtype: $crate::device::DType) -> Self {
            self.runtime.dtype = dtype;
            self
        }

        /// A branch, tag or commit of the Hugging Face repository.
        pub fn revision(mut self, revision: impl Into<String>) -> Self {
            self.hub.revision = Some(revision.into());
            self
        }

        /// Where and how to reach the hub (read from the environment by default).
        pub fn hub_options(mut self, hub: $crate::hub::HubOptions) -> Self {
            self.hub = hub;
            self
        }

        /// Inputs per forward pass in batch methods.
        pub fn batch_size(mut self, batch_size: usize) -> Self {
            self.batch_size = Some(batch_size);
            self
        }
    };
}

pub(crate) use common_builder_setters;

/// The weight-quantization setter of the text encoders' builders.
macro_rules! quantize_setter {
    () => {
        /// Stores the linear layers' weights in int8 at load (CPU; activations are
        /// quantized per token, everything between the products stays f32).
        pub fn quantize(mut self, quantize: $crate::device::Quantize) -> Self {
            self.runtime.quantize = Some(quantize);
            self
        }
    };
}

pub(crate) use quantize_setter;

/// The truncation length and instruction prefixes of builders of single-text encoders
/// (dense, sparse), over their `max_length`, `query_prefix` and `document_prefix` fields.
macro_rules! text_builder_setters {
    () => {
        /// Truncation length in tokens (at most the model's position embeddings).
        pub fn max_length(mut self, max_length: usize) -> Self {
            self.max_length = Some(max_length);
            self
        }

        /// Text put before every query by `encode_queries` (overrides the model's).
        pub fn query_prefix(mut self, prefix: impl Into<String>) -> Self {
            self.query_prefix = Some(prefix.into());
            self
        }

        /// Text put before every document by `encode_documents`.
        pub fn document_prefix(mut self, prefix: impl Into<String>) -> Self {
            self.document_prefix = Some(prefix.into());
            self
        }
    };
}

pub(crate) use text_builder_setters;

/// Runs `encode` on the texts with `prefix` put before each (or on the texts as they are).
pub fn with_prefix<T>(
    texts: &[&str],
    prefix: Option<&str>,
    encode: impl FnOnce(&[&str]) -> Result<T>,
) -> Result<T> {
    match prefix {
        None => encode(texts),
        Some(prefix) => {
            let prefixed: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
            let refs: Vec<&str> = prefixed.iter().map(String::as_str).collect();
            encode(&refs)
        }
    }
}

/// Checks shared by every builder's `validate`: the device is compiled in and the
/// batch size is positive.
pub fn check_common(
    runtime: &crate::encoder::RuntimeOptions,
    batch_size: Option<usize>,
) -> Result<()> {
    runtime.device.ensure_compiled()?;
    if let Some(n) = batch_size {
        check_batch_size(n)?;
    }
    Ok(())
}

/// Resolves the builder's model, or says how to name one.
pub fn resolve_model(
    model: &Option<String>,
    hub: &crate::hub::HubOptions,
    example: &str,
) -> Result<crate::hub::ModelSource> {
    let name = model.as_deref().ok_or_else(|| {
        TesseraError::Config(format!("no model given: call .model(\"{example}\") first"))
    })?;
    crate::hub::resolve(name, hub)
}

/// The truncation length: the caller's, else the model's, never beyond the position
/// embeddings.
pub fn resolve_max_length(
    requested: Option<usize>,
    model_default: Option<usize>,
    positions: usize,
) -> Result<usize> {
    match requested {
        Some(n) if n > positions => Err(TesseraError::Config(format!(
            "max_length {n} exceeds the model's {positions} position embeddings"
        ))),
        Some(n) => Ok(n),
        None => Ok(model_default.unwrap_or(positions).min(positions)),
    }
}
