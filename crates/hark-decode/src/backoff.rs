//! A backoff word trigram model with the ARPA format's semantics (Katz-style
//! backoff: a stored n-gram's probability, else the context's backoff weight
//! times the next lower order), read from an ARPA file, pruned to a size
//! budget, and shipped as `HARKLM2` bytes.
//!
//! Written here rather than taken from a crate: the LM crates on crates.io
//! either wrap KenLM's C++ (which does not build for wasm32) or read only
//! their own formats, and the decoder needs three calls — `ln P(w | u v)`, the
//! vocabulary, and a compact byte form the browser loads without parsing
//! text. Values are kept, in memory and in the file, as `i16` thousandths of
//! a nat (the rounding, ≤ 0.0005 nats, is far below what the beam can tell
//! apart), a probability and a backoff packed in one `u32`: the tables then
//! have the counted model's types, so the browser's wasm carries one copy of
//! the hash-map code for both.

use rustc_hash::FxHashMap as HashMap;

use crate::lm::LmError;

/// The first bytes of a serialised backoff model, with its format version.
pub(crate) const MAGIC: &[u8; 8] = b"HARKLM2\0";

const BOS: u32 = 0;
const EOS: u32 = 1;
const LN_10: f32 = std::f32::consts::LN_10;
/// Stored values are thousandths of a nat.
const SCALE: f32 = 1000.0;

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    ids: HashMap<String, u32>,
    /// `pack(ln P(w), ln backoff(w))` by word id; `<s>` is never predicted.
    unigrams: Vec<u32>,
    /// `ln P` of a word outside the vocabulary.
    unknown: f32,
    /// `pack(ln P(w | v), ln backoff(v w))`.
    bigrams: HashMap<(u32, u32), u32>,
    /// `pack(ln P(w | u v), 0)`.
    trigrams: HashMap<(u32, u32, u32), u32>,
}

impl Backoff {
    pub(crate) fn from_arpa(text: &str) -> Result<Self, LmError> {
        let err = |line: usize, problem: String| LmError::Arpa { line, problem };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        if !lines.by_ref().any(|(_, l)| l == "\\data\\") {
            return Err(err(0, "no \\data\\ header: not an ARPA file".into()));
        }
        let mut lm = Self {
            ids: HashMap::from_iter([("<s>".to_owned(), BOS), ("</s>".to_owned(), EOS)]),
            unigrams: vec![pack(f32::NEG_INFINITY, 0.0); 2],
            unknown: f32::NAN,
            bigrams: HashMap::default(),
            trigrams: HashMap::default(),
        };
        let mut seen = [false; 2];
        let mut order = 0;
        for (n, line) in lines {
            if line.is_empty() || line.starts_with("ngram ") {
                continue;
            }
            if line == "\\end\\" {
                break;
            }
            if let Some(rest) = line.strip_prefix('\\') {
                order = match rest {
                    "1-grams:" => 1,
                    "2-grams:" => 2,
                    "3-grams:" => 3,
                    other => return Err(err(n, format!("section \\{other}: hark reads models of order 1 to 3"))),
                };
                continue;
            }
            if order == 0 {
                return Err(err(n, format!("'{line}' before the first n-gram section")));
            }
            let mut fields = line.split_whitespace();
            let prob = fields.next().and_then(|p| p.parse::<f32>().ok());
            let words: Vec<&str> = fields.by_ref().take(order).collect();
            let backoff = fields.next().map(str::parse::<f32>);
            let (Some(prob), true) = (prob, words.len() == order) else {
                return Err(err(n, format!("'{line}' is not a log10 probability and {order} word(s)")));
            };
            let backoff = match backoff {
                None => 0.0,
                Some(Ok(b)) if order < 3 => b,
                _ => {
                    return Err(err(n, format!("'{line}': a backoff weight must be a number, and only below order 3")));
                }
            };
            let (prob, backoff) = (prob * LN_10, backoff * LN_10);
            if order == 1 {
                match words[0] {
                    "<unk>" => lm.unknown = prob,
                    w => {
                        let id = lm.intern(w);
                        if id <= EOS {
                            seen[id as usize] = true;
                        }
                        lm.unigrams[id as usize] = pack(prob, backoff);
                    }
                }
                continue;
            }
            let mut ids = [0u32; 3];
            for (slot, w) in ids.iter_mut().zip(&words) {
                *slot = *lm.ids.get(*w).ok_or_else(|| err(n, format!("'{w}' has no unigram")))?;
            }
            if order == 2 {
                lm.bigrams.insert((ids[0], ids[1]), pack(prob, backoff));
            } else {
                lm.trigrams.insert((ids[0], ids[1], ids[2]), pack(prob, 0.0));
            }
        }
        if !seen.iter().all(|&s| s) {
            return Err(err(0, "the model has no <s> or no </s> unigram".into()));
        }
        if lm.unknown.is_nan() {
            // No <unk>: a word outside the vocabulary is ten times rarer
            // than the rarest word in it.
            let rarest = lm.unigrams[EOS as usize..].iter().map(|&u| prob(u)).fold(0.0, f32::min);
            lm.unknown = value(quantise(rarest - LN_10));
        } else {
            lm.unknown = value(quantise(lm.unknown));
        }
        Ok(lm)
    }

