//! CTC prefix beam search (Hannun et al. 2014) with word-level scoring by a
//! class-based language model.
//!
//! A prefix's score is its CTC probability (blank- and non-blank-ending paths
//! kept apart) plus its word score: for each completed word
//! `alpha · ln P_lm(word | two previous tokens) + beta`, plus `oov_penalty`
//! once (and `oov_char_penalty` per character) for a word that leaves the
//! lexicon. A name of the entity list may instead be read as its class:
//! `alpha · (ln P_lm(<class> | context) + ln 1/|class|) + beta · words +
//! entity_boost` (see [`crate::entities`]). One character prefix can be read
//! several ways ("paris" the word or a `<place>`; "new" alone or the start of
//! "new york"), so a prefix keeps its few best readings and scores as the
//! best of them. The lexicon is the LM's vocabulary and the entity words:
//! names can be added at run time ([`BeamDecoder::set_entities`]) without
//! retraining anything.

use std::sync::Arc;

// Fx hashing: the beam search hashes every prefix of every frame, and
// SipHash's DoS resistance buys nothing here.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::entities::EntityTries;
use crate::{Alphabet, NgramLm, Transcript, words_from_emissions};

/// Readings kept per prefix (besides the best one outside any name).
const MAX_READINGS: usize = 4;

/// Search settings. Defaults were tuned on 800 dev utterances with `hark
/// tune` (model 0.5.0: beam 16 → 256 took dev WER 17.0 → 12.0 %; wider
/// still helps a little but costs more than the decode-time bar allows).
#[derive(Debug, Clone, PartialEq)]
pub struct BeamConfig {
    /// Prefixes kept per frame.
    pub beam: usize,
    /// Language-model weight.
    pub alpha: f32,
    /// Bonus per word (offsets the LM's preference for short outputs).
    pub beta: f32,
    /// Bonus per name read as its entity class.
    pub entity_boost: f32,
    /// Penalty for a word outside the lexicon (applied once per word).
    pub oov_penalty: f32,
    /// Further penalty per character of a word outside the lexicon, so one
    /// long made-up word cannot stand in for several real ones.
    pub oov_char_penalty: f32,
    /// Symbols less likely than this (log) in a frame are not expanded.
    pub prune_log_prob: f32,
}

impl Default for BeamConfig {
    fn default() -> Self {
        Self {
            beam: 256,
            alpha: 0.6,
            beta: 2.0,
            entity_boost: 0.0,
            oov_penalty: -6.0,
            oov_char_penalty: -3.0,
            prune_log_prob: -10.0,
        }
    }
}

/// Decoder with its language model, lexicon and entity list.
#[derive(Clone)]
pub struct BeamDecoder {
    config: BeamConfig,
    lm: Option<NgramLm>,
    /// The lexicon (LM words and entity words) as a character trie.
    lexicon: Lexicon,
    /// The LM's words alone (entity words join `lexicon` on top).
    lm_lexicon: Lexicon,
    entities: EntityTries,
}

/// Words as a character trie: (node, symbol) → child; node 0 is the root.
#[derive(Clone, Default)]
struct Lexicon {
    children: HashMap<(u32, u32), u32>,
}

impl Lexicon {
    fn insert(&mut self, word: &str) {
        let mut node = 0;
        for c in word.chars() {
            let Some(s) = Alphabet::symbol_of(c) else { return };
            let fresh = self.children.len() as u32 + 1;
            node = *self.children.entry((node, s)).or_insert(fresh);
        }
    }

