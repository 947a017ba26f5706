//! A word trigram language model with interpolated absolute discounting
//! (Ney, Essen & Kneser 1994), built from the normalised query corpus.
//!
//! Small enough to build in the browser from a word list or ship as text;
//! no external LM toolkit is involved.

use rustc_hash::FxHashMap as HashMap;

const BOS: u32 = 0;
const EOS: u32 = 1;
/// Discount subtracted from every seen n-gram count.
const DISCOUNT: f64 = 0.75;
/// Add-k smoothing of the unigram distribution (k over vocabulary + unknown).
const UNIGRAM_K: f64 = 0.5;

#[derive(Debug, Clone, Default)]
struct Context {
    total: u32,
    distinct: u32,
}

/// Word trigram model.
#[derive(Debug, Clone)]
pub struct NgramLm {
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

    fn intern(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.ids.get(word) {
            return id;
        }
        let id = self.unigrams.len() as u32;
        self.ids.insert(word.to_owned(), id);
        self.unigrams.push(0);
        id
    }

    /// Words the model has seen (sentence markers excluded).
    pub fn vocabulary(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().filter(|(_, id)| **id > EOS).map(|(w, _)| w.as_str())
    }

    pub fn contains(&self, word: &str) -> bool {
        self.ids.get(word).is_some_and(|&id| id > EOS)
    }

    /// `ln P(word | prev2 prev1)`; `None` context words mean sentence start.
    /// Unknown words get the unigram floor.
    pub fn log_prob(&self, prev2: Option<&str>, prev1: Option<&str>, word: &str) -> f32 {
        let id = |w: Option<&str>| w.map_or(Some(BOS), |w| self.ids.get(w).copied());
        self.prob_ids(id(prev2), id(prev1), self.ids.get(word).copied()).ln() as f32
    }

    /// `ln P(</s> | prev2 prev1)`.
    pub fn end_log_prob(&self, prev2: Option<&str>, prev1: Option<&str>) -> f32 {
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
    fn probabilities_over_the_vocabulary_sum_to_one() {
        let lm = lm();
        for ctx in
            [(None, None), (Some("weather"), Some("in")), (Some("to"), Some("lisbon")), (Some("nope"), Some("never"))]
        {
            let mut total: f64 = lm.vocabulary().map(|w| (lm.log_prob(ctx.0, ctx.1, w) as f64).exp()).sum();
            total += (lm.end_log_prob(ctx.0, ctx.1) as f64).exp();
            total += (lm.log_prob(ctx.0, ctx.1, "<unknown>") as f64).exp();
            // <s> is never predicted but holds its add-k share of the unigrams.
            let id = |w: Option<&str>| w.map_or(Some(BOS), |w| lm.ids.get(w).copied());
            total += lm.prob_ids(id(ctx.0), id(ctx.1), Some(BOS));
            assert!((total - 1.0).abs() < 1e-6, "{ctx:?}: {total}");
        }
    }
}