    fn intern(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.ids.get(word) {
            return id;
        }
        let id = self.unigrams.len() as u32;
        self.ids.insert(word.to_owned(), id);
        self.unigrams.push(pack(f32::NEG_INFINITY, 0.0));
        id
    }

    pub(crate) fn vocabulary_size(&self) -> usize {
        self.unigrams.len() - 2
    }

    pub(crate) fn ngrams(&self) -> (usize, usize) {
        (self.bigrams.len(), self.trigrams.len())
    }

    pub(crate) fn vocabulary(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().filter(|(_, id)| **id > EOS).map(|(w, _)| w.as_str())
    }

    pub(crate) fn ids(&self) -> &HashMap<String, u32> {
        &self.ids
    }

    pub(crate) fn contains(&self, word: &str) -> bool {
        self.ids.get(word).is_some_and(|&id| id > EOS)
    }

    pub(crate) fn count(&self, word: &str) -> u32 {
        self.ids.get(word).map_or(0, |&id| (prob(self.unigrams[id as usize]).exp() * 1e9) as u32)
    }

    /// `ln P(word | prev2 prev1)`; `word == None` is the sentence end, a
    /// `None` context word the sentence start.
    pub(crate) fn log_prob(&self, prev2: Option<&str>, prev1: Option<&str>, word: Option<&str>) -> f32 {
        let ctx = |w: Option<&str>| w.map_or(Some(BOS), |w| self.ids.get(w).copied());
        let w = word.map_or(Some(EOS), |w| self.ids.get(w).copied().filter(|&id| id != BOS));
        self.ln_p(ctx(prev2), ctx(prev1), w)
    }

    /// Unknown ids (`None`) match no n-gram: an unknown context word cuts the
    /// history there, an unknown word takes the `<unk>` probability.
    pub(crate) fn ln_p(&self, u: Option<u32>, v: Option<u32>, w: Option<u32>) -> f32 {
        if let (Some(u), Some(v), Some(w)) = (u, v, w)
            && let Some(&p) = self.trigrams.get(&(u, v, w))
        {
            return prob(p);
        }
        let bo_uv = u.zip(v).and_then(|uv| self.bigrams.get(&uv)).map_or(0.0, |&b| backoff(b));
        bo_uv + self.ln_p2(v, w)
    }

    fn ln_p2(&self, v: Option<u32>, w: Option<u32>) -> f32 {
        if let (Some(v), Some(w)) = (v, w)
            && let Some(&p) = self.bigrams.get(&(v, w))
        {
            return prob(p);
        }
        let bo_v = v.map_or(0.0, |v| backoff(self.unigrams[v as usize]));
        bo_v + w.map_or(self.unknown, |w| prob(self.unigrams[w as usize]))
    }

    /// How often a context word starts a history: its unigram probability,
    /// with `<s>` (never predicted) as frequent as `</s>`.
    fn context_ln_p(&self, v: u32) -> f32 {
        prob(self.unigrams[if v == BOS { EOS } else { v } as usize])
    }

