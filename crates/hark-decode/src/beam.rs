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
//!
//! Two things keep the search cheap without changing what it finds. Words
//! are numbered once per lexicon, so readings compare and the LMs score
//! numbers, never strings. And an extension is only made if it could make
//! the next beam: every prefix of this beam stays in the next one with a
//! score it cannot fall below, so the beam-th best of those is a floor, and
//! a new prefix's score can rise above its parent's only by a word's bonus
//! ([`BeamDecoder::floor`]). On a phone model's posteriors that halves the
//! search; the transcript is the same, to the bit (unit-tested).

use std::sync::Arc;

// Fx hashing: the beam search hashes a (prefix, symbol) pair per extension, and
// SipHash's DoS resistance buys nothing here.
use rustc_hash::FxHashMap as HashMap;

use crate::entities::EntityTries;
use crate::{Alphabet, NgramLm, Transcript, Units, words_from_emissions};

/// Prefixes the arena may hold before dead ones are dropped.
const MIN_ARENA: usize = 1 << 16;

/// Readings kept per prefix (besides the best one outside any name).
const MAX_READINGS: usize = 4;

/// The sentence start, as a context token.
const START: u32 = u32::MAX;
/// A word outside the lexicon (spelt letter by letter or from its phones):
/// every LM reads it as its unknown word.
const UNKNOWN: u32 = u32::MAX - 1;
/// The sentence end, as a predicted token.
const END: u32 = u32::MAX - 2;

/// Search settings. Defaults were tuned on dev utterances with `hark tune`
/// (model 0.5.0: beam 16 / 64 / 256 / 384 / 512 gave dev WER 17.0 / 14.1 /
/// 12.0 / 11.6 / 11.2 % on 800 voice-search queries; 512 would cost more
/// than the decode-time bar allows). α 1.0 and β 6 were best on all three
/// dev sets (α 0.6–1.4 × β 2–8): 800 voice-search queries 11.6 → 11.1 %, 500
/// clean 11.4 → 10.6 %, the same 500 darkened and in a car at 5 dB 16.8 →
/// 14.9 % — a noisier acoustic model needs the LM's say more.
#[derive(Debug, Clone, PartialEq)]
pub struct BeamConfig {
    /// Prefixes kept per frame.
    pub beam: usize,
    /// Language-model weight.
    pub alpha: f32,
    /// Bonus per word (offsets the LM's preference for short outputs; not
    /// applied without an LM).
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
            beam: 384,
            alpha: 1.0,
            beta: 6.0,
            entity_boost: 0.0,
            oov_penalty: -6.0,
            oov_char_penalty: -3.0,
            prune_log_prob: -10.0,
        }
    }
}

/// Decoder with its language model, lexicon and entity list. Clones (one
/// per backend in the browser's worker, one per thread in `hark eval`) share
/// the general LM and the lexicon's trie, the two large parts.
#[derive(Clone)]
pub struct BeamDecoder {
    config: BeamConfig,
    lm: Option<NgramLm>,
    /// A general English LM and its interpolation weight: a word's
    /// probability is `(1 − w) · P_lm + w · P_general` (class tokens only
    /// have the first term).
    general: Option<(Arc<NgramLm>, f32)>,
    /// The lexicon (LM words and entity words) by number and as a trie of
    /// the model's symbols.
    lexicon: Arc<Vocabulary>,
    entities: EntityTries,
    /// How a word is written in the model's symbols.
    spelling: Spelling,
}

/// How the acoustic model writes a word: letter by letter, or as the
/// phones of its pronunciations (homophones share a path).
#[derive(Clone, Default)]
enum Spelling {
    #[default]
    Letters,
    Phones(Arc<crate::Lexicon>),
}

impl Spelling {
    fn units(&self) -> Units {
        match self {
            Spelling::Letters => Units::Letters,
            Spelling::Phones(_) => Units::Phones,
        }
    }
}

/// Every token the search scores, by number: the entity classes' tokens
/// (`<place>`; token `c` is class `c`), then the lexicon's words. Each
/// token's id in either LM and in the entity list is looked up once, here,
/// so the search compares and scores numbers and never hashes a string.
#[derive(Clone, Default)]
struct Vocabulary {
    text: Vec<Arc<str>>,
    /// Tokens below this are class tokens (only the voice-search LM
    /// predicts them).
    classes: u32,
    /// Ids in the voice-search LM, the general LM, the entity list.
    own: Vec<Option<u32>>,
    general: Vec<Option<u32>>,
    entity: Vec<Option<u32>>,
    trie: Trie,
}

impl Vocabulary {
    /// The LMs' words (not their class tokens) and the entity list's
    /// words that the model can write (with phones: those the pronunciation
    /// lexicon has), after the class tokens.
    fn of(own: Option<&NgramLm>, general: Option<&NgramLm>, entities: &EntityTries, spelling: &Spelling) -> Self {
        let mut text: Vec<Arc<str>> = entities.class_tokens().cloned().collect();
        let classes = text.len() as u32;
        let mut index: HashMap<&str, u32> = HashMap::default();
        let mut trie = Trie::default();
        let lm_words = own.into_iter().chain(general).flat_map(|lm| lm.vocabulary().filter(|w| !w.starts_with('<')));
        for w in lm_words.chain(entities.words()) {
            let ends: Vec<u32> = match spelling {
                Spelling::Letters => Alphabet::encode(w).map(|symbols| vec![trie.insert(&symbols)]).unwrap_or_default(),
                Spelling::Phones(lexicon) => {
                    lexicon.pronunciations(w).iter().map(|phones| trie.insert(phones)).collect()
                }
            };
            if ends.is_empty() {
                continue;
            }
            let token = *index.entry(w).or_insert_with(|| {
                text.push(w.into());
                text.len() as u32 - 1
            });
            for end in ends {
                let words = trie.words.entry(end).or_default();
                if !words.contains(&token) {
                    words.push(token);
                }
            }
        }
        // Homophones most frequent first (what a reading without the LM
        // picks), ties alphabetically: the same order on every run.
        let count =
            |t: u32| own.into_iter().chain(general).map(|lm| u64::from(lm.count(&text[t as usize]))).sum::<u64>();
        for words in trie.words.values_mut() {
            words.sort_by(|&a, &b| count(b).cmp(&count(a)).then_with(|| text[a as usize].cmp(&text[b as usize])));
        }
        let ids = |lm: Option<&NgramLm>, from: u32| -> Vec<Option<u32>> {
            let lookup = |(t, w): (usize, &Arc<str>)| lm.filter(|_| t as u32 >= from).and_then(|lm| lm.word_id(w));
            text.iter().enumerate().map(lookup).collect()
        };
        let (own_ids, general_ids) = (ids(own, 0), ids(general, classes));
        let entity = text.iter().map(|w| entities.word_id(w)).collect();
        Self { own: own_ids, general: general_ids, entity, classes, text, trie }
    }

