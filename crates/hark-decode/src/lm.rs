//! A word trigram language model with interpolated absolute discounting
//! (Ney, Essen & Kneser 1994), built from the normalised query corpus.
//!
//! The voice-search LM is small enough to build in the browser from the
//! corpus; the general English LM is built once and shipped as bytes
//! ([`NgramLm::to_bytes`] / [`NgramLm::from_bytes`]: counts, not text, so
//! loading it is reading arrays). No external LM toolkit is involved.
//!
//! A published backoff model (ARPA, e.g. the US English LM that PocketSphinx
//! ships) can stand in for the counted general LM: [`NgramLm::from_arpa`],
//! pruned to fit the browser's download ([`NgramLm::pruned`]), shipped as
//! `HARKLM2` bytes (`backoff.rs`).

use rustc_hash::FxHashMap as HashMap;

const BOS: u32 = 0;
const EOS: u32 = 1;
/// Discount subtracted from every seen n-gram count.
const DISCOUNT: f64 = 0.75;
/// Add-k smoothing of the unigram distribution (k over vocabulary + unknown).
const UNIGRAM_K: f64 = 0.5;

/// The first bytes of a serialised model, with its format version.
const MAGIC: &[u8; 8] = b"HARKLM1\0";

/// A serialised model that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    #[error("not a hark language model (no HARKLM1 or HARKLM2 header)")]
    NotAnLm,
    #[error("the language model file is truncated or corrupt ({0})")]
    Corrupt(&'static str),
    #[error("ARPA language model, line {line}: {problem}")]
    Arpa { line: usize, problem: String },
}

#[derive(Debug, Clone, Default)]
struct Context {
    total: u32,
    distinct: u32,
}

/// A word trigram language model: counted from text here ([`NgramLm::train`])
/// or read from a published backoff model ([`NgramLm::from_arpa`]).
#[derive(Debug, Clone)]
pub struct NgramLm(Model);

#[derive(Debug, Clone)]
enum Model {
    Counts(Counts),
    Backoff(crate::backoff::Backoff),
}

/// Counts with interpolated absolute discounting.
#[derive(Debug, Clone)]
struct Counts {
    ids: HashMap<String, u32>,
    unigrams: Vec<u32>,
    unigram_total: u64,
    bigrams: HashMap<(u32, u32), u32>,
    bigram_ctx: HashMap<u32, Context>,
    trigrams: HashMap<(u32, u32, u32), u32>,
    trigram_ctx: HashMap<(u32, u32), Context>,
}

