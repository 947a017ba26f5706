//! The voice-search query corpus: templates × entity lists, split so that the
//! test split's names never occur in training.
//!
//! The data lives in `crates/hark-data/corpus/` (compiled in, so every tool
//! sees the same corpus). Names from "open" lists (places, people, ...) are
//! assigned to train/dev/test by a stable hash of the name, so the test split
//! measures recognition of *unseen* entities; "closed" lists (days, units,
//! numbers, times, dates) are shared. `new_names.txt` is a separate pool for
//! the drift scenario and is never used here.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use crate::normalize::normalize;

const TEMPLATES: &str = include_str!("../corpus/templates.txt");
const NEW_NAMES: &str = include_str!("../corpus/new_names.txt");
const VOCABULARY_TEMPLATES: &str = include_str!("../corpus/vocabulary/templates.txt");
const WORDS: &str = include_str!("../corpus/vocabulary/words.txt");
const NAMES: &str = include_str!("../corpus/vocabulary/names.txt");
const LISTS: &[(&str, &str, bool)] = &[
    // (slot, file contents, open list = split by name)
    ("place", include_str!("../corpus/entities/place.txt"), true),
    ("person", include_str!("../corpus/entities/person.txt"), true),
    ("organisation", include_str!("../corpus/entities/organisation.txt"), true),
    ("landmark", include_str!("../corpus/entities/landmark.txt"), true),
    ("product", include_str!("../corpus/entities/product.txt"), true),
    ("street", include_str!("../corpus/entities/street.txt"), true),
    ("day", include_str!("../corpus/entities/day.txt"), false),
    ("unit", include_str!("../corpus/entities/unit.txt"), false),
    ("number", include_str!("../corpus/entities/number.txt"), false),
    ("time", include_str!("../corpus/entities/time.txt"), false),
    ("date", include_str!("../corpus/entities/date.txt"), false),
];

/// Slots of the vocabulary release's templates: common words and proper names
/// (`corpus/vocabulary/`), not entity-list names.
pub const VOCABULARY_SLOTS: [&str; 2] = ["word", "name"];

/// Data split. Test holds unseen names (and, in synthesis, an unseen engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Dev,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Dev, Split::Test];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }

    /// Stable assignment of an open-list name: ~80 % train, 10 % dev, 10 % test.
    pub fn of_name(name: &str) -> Split {
        match stable_hash(name) % 10 {
            0 => Split::Test,
            1 => Split::Dev,
            _ => Split::Train,
        }
    }
}

/// `train`, `dev` or `test` (as on the command line: `--split dev`).
impl std::str::FromStr for Split {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Split::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| format!("unknown split {name:?}: use train, dev or test"))
    }
}

/// FNV-1a of `text`: stable across platforms and releases (unlike std's
/// hasher), so splits and per-item seeds never move.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// One generated query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// As a person would type it ("directions to 42 baker street").
    pub written: String,
    /// What the model must output ([`normalize`]d).
    pub text: String,
    pub split: Split,
    /// Index of the template line (for per-template error analysis).
    pub template: usize,
    /// Entities used, as (slot, name).
    pub entities: Vec<(String, String)>,
}

/// Templates and entity lists.
pub struct Corpus {
    templates: Vec<String>,
    lists: BTreeMap<&'static str, (bool, Vec<String>)>,
}

pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

impl Default for Corpus {
    fn default() -> Self {
        Self::load()
    }
}

impl Corpus {
    /// The corpus shipped in `crates/hark-data/corpus/`.
    pub fn load() -> Self {
        Self { templates: lines(TEMPLATES).map(str::to_owned).collect(), ..Self::entity_lists() }
    }

    /// The entity lists alone, without the templates: what the app's page
    /// needs for its search catalogue ([`crate::catalogue::Catalogue`]);
    /// leaving the templates out keeps them out of the page's wasm.
    pub fn entity_lists() -> Self {
        let lists =
            LISTS.iter().map(|(slot, text, open)| (*slot, (*open, lines(text).map(str::to_owned).collect()))).collect();
        Self { templates: Vec::new(), lists }
    }

    pub fn templates(&self) -> &[String] {
        &self.templates
    }

    /// Entity names of `slot` usable in `split`.
    pub fn entities(&self, slot: &str, split: Split) -> Vec<&str> {
        let Some((open, names)) = self.lists.get(slot) else { return Vec::new() };
        names.iter().filter(|n| !open || Split::of_name(n) == split).map(String::as_str).collect()
    }