    /// `token`'s id in the voice-search LM.
    fn own(&self, token: u32) -> Option<u32> {
        self.lm_id(&self.own, token)
    }

    /// `token`'s id in the general LM (a class token is unknown there).
    fn general(&self, token: u32) -> Option<u32> {
        self.lm_id(&self.general, token)
    }

    fn lm_id(&self, ids: &[Option<u32>], token: u32) -> Option<u32> {
        match token {
            START => Some(NgramLm::START),
            END => Some(NgramLm::END),
            UNKNOWN => None,
            t => ids[t as usize],
        }
    }

    /// `token`'s word id in the entity list.
    fn entity(&self, token: u32) -> Option<u32> {
        self.entity.get(token as usize).copied().flatten()
    }
}

/// Words as a trie of symbols: (node, symbol) → child; node 0 is the root;
/// the word tokens each node ends (with phones, homophones share an end).
#[derive(Clone, Default)]
struct Trie {
    children: HashMap<(u32, u32), u32>,
    words: HashMap<u32, Vec<u32>>,
}

impl Trie {
    /// Adds a path; returns its last node.
    fn insert(&mut self, symbols: &[u32]) -> u32 {
        let mut node = 0;
        for &s in symbols {
            let fresh = self.children.len() as u32 + 1;
            node = *self.children.entry((node, s)).or_insert(fresh);
        }
        node
    }

    /// The word tokens a path ending at `node` reads as.
    fn words_at(&self, node: u32) -> &[u32] {
        self.words.get(&node).map_or(&[], Vec::as_slice)
    }