impl NgramLm {
    /// Counts n-grams of whitespace-separated, already normalised sentences.
    pub fn train<'a>(sentences: impl IntoIterator<Item = &'a str>) -> Self {
        Self(Model::Counts(Counts::train(sentences)))
    }

    /// Reads a backoff model in the ARPA text format (orders 1–3, log10
    /// probabilities and backoffs), as LM toolkits write them. A line that is
    /// not one is an error naming it.
    pub fn from_arpa(text: &str) -> Result<Self, LmError> {
        crate::backoff::Backoff::from_arpa(text).map(|b| Self(Model::Backoff(b)))
    }

    /// Keeps a backoff model's `bigrams` and `trigrams` most informative
    /// n-grams (their share of the probability times how far they are from
    /// what backing off would give) and renormalises the backoff weights, so
    /// every context still holds a distribution. A counted model is returned
    /// as it is (its pruning is [`NgramLm::to_bytes`]'s `min_count`).
    pub fn pruned(&self, bigrams: usize, trigrams: usize) -> Self {
        match &self.0 {
            Model::Counts(_) => self.clone(),
            Model::Backoff(b) => Self(Model::Backoff(b.pruned(bigrams, trigrams))),
        }
    }

    /// Bigrams and trigrams the model holds.
    pub fn ngrams(&self) -> (usize, usize) {
        match &self.0 {
            Model::Counts(c) => (c.bigrams.len(), c.trigrams.len()),
            Model::Backoff(b) => b.ngrams(),
        }
    }

    /// Words of the vocabulary, sentence markers excluded.
    pub fn vocabulary_size(&self) -> usize {
        match &self.0 {
            Model::Counts(c) => c.unigrams.len() - 2,
            Model::Backoff(b) => b.vocabulary_size(),
        }
    }

    /// Tokens a counted model was trained on (sentence ends included); 0 for
    /// a backoff model, which keeps probabilities, not counts.
    pub fn tokens(&self) -> u64 {
        match &self.0 {
            Model::Counts(c) => c.unigram_total,
            Model::Backoff(_) => 0,
        }
    }

    /// The model as bytes. A counted model keeps its vocabulary, unigram
    /// counts, the bigrams and trigrams seen at least `min_count` times, and
    /// the totals of each context that keeps one (pruned n-grams stay counted
    /// in those totals, so their mass goes to the lower order; a context with
    /// none left reads as the lower order itself). A backoff model is written
    /// as it is (`HARKLM2`; prune it with [`NgramLm::pruned`]).
    /// Little-endian, no padding.
    pub fn to_bytes(&self, min_count: u32) -> Vec<u8> {
        match &self.0 {
            Model::Counts(c) => c.to_bytes(min_count),
            Model::Backoff(b) => b.to_bytes(),
        }
    }

    /// Reads [`NgramLm::to_bytes`]'s output (either kind); a short or foreign
    /// file is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LmError> {
        if bytes.starts_with(crate::backoff::MAGIC) {
            return crate::backoff::Backoff::from_bytes(bytes).map(|b| Self(Model::Backoff(b)));
        }
        Counts::from_bytes(bytes).map(|c| Self(Model::Counts(c)))
    }

    /// Words the model has seen (sentence markers excluded).
    pub fn vocabulary(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match &self.0 {
            Model::Counts(c) => Box::new(c.ids.iter().filter(|(_, id)| **id > EOS).map(|(w, _)| w.as_str())),
            Model::Backoff(b) => Box::new(b.vocabulary()),
        }
    }

    /// How often `word` was seen in training (0: never, or pruned); for a
    /// backoff model, its unigram probability in parts per billion. Used to
    /// order homophones, most frequent first.
    pub fn count(&self, word: &str) -> u32 {
        match &self.0 {
            Model::Counts(c) => c.ids.get(word).map_or(0, |&id| c.unigrams[id as usize]),
            Model::Backoff(b) => b.count(word),
        }
    }

    pub fn contains(&self, word: &str) -> bool {
        match &self.0 {
            Model::Counts(c) => c.ids.get(word).is_some_and(|&id| id > EOS),
            Model::Backoff(b) => b.contains(word),
        }
    }

    /// Sentence start as a context id of [`NgramLm::log_prob_ids`].
    pub const START: u32 = BOS;
    /// Sentence end as the predicted id of [`NgramLm::log_prob_ids`].
    pub const END: u32 = EOS;

    /// `word`'s id for [`NgramLm::log_prob_ids`] (`None`: not a word of
    /// the vocabulary). A decoder looks its words up once, then scores by id.
    pub fn word_id(&self, word: &str) -> Option<u32> {
        let ids = match &self.0 {
            Model::Counts(c) => &c.ids,
            Model::Backoff(b) => b.ids(),
        };
        ids.get(word).copied().filter(|&id| id > EOS)
    }

    /// `ln P(w | u v)` by id ([`NgramLm::word_id`]): a context id may be
    /// [`NgramLm::START`], `w` may be [`NgramLm::END`]; `None` is a word
    /// outside the vocabulary (as a context word it cuts the history there).
    /// The same value as [`NgramLm::log_prob`] gives for the words.
    pub fn log_prob_ids(&self, u: Option<u32>, v: Option<u32>, w: Option<u32>) -> f32 {
        match &self.0 {
            Model::Counts(c) => c.prob_ids(u, v, w).ln() as f32,
            Model::Backoff(b) => b.ln_p(u, v, w),
        }
    }

    /// `ln P(word | prev2 prev1)`; `None` context words mean sentence start.
    /// Unknown words get the unigram floor.
    pub fn log_prob(&self, prev2: Option<&str>, prev1: Option<&str>, word: &str) -> f32 {
        match &self.0 {
            Model::Counts(c) => c.log_prob(prev2, prev1, word),
            Model::Backoff(b) => b.log_prob(prev2, prev1, Some(word)),
        }
    }

    /// `ln P(</s> | prev2 prev1)`.
    pub fn end_log_prob(&self, prev2: Option<&str>, prev1: Option<&str>) -> f32 {
        match &self.0 {
            Model::Counts(c) => c.end_log_prob(prev2, prev1),
            Model::Backoff(b) => b.log_prob(prev2, prev1, None),
        }
    }
}

