//! New words: what people say that the decoder cannot write.
//!
//! Corrections are the strongest evidence (a person typed the words), so
//! their out-of-vocabulary rate is reported apart from the predictions'
//! (which hold a new word only where the spelling fallback caught it). A
//! run of two or more unknown words is counted as a name ("luang prabang").

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

/// How many new words and names a report lists.
pub const TOP: usize = 20;

/// One new word or name, with how often it came and one query using it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewWord {
    pub text: String,
    pub count: u64,
    pub example: String,
}

/// Out-of-vocabulary statistics over a set of texts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Oov {
    /// Texts (queries) counted.
    pub texts: u64,
    pub tokens: u64,
    pub oov_tokens: u64,
    /// Texts with at least one unknown word.
    pub texts_with_oov: u64,
    /// `oov_tokens / tokens` (0 without tokens).
    pub rate: f64,
    pub top_words: Vec<NewWord>,
    pub top_names: Vec<NewWord>,
}

/// The decoder's words.
pub struct Vocabulary(HashSet<String>);

impl Vocabulary {
    pub fn new<'a>(words: impl IntoIterator<Item = &'a str>) -> Self {
        Self(words.into_iter().flat_map(str::split_whitespace).map(str::to_owned).collect())
    }

    pub fn knows(&self, word: &str) -> bool {
        self.0.contains(word)
    }

    /// Counts the unknown words and names of `texts` (each with how many
    /// times it was seen: the database groups identical texts).
    pub fn oov<'a>(&self, texts: impl IntoIterator<Item = (&'a str, u64)>) -> Oov {
        let mut oov = Oov::default();
        let mut words: BTreeMap<String, (u64, String)> = BTreeMap::new();
        let mut names: BTreeMap<String, (u64, String)> = BTreeMap::new();
        let note = |map: &mut BTreeMap<String, (u64, String)>, key: String, count: u64, text: &str| {
            let entry = map.entry(key).or_insert_with(|| (0, text.to_owned()));
            entry.0 += count;
        };
        for (text, count) in texts {
            let text = hark_data::normalize(text);
            let tokens: Vec<&str> = text.split_whitespace().collect();
            if tokens.is_empty() {
                continue;
            }
            oov.texts += count;
            oov.tokens += tokens.len() as u64 * count;
            let unknown: Vec<bool> = tokens.iter().map(|t| !self.knows(t)).collect();
            let n_unknown = unknown.iter().filter(|u| **u).count() as u64;
            oov.oov_tokens += n_unknown * count;
            if n_unknown > 0 {
                oov.texts_with_oov += count;
            }
            let mut i = 0;
            while i < tokens.len() {
                if !unknown[i] {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < tokens.len() && unknown[i] {
                    note(&mut words, tokens[i].to_owned(), count, &text);
                    i += 1;
                }
                if i - start >= 2 {
                    note(&mut names, tokens[start..i].join(" "), count, &text);
                }
            }
        }
        oov.rate = if oov.tokens == 0 { 0.0 } else { oov.oov_tokens as f64 / oov.tokens as f64 };
        oov.top_words = top(words);
        oov.top_names = top(names);
        oov
    }
}

fn top(map: BTreeMap<String, (u64, String)>) -> Vec<NewWord> {
    let mut all: Vec<NewWord> =
        map.into_iter().map(|(text, (count, example))| NewWord { text, count, example }).collect();
    all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));
    all.truncate(TOP);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_words_and_runs_of_them_are_counted_with_an_example() {
        let vocab = Vocabulary::new(["weather in", "flights to paris", "play some"]);
        let oov = vocab.oov([("weather in luang prabang", 3), ("flights to paris", 5), ("play some zorblax", 1)]);
        assert_eq!((oov.texts, oov.tokens, oov.oov_tokens, oov.texts_with_oov), (9, 3 * 4 + 5 * 3 + 3, 7, 4));
        assert_eq!(
            oov.top_words[0],
            NewWord { text: "luang".into(), count: 3, example: "weather in luang prabang".into() }
        );
        assert_eq!(
            oov.top_names,
            [NewWord { text: "luang prabang".into(), count: 3, example: "weather in luang prabang".into() }]
        );
        assert!((oov.rate - 7.0 / 30.0).abs() < 1e-12);
    }

    #[test]
    fn nothing_to_count_is_a_zero_rate_not_a_division_by_zero() {
        let oov = Vocabulary::new(["a"]).oov([("", 4)]);
        assert_eq!((oov.texts, oov.rate), (0, 0.0));
    }
}
