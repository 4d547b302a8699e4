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
