//! Text that no template produced: the **free-form evaluation set** and the
//! **English training text**.
//!
//! * [`freeform`] — what hark's headline WER is measured on: 1,000+
//!   voice-search queries written by hand independently of the templates
//!   (`corpus/freeform/queries.txt`) and 1,000+ general English sentences
//!   from Debian's `fortunes` (`corpus/freeform/general.txt`, extracted by
//!   `cargo xtask text`). Each sentence belongs to the dev half or the test
//!   half by a stable hash of its spoken text. Evaluation only.
//! * [`english`] — training text: WordNet 3.0's example sentences
//!   (`corpus/english/wordnet.txt`), train and dev by hash. A sentence that
//!   holds a name reserved for another split or for the drift pool, or that
//!   is a free-form evaluation sentence, is dropped here, so no caller can
//!   speak it in training.
//!
//! **Invariant** (held by the tests below): no free-form evaluation text is
//! training text, and no template generates one.

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

#[cfg(test)]
use crate::corpus::Matcher;
use crate::corpus::{Corpus, Query, Split, lines, new_names, stable_hash};
use crate::manifest::Utterance;
use crate::normalize::normalize;

const FREEFORM_QUERIES: &str = include_str!("../corpus/freeform/queries.txt");
const FREEFORM_GENERAL: &str = include_str!("../corpus/freeform/general.txt");
const WORDNET: &str = include_str!("../corpus/english/wordnet.txt");

/// The `template` of a [`Query`] that no template produced.
pub const NO_TEMPLATE: usize = usize::MAX;

/// Where a sentence's text came from (the manifest's `text` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A hand-written free-form voice-search query (evaluation).
    FreeformQuery,
    /// A general English sentence from `fortunes` (evaluation).
    FreeformGeneral,
    /// A WordNet example sentence (training).
    Wordnet,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::FreeformQuery => "freeform-query",
            Source::FreeformGeneral => "freeform-general",
            Source::Wordnet => "wordnet",
        }
    }

    pub fn of_name(name: &str) -> Option<Source> {
        [Source::FreeformQuery, Source::FreeformGeneral, Source::Wordnet].into_iter().find(|s| s.name() == name)
    }

    pub fn is_freeform(self) -> bool {
        matches!(self, Source::FreeformQuery | Source::FreeformGeneral)
    }
}

/// Whether a manifest utterance belongs to the free-form evaluation set
/// (its `text` tag).
pub fn is_freeform(u: &Utterance) -> bool {
    u.tags.get("text").and_then(|t| Source::of_name(t)).is_some_and(Source::is_freeform)
}

/// A sentence as a [`Query`] of `split` (no template, no entities).
fn query(written: &str, text: String, split: Split) -> Query {
    Query { written: written.to_owned(), text, split, template: NO_TEMPLATE, entities: Vec::new() }
}

/// Distinct normalised sentences of `text`, each with its written form.
fn distinct(text: &'static str) -> Vec<(&'static str, String)> {
    let mut seen = FxHashSet::default();
    lines(text).map(|l| (l, normalize(l))).filter(|(_, t)| !t.is_empty() && seen.insert(t.clone())).collect()
}

/// The free-form half a sentence belongs to: dev or test, by hash.
pub fn freeform_split(text: &str) -> Split {
    if stable_hash(text) % 2 == 0 { Split::Dev } else { Split::Test }
}

/// The free-form evaluation sentences of `split` (dev or test; train has
/// none), queries first, in file order, with their source.
pub fn freeform(split: Split) -> Vec<(Source, Query)> {
    [(Source::FreeformQuery, FREEFORM_QUERIES), (Source::FreeformGeneral, FREEFORM_GENERAL)]
        .into_iter()
        .flat_map(|(source, text)| distinct(text).into_iter().map(move |(w, t)| (source, w, t)))
        .filter(|(_, _, t)| freeform_split(t) == split && split != Split::Train)
        .map(|(source, w, t)| (source, query(w, t, split)))
        .collect()
}

/// Every free-form evaluation text (both halves), normalised.
pub fn freeform_texts() -> FxHashSet<String> {
    [FREEFORM_QUERIES, FREEFORM_GENERAL].into_iter().flat_map(distinct).map(|(_, t)| t).collect()
}

/// Words spoken in a name that `split` must never hear: the other splits'
/// open-list names and the drift pool, as normalised phrases.
fn reserved_names(corpus: &Corpus, split: Split) -> Vec<String> {
    corpus
        .open_names()
        .filter(|(_, _, s)| *s != split)
        .map(|(_, n, _)| normalize(n))
        .chain(new_names().iter().map(|(_, n)| normalize(n)))
        .filter(|n| !n.is_empty())
        .collect()
}