    /// The node after `symbol`, if some word goes on that way.
    fn next(&self, node: u32, symbol: u32) -> Option<u32> {
        self.children.get(&(node, symbol)).copied()
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

/// One character prefix of the search: the prefix it extends, its last
/// symbol, and what its text scores as words.
/// Prefixes live in one arena per decode and are named by index: a beam is
/// keyed by a number instead of its whole text, extending one copies
/// nothing, and a prefix's words are scored once however often the search
/// comes back to it (they depend on its text alone).
struct Prefix {
    parent: u32,
    symbol: u32,
    words: WordState,
    /// This frame's entry in the next beam, valid while `slot_frame` is
    /// this frame (+ 1): the next beam is a plain vector, no hashing.
    slot: u32,
    slot_frame: u32,
    /// The symbols whose child of this prefix is in this frame's beam (bit
    /// `s`), valid while `beam_children_frame` is this frame.
    beam_children: u64,
    beam_children_frame: u32,
}

impl Prefix {
    /// A prefix not yet in any beam.
    fn new(parent: u32, symbol: u32, words: WordState) -> Self {
        Self { parent, symbol, words, slot: 0, slot_frame: 0, beam_children: 0, beam_children_frame: 0 }
    }
}

/// What a prefix's text scores as words.
#[derive(Clone)]
struct WordState {
    /// Out-of-lexicon penalties so far.
    penalty: f32,
    /// Readings of the completed words, best first (never empty; shared
    /// until a word completes).
    readings: Arc<[Reading]>,
    /// `penalty` + the best reading's score.
    score: f32,
    /// Characters of the word being spelt (0: none yet).
    partial_len: u32,
    /// Where the word being spelt is in the lexicon; `None`: it left the
    /// lexicon (penalty already applied).
    lexicon_node: Option<u32>,
}

/// The prefixes of one decode (index 0: the empty prefix).
struct Prefixes {
    nodes: Vec<Prefix>,
    children: HashMap<(u32, u32), u32>,
}

impl Prefixes {
    fn new() -> Self {
        let words = WordState {
            penalty: 0.0,
            readings: vec![Reading { history: None, context: [START, START], name: None, score: 0.0 }].into(),
            score: 0.0,
            partial_len: 0,
            lexicon_node: Some(0),
        };
        Self { nodes: vec![Prefix::new(0, Alphabet::BLANK, words)], children: HashMap::default() }
    }

    fn words(&self, id: u32) -> &WordState {
        &self.nodes[id as usize].words
    }

    fn last_symbol(&self, id: u32) -> Option<u32> {
        (id != 0).then(|| self.nodes[id as usize].symbol)
    }

    /// Drops every prefix that no beam extends (in place), renumbering the
    /// rest and `beams`' keys, so a long decode holds the live prefixes
    /// only. Parents come before children in the arena, which keeps one
    /// forward pass enough.
    fn compact(&mut self, beams: &mut [(u32, Paths)]) {
        let mut live = vec![false; self.nodes.len()];
        live[0] = true;
        for &(id, _) in beams.iter() {
            let mut id = id as usize;
            while !live[id] {
                live[id] = true;
                id = self.nodes[id].parent as usize;
            }
        }
        let mut renumber = vec![0u32; self.nodes.len()];
        let mut kept = 0usize;
        self.children.clear();
        for i in 0..self.nodes.len() {
            if !live[i] {
                continue;
            }
            renumber[i] = kept as u32;
            self.nodes.swap(kept, i);
            if kept > 0 {
                let node = &mut self.nodes[kept];
                node.parent = renumber[node.parent as usize];
                self.children.insert((node.parent, node.symbol), kept as u32);
            }
            kept += 1;
        }
        self.nodes.truncate(kept);
        for (id, _) in beams.iter_mut() {
            *id = renumber[*id as usize];
        }
    }

    /// The symbols of the word being spelt at the end of prefix `id`.
    fn last_symbols(&self, mut id: u32) -> Vec<u32> {
        let mut out = Vec::new();
        while id != 0 && self.nodes[id as usize].symbol != Alphabet::SPACE {
            out.push(self.nodes[id as usize].symbol);
            id = self.nodes[id as usize].parent;
        }
        out.reverse();
        out
    }

    /// The symbols of prefix `id`, in order.
    fn symbols(&self, mut id: u32) -> Vec<u32> {
        let mut out = Vec::new();
        while id != 0 {
            let p = &self.nodes[id as usize];
            out.push(p.symbol);
            id = p.parent;
        }
        out.reverse();
        out
    }
}

/// A completed word as a reading took it.
#[derive(Clone, Debug)]
enum Said {
    /// A lexicon word.
    Token(u32),
    /// A word outside the lexicon; a phone string's is spelt from its
    /// phones (a letter model's text is its prefix, so it keeps none).
    Unknown(Option<Arc<str>>),
}

impl Said {
    fn token(&self) -> u32 {
        match self {
            Said::Token(t) => *t,
            Said::Unknown(_) => UNKNOWN,
        }
    }
}

/// The words a reading chose, newest first (phone models only: a phone
/// string does not say which of its homophones it is).
#[derive(Debug)]
struct History {
    word: Said,
    before: Option<Arc<History>>,
}

/// The word just completed at the end of a prefix: the lexicon words its
/// symbols spell (homophones, most frequent first), or a word outside it.
enum Ending<'a> {
    Known(&'a [u32]),
    Unknown(Option<Arc<str>>),
}

/// One way of reading a prefix's completed words.
#[derive(Clone, Debug)]
struct Reading {
    /// The words so far (phone models only).
    history: Option<Arc<History>>,
    /// The two previous LM tokens (a word or a class token; [`START`] is the
    /// sentence start, [`UNKNOWN`] a word outside the lexicon).
    context: [u32; 2],
    /// Inside a name of the entity list: its trie node so far.
    name: Option<u32>,
    score: f32,
}

impl Reading {
    fn same_state(&self, other: &Reading) -> bool {
        self.name == other.name && self.context == other.context
    }
}

/// A prefix's CTC probability this frame.
#[derive(Clone, Copy)]
struct Paths {
    /// Log probability of paths ending in blank / in the last symbol.
    blank: f32,
    non_blank: f32,
}

impl Paths {
    const NONE: Paths = Paths { blank: f32::NEG_INFINITY, non_blank: f32::NEG_INFINITY };

    fn total(&self) -> f32 {
        log_add(self.blank, self.non_blank)
    }
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

impl BeamDecoder {
    /// A decoder scoring words with `lm`: trained on [`crate::class_sentence`]s
    /// so that names of the entity list ([`BeamDecoder::set_entities`]) score
    /// through their class tokens.
    pub fn new(config: BeamConfig, lm: Option<NgramLm>) -> Self {
        let entities = EntityTries::default();
        let spelling = Spelling::Letters;
        let lexicon = Arc::new(Vocabulary::of(lm.as_ref(), None, &entities, &spelling));
        Self { config, lexicon, lm, general: None, entities, spelling }
    }

    /// Reads a phone model's output ([`crate::Phones`]): words are the
    /// lexicon's pronunciations of the LM and entity words (those it has no
    /// pronunciation for cannot be written), and a phone string outside
    /// them comes out spelt from its phones ([`spell_phones`]), with the
    /// out-of-lexicon penalties.
    pub fn set_pronunciations(&mut self, lexicon: impl Into<Arc<crate::Lexicon>>) {
        self.spelling = Spelling::Phones(lexicon.into());
        self.rebuild();
    }

    /// What the acoustic model this decoder reads writes.
    pub fn units(&self) -> Units {
        self.spelling.units()
    }

    fn rebuild(&mut self) {
        let general = self.general.as_ref().map(|(lm, _)| &**lm);
        self.lexicon = Arc::new(Vocabulary::of(self.lm.as_ref(), general, &self.entities, &self.spelling));
    }

    /// Interpolates a general English LM with weight `weight` (0..1, clamped)
    /// into every word's score; its words join the lexicon. Words outside
    /// both LMs and the entity list are still spelt letter by letter (the
    /// out-of-lexicon penalties apply).
    pub fn set_general_lm(&mut self, general: impl Into<Arc<NgramLm>>, weight: f32) {
        self.general = Some((general.into(), weight.clamp(0.0, 1.0)));
        self.rebuild();
    }

    /// The same decoder with another general-LM weight (no-op without one).
    pub fn with_general_weight(mut self, weight: f32) -> Self {
        if let Some((_, w)) = &mut self.general {
            *w = weight.clamp(0.0, 1.0);
        }
        self
    }

    /// `ln` of the interpolated probability: `own` from the voice-search LM,
    /// `general` from the general one (`None`: a class token, which only the
    /// voice-search LM predicts).
    fn mix(&self, own: Option<f32>, general: impl FnOnce(&NgramLm) -> Option<f32>) -> f32 {
        match (&self.general, own) {
            (None, own) => own.unwrap_or(0.0),
            (Some((g, _)), None) => general(g).unwrap_or(0.0),
            (Some((g, w)), Some(own)) => match general(g) {
                Some(general) => log_add(own + (1.0 - w).ln(), general + w.ln()),
                None => own + (1.0 - w).ln(),
            },
        }
    }

    /// The same decoder with other search settings.
    pub fn with_config(mut self, config: BeamConfig) -> Self {
        self.config = config;
        self
    }

    /// The search settings.
    pub fn config(&self) -> &BeamConfig {
        &self.config
    }

    /// Replaces the search settings.
    pub fn set_config(&mut self, config: BeamConfig) {
        self.config = config;
    }

    /// Replaces the entity list: `(class, name)` pairs of normalised names
    /// (one or more words each). Their words join the lexicon, and a name
    /// scores as its class token `<class>` of the LM; a class the LM has
    /// never seen gets the LM's unknown-word probability.
    pub fn set_entities<'a>(&mut self, names: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.entities = EntityTries::new(names);
        self.rebuild();
    }

    /// `ln P(token | context)`, interpolated; `token` may be [`END`].
    fn lm_log_prob(&self, [a, b]: [u32; 2], token: u32) -> f32 {
        let v = &*self.lexicon;
        let own = self.lm.as_ref().map(|lm| lm.log_prob_ids(v.own(a), v.own(b), v.own(token)));
        // The markers are numbered above every token.
        let p = self
            .mix(own, |g| (token >= v.classes).then(|| g.log_prob_ids(v.general(a), v.general(b), v.general(token))));
        // A stored model's rounding can put a near-certain word a hair
        // above 1; the search's bound on word scores needs ≤ 1.
        p.min(0.0)
    }

    /// Readings after one more completed `word`, best first.
    fn read_word(&self, readings: &[Reading], word: &Said) -> Vec<Reading> {
        let token = word.token();
        let id = self.lexicon.entity(token);
        let mut out = Vec::with_capacity(readings.len() + 2);
        for r in readings {
            match r.name {
                Some(node) => {
                    if let Some(child) = id.and_then(|w| self.entities.next(node, w)) {
                        out.push(Reading {
                            history: self.remember(r, word),
                            context: r.context,
                            name: Some(child),
                            score: r.score + self.word_bonus(),
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

    /// Readings after one more completed word that is `ending` (with
    /// phones, one of its homophones), best first.
    fn read_words(&self, readings: &[Reading], ending: Ending) -> Vec<Reading> {
        match ending {
            Ending::Known(&[token]) => self.read_word(readings, &Said::Token(token)),
            Ending::Known(tokens) => {
                let mut out: Vec<Reading> =
                    tokens.iter().flat_map(|&t| self.read_word(readings, &Said::Token(t))).collect();
                prune(&mut out);
                out
            }
            Ending::Unknown(spelt) => self.read_word(readings, &Said::Unknown(spelt)),
        }
    }

    /// `r`'s word history with `word` added (phone models only).
    fn remember(&self, r: &Reading, word: &Said) -> Option<Arc<History>> {
        match self.spelling {
            Spelling::Letters => None,
            Spelling::Phones(_) => Some(Arc::new(History { word: word.clone(), before: r.history.clone() })),
        }
    }

    /// β per word. Only with an LM: β offsets the LM's cost of each word, and
    /// without one it would only pay the search to split words into letters.
    fn word_bonus(&self) -> f32 {
        if self.lm.is_some() || self.general.is_some() { self.config.beta } else { 0.0 }
    }

    /// The reading `r`, inside a complete name at `node`, with the name done.
    fn close(&self, r: &Reading, node: u32) -> Reading {
        Reading {
            history: r.history.clone(),
            // Class token `c` is class `c` ([`Vocabulary`]).
            context: [r.context[1], self.entities.class_of(node)],
            name: None,
            score: r.score,
        }
    }

    /// Readings of `word` after `r` (outside any name): the word itself, and
    /// the start of each class's names that begin with it.
    fn begin(&self, r: &Reading, word: &Said, id: Option<u32>, out: &mut Vec<Reading>) {
        let c = &self.config;
        let token = word.token();
        out.push(Reading {
            history: self.remember(r, word),
            context: [r.context[1], token],
            name: None,
            score: r.score + c.alpha * self.lm_log_prob(r.context, token) + self.word_bonus(),
        });
        for (class, share, node) in id.into_iter().flat_map(|w| self.entities.starts(w)) {
            out.push(Reading {
                history: self.remember(r, word),
                context: r.context,
                name: Some(node),
                score: r.score
                    + c.alpha * (self.lm_log_prob(r.context, class) + share)
                    + self.word_bonus()
                    + c.entity_boost,
            });
        }
    }

    /// Best score of `readings` with the sentence ended (a name must be
    /// complete), and that reading's words (phone models).
    fn end_best(&self, readings: &[Reading]) -> (f32, Option<Arc<History>>) {
        readings
            .iter()
            .filter_map(|r| match r.name {
                Some(node) if !self.entities.is_complete(node) => None,
                Some(node) => Some(self.close(r, node)),
                None => Some(r.clone()),
            })
            .map(|r| (r.score + self.config.alpha * self.lm_log_prob(r.context, END), r.history))
            .fold((f32::NEG_INFINITY, None), |best, x| if x.0 > best.0 { x } else { best })
    }

    /// The out-of-lexicon penalty for a phone word that ends inside the
    /// lexicon's trie where no word ends (a word that left the trie has
    /// paid it already; a letter word is its own spelling).
    fn unfinished_penalty(&self, words: &WordState) -> f32 {
        match (&self.spelling, words.lexicon_node) {
            (Spelling::Phones(_), Some(n)) if self.lexicon.trie.words_at(n).is_empty() => self.config.oov_penalty,
            _ => 0.0,
        }
    }

    /// The words that the prefix `id`'s unfinished last word can be.
    fn last_words(&self, prefixes: &Prefixes, id: u32) -> Ending<'_> {
        match prefixes.words(id).lexicon_node.map(|n| self.lexicon.trie.words_at(n)) {
            Some(found) if !found.is_empty() => Ending::Known(found),
            _ => Ending::Unknown(match self.spelling {
                Spelling::Letters => None,
                Spelling::Phones(_) => Some(spell_phones(&prefixes.last_symbols(id)).into()),
            }),
        }
    }

    /// Best-path reading without the LM: [`crate::greedy`] for a letter
    /// model; for a phone model each best-path phone group as the first
    /// lexicon word pronounced so (else spelt from its phones).
    pub fn greedy(&self, log_probs: &[f32]) -> Transcript {
        if let Spelling::Letters = self.spelling {
            return crate::greedy(log_probs);
        }
        let size = self.spelling.units().size();
        let symbols = crate::greedy_symbols(log_probs, size);
        let mut transcript = words_from_emissions(&align(&symbols, log_probs, size));
        for (w, group) in
            transcript.words.iter_mut().zip(symbols.split(|&s| s == Alphabet::SPACE).filter(|g| !g.is_empty()))
        {
            let mut node = Some(0);
            for &s in group {
                node = node.and_then(|n| self.lexicon.trie.next(n, s));
            }
            w.text = match node.map(|n| self.lexicon.trie.words_at(n)) {
                Some([first, ..]) => self.lexicon.text[*first as usize].to_string(),
                _ => spell_phones(group),
            };
        }
        Transcript::from_words(transcript.words)
    }

    /// Decodes `[frames, Alphabet::SIZE]` log-probabilities.
    pub fn decode(&self, log_probs: &[f32]) -> Transcript {
        self.search(log_probs, MIN_ARENA, true).0
    }

    /// The search, compacting the prefix arena once it holds more than
    /// `min_arena` prefixes (and four times what was live at the last
    /// compaction), and with `cut`, not extending a prefix into a child
    /// that cannot make the next beam ([`BeamDecoder::floor`]); also
    /// returns the arena's peak size.
    fn search(&self, log_probs: &[f32], min_arena: usize, cut: bool) -> (Transcript, usize) {
        let mut peak = 0;
        let mut prefixes = Prefixes::new();
        let mut beams: Vec<(u32, Paths)> = vec![(0, Paths { blank: 0.0, non_blank: f32::NEG_INFINITY })];
        let mut next: Vec<(u32, Paths)> = Vec::new();
        let mut ranked: Vec<(f32, (u32, Paths))> = Vec::new();
        let mut compact_at = min_arena;
        let mut floors: Vec<f32> = Vec::new();
        let size = self.spelling.units().size();
        let gains = self.word_gains(size);
        for (frame, row) in log_probs.chunks_exact(size).enumerate() {
            // Frames count from 1 in `slot_frame` (0: never).
            let now = frame as u32 + 1;
            next.clear();
            let candidates: Vec<u32> =
                (1..size as u32).filter(|&s| row[s as usize] >= self.config.prune_log_prob).collect();
            let floor = match cut {
                true => self.floor(&mut prefixes, &beams, row, now, &mut floors),
                false => f32::NEG_INFINITY,
            };
            for &(prefix, paths) in &beams {
                let total = paths.total();
                // Blank: the prefix stays.
                let stay = slot(&mut prefixes, &mut next, prefix, now);
                next[stay].1.blank = log_add(next[stay].1.blank, total + row[Alphabet::BLANK as usize]);
                let last = prefixes.last_symbol(prefix);
                let node = &prefixes.nodes[prefix as usize];
                let spelling = node.words.partial_len > 0;
                let (words_score, in_beam) =
                    (node.words.score, if node.beam_children_frame == now { node.beam_children } else { 0 });
                for &s in &candidates {
                    let lp = row[s as usize];
                    let extended = if Some(s) == last {
                        // Repeat without a blank between collapses into the prefix.
                        next[stay].1.non_blank = log_add(next[stay].1.non_blank, paths.non_blank + lp);
                        // A new copy of the symbol needs a blank in between.
                        paths.blank + lp
                    } else {
                        total + lp
                    };
                    if s == Alphabet::SPACE && !spelling {
                        continue; // no leading or double spaces
                    }
                    // A child outside this beam gets this one path and scores
                    // at most its parent's words plus the gain: if that is
                    // below the floor it cannot make the next beam.
                    if extended + words_score + gains[s as usize] < floor && in_beam & (1 << s) == 0 {
                        continue;
                    }
                    let child = self.child(&mut prefixes, prefix, s);
                    let at = slot(&mut prefixes, &mut next, child, now);
                    next[at].1.non_blank = log_add(next[at].1.non_blank, extended);
                }
            }
            std::mem::swap(&mut beams, &mut next);
            if beams.len() > self.config.beam {
                // Each score once (a `log_add` apiece), not once per comparison.
                ranked.clear();
                ranked.extend(beams.iter().map(|&(id, paths)| (paths.total() + prefixes.words(id).score, (id, paths))));
                ranked.select_nth_unstable_by(self.config.beam, |a, b| b.0.total_cmp(&a.0));
                beams.clear();
                beams.extend(ranked[..self.config.beam].iter().map(|&(_, beam)| beam));
            }
            // Most prefixes made in a frame fall out of the beam at once.
            peak = peak.max(prefixes.nodes.len());
            if prefixes.nodes.len() > compact_at {
                prefixes.compact(&mut beams);
                compact_at = (4 * prefixes.nodes.len()).max(min_arena);
            }
        }
        // Close the last word and the sentence, then pick the best.
        let best = beams
            .into_iter()
            .filter(|(_, paths)| paths.total() > f32::NEG_INFINITY)
            .map(|(id, paths)| {
                let words = prefixes.words(id);
                let (end, history) = if words.partial_len > 0 {
                    self.end_best(&self.read_words(&words.readings, self.last_words(&prefixes, id)))
                } else {
                    self.end_best(&words.readings)
                };
                let unfinished = if words.partial_len > 0 { self.unfinished_penalty(words) } else { 0.0 };
                (paths.total() + words.penalty + unfinished + end, id, history)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((_, id, history)) = best else { return (Transcript::from_words(Vec::new()), peak) };
        let symbols = prefixes.symbols(id);
        let mut transcript = words_from_emissions(&align(&symbols, log_probs, size));
        if let Spelling::Phones(_) = self.spelling {
            // The words are the reading's choices, one per phone group.
            let mut chosen = Vec::new();
            let mut at = history.as_ref();
            while let Some(h) = at {
                chosen.push(match &h.word {
                    Said::Token(t) => self.lexicon.text[*t as usize].clone(),
                    Said::Unknown(spelt) => spelt.clone().unwrap_or_default(),
                });
                at = h.before.as_ref();
            }
            chosen.reverse();
            if chosen.len() == transcript.words.len() {
                for (w, text) in transcript.words.iter_mut().zip(chosen) {
                    w.text = text.to_string();
                }
                transcript = Transcript::from_words(transcript.words);
            }
        }
        (transcript, peak)
    }

    /// The most a prefix's word score can rise when symbol `s` extends it
    /// (index: symbol): an out-of-lexicon "penalty" set positive, and at a
    /// word's end the word bonus and entity boost (the LM's own term is a
    /// log probability, never positive, while α ≥ 0). Infinite where no
    /// bound holds (α < 0, or more symbols than a `u64` mask has bits), so
    /// nothing is cut.
    fn word_gains(&self, size: usize) -> Vec<f32> {
        let c = &self.config;
        if c.alpha < 0.0 || size > 64 {
            return vec![f32::INFINITY; size];
        }
        let spelling = c.oov_penalty.max(0.0) + c.oov_char_penalty.max(0.0);
        let space = c.beta.max(0.0) + c.entity_boost.max(0.0) + c.oov_penalty.max(0.0);
        (0..size as u32).map(|s| if s == Alphabet::SPACE { space } else { spelling }).collect()
    }

    /// A score that `self.config.beam` prefixes of the next beam will reach
    /// at least: each prefix of this beam stays there, by a blank or by
    /// repeating its last symbol, with at least those two paths' sum plus its
    /// words, so the beam-th best of those bounds the next beam's cut from
    /// below. Marks each beam prefix on its parent
    /// ([`Prefix::beam_children`]): those children are always extended,
    /// since they carry paths of their own. Negative infinity while the beam
    /// is not full.
    fn floor(
        &self,
        prefixes: &mut Prefixes,
        beams: &[(u32, Paths)],
        row: &[f32],
        now: u32,
        floors: &mut Vec<f32>,
    ) -> f32 {
        let beam = self.config.beam;
        if beams.len() < beam || beam == 0 {
            return f32::NEG_INFINITY;
        }
        for &(id, _) in beams.iter().filter(|&&(id, _)| id != 0) {
            let Prefix { symbol, parent, .. } = prefixes.nodes[id as usize];
            let parent = &mut prefixes.nodes[parent as usize];
            if parent.beam_children_frame != now {
                (parent.beam_children, parent.beam_children_frame) = (0, now);
            }
            parent.beam_children |= 1u64.checked_shl(symbol).unwrap_or(0);
        }
        floors.clear();
        floors.extend(beams.iter().map(|&(id, paths)| {
            let blank = paths.total() + row[Alphabet::BLANK as usize];
            // (A symbol the frame prunes adds no path.)
            let repeat = match prefixes.last_symbol(id) {
                Some(s) if row[s as usize] >= self.config.prune_log_prob => paths.non_blank + row[s as usize],
                _ => f32::NEG_INFINITY,
            };
            log_add(blank, repeat) + prefixes.words(id).score
        }));
        *floors.select_nth_unstable_by(beam - 1, |a, b| b.total_cmp(a)).1
    }

    /// The prefix `parent` + `s`, scored as words the first time it is met:
    /// word scores when `s` ends a word, lexicon tracking otherwise.
    fn child(&self, prefixes: &mut Prefixes, parent: u32, s: u32) -> u32 {
        if let Some(&id) = prefixes.children.get(&(parent, s)) {
            return id;
        }
        let from = prefixes.words(parent);
        let words = if s == Alphabet::SPACE {
            let readings = self.read_words(&from.readings, self.last_words(prefixes, parent));
            let penalty = from.penalty + self.unfinished_penalty(from);
            WordState {
                penalty,
                score: penalty + readings[0].score,
                readings: readings.into(),
                partial_len: 0,
                lexicon_node: Some(0),
            }
        } else {
            let mut words = WordState { partial_len: from.partial_len + 1, ..from.clone() };
            if !self.lexicon.trie.is_empty() {
                words.lexicon_node = from.lexicon_node.and_then(|n| self.lexicon.trie.next(n, s));
                if words.lexicon_node.is_none() {
                    if from.lexicon_node.is_some() {
                        words.penalty += self.config.oov_penalty;
                    }
                    words.penalty += self.config.oov_char_penalty;
                }
            }
            words.score = words.penalty + words.readings[0].score;
            words
        };
        let id = prefixes.nodes.len() as u32;
        prefixes.nodes.push(Prefix::new(parent, s, words));
        prefixes.children.insert((parent, s), id);
        id
    }
}

/// Where each of `symbols` (the chosen text) is emitted: `(symbol, frame,
/// posterior)` at its peak frame on the best CTC path of that text (a
/// Viterbi forced alignment over the posteriors). The search itself cannot
/// say: a wide beam keeps a prefix from the first frame its last symbol was
/// barely possible, which is not where the symbol was heard, so confidences
/// and word times read the alignment.
fn align(symbols: &[u32], log_probs: &[f32], size: usize) -> Vec<(u32, usize, f32)> {
    let frames = log_probs.len() / size;
    // Unplaced (no path: cannot happen for a text the search found here).
    let mut placed: Vec<(u32, usize, f32)> = symbols.iter().map(|&s| (s, 0, 0.0)).collect();
    if symbols.is_empty() || frames == 0 {
        return placed;
    }
    // The text with blanks around and between its symbols.
    let states: Vec<u32> =
        std::iter::once(Alphabet::BLANK).chain(symbols.iter().flat_map(|&s| [s, Alphabet::BLANK])).collect();
    let n = states.len();
    let lp = |t: usize, j: usize| log_probs[t * size + states[j] as usize];
    let mut score = vec![f32::NEG_INFINITY; n];
    score[0] = lp(0, 0);
    score[1] = lp(0, 1);
    // How each state was reached: stay, from the previous state, or skip a blank.
    let mut back = vec![0u8; frames * n];
    for t in 1..frames {
        let mut next = vec![f32::NEG_INFINITY; n];
        for j in 0..n {
            let mut best = (score[j], 0u8);
            if j >= 1 && score[j - 1] > best.0 {
                best = (score[j - 1], 1);
            }
            if j >= 2 && states[j] != Alphabet::BLANK && states[j] != states[j - 2] && score[j - 2] > best.0 {
                best = (score[j - 2], 2);
            }
            if best.0 > f32::NEG_INFINITY {
                next[j] = best.0 + lp(t, j);
                back[t * n + j] = best.1;
            }
        }
        score = next;
    }
    let mut j = if score[n - 1] >= score[n - 2] { n - 1 } else { n - 2 };
    if score[j] == f32::NEG_INFINITY {
        return placed;
    }
    let mut peaks = vec![f32::NEG_INFINITY; symbols.len()];
    for t in (0..frames).rev() {
        if j % 2 == 1 {
            let k = j / 2;
            if lp(t, j) >= peaks[k] {
                peaks[k] = lp(t, j);
                placed[k] = (symbols[k], t, lp(t, j).exp());
            }
        }
        j -= back[t * n + j] as usize;
    }
    placed
}

/// A spelling for a phone string no lexicon word has: each phone as its
/// most usual English letters ("k ae t" → "kat"), so a word outside the
/// lexicon still comes out as something readable, never as nothing.
pub fn spell_phones(phones: &[u32]) -> String {
    phones
        .iter()
        .map(|&p| match crate::Phones::name_of(p) {
            "aa" => "o",
            "ae" => "a",
            "ah" | "ax" => "u",
            "ao" => "aw",
            "aw" => "ow",
            "ay" => "i",
            "dh" | "th" => "th",
            "eh" => "e",
            "er" => "er",
            "ey" => "ay",
            "hh" => "h",
            "ih" => "i",
            "iy" => "ee",
            "jh" => "j",
            "ng" => "ng",
            "ow" => "o",
            "oy" => "oy",
            "uh" => "oo",
            "uw" => "oo",
            "y" => "y",
            "zh" => "s",
            "?" | "|" => "",
            other => other,
        })
        .collect()
}

/// Index of prefix `id`'s entry in `next` (the beam being built for frame
/// `now`), added with no paths if it has none yet.
fn slot(prefixes: &mut Prefixes, next: &mut Vec<(u32, Paths)>, id: u32, now: u32) -> usize {
    let node = &mut prefixes.nodes[id as usize];
    if node.slot_frame != now {
        (node.slot, node.slot_frame) = (next.len() as u32, now);
        next.push((id, Paths::NONE));
    }
    node.slot as usize
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
    fn a_general_lm_lets_a_sentence_outside_the_grammar_come_out_as_spoken() {
        // "play some jazz music": no template says it; acoustics blur two letters.
        let mut lp = ambiguous("play some jazz music", 6, 'a', 'o', 0.5, 0.4);
        let blur = ambiguous("play some jazz music", 18, 'e', 'i', 0.5, 0.4);
        let frames = lp.len() / Alphabet::SIZE;
        let at = 18 * 3 * Alphabet::SIZE;
        lp[at..at + 2 * Alphabet::SIZE].copy_from_slice(&blur[at..at + 2 * Alphabet::SIZE]);
        assert_eq!(lp.len() / Alphabet::SIZE, frames);
        assert_eq!(crate::greedy(&lp).text, "play same jazz musec");
        let mut decoder = corpus_decoder();
        assert_ne!(decoder.decode(&lp).text, "play some jazz music");
        let general = NgramLm::train(["play some music", "some jazz music is old", "i like jazz music"]);
        decoder.set_general_lm(NgramLm::from_bytes(&general.to_bytes(1)).unwrap(), 0.5);
        assert_eq!(decoder.decode(&lp).text, "play some jazz music");
        // The template grammar still reads its own queries.
        let lp = ambiguous("weather in paris", 1, 'a', 'e', 0.5, 0.4);
        assert_eq!(decoder.decode(&lp).text, "weather in paris");
    }

    #[test]
    fn clones_share_the_general_lm_and_the_lexicon_until_one_changes_its_words() {
        let mut decoder = corpus_decoder();
        decoder.set_general_lm(NgramLm::train(["play some jazz music"]), 0.5);
        let other = decoder.clone().with_general_weight(0.2).with_config(BeamConfig { beam: 8, ..decoder.config });
        let (a, b) = (&decoder.general.as_ref().unwrap().0, &other.general.as_ref().unwrap().0);
        assert!(Arc::ptr_eq(a, b), "the general LM is copied, not shared");
        assert!(Arc::ptr_eq(&decoder.lexicon, &other.lexicon), "the lexicon's trie is copied, not shared");
        // New words build a trie of their own; the original keeps its own.
        let mut grown = other.clone();
        grown.set_entities([("city", "zorinaville")]);
        assert!(!Arc::ptr_eq(&decoder.lexicon, &grown.lexicon));
        assert!(grown.decode(&ambiguous("weather in zorinaville", 1, 'a', 'e', 0.5, 0.4)).text.contains("zorinaville"));
        assert_eq!(
            decoder.decode(&ambiguous("play some jazz music", 6, 'a', 'o', 0.5, 0.4)).text,
            "play some jazz music"
        );
    }

    /// Phone posteriors (43 symbols) for `phones` ("dh ax | k ae t"): each
    /// phone held two frames at 0.9, blanks between.
    fn phone_posteriors(phones: &str) -> Vec<f32> {
        let size = crate::Phones::SIZE;
        let frame = |s: u32| -> Vec<f32> {
            let rest = (0.1f32 / (size - 1) as f32).ln();
            (0..size as u32).map(|i| if i == s { 0.9f32.ln() } else { rest }).collect()
        };
        let mut out = Vec::new();
        for name in phones.split(' ') {
            let s = crate::Phones::symbol_of(name).unwrap();
            out.extend(frame(s));
            out.extend(frame(s));
            out.extend(frame(Alphabet::BLANK));
        }
        out
    }

    #[test]
    fn a_phone_model_is_read_into_words_with_homophones_chosen_by_the_lm() {
        let lexicon = crate::Lexicon::parse(
            "i\tay\nwant\tw aa n t\nwont\tw aa n t\nto\tt uw\ntwo\tt uw\ntoo\tt uw\ngo\tg ow\nhome\thh ow m\n\
             tickets\tt ih k ax t s\n",
        )
        .unwrap();
        let lm = NgramLm::train(["i want to go home", "two tickets", "i want two tickets", "me too", "time to go"]);
        let mut decoder = BeamDecoder::new(BeamConfig::default(), Some(lm));
        decoder.set_pronunciations(lexicon);
        assert_eq!(decoder.units(), Units::Phones);
        let t = decoder.decode(&phone_posteriors("ay | w aa n t | t uw | g ow | hh ow m"));
        assert_eq!(t.text, "i want to go home");
        let t = decoder.decode(&phone_posteriors("ay | w aa n t | t uw | t ih k ax t s"));
        assert_eq!(t.text, "i want two tickets");
        assert_eq!(t.words.len(), 4);
        assert!(t.words.iter().all(|w| w.confidence > 0.8), "{t:?}");
        // A word no lexicon has is spelt from its phones, not dropped.
        let t = decoder.decode(&phone_posteriors("g ow | hh ow m | k w ih n ow ax"));
        assert_eq!(t.text, "go home kwinou");
        // Without the LM: each phone group as its most frequent word.
        let t = decoder.greedy(&phone_posteriors("ay | w aa n t | t uw | g ow | hh ow m"));
        assert_eq!(t.text, "i want to go home");
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
    fn dropping_dead_prefixes_changes_nothing_but_memory() {
        // Ten queries in a row, acoustically ambiguous here and there.
        let mut lp = Vec::new();
        for (text, at) in [("weather in paris today", 1), ("set a timer for ten minutes", 4), ("who founded google", 9)]
            .iter()
            .cycle()
            .take(10)
        {
            lp.extend(ambiguous(text, *at, 'a', 'e', 0.5, 0.4));
            lp.extend(row(&[(Alphabet::SPACE, 0.9)]));
        }
        let decoder = corpus_decoder();
        let (whole, whole_peak) = decoder.search(&lp, usize::MAX, true);
        let (compacted, compacted_peak) = decoder.search(&lp, 64, true);
        assert_eq!(compacted, whole, "same words, confidences and frames");
        assert!(compacted_peak * 4 < whole_peak, "arena {compacted_peak} vs {whole_peak} prefixes");
    }

    #[test]
    fn the_beam_floor_cuts_only_prefixes_that_could_not_make_the_beam() {
        // Noisy posteriors: each character heard at 0.3–0.9 with two other
        // letters sharing most of the rest, so many extensions compete.
        let mut seed = 7u64;
        let mut rand = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut lp = Vec::new();
        for text in ["weather in paris today", "set a timer for ten minutes", "who founded google", "play some jazz"] {
            for c in text.chars() {
                let p = 0.3 + 0.6 * rand();
                let other = |r: f32| Alphabet::symbol_of((b'a' + (r * 26.0) as u8).min(b'z') as char).unwrap();
                let (a, b) = (other(rand()), other(rand()));
                let frame = if a == sym(c) || b == sym(c) || a == b {
                    row(&[(sym(c), p)])
                } else {
                    row(&[(sym(c), p), (a, (1.0 - p) * 0.6), (b, (1.0 - p) * 0.39)])
                };
                lp.extend(frame.iter().copied());
                lp.extend(frame);
                lp.extend(row(&[(Alphabet::BLANK, 0.6 + 0.3 * rand())]));
            }
            lp.extend(row(&[(Alphabet::SPACE, 0.9)]));
        }
        // Word bonuses and an entity boost are what a word's end can gain.
        for (beam, entity_boost) in [(4, 0.0), (16, 2.0), (64, 0.0), (384, 1.0)] {
            let config = BeamConfig { beam, entity_boost, ..BeamConfig::default() };
            let decoder = corpus_decoder().with_config(config);
            let (cut, made_cut) = decoder.search(&lp, usize::MAX, true);
            let (full, made_full) = decoder.search(&lp, usize::MAX, false);
            assert_eq!(cut, full, "beam {beam}: the same words, confidences and frames");
            // (These posteriors are flatter than a trained model's: on
            // ph3's dev utterances the search takes half the time.)
            assert!(
                made_cut * 6 < made_full * 5,
                "beam {beam}: {made_cut} prefixes made, {made_full} without the floor"
            );
        }
    }

    #[test]
    fn a_long_flat_input_decodes_in_bounded_memory() {
        // Three minutes of posteriors with no peak: every symbol is a
        // candidate everywhere, the worst case for the arena.
        let flat: Vec<f32> = (0..9_000).flat_map(|_| row(&[])).collect();
        let decoder = BeamDecoder::new(BeamConfig { beam: 64, ..BeamConfig::default() }, Some(corpus_lm()));
        let (t, peak) = decoder.search(&flat, MIN_ARENA, true);
        assert!(t.confidence.is_finite());
        // 9,000 frames × 64 beams × 28 extensions were made.
        assert!(peak < 8 * MIN_ARENA, "arena peaked at {peak} prefixes");
    }

    #[test]
    fn confidence_reads_where_the_symbols_peak() {
        // Each letter barely possible (0.01) for a few frames before it is
        // clearly heard (0.9): a wide beam keeps the early prefixes, but the
        // confidence is the letters' peak posteriors.
        let mut lp = Vec::new();
        for c in "paris".chars() {
            for _ in 0..3 {
                lp.extend(row(&[(Alphabet::BLANK, 0.98), (sym(c), 0.01)]));
            }
            lp.extend(row(&[(sym(c), 0.9)]));
            lp.extend(row(&[(Alphabet::BLANK, 0.9)]));
        }
        let t = BeamDecoder::new(BeamConfig::default(), None).decode(&lp);
        assert_eq!(t.text, "paris");
        assert!((t.confidence - 0.9).abs() < 1e-3, "{}", t.confidence);
        assert_eq!(t.words[0].start_frame, 3);
        assert_eq!(t.words[0].end_frame, 23);
    }

    #[test]
    fn empty_input_decodes_to_nothing() {
        let decoder = BeamDecoder::new(BeamConfig::default(), None);
        let t = decoder.decode(&[]);
        assert_eq!((t.text.as_str(), t.words.len()), ("", 0));
    }
}
