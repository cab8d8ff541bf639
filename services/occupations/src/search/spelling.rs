//! Typo tolerance: a query word the index does not hold becomes the nearest word it does.
//!
//! The rule, stated so it can be checked: words of fewer than 4 characters or with a
//! digit are left alone; others may be 1 edit away (up to 6 characters) or 2 (longer),
//! an edit being an inserted, dropped or replaced letter or two neighbours swapped
//! (Damerau), and a missing space (`zookeeper` is `zoo keeper`) counting as one edit.
//! Every candidate at the smallest distance is searched, at most three, those more texts
//! hold first: BM25 and the exact-title bonus then choose between them.

use std::collections::HashMap;

use levenshtein_automata::{Distance, LevenshteinAutomatonBuilder};

/// Holds the automaton builders, costly to make and reused for every query.
pub struct Corrector {
    one: LevenshteinAutomatonBuilder,
    two: LevenshteinAutomatonBuilder,
}

impl Corrector {
    pub fn new() -> Self {
        Self {
            one: LevenshteinAutomatonBuilder::new(1, true),
            two: LevenshteinAutomatonBuilder::new(2, true),
        }
    }

    /// What an unknown `word` may have meant: the nearest vocabulary words or word pairs,
    /// at most three; empty when nothing is near.
    pub fn correct(&self, word: &str, vocabulary: &HashMap<String, u32>) -> Vec<String> {
        let length = word.chars().count();
        if length < 4 || word.chars().any(|c| c.is_ascii_digit()) {
            return Vec::new();
        }
        let (automaton, reach) = if length <= 6 {
            (self.one.build_dfa(word), 1)
        } else {
            (self.two.build_dfa(word), 2)
        };
        let mut found: Vec<(u8, std::cmp::Reverse<u32>, String)> = Vec::new();
        for (candidate, count) in vocabulary {
            if candidate.chars().count().abs_diff(length) > reach {
                continue;
            }
            if let Distance::Exact(distance) = automaton.eval(candidate) {
                found.push((distance, std::cmp::Reverse(*count), candidate.clone()));
            }
        }
        // A dropped space: both halves known words of at least three letters.
        for (split, _) in word.char_indices().skip(3) {
            let (head, tail) = word.split_at(split);
            if tail.chars().count() < 3 {
                break;
            }
            if let (Some(first), Some(second)) = (vocabulary.get(head), vocabulary.get(tail)) {
                found.push((
                    1,
                    std::cmp::Reverse(*first.min(second)),
                    format!("{head} {tail}"),
                ));
            }
        }
        found.sort();
        let nearest = found.first().map(|candidate| candidate.0);
        found
            .into_iter()
            .take_while(|candidate| Some(candidate.0) == nearest)
            .take(3)
            .map(|(_, _, candidate)| candidate)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary() -> HashMap<String, u32> {
        [
            ("electrician", 40),
            ("electric", 90),
            ("plumber", 12),
            ("plumbers", 3),
            ("vet", 2),
        ]
        .into_iter()
        .map(|(word, count)| (word.to_owned(), count))
        .collect()
    }

    #[test]
    fn the_nearest_known_word_replaces_an_unknown_one() {
        let corrector = Corrector::new();
        let vocabulary = vocabulary();
        assert_eq!(
            corrector.correct("electrican", &vocabulary),
            ["electrician"]
        );
        assert_eq!(
            corrector.correct("electrixian", &vocabulary),
            ["electrician"]
        );
        // "plumbers" is two edits away, out of reach for a six-letter word.
        assert_eq!(corrector.correct("plumbr", &vocabulary), ["plumber"]);
        // Swapped neighbours are one edit.
        assert_eq!(corrector.correct("pulmber", &vocabulary), ["plumber"]);
        // A missing space is one edit.
        assert_eq!(
            corrector.correct("vetplumber", &vocabulary),
            ["vet plumber"]
        );
    }

    #[test]
    fn every_candidate_at_the_smallest_distance_is_kept_commonest_first() {
        let vocabulary: HashMap<String, u32> = [("electrical", 90), ("electrician", 40)]
            .into_iter()
            .map(|(word, count)| (word.to_owned(), count))
            .collect();
        assert_eq!(
            Corrector::new().correct("electrican", &vocabulary),
            ["electrical", "electrician"]
        );
    }

    #[test]
    fn short_and_far_words_are_left_alone() {
        let corrector = Corrector::new();
        let vocabulary = vocabulary();
        assert!(corrector.correct("vat", &vocabulary).is_empty());
        assert!(corrector.correct("plxxbr", &vocabulary).is_empty());
        assert!(corrector.correct("level3", &vocabulary).is_empty());
    }
}
