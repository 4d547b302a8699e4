//! A fixed benchmark corpus: sentences of mixed length drawn from a word list with a
//! seeded linear congruential generator, so every run encodes the same texts.

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
    "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they",
    "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when",
    "will", "would", "who", "so", "no", "model", "embedding", "vector", "search", "retrieval", "query",
    "document", "neural", "network", "language", "sentence", "token", "attention", "layer", "training",
    "river", "mountain", "city", "market", "history", "science", "music", "garden", "weather", "ocean",
    "computer", "library", "science", "protein", "economy", "election", "football", "recipe", "travel",
    "quickly", "slowly", "beautiful", "ancient", "modern", "important", "different", "several", "between",
    "through", "because", "however", "although", "during", "without", "against", "children", "government",
    "university", "research", "information", "development", "community", "environment", "technology",
    "Paris", "London", "Tokyo", "Berlin", "2024", "42", "e-mail", "state-of-the-art", "COVID-19", "naïve",
];

/// `seed`-determined generator (Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// Word count of one sentence: mostly short (queries, titles), some paragraphs, a few
/// long enough to hit the 256-token limit.
fn sentence_words(rng: &mut Lcg) -> usize {
    match rng.below(16) {
        0..=7 => 4 + rng.below(12),
        8..=13 => 16 + rng.below(48),
        14 => 64 + rng.below(96),
        _ => 160 + rng.below(120),
    }
}

/// `count` sentences, the same for the same `count`.
pub fn sentences(count: usize) -> Vec<String> {
    let mut rng = Lcg(0x5EED_7E55_E7A0);
    (0..count)
        .map(|_| {
            let words = sentence_words(&mut rng);
            let mut text = String::new();
            for w in 0..words {
                if w > 0 {
                    text.push(if rng.below(12) == 0 { ',' } else { ' ' });
                    if text.ends_with(',') {
                        text.push(' ');
                    }
                }
                text.push_str(WORDS[rng.below(WORDS.len() as u64)]);
            }
            text.push('.');
            text
        })
        .collect()
}
