//! Error analysis for hark: how wrong is the recogniser, where, and how.
//!
//! Entry points: [`align`] (Levenshtein alignment with the operations kept),
//! [`ErrorCounts`] (substitutions, deletions, insertions → WER/CER, summed
//! over utterances), [`SliceTable`] (error rates per slice such as engine,
//! noise type or SNR band) and [`Confusions`] (most frequent word confusions).
//! The `hark eval` report is built from these; [`gate`] decides whether a
//! candidate model may replace the current one.

pub mod gate;
pub mod report;
pub mod svg;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One step of an alignment of a reference against a hypothesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Edit<T> {
    Match(T),
    Substitute { reference: T, hypothesis: T },
    Delete(T),
    Insert(T),
}

/// Minimum-edit alignment (unit costs; ties prefer substitution, then
/// deletion) of `reference` against `hypothesis`.
pub fn align<T: PartialEq + Clone>(reference: &[T], hypothesis: &[T]) -> Vec<Edit<T>> {
    let (n, m) = (reference.len(), hypothesis.len());
    // cost[i][j]: edits to turn reference[..i] into hypothesis[..j].
    let mut cost = vec![vec![0u32; m + 1]; n + 1];
    for (i, row) in cost.iter_mut().enumerate() {
        row[0] = i as u32;
    }
    for j in 0..=m {
        cost[0][j] = j as u32;
    }
    for i in 1..=n {
        for j in 1..=m {
            let diagonal = cost[i - 1][j - 1] + u32::from(reference[i - 1] != hypothesis[j - 1]);
            cost[i][j] = diagonal.min(cost[i - 1][j] + 1).min(cost[i][j - 1] + 1);
        }
    }
    let mut edits = Vec::with_capacity(n.max(m));
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        if i > 0 && j > 0 && cost[i][j] == cost[i - 1][j - 1] + u32::from(reference[i - 1] != hypothesis[j - 1]) {
            edits.push(if reference[i - 1] == hypothesis[j - 1] {
                Edit::Match(reference[i - 1].clone())
            } else {
                Edit::Substitute { reference: reference[i - 1].clone(), hypothesis: hypothesis[j - 1].clone() }
            });
            i -= 1;
            j -= 1;
        } else if i > 0 && cost[i][j] == cost[i - 1][j] + 1 {
            edits.push(Edit::Delete(reference[i - 1].clone()));
            i -= 1;
        } else {
            edits.push(Edit::Insert(hypothesis[j - 1].clone()));
            j -= 1;
        }
    }
    edits.reverse();
    edits
}

/// Alignment counts, additive over utterances (read back from the reports
/// that write them, e.g. `hark gate`'s gate.json).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    pub substitutions: u64,
    pub deletions: u64,
    pub insertions: u64,
    /// Reference length (words or characters).
    pub reference: u64,
}

impl ErrorCounts {
    pub fn of<T: PartialEq + Clone>(reference: &[T], hypothesis: &[T]) -> Self {
        let mut c = ErrorCounts { reference: reference.len() as u64, ..Default::default() };
        for e in align(reference, hypothesis) {
            match e {
                Edit::Match(_) => {}
                Edit::Substitute { .. } => c.substitutions += 1,
                Edit::Delete(_) => c.deletions += 1,
                Edit::Insert(_) => c.insertions += 1,
            }
        }
        c
    }

    /// Word counts of two texts.
    pub fn words(reference: &str, hypothesis: &str) -> Self {
        let split = |t: &str| t.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        Self::of(&split(reference), &split(hypothesis))
    }

    /// Character counts (spaces included, runs of whitespace as one).
    pub fn chars(reference: &str, hypothesis: &str) -> Self {
        let chars = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect::<Vec<_>>();
        Self::of(&chars(reference), &chars(hypothesis))
    }

    pub fn errors(&self) -> u64 {
        self.substitutions + self.deletions + self.insertions
    }

    /// Errors per reference unit (WER for words, CER for characters). An
    /// empty reference gives 0 if nothing was inserted, else 1 per insertion.
    pub fn rate(&self) -> f64 {
        if self.reference == 0 { self.insertions as f64 } else { self.errors() as f64 / self.reference as f64 }
    }
}

impl std::ops::AddAssign for ErrorCounts {
    fn add_assign(&mut self, o: Self) {
        self.substitutions += o.substitutions;
        self.deletions += o.deletions;
        self.insertions += o.insertions;
        self.reference += o.reference;
    }
}

