//! "About model": a model's published figures as a person reads them — the
//! headline first, each figure saying what it measures and on what speech —
//! with the raw metric keys kept for one more click. Pure, so it is
//! unit-tested natively.

use std::collections::BTreeMap;

/// One figure of the card.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What is measured, in plain words.
    pub label: &'static str,
    /// The figure as shown ("9.3 %", "1.49×").
    pub value: String,
    /// On what speech, and how to read it.
    pub about: &'static str,
}

/// The figures a card explains, headline first: metric key, label, about.
const EXPLAINED: &[(&str, &str, &str)] = &[
    (
        "free-form-test_wer",
        "Words misheard in everyday queries",
        "Queries and sentences written apart from the training text, spoken by voices it never heard; clean and in car noise.",
    ),
    (
        "test_clean_unseen_engine_wer",
        "Words misheard, clear speech",
        "Voice-search queries spoken clearly by a speech engine the model never heard in training.",
    ),
    (
        "test_car_5db_wer",
        "Words misheard in a noisy car",
        "The same kind of queries with car noise almost as loud as the voice (5 dB).",
    ),
    (
        "test_car_5db_ratio",
        "Cost of car noise",
        "How many times more words are misheard in the car than in clear speech.",
    ),
    (
        "test_entity_unseen_entity_wer",
        "Words misheard in queries with a new name",
        "Queries naming a place, person or thing the model never heard in training.",
    ),
    (
        "test_entity_no_open_class_entity_wer",
        "Words misheard in queries without a name",
        "Queries such as \"set a timer for ten minutes\".",
    ),
    (
        "test_noise_babble_wer",
        "Words misheard with people talking nearby",
        "Queries with the murmur of other voices behind them.",
    ),
    ("test_wer", "Words misheard, all test speech", "Every test query: clear, in a car and in other noise."),
];

/// The explained figures this model has, headline first.
pub fn figures(metrics: &BTreeMap<String, f64>) -> Vec<Figure> {
    EXPLAINED
        .iter()
        .filter_map(|(key, label, about)| metrics.get(*key).map(|v| Figure { label, value: show(key, *v), about }))
        .collect()
}

/// Every metric as published, key in words and value formatted by its kind.
pub fn raw(metrics: &BTreeMap<String, f64>) -> Vec<(String, String)> {
    metrics.iter().map(|(k, v)| (k.replace(['_', '-'], " "), show(k, *v))).collect()
}

/// A ratio as "1.49×", a rate as a percentage.
fn show(key: &str, value: f64) -> String {
    if key.ends_with("_ratio") { format!("{value:.2}×") } else { format!("{:.1} %", 100.0 * value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn the_headline_comes_first_in_plain_words() {
        let m = metrics(&[
            ("test_wer", 0.1382),
            ("test_car_5db_ratio", 1.4917),
            ("test_clean_unseen_engine_wer", 0.0927),
            ("dev_cer", 0.1466),
        ]);
        let card = figures(&m);
        let labels: Vec<_> = card.iter().map(|f| f.label).collect();
        assert_eq!(labels, ["Words misheard, clear speech", "Cost of car noise", "Words misheard, all test speech"]);
        assert_eq!(card[0].value, "9.3 %");
        assert_eq!(card[1].value, "1.49×", "a ratio is not a percentage");
        let with_free_form = metrics(&[("test_wer", 0.1), ("free-form-test_wer", 0.5)]);
        assert_eq!(figures(&with_free_form)[0].label, "Words misheard in everyday queries");
    }

    #[test]
    fn raw_figures_keep_every_key() {
        let m = metrics(&[("test_car_5db_ratio", 1.4917), ("dev_cer", 0.1466)]);
        assert_eq!(
            raw(&m),
            [("dev cer".to_string(), "14.7 %".to_string()), ("test car 5db ratio".into(), "1.49×".into())]
        );
    }
}