    /// Keeps the `max_bigrams` and `max_trigrams` n-grams that matter most —
    /// `P(h, w) · |ln P(w | h) − ln P_backoff(w | h)|`, the weighted
    /// difference of Seymore & Rosenfeld (1996) — plus every bigram that is
    /// the history of a kept trigram, then renormalises the backoff weights
    /// so each context's probabilities still sum to one.
    pub(crate) fn pruned(&self, max_bigrams: usize, max_trigrams: usize) -> Self {
        let mut trigrams: Vec<(f32, (u32, u32, u32), f32)> = self
            .trigrams
            .iter()
            .map(|(&(u, v, w), &p)| {
                let p = prob(p);
                let bo_uv = self.bigrams.get(&(u, v)).map_or(0.0, |&b| backoff(b));
                let lower = bo_uv + self.ln_p2(Some(v), Some(w));
                let joint = self.context_ln_p(u) + self.ln_p2(Some(u), Some(v)) + p;
                (joint.exp() * (p - lower).abs(), (u, v, w), p)
            })
            .collect();
        trigrams.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        trigrams.truncate(max_trigrams);
        let histories: rustc_hash::FxHashSet<(u32, u32)> = trigrams.iter().map(|t| (t.1.0, t.1.1)).collect();
        let mut bigrams: Vec<(f32, (u32, u32))> = self
            .bigrams
            .iter()
            .map(|(&(v, w), &p)| {
                let p = prob(p);
                let lower = backoff(self.unigrams[v as usize]) + prob(self.unigrams[w as usize]);
                let score = (self.context_ln_p(v) + p).exp() * (p - lower).abs();
                (if histories.contains(&(v, w)) { f32::INFINITY } else { score }, (v, w))
            })
            .collect();
        bigrams.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        bigrams.truncate(max_bigrams.max(histories.len()));

        let mut out = Self {
            ids: self.ids.clone(),
            unigrams: self.unigrams.clone(),
            unknown: self.unknown,
            bigrams: bigrams.iter().map(|(_, k)| (*k, self.bigrams[k])).collect(),
            trigrams: trigrams.iter().map(|(_, k, p)| (*k, pack(*p, 0.0))).collect(),
        };
        // Unigram backoffs: what the kept bigrams of a context leave, over
        // what the unigrams give the words they do not cover.
        let mut kept: HashMap<u32, (f64, f64)> = HashMap::default();
        for (&(v, w), &p) in &out.bigrams {
            let e = kept.entry(v).or_default();
            e.0 += f64::from(prob(p)).exp();
            e.1 += f64::from(prob(out.unigrams[w as usize])).exp();
        }
        for (v, unigram) in out.unigrams.iter_mut().enumerate() {
            let (p, lower) = kept.get(&(v as u32)).copied().unwrap_or_default();
            *unigram = pack(prob(*unigram), renormalised(p, lower));
        }
        let mut kept: HashMap<(u32, u32), (f64, f64)> = HashMap::default();
        for (&(u, v, w), &p) in &out.trigrams {
            let e = kept.entry((u, v)).or_default();
            e.0 += f64::from(prob(p)).exp();
            e.1 += f64::from(out.ln_p2(Some(v), Some(w))).exp();
        }
        for (uv, bigram) in out.bigrams.iter_mut() {
            let (p, lower) = kept.get(uv).copied().unwrap_or_default();
            *bigram = pack(prob(*bigram), renormalised(p, lower));
        }
        out
    }

    /// Vocabulary (length-prefixed words), unigram `(p, backoff)`, the
    /// unknown-word probability; then the bigrams grouped by history word
    /// and the trigrams by history pair, each group as its history, its size
    /// and the predicted words' id gaps (LEB128 varints, ascending ids), and
    /// every value as `i16` thousandths of a nat. Little-endian.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut words: Vec<(&str, u32)> = self.ids.iter().map(|(w, &id)| (w.as_str(), id)).collect();
        words.sort_by_key(|&(_, id)| id);
        let mut out = MAGIC.to_vec();
        varint(&mut out, words.len() as u32);
        for (w, _) in &words {
            out.push(w.len().min(255) as u8);
            out.extend_from_slice(&w.as_bytes()[..w.len().min(255)]);
        }
        for &u in &self.unigrams {
            halves(u).iter().for_each(|q| out.extend_from_slice(&q.to_le_bytes()));
        }
        out.extend_from_slice(&quantise(self.unknown).to_le_bytes());
        let mut bigrams: Vec<_> = self.bigrams.iter().map(|(&(v, w), &x)| ([v], w, halves(x))).collect();
        bigrams.sort_by_key(|b| (b.0, b.1));
        write_groups(&mut out, &bigrams);
        let mut trigrams: Vec<_> = self.trigrams.iter().map(|(&(u, v, w), &p)| ([u, v], w, [halves(p)[0]])).collect();
        trigrams.sort_by_key(|t| (t.0, t.1));
        write_groups(&mut out, &trigrams);
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, LmError> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(LmError::NotAnLm)?;
        let mut r = crate::lm::Reader(rest);
        let n = r.varint("vocabulary size")? as usize;
        let ids = r.vocabulary(n)?;
        let unigrams =
            (0..n).map(|_| Ok(join([r.i16("unigrams")?, r.i16("unigrams")?]))).collect::<Result<Vec<_>, _>>()?;
        let unknown = value(r.i16("unknown-word probability")?);
        let mut bigrams = HashMap::default();
        read_groups(&mut r, n, (1, 2), "bigrams", &mut |h, w, x| {
            bigrams.insert((h[0], w), join([x[0], x[1]]));
        })?;
        let mut trigrams = HashMap::default();
        read_groups(&mut r, n, (2, 1), "trigrams", &mut |h, w, x| {
            trigrams.insert((h[0], h[1], w), join([x[0], 0]));
        })?;
        if !r.0.is_empty() {
            return Err(LmError::Corrupt("bytes after the trigrams"));
        }
        Ok(Self { ids, unigrams, unknown, bigrams, trigrams })
    }
}

