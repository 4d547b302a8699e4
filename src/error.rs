//! The one error type of the crate. Each variant maps to one Python exception class
//! (see `bindings/python/errors.rs`), so pick the variant by what the user must do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TesseraError {
    #[error("unknown model '{requested}'{}", suggestion_text(.suggestions))]
    ModelNotFound {
        requested: String,
        suggestions: Vec<String>,
    },

    #[error("cannot load model '{model}': {reason}")]
    ModelLoad { model: String, reason: String },

    #[error("encoding failed: {0}")]
    Encoding(String),

    #[error(
        "model '{model}' does not support dimension {requested}; supported dimensions: {}",
        list(.supported)
    )]
    UnsupportedDimension {
        model: String,
        requested: usize,
        supported: Vec<usize>,
    },

    #[error("{0}")]
    Device(String),

    #[error("quantization error: {0}")]
    Quantization(String),

    #[error("tokenization failed: {0}")]
    Tokenization(String),

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("dimension mismatch: expected {expected}, got {actual}")]
    DimensionMismatch { expected: usize, actual: usize },

    #[error("matryoshka error: {0}")]
    Matryoshka(String),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),

    #[error("interrupted")]
    Interrupted,

    #[error("out of memory: {0}")]
    OutOfMemory(String),
}

pub type Result<T> = std::result::Result<T, TesseraError>;

impl TesseraError {
    pub fn load(model: impl Into<String>, reason: impl Into<String>) -> Self {
        TesseraError::ModelLoad {
            model: model.into(),
            reason: reason.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TesseraError::Io {
            path: path.into(),
            source,
        }
    }
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "; run tessera.list_models() to see the registry, or pass a Hugging Face repo id or a local directory".to_string()
    } else {
        format!(
            "; did you mean {}? (tessera.list_models() lists every id)",
            suggestions
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn list(values: &[usize]) -> String {
    // Every length up to the full one (a model outside the registry) reads as a range.
    if values.len() > 2 && values.iter().enumerate().all(|(i, v)| *v == i + 1) {
        return format!("any from 1 to {}", values.len());
    }
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
