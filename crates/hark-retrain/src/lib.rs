//! The retraining loop's plan: from what monitoring saw to the data that
//! fixes it.
//!
//! `hark monitor` reports new words and names (from people's corrections)
//! and which input signals drifted. This crate turns that report into a
//! harvest plan ([`Flagged::from_report`]): each new name with the entity
//! class it was used as ([`classify`], by matching its example queries
//! against the corpus templates — the class-based LM needs the class), the
//! noise the inputs moved towards ([`NoiseShift`]), and query texts that put
//! each name in the templates of its class ([`queries_for`]). It also says
//! which collected recordings may train and which are held out for
//! evaluation ([`held_out`]), so that the drift slice the gate judges on
//! never holds a speaker training heard.
//!
//! The synthesis, audio and store IO are the CLI's (`hark harvest`); this
//! crate is the part that decides, and is tested without either.

use hark_data::corpus::stable_hash;
use hark_data::{Corpus, Query, Split, normalize};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A name (or word) people searched for that the model does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlaggedName {
    /// Normalised, as the model writes it.
    pub name: String,
    /// Corrections it occurred in.
    pub count: u64,
    /// One query it occurred in.
    pub example: String,
    /// The entity class it was used as, when a template explains the
    /// example (`person`, `place`, ...).
    pub class: Option<String>,
}

/// Which way the inputs moved, as the augmentation that imitates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseShift {
    /// SNR fell and the lowest bands gained energy: engine and road noise.
    Car,
    /// SNR fell with no low-band shift: broadband noise.
    Broadband,
}

/// What a monitoring report asks the harvest for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Flagged {
    pub names: Vec<FlaggedName>,
    pub noise: Option<NoiseShift>,
    /// The report's own verdict (`ok`, `watch`, `alert`).
    pub state: String,
}

/// A report `hark harvest` cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("not a `hark monitor` summary.json: {0}")]
    NotAReport(String),
    #[error(
        "the report flags nothing to harvest (no new names in corrections, no noise shift); there is no drift to fix"
    )]
    NothingFlagged,
}

/// Drift checks of the lowest band groups (of 16) that car noise moves.
const LOW_BANDS: usize = 4;