impl Counts {
    fn train<'a>(sentences: impl IntoIterator<Item = &'a str>) -> Self {
        let mut lm = Self {
            ids: HashMap::from_iter([("<s>".to_owned(), BOS), ("</s>".to_owned(), EOS)]),
            unigrams: vec![0, 0],
            unigram_total: 0,
            bigrams: HashMap::default(),
            bigram_ctx: HashMap::default(),
            trigrams: HashMap::default(),
            trigram_ctx: HashMap::default(),
        };
        for sentence in sentences {
            let mut ids = vec![BOS, BOS];
            ids.extend(sentence.split_whitespace().map(|w| lm.intern(w)));
            ids.push(EOS);
            for i in 2..ids.len() {
                let (u, v, w) = (ids[i - 2], ids[i - 1], ids[i]);
                lm.unigrams[w as usize] += 1;
                lm.unigram_total += 1;
                let b = lm.bigrams.entry((v, w)).or_insert(0);
                *b += 1;
                let first = *b == 1;
                let ctx = lm.bigram_ctx.entry(v).or_default();
                ctx.total += 1;
                ctx.distinct += first as u32;
                let t = lm.trigrams.entry((u, v, w)).or_insert(0);
                *t += 1;
                let first = *t == 1;
                let ctx = lm.trigram_ctx.entry((u, v)).or_default();
                ctx.total += 1;
                ctx.distinct += first as u32;
            }
        }
        lm
    }

    fn to_bytes(&self, min_count: u32) -> Vec<u8> {
        let mut words: Vec<(&str, u32)> = self.ids.iter().map(|(w, &id)| (w.as_str(), id)).collect();
        words.sort_by_key(|&(_, id)| id);
        let mut out = MAGIC.to_vec();
        let u32s = |out: &mut Vec<u8>, v: &[u32]| v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        u32s(&mut out, &[words.len() as u32]);
        for (w, _) in &words {
            out.push(w.len().min(255) as u8);
            out.extend_from_slice(&w.as_bytes()[..w.len().min(255)]);
        }
        u32s(&mut out, &self.unigrams);
        out.extend_from_slice(&self.unigram_total.to_le_bytes());
        let mut bigrams: Vec<(&(u32, u32), &u32)> = self.bigrams.iter().filter(|(_, c)| **c >= min_count).collect();
        bigrams.sort();
        let mut trigrams: Vec<(&(u32, u32, u32), &u32)> =
            self.trigrams.iter().filter(|(_, c)| **c >= min_count).collect();
        trigrams.sort();
        let kept: rustc_hash::FxHashSet<u32> = bigrams.iter().map(|((v, _), _)| *v).collect();
        let mut ctx: Vec<(&u32, &Context)> = self.bigram_ctx.iter().filter(|(v, _)| kept.contains(v)).collect();
        ctx.sort_by_key(|(v, _)| **v);
        u32s(&mut out, &[ctx.len() as u32]);
        for (v, c) in ctx {
            u32s(&mut out, &[*v, c.total, c.distinct]);
        }
        u32s(&mut out, &[bigrams.len() as u32]);
        for ((v, w), c) in bigrams {
            u32s(&mut out, &[*v, *w, *c]);
        }
        let kept: rustc_hash::FxHashSet<(u32, u32)> = trigrams.iter().map(|((u, v, _), _)| (*u, *v)).collect();
        let mut ctx: Vec<(&(u32, u32), &Context)> = self.trigram_ctx.iter().filter(|(k, _)| kept.contains(k)).collect();
        ctx.sort_by_key(|(k, _)| **k);
        u32s(&mut out, &[ctx.len() as u32]);
        for ((u, v), c) in ctx {
            u32s(&mut out, &[*u, *v, c.total, c.distinct]);
        }
        u32s(&mut out, &[trigrams.len() as u32]);
        for ((u, v, w), c) in trigrams {
            u32s(&mut out, &[*u, *v, *w, *c]);
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, LmError> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(LmError::NotAnLm)?;
        let mut r = Reader(rest);
        let n = r.u32("vocabulary size")? as usize;
        let ids = r.vocabulary(n)?;
        let unigrams = (0..n).map(|_| r.u32("unigram counts")).collect::<Result<Vec<_>, _>>()?;
        let unigram_total = u64::from_le_bytes(r.take(8, "token count")?.try_into().expect("8 bytes"));
        let id = |x: u32| if (x as usize) < n { Ok(x) } else { Err(LmError::Corrupt("word id out of range")) };
        let count = r.u32("bigram contexts")? as usize;
        let mut bigram_ctx = HashMap::default();
        for _ in 0..count {
            let v = id(r.u32("bigram context")?)?;
            bigram_ctx.insert(v, Context { total: r.u32("context total")?, distinct: r.u32("context distinct")? });
        }
        let count = r.u32("bigrams")? as usize;
        let mut bigrams = HashMap::default();
        bigrams.reserve(count);
        for _ in 0..count {
            let (v, w) = (id(r.u32("bigram")?)?, id(r.u32("bigram")?)?);
            bigrams.insert((v, w), r.u32("bigram count")?);
        }
        let count = r.u32("trigram contexts")? as usize;
        let mut trigram_ctx = HashMap::default();
        trigram_ctx.reserve(count);
        for _ in 0..count {
            let (u, v) = (id(r.u32("trigram context")?)?, id(r.u32("trigram context")?)?);
            trigram_ctx
                .insert((u, v), Context { total: r.u32("context total")?, distinct: r.u32("context distinct")? });
        }
        let count = r.u32("trigrams")? as usize;
        let mut trigrams = HashMap::default();
        trigrams.reserve(count);
        for _ in 0..count {
            let (u, v, w) = (id(r.u32("trigram")?)?, id(r.u32("trigram")?)?, id(r.u32("trigram")?)?);
            trigrams.insert((u, v, w), r.u32("trigram count")?);
        }
        if !r.0.is_empty() {
            return Err(LmError::Corrupt("bytes after the trigrams"));
        }
        Ok(Self { ids, unigrams, unigram_total, bigrams, bigram_ctx, trigrams, trigram_ctx })
    }

    fn intern(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.ids.get(word) {
            return id;
        }
        let id = self.unigrams.len() as u32;
        self.ids.insert(word.to_owned(), id);
        self.unigrams.push(0);
        id
    }

    fn log_prob(&self, prev2: Option<&str>, prev1: Option<&str>, word: &str) -> f32 {
        let id = |w: Option<&str>| w.map_or(Some(BOS), |w| self.ids.get(w).copied());
        self.prob_ids(id(prev2), id(prev1), self.ids.get(word).copied()).ln() as f32
    }

    fn end_log_prob(&self, prev2: Option<&str>, prev1: Option<&str>) -> f32 {
        let id = |w: Option<&str>| w.map_or(Some(BOS), |w| self.ids.get(w).copied());
        self.prob_ids(id(prev2), id(prev1), Some(EOS)).ln() as f32
    }

    /// `w == None` is the unknown word: it takes the add-k unigram share and,
    /// like any unseen word, only the backed-off mass of higher orders.
    fn prob_ids(&self, u: Option<u32>, v: Option<u32>, w: Option<u32>) -> f64 {
        let vocab = self.unigrams.len() as f64; // markers included; + 1 for unknown
        let count = w.map_or(0, |w| self.unigrams[w as usize]) as f64;
        let p1 = (count + UNIGRAM_K) / (self.unigram_total as f64 + UNIGRAM_K * (vocab + 1.0));
        let p2 = match v.and_then(|v| self.bigram_ctx.get(&v).map(|c| (v, c))) {
            Some((v, ctx)) => interpolate(w.and_then(|w| self.bigrams.get(&(v, w)).copied()).unwrap_or(0), ctx, p1),
            None => p1,
        };
        match u.zip(v).and_then(|(u, v)| self.trigram_ctx.get(&(u, v)).map(|c| (u, v, c))) {
            Some((u, v, ctx)) => {
                interpolate(w.and_then(|w| self.trigrams.get(&(u, v, w)).copied()).unwrap_or(0), ctx, p2)
            }
            None => p2,
        }
    }
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], LmError> {
        if self.0.len() < n {
            return Err(LmError::Corrupt(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// `n` length-prefixed words, the `i`-th with id `i`, the sentence
    /// markers first.
    pub(crate) fn vocabulary(&mut self, n: usize) -> Result<HashMap<String, u32>, LmError> {
        let mut ids = HashMap::default();
        ids.reserve(n.min(self.0.len()));
        for id in 0..n {
            let len = self.take(1, "word length")?[0] as usize;
            let word = std::str::from_utf8(self.take(len, "word")?).map_err(|_| LmError::Corrupt("word not UTF-8"))?;
            ids.insert(word.to_owned(), id as u32);
        }
        if ids.len() != n || ids.get("<s>") != Some(&BOS) || ids.get("</s>") != Some(&EOS) {
            return Err(LmError::Corrupt("vocabulary"));
        }
        Ok(ids)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, LmError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
}

fn interpolate(count: u32, ctx: &Context, lower: f64) -> f64 {
    let total = ctx.total as f64;
    (count as f64 - DISCOUNT).max(0.0) / total + DISCOUNT * ctx.distinct as f64 / total * lower
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lm() -> NgramLm {
        NgramLm::train([
            "weather in lisbon tomorrow",
            "weather in paris today",
            "directions to lisbon",
            "weather in lisbon today",
        ])
    }

    #[test]
    fn seen_continuations_beat_unseen_ones() {
        let lm = lm();
        let lisbon = lm.log_prob(Some("weather"), Some("in"), "lisbon");
        let paris = lm.log_prob(Some("weather"), Some("in"), "paris");
        let to = lm.log_prob(Some("weather"), Some("in"), "to");
        let unknown = lm.log_prob(Some("weather"), Some("in"), "zanzibar");
        assert!(lisbon > paris && paris > to && to > unknown, "{lisbon} {paris} {to} {unknown}");
    }

    #[test]
    fn scoring_by_id_gives_what_scoring_by_word_gives() {
        let arpa = NgramLm::from_arpa(include_str!("../testdata/small.arpa")).unwrap();
        let contexts = [None, Some("weather"), Some("in"), Some("play"), Some("some"), Some("zanzibar")];
        let words = ["lisbon", "today", "in", "some", "music", "zanzibar"];
        for model in [lm(), arpa] {
            let id = |w: Option<&str>| w.map_or(Some(NgramLm::START), |w| model.word_id(w));
            for (a, b, w) in contexts.iter().flat_map(|&a| contexts.iter().flat_map(move |&b| words.map(|w| (a, b, w))))
            {
                assert_eq!(
                    model.log_prob_ids(id(a), id(b), model.word_id(w)),
                    model.log_prob(a, b, w),
                    "{a:?} {b:?} {w}"
                );
            }
            for (a, b) in contexts.iter().flat_map(|&a| contexts.map(|b| (a, b))) {
                assert_eq!(model.log_prob_ids(id(a), id(b), Some(NgramLm::END)), model.end_log_prob(a, b));
            }
            // Only words have ids: not the sentence markers, not unknown words.
            assert_eq!([model.word_id("<s>"), model.word_id("</s>"), model.word_id("zanzibar")], [None; 3]);
        }
    }

    #[test]
    fn bytes_round_trip_and_pruning_keeps_a_distribution() {
        let lm = lm();
        let same = NgramLm::from_bytes(&lm.to_bytes(1)).unwrap();
        let pruned = NgramLm::from_bytes(&lm.to_bytes(2)).unwrap();
        assert!(lm.to_bytes(2).len() < lm.to_bytes(1).len());
        for (a, b, w) in [(Some("weather"), Some("in"), "lisbon"), (None, None, "directions"), (None, Some("to"), "x")]
        {
            assert_eq!(lm.log_prob(a, b, w), same.log_prob(a, b, w));
            assert!(pruned.log_prob(a, b, w).is_finite());
        }
        // A kept trigram ("weather in lisbon", seen twice) keeps its probability;
        // a pruned one ("in lisbon tomorrow", once) backs off: less, not nothing.
        let kept = |m: &NgramLm| m.log_prob(Some("weather"), Some("in"), "lisbon");
        assert!((kept(&pruned) - kept(&lm)).abs() < 1e-6);
        let gone = |m: &NgramLm| m.log_prob(Some("in"), Some("lisbon"), "tomorrow");
        assert!(gone(&pruned) < gone(&lm) && gone(&pruned).is_finite());
        assert_eq!(lm.vocabulary_size(), same.vocabulary_size());
        assert_eq!(same.tokens(), 4 + 4 + 3 + 4 + 4, "words and sentence ends");
    }

    #[test]
    fn a_foreign_or_truncated_file_is_an_error() {
        assert!(matches!(NgramLm::from_bytes(b"RIFF...."), Err(LmError::NotAnLm)));
        let bytes = lm().to_bytes(1);
        for cut in [9, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(matches!(NgramLm::from_bytes(&bytes[..cut]), Err(LmError::Corrupt(_))), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(NgramLm::from_bytes(&extra).is_err());
    }

    #[test]
    fn probabilities_over_the_vocabulary_sum_to_one() {
        let lm = lm();
        for ctx in
            [(None, None), (Some("weather"), Some("in")), (Some("to"), Some("lisbon")), (Some("nope"), Some("never"))]
        {
            let mut total: f64 = lm.vocabulary().map(|w| (lm.log_prob(ctx.0, ctx.1, w) as f64).exp()).sum();
            total += (lm.end_log_prob(ctx.0, ctx.1) as f64).exp();
            total += (lm.log_prob(ctx.0, ctx.1, "<unknown>") as f64).exp();
            // <s> is never predicted but holds its add-k share of the unigrams.
            let Model::Counts(counts) = &lm.0 else { unreachable!("trained") };
            let id = |w: Option<&str>| w.map_or(Some(BOS), |w| counts.ids.get(w).copied());
            total += counts.prob_ids(id(ctx.0), id(ctx.1), Some(BOS));
            assert!((total - 1.0).abs() < 1e-6, "{ctx:?}: {total}");
        }
    }
}