    /// The node after `symbol`, if some word goes on that way.
    fn next(&self, node: u32, symbol: u32) -> Option<u32> {
        self.children.get(&(node, symbol)).copied()
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

/// One character prefix of the search: its last symbol, where that symbol
/// was emitted, and the prefix it extends. Prefixes live in one arena per
/// decode and are named by index, so a beam is keyed by a number instead of
/// its whole text, and extending one copies nothing.
#[derive(Clone, Copy)]
struct Prefix {
    parent: u32,
    symbol: u32,
    frame: u32,
    posterior: f32,
}

/// The prefixes of one decode (index 0: the empty prefix).
struct Prefixes {
    nodes: Vec<Prefix>,
    children: HashMap<(u32, u32), u32>,
}

impl Prefixes {
    fn new() -> Self {
        Self {
            nodes: vec![Prefix { parent: 0, symbol: Alphabet::BLANK, frame: 0, posterior: 0.0 }],
            children: HashMap::default(),
        }
    }

    fn child(&mut self, parent: u32, symbol: u32) -> u32 {
        let fresh = self.nodes.len() as u32;
        let id = *self.children.entry((parent, symbol)).or_insert(fresh);
        if id == fresh {
            self.nodes.push(Prefix { parent, symbol, frame: 0, posterior: 0.0 });
        }
        id
    }

    fn last_symbol(&self, id: u32) -> Option<u32> {
        (id != 0).then(|| self.nodes[id as usize].symbol)
    }

    /// The word being spelt at the end of prefix `id` (after its last space).
    fn last_word(&self, mut id: u32) -> String {
        let mut chars = Vec::new();
        while id != 0 && self.nodes[id as usize].symbol != Alphabet::SPACE {
            chars.push(Alphabet::char_of(self.nodes[id as usize].symbol));
            id = self.nodes[id as usize].parent;
        }
        chars.iter().rev().collect()
    }

    /// `(symbol, frame, posterior)` of every symbol of prefix `id`, in order.
    fn emissions(&self, mut id: u32) -> Vec<(u32, usize, f32)> {
        let mut out = Vec::new();
        while id != 0 {
            let p = self.nodes[id as usize];
            out.push((p.symbol, p.frame as usize, p.posterior));
            id = p.parent;
        }
        out.reverse();
        out
    }
}

/// One way of reading a prefix's completed words.
#[derive(Clone, Debug)]
struct Reading {
    /// The two previous LM tokens (a word or a class token); `None` is the
    /// sentence start.
    context: [Option<Arc<str>>; 2],
    /// Inside a name of the entity list: its trie node so far.
    name: Option<u32>,
    score: f32,
}

impl Reading {
    fn same_state(&self, other: &Reading) -> bool {
        self.name == other.name && self.context == other.context
    }
}

#[derive(Clone)]
struct Beam {
    /// Log probability of paths ending in blank / in the last symbol.
    blank: f32,
    non_blank: f32,
    /// Out-of-lexicon penalties so far.
    penalty: f32,
    /// Readings of the completed words, best first (never empty; shared
    /// until a word completes).
    readings: Arc<[Reading]>,
    /// `penalty` + the best reading's score.
    word_score: f32,
    /// Characters of the word being spelt (0: none yet).
    partial_len: u32,
    /// Where the word being spelt is in the lexicon; `None`: it left the
    /// lexicon (penalty already applied).
    lexicon_node: Option<u32>,
}

fn log_add(a: f32, b: f32) -> f32 {
    if a == f32::NEG_INFINITY {
        return b;
    }
    if b == f32::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

impl Beam {
    fn total(&self) -> f32 {
        log_add(self.blank, self.non_blank)
    }

    fn set_readings(&mut self, readings: Vec<Reading>) {
        self.word_score = self.penalty + readings.first().map_or(f32::NEG_INFINITY, |r| r.score);
        self.readings = readings.into();
    }
}

impl BeamDecoder {
    /// A decoder scoring words with `lm`: trained on [`crate::class_sentence`]s
    /// so that names of the entity list ([`BeamDecoder::set_entities`]) score
    /// through their class tokens.
    pub fn new(config: BeamConfig, lm: Option<NgramLm>) -> Self {
        let mut lm_lexicon = Lexicon::default();
        if let Some(lm) = &lm {
            for w in lm.vocabulary().filter(|w| !w.starts_with('<')) {
                lm_lexicon.insert(w);
            }
        }
        Self { config, lm, lexicon: lm_lexicon.clone(), lm_lexicon, entities: EntityTries::default() }
    }

    pub fn config(&self) -> &BeamConfig {
        &self.config
    }

    /// The same decoder with other search settings.
    pub fn with_config(mut self, config: BeamConfig) -> Self {
        self.config = config;
        self
    }

    /// Replaces the entity list: `(class, name)` pairs of normalised names
    /// (one or more words each). Their words join the lexicon, and a name
    /// scores as its class token `<class>` of the LM; a class the LM has
    /// never seen gets the LM's unknown-word probability.
    pub fn set_entities<'a>(&mut self, names: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.entities = EntityTries::new(names);
        self.lexicon = self.lm_lexicon.clone();
        for w in self.entities.words() {
            self.lexicon.insert(w);
        }
    }

    fn lm_log_prob(&self, context: &[Option<Arc<str>>; 2], token: &str) -> f32 {
        self.lm.as_ref().map_or(0.0, |lm| lm.log_prob(context[0].as_deref(), context[1].as_deref(), token))
    }

    /// Readings after one more completed `word`, best first.
    fn read_word(&self, readings: &[Reading], word: &str) -> Vec<Reading> {
        let id = self.entities.word_id(word);
        let mut out = Vec::with_capacity(readings.len() + 2);
        for r in readings {
            match r.name {
                Some(node) => {
                    if let Some(child) = id.and_then(|w| self.entities.next(node, w)) {
                        out.push(Reading {
                            context: r.context.clone(),
                            name: Some(child),
                            score: r.score + self.config.beta,
                        });
                    }
                    if self.entities.is_complete(node) {
                        self.begin(&self.close(r, node), word, id, &mut out);
                    }
                }
                None => self.begin(r, word, id, &mut out),
            }
        }
        prune(&mut out);
        out
    }

    /// The reading `r`, inside a complete name at `node`, with the name done.
    fn close(&self, r: &Reading, node: u32) -> Reading {
        Reading { context: [r.context[1].clone(), Some(self.entities.token(node).clone())], name: None, score: r.score }
    }

    /// Readings of `word` after `r` (outside any name): the word itself, and
    /// the start of each class's names that begin with it.
    fn begin(&self, r: &Reading, word: &str, id: Option<u32>, out: &mut Vec<Reading>) {
        let c = &self.config;
        out.push(Reading {
            context: [r.context[1].clone(), Some(word.into())],
            name: None,
            score: r.score + c.alpha * self.lm_log_prob(&r.context, word) + c.beta,
        });
        for (token, share, node) in id.into_iter().flat_map(|w| self.entities.starts(w)) {
            out.push(Reading {
                context: r.context.clone(),
                name: Some(node),
                score: r.score + c.alpha * (self.lm_log_prob(&r.context, token) + share) + c.beta + c.entity_boost,
            });
        }
    }

    /// Best score of `readings` with the sentence ended (a name must be
    /// complete).
    fn end_score(&self, readings: &[Reading]) -> f32 {
        readings
            .iter()
            .filter_map(|r| match r.name {
                Some(node) if !self.entities.is_complete(node) => None,
                Some(node) => Some(self.close(r, node)),
                None => Some(r.clone()),
            })
            .map(|r| {
                let end = self
                    .lm
                    .as_ref()
                    .map_or(0.0, |lm| lm.end_log_prob(r.context[0].as_deref(), r.context[1].as_deref()));
                r.score + self.config.alpha * end
            })
            .fold(f32::NEG_INFINITY, f32::max)
    }

    /// Decodes `[frames, Alphabet::SIZE]` log-probabilities.
    pub fn decode(&self, log_probs: &[f32]) -> Transcript {
        let start = Beam {
            blank: 0.0,
            non_blank: f32::NEG_INFINITY,
            penalty: 0.0,
            readings: vec![Reading { context: [None, None], name: None, score: 0.0 }].into(),
            word_score: 0.0,
            partial_len: 0,
            lexicon_node: Some(0),
        };
        let mut prefixes = Prefixes::new();
        let mut beams: Vec<(u32, Beam)> = vec![(0, start)];
        let mut next: HashMap<u32, Beam> = HashMap::default();
        for (frame, row) in log_probs.chunks_exact(Alphabet::SIZE).enumerate() {
            next.clear();
            let candidates: Vec<u32> =
                (1..Alphabet::SIZE as u32).filter(|&s| row[s as usize] >= self.config.prune_log_prob).collect();
            // Prefixes alive before this frame keep where their symbols were
            // emitted; new ones are stamped with this frame.
            let alive: HashSet<u32> = beams.iter().map(|(id, _)| *id).collect();
            for (prefix, beam) in &beams {
                let total = beam.total();
                // Blank: the prefix stays.
                let stay = next.entry(*prefix).or_insert_with(|| Beam {
                    blank: f32::NEG_INFINITY,
                    non_blank: f32::NEG_INFINITY,
                    ..beam.clone()
                });
                stay.blank = log_add(stay.blank, total + row[Alphabet::BLANK as usize]);
                let last = prefixes.last_symbol(*prefix);
                for &s in &candidates {
                    let lp = row[s as usize];
                    let paths = if Some(s) == last {
                        // Repeat without a blank between collapses into the prefix.
                        let stay = next.get_mut(prefix).expect("inserted above");
                        stay.non_blank = log_add(stay.non_blank, beam.non_blank + lp);
                        // A new copy of the symbol needs a blank in between.
                        beam.blank + lp
                    } else {
                        total + lp
                    };
                    if s == Alphabet::SPACE && beam.partial_len == 0 {
                        continue; // no leading or double spaces
                    }
                    let child = prefixes.child(*prefix, s);
                    if let Some(existing) = next.get_mut(&child) {
                        existing.non_blank = log_add(existing.non_blank, paths);
                        continue;
                    }
                    if !alive.contains(&child) {
                        let p = &mut prefixes.nodes[child as usize];
                        (p.frame, p.posterior) = (frame as u32, lp.exp());
                    }
                    let extended = self.extend(&prefixes, *prefix, beam, s, paths);
                    next.insert(child, extended);
                }
            }
            beams.clear();
            beams.extend(next.drain());
            let score = |b: &Beam| b.total() + b.word_score;
            if beams.len() > self.config.beam {
                beams.select_nth_unstable_by(self.config.beam, |a, b| score(&b.1).total_cmp(&score(&a.1)));
                beams.truncate(self.config.beam);
            }
        }
        // Close the last word and the sentence, then pick the best.
        let best = beams
            .into_iter()
            .filter_map(|(id, mut b)| {
                if b.partial_len > 0 {
                    let readings = self.read_word(&b.readings, &prefixes.last_word(id));
                    b.set_readings(readings);
                }
                if b.total() == f32::NEG_INFINITY {
                    return None;
                }
                let score = b.total() + b.penalty + self.end_score(&b.readings);
                Some((score, id))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        words_from_emissions(&best.map_or_else(Vec::new, |(_, id)| prefixes.emissions(id)))
    }

    /// `beam` (prefix `prefix`) extended by symbol `s`, with `paths` its log
    /// probability: word scores when `s` ends a word, lexicon tracking
    /// otherwise.
    fn extend(&self, prefixes: &Prefixes, prefix: u32, beam: &Beam, s: u32, paths: f32) -> Beam {
        let mut child = Beam { blank: f32::NEG_INFINITY, non_blank: paths, ..beam.clone() };
        if s == Alphabet::SPACE {
            let readings = self.read_word(&child.readings, &prefixes.last_word(prefix));
            child.set_readings(readings);
            child.partial_len = 0;
            child.lexicon_node = Some(0);
        } else {
            child.partial_len += 1;
            if !self.lexicon.is_empty() {
                child.lexicon_node = beam.lexicon_node.and_then(|n| self.lexicon.next(n, s));
                if child.lexicon_node.is_none() {
                    if beam.lexicon_node.is_some() {
                        child.penalty += self.config.oov_penalty;
                    }
                    child.penalty += self.config.oov_char_penalty;
                }
            }
            child.word_score = child.penalty + child.readings[0].score;
        }
        child
    }
}

/// Sorts readings best first, merges those in the same state (keeping the
/// best: Viterbi), and keeps the best [`MAX_READINGS`] plus the best one
/// outside any name, so a prefix can always go on with an ordinary word.
fn prune(readings: &mut Vec<Reading>) {
    readings.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Reading> = Vec::with_capacity(MAX_READINGS + 1);
    let mut plain_kept = false;
    for r in readings.drain(..) {
        if kept.iter().any(|k| k.same_state(&r)) {
            continue;
        }
        let plain = r.name.is_none();
        if kept.len() < MAX_READINGS || (plain && !plain_kept) {
            plain_kept |= plain;
            kept.push(r);
        }
        if kept.len() > MAX_READINGS || (kept.len() == MAX_READINGS && plain_kept) {
            break;
        }
    }
    *readings = kept;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{posteriors, row};

    fn sym(c: char) -> u32 {
        Alphabet::symbol_of(c).unwrap()
    }

    /// Posteriors spelling `text`, except that at character index `at` the
    /// acoustics hesitate between `a` (p) and `b` (q).
    fn ambiguous(text: &str, at: usize, a: char, b: char, p: f32, q: f32) -> Vec<f32> {
        let mut out = Vec::new();
        for (i, c) in text.chars().enumerate() {
            let frame = if i == at { row(&[(sym(a), p), (sym(b), q)]) } else { row(&[(sym(c), 0.9)]) };
            out.extend(frame.iter().copied());
            out.extend(frame);
            out.extend(row(&[(Alphabet::BLANK, 0.9)]));
        }
        out
    }

    /// The corpus's open-list names as (class, normalised name).
    fn catalogue() -> Vec<(String, String)> {
        let corpus = hark_data::Corpus::load();
        corpus.open_names().map(|(class, name, _)| (class.to_owned(), hark_data::normalize(name))).collect()
    }

    /// A class LM over training queries (names replaced by class tokens).
    fn corpus_lm() -> NgramLm {
        let corpus = hark_data::Corpus::load();
        let queries = corpus.generate(hark_data::Split::Train, 3000, 1);
        let sentences: Vec<String> = queries
            .iter()
            .map(|q| {
                let names: Vec<(String, String)> = q
                    .entities
                    .iter()
                    .filter(|(slot, _)| corpus.is_open_slot(slot))
                    .map(|(slot, name)| (slot.clone(), hark_data::normalize(name)))
                    .collect();
                let names: Vec<(&str, &str)> = names.iter().map(|(c, n)| (c.as_str(), n.as_str())).collect();
                crate::class_sentence(&q.text, &names)
            })
            .collect();
        NgramLm::train(sentences.iter().map(String::as_str))
    }

    fn corpus_decoder() -> BeamDecoder {
        let mut decoder = BeamDecoder::new(BeamConfig::default(), Some(corpus_lm()));
        let names = catalogue();
        decoder.set_entities(names.iter().map(|(c, n)| (c.as_str(), n.as_str())));
        decoder
    }

    #[test]
    fn without_ambiguity_beam_search_agrees_with_greedy() {
        let lp = posteriors("directions to baker street", 2, 0.9);
        assert_eq!(corpus_decoder().decode(&lp).text, crate::greedy(&lp).text);
    }

    #[test]
    fn the_language_model_fixes_an_acoustically_ambiguous_letter() {
        // Acoustics slightly prefer "waather".
        let lp = ambiguous("weather in paris", 1, 'a', 'e', 0.5, 0.4);
        assert_eq!(crate::greedy(&lp).text, "waather in paris");
        assert_eq!(corpus_decoder().decode(&lp).text, "weather in paris");
    }

    #[test]
    fn entity_list_brings_in_a_new_name_without_retraining() {
        // "zorina kaltvedt" is in the drift pool: the LM has never seen it.
        let lp = ambiguous("who is zorina kaltvedt", 8, 'a', 'o', 0.5, 0.4);
        let mut decoder = corpus_decoder();
        assert_ne!(decoder.decode(&lp).text, "who is zorina kaltvedt");
        let mut names = catalogue();
        names.push(("person".into(), "zorina kaltvedt".into()));
        decoder.set_entities(names.iter().map(|(c, n)| (c.as_str(), n.as_str())));
        assert_eq!(decoder.decode(&lp).text, "who is zorina kaltvedt");
    }

    /// "weather in " then, character by character over the same frames,
    /// `a` at probability `p` against `b` at `q` (blank where a word is over).
    fn two_places(a: &str, b: &str, p: f32, q: f32) -> Vec<f32> {
        let mut out = posteriors("weather in ", 2, 0.9);
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        for i in 0..a.len().max(b.len()) {
            let mut peaks = vec![(a.get(i).map_or(Alphabet::BLANK, |&c| sym(c)), p)];
            if let Some(&c) = b.get(i).filter(|&&c| a.get(i) != Some(&c)) {
                peaks.push((sym(c), q));
            }
            out.extend(row(&peaks));
            out.extend(row(&[(Alphabet::BLANK, 0.9)]));
        }
        out
    }

    #[test]
    fn a_new_name_is_as_likely_in_its_slot_as_a_name_the_lm_was_built_with() {
        // Two places of the catalogue: one in the LM's training queries, one
        // of the test split that it never saw. Whichever the acoustics
        // slightly prefer wins.
        let corpus = hark_data::Corpus::load();
        assert!(corpus.entities("place", hark_data::Split::Train).contains(&"denver"));
        assert!(corpus.entities("place", hark_data::Split::Test).contains(&"bangalore"));
        let decoder = corpus_decoder();
        let unseen_preferred = two_places("bangalore", "denver", 0.5, 0.35);
        let seen_preferred = two_places("denver", "bangalore", 0.5, 0.35);
        assert_eq!(decoder.decode(&unseen_preferred).text, "weather in bangalore");
        assert_eq!(decoder.decode(&seen_preferred).text, "weather in denver");
    }

    #[test]
    fn a_name_earns_nothing_outside_its_slot() {
        // "nike" is a product of the catalogue, one letter from "like": where
        // no product can stand, the template's word wins.
        let text = "what's the weather like in paris today";
        let lp = ambiguous(text, text.find("like").unwrap(), 'n', 'l', 0.5, 0.4);
        assert_eq!(crate::greedy(&lp).text, "what's the weather nike in paris today");
        assert_eq!(corpus_decoder().decode(&lp).text, text);
    }

    #[test]
    fn empty_input_decodes_to_nothing() {
        let decoder = BeamDecoder::new(BeamConfig::default(), None);
        let t = decoder.decode(&[]);
        assert_eq!((t.text.as_str(), t.words.len()), ("", 0));
    }
}