    /// Whether `slot` is an open entity list (names split by hash: places,
    /// people, ...), as opposed to a closed list (days, units, ...) or a
    /// vocabulary slot.
    pub fn is_open_slot(&self, slot: &str) -> bool {
        self.lists.get(slot).is_some_and(|(open, _)| *open)
    }

    /// Every open-list name with its split (for "seen vs unseen" slicing).
    pub fn open_names(&self) -> impl Iterator<Item = (&'static str, &str, Split)> {
        self.lists
            .iter()
            .filter(|(_, (open, _))| *open)
            .flat_map(|(slot, (_, names))| names.iter().map(move |n| (*slot, n.as_str(), Split::of_name(n))))
    }

    /// Up to `count` distinct queries of `split`, deterministic from `seed`.
    pub fn generate(&self, split: Split, count: usize, seed: u64) -> Vec<Query> {
        let rng = ChaCha8Rng::seed_from_u64(seed ^ (split as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let pools: BTreeMap<&str, Vec<&str>> =
            self.lists.keys().map(|slot| (*slot, self.entities(slot, split))).collect();
        draw(&self.templates, 0, &pools, split, count, rng)
    }

    /// A [`Matcher`] for the templates of both releases filled from `split`.
    pub fn matcher(&self, split: Split) -> Matcher {
        let (vocabulary, pools) = self.vocabulary_pools(split);
        let slots: BTreeMap<&str, std::rc::Rc<rustc_hash::FxHashMap<String, Vec<Vec<String>>>>> = pools
            .iter()
            .map(|(slot, names)| {
                let mut by_first: rustc_hash::FxHashMap<String, Vec<Vec<String>>> = Default::default();
                for w in names.iter().map(|n| words(n)).filter(|w| !w.is_empty()) {
                    by_first.entry(w[0].clone()).or_default().push(w);
                }
                (*slot, std::rc::Rc::new(by_first))
            })
            .collect();
        let parse = |template: &String| -> Option<Vec<Part>> {
            let mut out = Vec::new();
            let mut rest = template.as_str();
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}')? + open;
                out.push(Part::Words(words(&rest[..open])));
                out.push(Part::Slot(slots.get(&rest[open + 1..close])?.clone()));
                rest = &rest[close + 1..];
            }
            out.push(Part::Words(words(rest)));
            Some(out)
        };
        Matcher { templates: self.templates.iter().chain(&vocabulary).filter_map(parse).collect() }
    }