/// Word and character error counts per slice value ("noise=car", ...).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SliceTable {
    /// slice key → value → (utterances, word counts, char counts)
    pub slices: BTreeMap<String, BTreeMap<String, SliceRow>>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SliceRow {
    pub utterances: u64,
    pub words: ErrorCounts,
    pub chars: ErrorCounts,
}

impl SliceTable {
    /// Adds one utterance to every slice it belongs to.
    pub fn add<'a>(&mut self, slices: impl IntoIterator<Item = (&'a str, &'a str)>, reference: &str, hypothesis: &str) {
        let (w, c) = (ErrorCounts::words(reference, hypothesis), ErrorCounts::chars(reference, hypothesis));
        for (key, value) in slices {
            let row = self.slices.entry(key.to_owned()).or_default().entry(value.to_owned()).or_default();
            row.utterances += 1;
            row.words += w;
            row.chars += c;
        }
    }
}

/// Word confusion counts: (reference word, hypothesis word) → count, with
/// `""` standing for a deleted or inserted word.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Confusions {
    pub counts: BTreeMap<(String, String), u64>,
}

impl Confusions {
    pub fn add(&mut self, reference: &str, hypothesis: &str) {
        let split = |t: &str| t.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        for e in align(&split(reference), &split(hypothesis)) {
            let pair = match e {
                Edit::Match(_) => continue,
                Edit::Substitute { reference, hypothesis } => (reference, hypothesis),
                Edit::Delete(r) => (r, String::new()),
                Edit::Insert(h) => (String::new(), h),
            };
            *self.counts.entry(pair).or_default() += 1;
        }
    }

    /// The `n` most frequent confusions, most frequent first.
    pub fn top(&self, n: usize) -> Vec<(&str, &str, u64)> {
        let mut all: Vec<_> = self.counts.iter().map(|((r, h), c)| (r.as_str(), h.as_str(), *c)).collect();
        all.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (a.0, a.1).cmp(&(b.0, b.1))));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_substitutions_deletions_and_insertions() {
        let c = ErrorCounts::words("weather in lisbon tomorrow", "whether in lisbon");
        assert_eq!((c.substitutions, c.deletions, c.insertions, c.reference), (1, 1, 0, 4));
        assert!((c.rate() - 0.5).abs() < 1e-12);
        let c = ErrorCounts::words("time in oslo", "what time is it in oslo");
        assert_eq!((c.substitutions, c.deletions, c.insertions), (0, 0, 3));
        assert!((c.rate() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn alignment_keeps_the_words_in_order() {
        let r: Vec<&str> = "a b c d".split(' ').collect();
        let h: Vec<&str> = "a x c d e".split(' ').collect();
        assert_eq!(
            align(&r, &h),
            vec![
                Edit::Match("a"),
                Edit::Substitute { reference: "b", hypothesis: "x" },
                Edit::Match("c"),
                Edit::Match("d"),
                Edit::Insert("e")
            ]
        );
    }

    #[test]
    fn character_rate_and_empty_cases() {
        let c = ErrorCounts::chars("paris", "parish");
        assert_eq!((c.insertions, c.reference), (1, 5));
        assert_eq!(ErrorCounts::words("", "").rate(), 0.0);
        assert_eq!(ErrorCounts::words("", "hello there").rate(), 2.0);
        assert_eq!(ErrorCounts::words("hello", "").deletions, 1);
    }

    #[test]
    fn slices_and_confusions_accumulate() {
        let mut table = SliceTable::default();
        table.add([("noise", "car"), ("engine", "flite")], "weather in lisbon", "whether in lisbon");
        table.add([("noise", "clean"), ("engine", "flite")], "weather in lisbon", "weather in lisbon");
        let flite = table.slices["engine"]["flite"];
        assert_eq!((flite.utterances, flite.words.errors(), flite.words.reference), (2, 1, 6));
        assert_eq!(table.slices["noise"]["clean"].words.errors(), 0);

        let mut conf = Confusions::default();
        conf.add("weather in lisbon", "whether in lisbon");
        conf.add("weather in paris", "whether in paris");
        conf.add("time in oslo", "time oslo");
        assert_eq!(conf.top(1), vec![("weather", "whether", 2)]);
        assert_eq!(conf.top(5), vec![("weather", "whether", 2), ("in", "", 1)]);
    }
}