/// N-grams sorted by (history, word): the number of groups, then per group
/// its history ids, its size, and per n-gram the gap to the previous word id
/// (the first from 0) and its values.
fn write_groups<const H: usize, const V: usize>(out: &mut Vec<u8>, ngrams: &[([u32; H], u32, [i16; V])]) {
    let same_history = |a: &([u32; H], u32, [i16; V]), b: &([u32; H], u32, [i16; V])| a.0 == b.0;
    varint(out, ngrams.chunk_by(same_history).count() as u32);
    for group in ngrams.chunk_by(same_history) {
        group[0].0.iter().for_each(|&h| varint(out, h));
        varint(out, group.len() as u32);
        let mut last = 0;
        for (_, w, values) in group {
            varint(out, w - last);
            last = *w;
            values.iter().for_each(|q| out.extend_from_slice(&q.to_le_bytes()));
        }
    }
}

/// One reader for both orders (not generic: the browser downloads this code
/// once). `insert` gets the history (`history` ids), the word and the values.
fn read_groups(
    r: &mut crate::lm::Reader<'_>,
    vocabulary: usize,
    (history, values): (usize, usize),
    what: &'static str,
    insert: &mut dyn FnMut(&[u32], u32, &[i16]),
) -> Result<(), LmError> {
    let id = |x: u32| if (x as usize) < vocabulary { Ok(x) } else { Err(LmError::Corrupt("word id out of range")) };
    let (mut h, mut v) = ([0u32; 2], [0i16; 2]);
    for _ in 0..r.varint(what)? {
        for slot in &mut h[..history] {
            *slot = id(r.varint(what)?)?;
        }
        let mut word = 0u32;
        for _ in 0..r.varint(what)? {
            word = id(word.checked_add(r.varint(what)?).ok_or(LmError::Corrupt("word id out of range"))?)?;
            for slot in &mut v[..values] {
                *slot = r.i16(what)?;
            }
            insert(&h[..history], word, &v[..values]);
        }
    }
    Ok(())
}

fn varint(out: &mut Vec<u8>, mut x: u32) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// `ln` of a context's backoff weight once only `kept` of its n-grams stay:
/// the mass they leave over the lower order's mass for the rest.
fn renormalised(kept: f64, lower: f64) -> f32 {
    let (left, rest) = ((1.0 - kept).max(1e-9), (1.0 - lower).max(1e-9));
    (left / rest).ln() as f32
}

/// A probability and a backoff (natural logs), rounded to thousandths of a
/// nat, in one word: the probability in the low half.
fn pack(prob: f32, backoff: f32) -> u32 {
    join([quantise(prob), quantise(backoff)])
}

/// Two stored values in one word, the first in the low half.
fn join([low, high]: [i16; 2]) -> u32 {
    u32::from(low as u16) | (u32::from(high as u16) << 16)
}

fn halves(x: u32) -> [i16; 2] {
    [x as u16 as i16, (x >> 16) as u16 as i16]
}

/// A stored value back in nats.
fn value(q: i16) -> f32 {
    f32::from(q) / SCALE
}

fn prob(x: u32) -> f32 {
    value(halves(x)[0])
}

fn backoff(x: u32) -> f32 {
    value(halves(x)[1])
}