    /// The vocabulary release's templates and the slot pools of `split`.
    fn vocabulary_pools(&self, split: Split) -> (Vec<String>, BTreeMap<&'static str, Vec<&str>>) {
        let mut reserved: FxHashSet<String> = self
            .open_names()
            .filter(|(_, _, s)| *s != split)
            .flat_map(|(_, name, _)| normalize(name).split(' ').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        reserved.extend(
            new_names().iter().flat_map(|(_, n)| normalize(n).split(' ').map(str::to_owned).collect::<Vec<_>>()),
        );
        let usable = |text: &'static str| -> Vec<&'static str> {
            lines(text).filter(|w| Split::of_name(w) == split && !reserved.contains(*w)).collect()
        };
        let mut pools: BTreeMap<&'static str, Vec<&str>> =
            self.lists.keys().map(|slot| (*slot, self.entities(slot, split))).collect();
        let [word, name] = VOCABULARY_SLOTS;
        pools.insert(word, usable(WORDS));
        pools.insert(name, usable(NAMES));
        (lines(VOCABULARY_TEMPLATES).map(str::to_owned).collect(), pools)
    }

    /// Up to `count` distinct queries of `split` from the vocabulary release's
    /// templates (`corpus/vocabulary/`): thousands of common words and proper
    /// names, for acoustic training only (the language model is built from
    /// [`Corpus::generate`]). Words are split by hash like open-list names,
    /// and a word that occurs in another split's entity name or in the drift
    /// pool is never used, so test names stay unseen. Template indices follow
    /// [`Corpus::templates`]'s (`templates().len() + i`).
    pub fn generate_vocabulary(&self, split: Split, count: usize, seed: u64) -> Vec<Query> {
        let rng = ChaCha8Rng::seed_from_u64(seed ^ (split as u64 + 1).wrapping_mul(0x517c_c1b7_2722_0a95));
        let (templates, pools) = self.vocabulary_pools(split);
        draw(&templates, self.templates.len(), &pools, split, count, rng)
    }
}

/// A template as normalised words and slots, for [`Matcher`].
enum Part {
    Words(Vec<String>),
    /// Every filler of the slot, as normalised words, by first word.
    Slot(std::rc::Rc<rustc_hash::FxHashMap<String, Vec<Vec<String>>>>),
}

fn words(text: &str) -> Vec<String> {
    normalize(text).split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

fn part_matches(parts: &[Part], text: &[&str]) -> bool {
    let prefix = |w: &[String], text: &[&str]| text.len() >= w.len() && text.iter().zip(w).all(|(a, b)| a == b);
    match parts.split_first() {
        None => text.is_empty(),
        Some((Part::Words(w), rest)) => prefix(w, text) && part_matches(rest, &text[w.len()..]),
        Some((Part::Slot(fillers), rest)) => text
            .first()
            .and_then(|first| fillers.get(*first))
            .is_some_and(|fs| fs.iter().any(|f| prefix(f, text) && part_matches(rest, &text[f.len()..]))),
    }
}

/// Tells whether some template (of either release) filled with one split's
/// names and words yields a given normalised text: an exhaustive check, not a
/// sample (the free-form evaluation set must be text no training template
/// produces). See [`Corpus::matcher`].
pub struct Matcher {
    templates: Vec<Vec<Part>>,
}

impl Matcher {
    pub fn can_generate(&self, text: &str) -> bool {
        let text: Vec<&str> = text.split(' ').collect();
        self.templates.iter().any(|p| part_matches(p, &text))
    }
}

/// Up to `count` distinct queries from `templates` (numbered from `offset`)
/// filled from `pools`.
fn draw(
    templates: &[String],
    offset: usize,
    pools: &BTreeMap<&str, Vec<&str>>,
    split: Split,
    count: usize,
    mut rng: ChaCha8Rng,
) -> Vec<Query> {
    // Fast hashing: the browser builds its language model from these
    // queries on every cold start, ~10 attempts per query kept.
    let mut seen = FxHashSet::default();
    // Most attempts repeat a query already drawn; the same written form
    // always normalises to the same text, so those skip `normalize` (the
    // expensive step). Same queries, same order as checking text alone.
    let mut seen_written = FxHashSet::default();
    let mut out = Vec::with_capacity(count);
    let mut attempts = 0;
    // Reused across attempts: most attempts are repeats and allocate nothing.
    let mut written = String::new();
    let mut picks = Vec::new();
    while out.len() < count && attempts < count * 50 {
        attempts += 1;
        let template = rng.random_range(0..templates.len());
        if !fill(&templates[template], pools, &mut rng, &mut written, &mut picks) || seen_written.contains(&written) {
            continue;
        }
        seen_written.insert(written.clone());
        let text = normalize(&written);
        if seen.insert(text.clone()) {
            let entities =
                picks.iter().map(|(slot, name): &(&str, &str)| (slot.to_string(), name.to_string())).collect();
            out.push(Query { text, written: written.clone(), split, template: offset + template, entities });
        }
    }
    out
}

/// `template` with a random name in each slot: the written query into
/// `written` and the (slot, name) pairs used into `picks`; false if a slot
/// has no names.
fn fill<'a>(
    template: &str,
    pools: &BTreeMap<&'a str, Vec<&'a str>>,
    rng: &mut ChaCha8Rng,
    written: &mut String,
    picks: &mut Vec<(&'a str, &'a str)>,
) -> bool {
    written.clear();
    picks.clear();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| c + open) else { return false };
        written.push_str(&rest[..open]);
        let slot = &rest[open + 1..close];
        let Some((slot, pool)) = pools.get_key_value(slot).filter(|(_, p)| !p.is_empty()) else { return false };
        let name = pool[rng.random_range(0..pool.len())];
        written.push_str(name);
        picks.push((*slot, name));
        rest = &rest[close + 1..];
    }
    written.push_str(rest);
    true
}