impl Flagged {
    /// Reads `hark monitor`'s `summary.json`: new names (multi-word ones,
    /// then single words seen at least `min_count` times) from the
    /// corrections, at most `max_names`, each with its class; and the noise
    /// shift from the drift checks.
    pub fn from_report(report: &Value, corpus: &Corpus, min_count: u64, max_names: usize) -> Result<Self, ReportError> {
        let corrections = report
            .pointer("/words/corrections")
            .ok_or_else(|| ReportError::NotAReport("it has no words.corrections".into()))?;
        let checks = report
            .pointer("/drift/checks")
            .and_then(Value::as_array)
            .ok_or_else(|| ReportError::NotAReport("it has no drift.checks list".into()))?;
        let state = report.get("state").and_then(Value::as_str).unwrap_or("unknown").to_owned();

        let listed = |key: &str| -> Vec<(String, u64, String)> {
            corrections
                .get(key)
                .and_then(Value::as_array)
                .map(|rows| {
                    rows.iter()
                        .filter_map(|r| {
                            Some((
                                normalize(r.get("text")?.as_str()?),
                                r.get("count")?.as_u64()?,
                                r.get("example").and_then(Value::as_str).unwrap_or("").to_owned(),
                            ))
                        })
                        .filter(|(text, _, _)| !text.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut names: Vec<FlaggedName> = Vec::new();
        let mut take = |(name, count, example): (String, u64, String)| {
            if names.len() < max_names && !names.iter().any(|n| n.name.split(' ').any(|w| w == name)) {
                let class = classify(&name, &example, corpus).map(str::to_owned);
                names.push(FlaggedName { name, count, example, class });
            }
        };
        listed("top_names").into_iter().for_each(&mut take);
        listed("top_words").into_iter().filter(|(_, count, _)| *count >= min_count).for_each(&mut take);

        let flagged = Flagged { names, noise: noise_shift(checks), state };
        if flagged.names.is_empty() && flagged.noise.is_none() {
            return Err(ReportError::NothingFlagged);
        }
        Ok(flagged)
    }

    /// The names with a class, as `(class, name)` for the decoder.
    pub fn classed(&self) -> Vec<(String, String)> {
        self.names.iter().filter_map(|n| Some((n.class.clone()?, n.name.clone()))).collect()
    }
}

/// Mean bin position of a check's window and reference histograms (the
/// bins are ordered, so the sign of the difference is the direction).
fn shift(check: &Value) -> Option<f64> {
    let mean = |key: &str| -> Option<f64> {
        let fractions: Vec<f64> = check.get(key)?.as_array()?.iter().filter_map(Value::as_f64).collect();
        let total: f64 = fractions.iter().sum();
        (total > 0.0).then(|| fractions.iter().enumerate().map(|(i, f)| i as f64 * f).sum::<f64>() / total)
    };
    Some(mean("window")? - mean("reference")?)
}

fn noise_shift(checks: &[Value]) -> Option<NoiseShift> {
    let drifted = |key: &str| {
        checks
            .iter()
            .find(|c| c.get("key").and_then(Value::as_str) == Some(key))
            .filter(|c| matches!(c.get("state").and_then(Value::as_str), Some("watch" | "alert")))
    };
    // Noise lowers the SNR estimate.
    let snr = drifted("snr_db")?;
    if shift(snr)? >= 0.0 {
        return None;
    }
    let low_band_louder =
        (0..LOW_BANDS).filter_map(|i| drifted(&format!("band_{i:02}"))).any(|c| shift(c).is_some_and(|s| s > 0.0));
    Some(if low_band_louder { NoiseShift::Car } else { NoiseShift::Broadband })
}

/// A template split into literal words and slots.
fn parts(template: &str) -> Vec<Part> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| c + open) else { break };
        out.extend(normalize(&rest[..open]).split_whitespace().map(|w| Part::Word(w.to_owned())));
        out.push(Part::Slot(rest[open + 1..close].to_owned()));
        rest = &rest[close + 1..];
    }
    out.extend(normalize(rest).split_whitespace().map(|w| Part::Word(w.to_owned())));
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Word(String),
    Slot(String),
}

/// Most words any other slot's value may take when matching.
const MAX_SLOT_WORDS: usize = 4;

/// Whether `words` (the example with the name replaced by one `NAME`
/// marker) fits `parts` with the marker in a slot of `class`.
fn fits(parts: &[Part], words: &[&str], class: &str) -> bool {
    match parts.split_first() {
        None => words.is_empty(),
        Some((Part::Word(w), rest)) => words.first() == Some(&w.as_str()) && fits(rest, &words[1..], class),
        Some((Part::Slot(slot), rest)) => {
            if words.first() == Some(&MARKER) {
                return slot == class && fits(rest, &words[1..], class);
            }
            (1..=MAX_SLOT_WORDS.min(words.len()))
                .take_while(|&n| !words[..n].contains(&MARKER))
                .any(|n| fits(rest, &words[n..], class))
        }
    }
}

const MARKER: &str = "\u{1}name";

/// The entity class `name` is used as in `example`: the open class whose
/// slot the name fills in a corpus template that the example fits (other
/// slots taking any 1–4 words). `None` when no template explains it.
/// Several classes fitting: the one with the most fitting templates.
pub fn classify<'c>(name: &str, example: &str, corpus: &'c Corpus) -> Option<&'c str> {
    let (name, example) = (normalize(name), normalize(example));
    let padded = format!(" {example} ");
    let at = padded.find(&format!(" {name} "))?;
    let marked = format!("{}{MARKER}{}", &padded[..at + 1], &padded[at + 1 + name.len()..]);
    let words: Vec<&str> = marked.split_whitespace().collect();
    let mut best: Option<(&str, usize)> = None;
    for class in open_classes(corpus) {
        let fitting = corpus.templates().iter().filter(|t| fits(&parts(t), &words, class)).count();
        if fitting > 0 && best.is_none_or(|(_, n)| fitting > n) {
            best = Some((class, fitting));
        }
    }
    best.map(|(class, _)| class)
}

fn open_classes(corpus: &Corpus) -> Vec<&str> {
    let mut classes: Vec<&str> = corpus.open_names().map(|(class, _, _)| class).collect();
    classes.sort_unstable();
    classes.dedup();
    classes
}

/// Up to `n` distinct queries that use `name` as a `class`: the corpus
/// templates with a `{class}` slot, the name in the first one, every other
/// slot filled from the **train** split's lists (no evaluation name enters
/// training through a harvest). Deterministic from `seed`.
pub fn queries_for(name: &str, class: &str, corpus: &Corpus, n: usize, seed: u64) -> Vec<Query> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stable_hash(name));
    let templates: Vec<(usize, &String)> =
        corpus.templates().iter().enumerate().filter(|(_, t)| t.contains(&format!("{{{class}}}"))).collect();
    let mut out: Vec<Query> = Vec::new();
    for attempt in 0..n * 8 {
        if out.len() >= n || templates.is_empty() {
            break;
        }
        let (index, template) = templates[(attempt + rng.random_range(0..templates.len())) % templates.len()];
        let mut entities = Vec::new();
        let mut written = String::new();
        let mut placed = false;
        for part in parts_raw(template) {
            match part {
                Raw::Text(t) => written.push_str(t),
                Raw::Slot(slot) if slot == class && !placed => {
                    placed = true;
                    written.push_str(name);
                    entities.push((slot.to_owned(), name.to_owned()));
                }
                Raw::Slot(slot) => {
                    let pool = corpus.entities(slot, Split::Train);
                    let Some(value) = (!pool.is_empty()).then(|| pool[rng.random_range(0..pool.len())]) else {
                        continue;
                    };
                    written.push_str(value);
                    entities.push((slot.to_owned(), value.to_owned()));
                }
            }
        }
        let text = normalize(&written);
        if !out.iter().any(|q| q.text == text) {
            out.push(Query { written, text, split: Split::Train, template: index, entities });
        }
    }
    out
}