fn quantise(x: f32) -> i16 {
    (x * SCALE).round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

impl crate::lm::Reader<'_> {
    fn varint(&mut self, what: &'static str) -> Result<u32, LmError> {
        let mut x = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.take(1, what)?[0];
            x |= u32::from(b & 0x7f).checked_shl(shift).ok_or(LmError::Corrupt(what))?;
            if b & 0x80 == 0 {
                return Ok(x);
            }
        }
        Err(LmError::Corrupt(what))
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, LmError> {
        Ok(i16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use crate::NgramLm;

    /// A small, properly normalised trigram model (the numbers are log10);
    /// the CLI's tests publish it through `hark lm --arpa`.
    const ARPA: &str = include_str!("../testdata/small.arpa");

    fn lm() -> NgramLm {
        NgramLm::from_arpa(ARPA).unwrap()
    }

    #[test]
    fn an_arpa_model_scores_by_its_ngrams_and_backs_off_with_its_weights() {
        let lm = lm();
        let ln10 = std::f32::consts::LN_10;
        // Values are kept to a thousandth of a nat: sums of up to three of them.
        let close = |a: f32, b: f32| assert!((a - b * ln10).abs() < 2e-3, "{a} vs {}", b * ln10);
        close(lm.log_prob(None, Some("play"), "some"), -0.04576); // trigram <s> play some
        close(lm.log_prob(Some("play"), Some("some"), "music"), -0.22185); // trigram
        close(lm.log_prob(Some("music"), Some("play"), "some"), -0.15490); // bigram, no (music play)
        // No trigram (<s> play music): bo(<s> play) + P(music | play).
        close(lm.log_prob(None, Some("play"), "music"), -0.47712 - 0.69897);
        // No bigram (music some): bo(music) + P(some).
        close(lm.log_prob(Some("play"), Some("music"), "some"), -0.60206 - 0.69897);
        close(lm.end_log_prob(Some("some"), Some("music")), -0.09691);
        // An unknown word: <unk>'s probability after the backoffs; an unknown
        // context word cuts the history.
        close(lm.log_prob(Some("play"), Some("some"), "jazz"), -0.09691 - 0.20412 - 0.69897);
        close(lm.log_prob(Some("jazz"), Some("some"), "music"), -0.30103);
        assert_eq!(lm.vocabulary_size(), 3);
        assert!(lm.contains("music") && !lm.contains("<unk>") && !lm.contains("jazz"));
        assert!(lm.count("music") > lm.count("jazz"));
    }

    #[test]
    fn bytes_round_trip_exactly() {
        let lm = lm();
        let bytes = lm.to_bytes(1);
        assert!(bytes.starts_with(b"HARKLM2\0"));
        let back = NgramLm::from_bytes(&bytes).unwrap();
        for (a, b, w) in [(None, Some("play"), "some"), (Some("play"), Some("music"), "some"), (None, None, "jazz")] {
            assert_eq!(lm.log_prob(a, b, w), back.log_prob(a, b, w), "{a:?} {b:?} {w}");
        }
        assert_eq!(back.ngrams(), (6, 2));
        for cut in [9, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(NgramLm::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn pruning_keeps_the_strongest_ngrams_and_a_distribution_in_every_context() {
        let lm = lm();
        let pruned = lm.pruned(3, 1);
        let (bigrams, trigrams) = pruned.ngrams();
        assert_eq!(trigrams, 1);
        assert!(bigrams >= 3 && bigrams < 6, "{bigrams}");
        let words = ["play", "some", "music", "jazz"]; // jazz: any word outside
        for ctx in [(None, None), (None, Some("play")), (Some("play"), Some("some")), (Some("some"), Some("music"))] {
            for model in [&lm, &pruned] {
                let mut total: f64 = words.iter().map(|w| f64::from(model.log_prob(ctx.0, ctx.1, w)).exp()).sum();
                total += f64::from(model.end_log_prob(ctx.0, ctx.1)).exp();
                assert!((total - 1.0).abs() < 1e-3, "{ctx:?}: {total}");
            }
        }
    }

    #[test]
    fn a_malformed_arpa_file_is_an_error_naming_its_line() {
        let bad = ARPA.replace("-0.69897\tplay music", "-0.69897\tplay jazz");
        let e = NgramLm::from_arpa(&bad).unwrap_err().to_string();
        assert!(e.contains("line 18") && e.contains("'jazz' has no unigram"), "{e}");
        let e = NgramLm::from_arpa(&ARPA.replace("-0.09691\tmusic </s>", "x music </s>")).unwrap_err().to_string();
        assert!(e.contains("line 20") && e.contains("not a log10 probability"), "{e}");
        assert!(NgramLm::from_arpa("hello").unwrap_err().to_string().contains("not an ARPA file"));
        let e = NgramLm::from_arpa(&ARPA.replace("\\3-grams:", "\\4-grams:")).unwrap_err().to_string();
        assert!(e.contains("order 1 to 3"), "{e}");
    }
}
