//! Tokenization with the reference's truncation, and length-sorted batching.

use std::path::Path;

use rayon::prelude::*;
use tokenizers::{Encoding, PostProcessor, Tokenizer, TruncationDirection};

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
        Ok(self
            .encode_batch_flagged(texts, max_length)?
            .into_iter()
            .map(|(ids, _)| ids)
            .collect())
    }

    /// [`encode_batch`](Self::encode_batch), with whether each text was cut.
    pub fn encode_batch_flagged(
        &self,
        texts: &[&str],
        max_length: usize,
    ) -> Result<Vec<(Vec<u32>, bool)>> {
        let specials = self.special_count();
        if max_length <= specials {
            return Err(TesseraError::Config(format!(
                "max_length {max_length} leaves no room for text after {specials} special tokens"
            )));
        }
        let budget = max_length - specials;
        texts
            .par_iter()
            .map(|text| {
                let mut pieces = self.pieces(text, budget)?;
                let truncated = pieces.len() > budget;
                pieces.truncate(budget, 0, TruncationDirection::Right);
                let full = self
                    .tokenizer
                    .post_process(pieces, None, true)
                    .map_err(|e| TesseraError::Tokenization(e.to_string()))?;
                Ok((full.get_ids().to_vec(), truncated))
            })
            .collect()
    }

    /// Tokens of each whole text, special tokens included: what the model would read
    /// with no length limit. Long texts cost their full tokenization.
    pub fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>> {
        let specials = self.special_count();
        Ok(self
            .count_pieces(texts)?
            .into_iter()
            .map(|n| n + specials)
            .collect())
    }

    /// Tokens of each whole text without special tokens: what `truncate_text` budgets.
    pub fn count_pieces(&self, texts: &[&str]) -> Result<Vec<usize>> {
        texts
            .par_iter()
            .map(|text| Ok(self.tokenize(text)?.len()))
            .collect()
    }

    fn special_count(&self) -> usize {
        self.tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false))
    }

    /// The prefix of `text` its first `budget` pieces come from (all of it when shorter),
    /// and whether that cut anything.
    pub fn truncate_text<'t>(&self, text: &'t str, budget: usize) -> Result<(&'t str, bool)> {
        let pieces = self.pieces(text, budget)?;
        if pieces.len() <= budget {
            return Ok((text, false));
        }
        let end = pieces.get_offsets()[budget - 1].1;
        Ok((text.get(..end).unwrap_or(text), true))
    }

    /// The pieces of `text` (no special tokens), of which at least the first `budget` are
    /// exactly those of the whole text: a long text is tokenized in growing prefixes, so
    /// a 50 MB string costs what its first pieces cost.
    fn pieces(&self, text: &str, budget: usize) -> Result<Encoding> {
        let mut limit = WHOLE_TEXT_BYTES.max(budget.saturating_mul(BYTES_PER_PIECE));
        loop {
            if text.len() <= limit {
                return self.tokenize(text);
            }
            // Pre-tokenizers split at whitespace, so pieces before the last word of a
            // prefix that ends at a word are those of the whole text.
            let (cut, stable) = match word_end_before(text, limit) {
                Some((cut, last_word)) => (cut, last_word),
                // No whitespace in sight: no piece depends on text this far ahead.
                None if limit >= UNSPLIT_BYTES => {
                    let cut = floor_char_boundary(text, limit);
                    (cut, cut.saturating_sub(UNSPLIT_LOOKAHEAD))
                }
                None => {
                    limit = limit.saturating_mul(2);
                    continue;
                }
            };
            let encoding = self.tokenize(&text[..cut])?;
            let settled = encoding
                .get_offsets()
                .iter()
                .take_while(|(_, end)| *end <= stable)
                .count();
            if settled > budget {
                return Ok(encoding);
            }
            limit = limit.saturating_mul(2);
        }
    }

    fn tokenize(&self, text: &str) -> Result<Encoding> {
        let lowered;
        let input = if self.lowercase {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        self.tokenizer
            .encode(input, false)
            .map_err(|e| TesseraError::Tokenization(e.to_string()))
    }

    /// Token strings of ids, as stored in the vocabulary.
    pub fn id_to_token(&self, id: u32) -> String {
        self.tokenizer
            .id_to_token(id)
            .unwrap_or_else(|| format!("[{id}]"))
    }
}

/// Texts up to this size are tokenized whole.
const WHOLE_TEXT_BYTES: usize = 16 * 1024;
/// A first guess of the text one piece needs: pieces are rarely longer.
const BYTES_PER_PIECE: usize = 32;
/// Past this much text without whitespace, a prefix is cut anywhere ...
const UNSPLIT_BYTES: usize = 1 << 20;
/// ... and only pieces ending this far before the cut are kept.
const UNSPLIT_LOOKAHEAD: usize = 4096;

/// The end of the last word that ends at or before `limit` (a non-whitespace character
/// followed by whitespace), and the start of that word: `(cut, last_word_start)`.
fn word_end_before(text: &str, limit: usize) -> Option<(usize, usize)> {
    let window = &text[..floor_char_boundary(text, limit)];
    let mut chars = window.char_indices().rev().peekable();
    let mut cut = None;
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            if let Some(&(_, before)) = chars.peek() {
                if !before.is_whitespace() {
                    cut = Some(i);
                    break;
                }
            }
        }
    }
    let cut = cut?;
    let word_start = window[..cut]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    Some((cut, word_start))
}

/// The largest char boundary of `text` at or below `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut i = index.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_ends_are_found_before_the_limit() {
        assert_eq!(word_end_before("alpha beta gamma", 12), Some((10, 6)));
        assert_eq!(word_end_before("alpha beta  gamma", 11), Some((10, 6)));
        assert_eq!(word_end_before("alphabet", 5), None);
        assert_eq!(word_end_before("  x", 3), None);
        assert_eq!(floor_char_boundary("né", 2), 1);
    }
}