/// The drift pool: (kind, name) pairs that must never enter training data.
pub fn new_names() -> Vec<(String, String)> {
    lines(NEW_NAMES)
        .filter_map(|l| l.split_once('\t'))
        .map(|(kind, name)| (kind.trim().to_owned(), name.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn splits_parse_from_their_names_and_refuse_others_by_name() {
        for split in Split::ALL {
            assert_eq!(split.name().parse::<Split>(), Ok(split));
        }
        assert_eq!("Dev".parse::<Split>(), Err("unknown split \"Dev\": use train, dev or test".to_owned()));
    }

    #[test]
    fn generates_at_least_5000_distinct_queries() {
        let corpus = Corpus::load();
        let all: BTreeSet<String> =
            Split::ALL.iter().flat_map(|&s| corpus.generate(s, 4000, 1)).map(|q| q.text).collect();
        assert!(all.len() >= 5000, "only {} distinct queries", all.len());
    }

    #[test]
    fn generation_is_deterministic_from_the_seed() {
        let corpus = Corpus::load();
        assert_eq!(corpus.generate(Split::Train, 200, 7), corpus.generate(Split::Train, 200, 7));
        assert_ne!(corpus.generate(Split::Train, 200, 7), corpus.generate(Split::Train, 200, 8));
    }

    #[test]
    fn test_names_never_occur_in_training_queries() {
        let corpus = Corpus::load();
        let train = corpus.generate(Split::Train, 5000, 3);
        let test = corpus.generate(Split::Test, 1000, 3);
        assert!(test.len() >= 500, "test split too small: {}", test.len());
        let train_names: BTreeSet<&str> = train
            .iter()
            .flat_map(|q| &q.entities)
            .filter(|(slot, _)| corpus.lists[slot.as_str()].0)
            .map(|(_, n)| n.as_str())
            .collect();
        for q in &test {
            for (slot, name) in &q.entities {
                if corpus.lists[slot.as_str()].0 {
                    assert!(!train_names.contains(name.as_str()), "{name} is in both train and test");
                }
            }
        }
    }

    #[test]
    fn new_names_occur_nowhere_in_the_corpus() {
        let corpus = Corpus::load();
        let names = new_names();
        assert!(names.len() >= 10);
        let texts: Vec<String> = Split::ALL.iter().flat_map(|&s| corpus.generate(s, 5000, 5)).map(|q| q.text).collect();
        for (_, name) in &names {
            let name = normalize(name);
            assert!(corpus.open_names().all(|(_, n, _)| normalize(n) != name), "{name} is in an entity list");
            assert!(texts.iter().all(|t| !format!(" {t} ").contains(&format!(" {name} "))), "{name} occurs in a query");
        }
    }

    #[test]
    fn vocabulary_queries_use_many_words_and_no_other_splits_names() {
        let corpus = Corpus::load();
        let train = corpus.generate_vocabulary(Split::Train, 4000, 9);
        assert_eq!(train.len(), 4000);
        assert_eq!(train, corpus.generate_vocabulary(Split::Train, 4000, 9));
        assert!(train.iter().all(|q| q.template >= corpus.templates().len()));
        let words: BTreeSet<&str> = train.iter().flat_map(|q| q.text.split(' ')).collect();
        assert!(words.len() >= 3000, "only {} distinct words", words.len());
        // No word of a dev or test name, nor of the drift pool, is spoken in training.
        let reserved: BTreeSet<String> = corpus
            .open_names()
            .filter(|(_, _, s)| *s != Split::Train)
            .map(|(_, n, _)| n.to_owned())
            .chain(new_names().into_iter().map(|(_, n)| n))
            .flat_map(|n| normalize(&n).split(' ').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        for q in &train {
            for (slot, w) in &q.entities {
                assert!(
                    !reserved.contains(w.as_str()) || !VOCABULARY_SLOTS.contains(&slot.as_str()),
                    "{w} is reserved"
                );
            }
        }
        // Words are split like names: dev draws from other words than train.
        let dev = corpus.generate_vocabulary(Split::Dev, 300, 9);
        let train_words: BTreeSet<&str> =
            train.iter().flat_map(|q| &q.entities).filter(|(s, _)| s == "word").map(|(_, w)| w.as_str()).collect();
        assert!(
            dev.iter()
                .flat_map(|q| &q.entities)
                .filter(|(s, _)| s == "word")
                .all(|(_, w)| !train_words.contains(w.as_str()))
        );
    }

    #[test]
    fn every_template_slot_names_a_list() {
        let corpus = Corpus::load();
        let vocabulary: Vec<&str> = lines(VOCABULARY_TEMPLATES).collect();
        for (t, vocabulary_only) in
            corpus.templates().iter().map(|t| (t.as_str(), false)).chain(vocabulary.into_iter().map(|t| (t, true)))
        {
            for part in t.split('{').skip(1) {
                let slot = part.split('}').next().unwrap();
                let known = corpus.lists.contains_key(slot) || (vocabulary_only && VOCABULARY_SLOTS.contains(&slot));
                assert!(known, "template {t:?} uses unknown slot {slot}");
            }
        }
    }
}