enum Raw<'a> {
    Text(&'a str),
    Slot(&'a str),
}

fn parts_raw(template: &str) -> Vec<Raw<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| c + open) else { break };
        out.push(Raw::Text(&rest[..open]));
        out.push(Raw::Slot(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    out.push(Raw::Text(rest));
    out
}

/// Whether an install's recordings are held out for evaluation (one
/// install in five, by a stable hash of its id): its speaker is never in
/// training, so the drift slice measures what users will meet.
pub fn held_out(install_id: &str) -> bool {
    stable_hash(install_id) % 5 == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_classed_by_the_template_their_query_fits() {
        let corpus = Corpus::load();
        assert_eq!(classify("zorina kaltvedt", "who is zorina kaltvedt", &corpus), Some("person"));
        assert_eq!(classify("velmora", "weather in velmora tomorrow", &corpus), Some("place"));
        assert_eq!(classify("velmora", "flights from velmora to paris", &corpus), Some("place"));
        assert_eq!(classify("zorina", "zorina is nowhere in a template", &corpus), None);
        assert_eq!(classify("kaltvedt", "who is zorina", &corpus), None, "the name must occur in the example");
    }

    #[test]
    fn queries_put_the_name_in_its_class_and_fill_the_rest_from_train() {
        let corpus = Corpus::load();
        let queries = queries_for("zorina kaltvedt", "person", &corpus, 6, 1);
        assert!(queries.len() >= 3, "{queries:?}");
        for q in &queries {
            assert!(q.text.contains("zorina kaltvedt"), "{}", q.text);
            assert!(q.entities.contains(&("person".into(), "zorina kaltvedt".into())));
            for (slot, value) in &q.entities {
                if value != "zorina kaltvedt" && corpus.is_open_slot(slot) {
                    assert_eq!(Split::of_name(value), Split::Train, "{value} is not a train name");
                }
            }
        }
        assert_eq!(queries, queries_for("zorina kaltvedt", "person", &corpus, 6, 1), "deterministic");
    }

    fn check(key: &str, state: &str, reference: [f64; 3], window: [f64; 3]) -> Value {
        json!({"key": key, "state": state, "reference": reference, "window": window})
    }

    fn report(checks: Vec<Value>, names: Value, words: Value) -> Value {
        json!({"state": "alert", "drift": {"checks": checks}, "words": {"corrections": {"top_names": names, "top_words": words}}})
    }

    #[test]
    fn a_report_yields_names_with_classes_and_the_noise_shift() {
        let corpus = Corpus::load();
        let noisy = vec![
            check("snr_db", "alert", [0.1, 0.3, 0.6], [0.5, 0.3, 0.2]),
            check("band_00", "alert", [0.6, 0.3, 0.1], [0.1, 0.3, 0.6]),
            check("band_10", "ok", [0.3, 0.4, 0.3], [0.3, 0.4, 0.3]),
        ];
        let names = json!([{"text": "Zorina Kaltvedt", "count": 9, "example": "who is zorina kaltvedt"}]);
        let words = json!([
            {"text": "kaltvedt", "count": 9, "example": "who is zorina kaltvedt"},
            {"text": "velmora", "count": 4, "example": "hotels in velmora"},
            {"text": "rare", "count": 1, "example": "rare word"}
        ]);
        let flagged = Flagged::from_report(&report(noisy, names.clone(), words.clone()), &corpus, 2, 10).unwrap();
        let found: Vec<(&str, Option<&str>)> =
            flagged.names.iter().map(|n| (n.name.as_str(), n.class.as_deref())).collect();
        assert_eq!(found, [("zorina kaltvedt", Some("person")), ("velmora", Some("place"))]);
        assert_eq!(flagged.noise, Some(NoiseShift::Car));
        assert_eq!(flagged.classed().len(), 2);

        let broadband = vec![check("snr_db", "watch", [0.1, 0.3, 0.6], [0.5, 0.3, 0.2])];
        assert_eq!(
            Flagged::from_report(&report(broadband, names.clone(), words.clone()), &corpus, 2, 10).unwrap().noise,
            Some(NoiseShift::Broadband)
        );
        let cleaner = vec![check("snr_db", "alert", [0.5, 0.3, 0.2], [0.1, 0.3, 0.6])];
        assert_eq!(Flagged::from_report(&report(cleaner, names, words).clone(), &corpus, 2, 10).unwrap().noise, None);
    }

    #[test]
    fn reports_without_drift_or_shape_are_refused_by_name() {
        let corpus = Corpus::load();
        let calm = report(vec![check("snr_db", "ok", [0.3; 3], [0.3; 3])], json!([]), json!([]));
        assert_eq!(Flagged::from_report(&calm, &corpus, 2, 10), Err(ReportError::NothingFlagged));
        let err = Flagged::from_report(&json!({"words": {}}), &corpus, 2, 10).unwrap_err();
        assert!(err.to_string().starts_with("not a `hark monitor` summary.json"), "{err}");
    }

    #[test]
    fn about_one_install_in_five_is_held_out() {
        let held = (0..1000).filter(|i| held_out(&format!("install-{i}"))).count();
        assert!((150..250).contains(&held), "{held}");
    }
}