fn holds_phrase(text: &str, phrase: &str) -> bool {
    format!(" {text} ").contains(&format!(" {phrase} "))
}

/// The English training text of `split`: WordNet example sentences, ~95 %
/// train and 5 % dev by hash (test has none: hark's test is the free-form
/// set), at most 20 words, without reserved names or evaluation sentences.
pub fn english(split: Split) -> Vec<Query> {
    let corpus = Corpus::load();
    let reserved = reserved_names(&corpus, split);
    let held_out = freeform_texts();
    let split_of = |t: &str| if stable_hash(t) % 20 == 7 { Split::Dev } else { Split::Train };
    distinct(WORDNET)
        .into_iter()
        .filter(|(_, t)| split_of(t) == split && split != Split::Test)
        .filter(|(_, t)| t.split(' ').count() <= 20 && !held_out.contains(t))
        .filter(|(_, t)| !reserved.iter().any(|n| holds_phrase(t, n)))
        .map(|(w, t)| query(w, t, split))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn freeform_set_is_large_and_split_in_halves() {
        let (dev, test) = (freeform(Split::Dev), freeform(Split::Test));
        assert!(freeform(Split::Train).is_empty());
        for source in [Source::FreeformQuery, Source::FreeformGeneral] {
            let n = |half: &[(Source, Query)]| half.iter().filter(|(s, _)| *s == source).count();
            assert!(n(&dev) + n(&test) >= 1000, "{source:?}: only {}", n(&dev) + n(&test));
            assert!(n(&dev) >= 400 && n(&test) >= 400, "{source:?}: dev {} test {}", n(&dev), n(&test));
        }
        let dev_texts: BTreeSet<&str> = dev.iter().map(|(_, q)| q.text.as_str()).collect();
        assert!(test.iter().all(|(_, q)| !dev_texts.contains(q.text.as_str())));
        assert!(dev.iter().chain(&test).all(|(_, q)| q.template == NO_TEMPLATE && q.text.split(' ').count() >= 2));
    }

    #[test]
    fn no_template_generates_a_freeform_sentence() {
        let corpus = Corpus::load();
        // No template of any split: the set is text no template produced.
        let all: Vec<Matcher> = Split::ALL.iter().map(|&s| corpus.matcher(s)).collect();
        let generated: BTreeSet<String> =
            freeform_texts().into_iter().filter(|t| all.iter().any(|m| m.can_generate(t))).collect();
        assert!(generated.is_empty(), "templates generate these free-form sentences: {generated:?}");
        let matcher = corpus.matcher(Split::Train);
        // The check itself finds what the templates make, and only that.
        for q in corpus.generate(Split::Train, 200, 1).iter().chain(&corpus.generate_vocabulary(Split::Train, 200, 1)) {
            assert!(matcher.can_generate(&q.text), "{:?}", q.text);
        }
        assert!(!matcher.can_generate("weather in"));
    }

    #[test]
    fn english_training_text_holds_no_evaluation_sentence_nor_reserved_name() {
        let corpus = Corpus::load();
        let held_out = freeform_texts();
        let train = english(Split::Train);
        let dev = english(Split::Dev);
        assert!(train.len() >= 35_000, "only {} training sentences", train.len());
        assert!(dev.len() >= 1_000 && english(Split::Test).is_empty());
        let reserved = reserved_names(&corpus, Split::Train);
        for q in &train {
            assert!(!held_out.contains(&q.text), "{:?} is an evaluation sentence", q.text);
            assert!(!reserved.iter().any(|n| holds_phrase(&q.text, n)), "{:?} holds a reserved name", q.text);
        }
        let train_texts: BTreeSet<&str> = train.iter().map(|q| q.text.as_str()).collect();
        assert!(dev.iter().all(|q| !train_texts.contains(q.text.as_str())));
        // The words training now hears: far beyond the templates' few hundred.
        let words: BTreeSet<&str> = train.iter().flat_map(|q| q.text.split(' ')).collect();
        assert!(words.len() >= 20_000, "only {} distinct words", words.len());
    }

    #[test]
    fn sources_read_back_from_their_tag() {
        for s in [Source::FreeformQuery, Source::FreeformGeneral, Source::Wordnet] {
            assert_eq!(Source::of_name(s.name()), Some(s));
        }
        assert_eq!(Source::of_name("template"), None);
    }

    #[test]
    fn reserved_names_are_matched_as_whole_words() {
        assert!(holds_phrase("flights to luang prabang today", "luang prabang"));
        assert!(!holds_phrase("a kotorian dish", "kotor"));
    }
}
