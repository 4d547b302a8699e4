//! Tokenization with the reference's truncation, and length-sorted batching.

use std::path::Path;

use rayon::prelude::*;
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection};

use crate::error::{Result, TesseraError};

/// A `tokenizer.json` with its own truncation and padding removed: the reference
/// truncates at the sentence-transformers length, and Tessera never pads (it packs).
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    lowercase: bool,
}

impl TextTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(TesseraError::load(
                path.display().to_string(),
                "tokenizer.json not found in the model directory",
            ));
        }
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| {
            TesseraError::load(
                path.display().to_string(),
                format!("invalid tokenizer.json: {e}"),
            )
        })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| TesseraError::Tokenization(e.to_string()))?;
        Ok(TextTokenizer {
            tokenizer,
            lowercase: false,
        })
    }

    /// Lowercases texts before tokenizing (sentence-transformers' `do_lower_case`).
    pub fn with_lowercase(mut self, lowercase: bool) -> Self {
        self.lowercase = lowercase;
        self
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Token ids of each text, special tokens added, cut to `max_length` tokens the way
    /// the reference does: the first `max_length - specials` pieces are kept.
    pub fn encode_batch(&self, texts: &[&str], max_length: usize) -> Result<Vec<Vec<u32>>> {
        let specials = self
            .tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if max_length <= specials {
            return Err(TesseraError::Config(format!(
                "max_length {max_length} leaves no room for text after {specials} special tokens"
            )));
        }
        let budget = max_length - specials;
        texts
            .par_iter()
            .map(|text| {
                let lowered;
                let input = if self.lowercase {
                    lowered = text.to_lowercase();
                    lowered.as_str()
                } else {
                    text
                };
                let mut pieces = self
                    .tokenizer
                    .encode(input, false)
                    .map_err(|e| TesseraError::Tokenization(e.to_string()))?;
                pieces.truncate(budget, 0, TruncationDirection::Right);
                let full = self
                    .tokenizer
                    .post_process(pieces, None, true)
                    .map_err(|e| TesseraError::Tokenization(e.to_string()))?;
                Ok(full.get_ids().to_vec())
            })
            .collect()
    }

    /// Token strings of ids, as stored in the vocabulary.
    pub fn id_to_token(&self, id: u32) -> String {
        self.tokenizer
            .id_to_token(id)
            .unwrap_or_else(|| format!("[{id}]"))
    }
}

/// Groups indices into batches of at most `batch_size`, longest texts first, so each
/// batch holds texts of similar length.
pub fn length_sorted_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}
