//! Packed batches: several texts laid end to end as one row of tokens, so the dense
//! layers run on `[total_tokens, hidden]` with no padding and attention runs per text.

/// One text inside a packed batch: rows `start .. start + len` of the packed tensor.
/// Only its first `attended` tokens are visible as attention keys (ColBERT query
/// expansion tokens may be excluded); every token still gets an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
    pub attended: usize,
}

/// Token ids of several texts laid end to end, with their spans and each token's
/// position inside its own text (`0 .. len`).
#[derive(Debug, Clone)]
pub struct PackedBatch {
    ids: Vec<u32>,
    positions: Vec<u32>,
    spans: Vec<Span>,
}

impl PackedBatch {
    /// Packs sequences; `attended[i]` limits the keys of sequence `i` (None: all).
    pub fn new(sequences: &[Vec<u32>], attended: Option<&[usize]>) -> Self {
        let total = sequences.iter().map(Vec::len).sum();
        let mut ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        let mut spans = Vec::with_capacity(sequences.len());
        for (i, seq) in sequences.iter().enumerate() {
            let start = ids.len();
            ids.extend_from_slice(seq);
            positions.extend(0..seq.len() as u32);
            let keys = attended.map_or(seq.len(), |a| a[i].min(seq.len()));
            spans.push(Span {
                start,
                len: seq.len(),
                attended: keys,
            });
        }
        PackedBatch {
            ids,
            positions,
            spans,
        }
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    pub fn positions(&self) -> &[u32] {
        &self.positions
    }

    /// The texts, end to end and in order: every kernel relies on that tiling.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    pub fn total_tokens(&self) -> usize {
        self.ids.len()
    }

    pub fn max_len(&self) -> usize {
        self.spans.iter().map(|s| s.len).max().unwrap_or(0)
    }

    /// Splits the batch into runs of whole texts of at most `max_tokens` tokens each (a
    /// longer text is a run of its own). Every token's result is the same either way;
    /// smaller runs keep the activations in cache and their memory reused.
    pub fn chunks(&self, max_tokens: usize) -> Vec<PackedBatch> {
        let mut chunks = Vec::new();
        let mut first = 0;
        while first < self.spans.len() {
            let start = self.spans[first].start;
            let mut last = first + 1;
            while last < self.spans.len()
                && self.spans[last].start + self.spans[last].len - start <= max_tokens
            {
                last += 1;
            }
            let end = self.spans[last - 1].start + self.spans[last - 1].len;
            chunks.push(PackedBatch {
                ids: self.ids[start..end].to_vec(),
                positions: self.positions[start..end].to_vec(),
                spans: self.spans[first..last]
                    .iter()
                    .map(|s| Span {
                        start: s.start - start,
                        ..*s
                    })
                    .collect(),
            });
            first = last;
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_whole_texts_and_rebase_their_spans() {
        let seqs: Vec<Vec<u32>> = [3usize, 5, 2, 7, 1]
            .iter()
            .map(|&n| (0..n as u32).collect())
            .collect();
        let batch = PackedBatch::new(&seqs, Some(&[1, 5, 9, 3, 1]));
        let chunks = batch.chunks(8);
        let lens: Vec<Vec<usize>> = chunks
            .iter()
            .map(|c| c.spans().iter().map(|s| s.len).collect())
            .collect();
        assert_eq!(lens, vec![vec![3, 5], vec![2], vec![7, 1]]);
        for chunk in &chunks {
            let mut next = 0;
            for span in chunk.spans() {
                assert_eq!(span.start, next);
                assert!(span.attended <= span.len);
                next += span.len;
            }
            assert_eq!(next, chunk.total_tokens());
        }
        let ids: Vec<u32> = chunks.iter().flat_map(|c| c.ids().to_vec()).collect();
        assert_eq!(ids, batch.ids());
    }
}
