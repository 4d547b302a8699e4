//! What the paradigms share: batch options and their validation.

use crate::error::{Result, TesseraError};

pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Per-call options of the batch methods.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    pub batch_size: Option<usize>,
    pub show_progress: bool,
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
