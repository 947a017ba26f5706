//! The promotion gate: may a candidate model replace the current one?
//!
//! Both models are scored on the same two sets: the **frozen test split**
//! (the template test split every published model is measured on, so
//! figures stay comparable across releases) and the **drift slice**
//! (held-out utterances of the kind monitoring flagged, in voices training
//! never used). The candidate is promoted only when it is better on the
//! drift slice and no more than [`MAX_FROZEN_REGRESSION`] worse on the
//! frozen test: a fix for the new world that breaks the old one does not
//! ship. [`decide`] says which, and why, in words a release note can quote.

use serde::Serialize;

use crate::ErrorCounts;

/// How much worse (absolute WER) the candidate may be on the frozen test
/// split: 0.5 WER points.
pub const MAX_FROZEN_REGRESSION: f64 = 0.005;

/// One evaluation set, scored with both models on the same utterances.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    /// What the set is ("frozen test split", "drift slice").
    pub name: String,
    pub utterances: u64,
    pub current: ErrorCounts,
    pub candidate: ErrorCounts,
}

impl Scores {
    pub fn new(name: &str) -> Self {
        Self { name: name.to_owned(), ..Self::default() }
    }

    /// Adds one utterance: its reference and what each model heard.
    pub fn add(&mut self, reference: &str, current: &str, candidate: &str) {
        self.utterances += 1;
        self.current += ErrorCounts::words(reference, current);
        self.candidate += ErrorCounts::words(reference, candidate);
    }

    /// Candidate WER minus current WER (negative: the candidate is better).
    pub fn change(&self) -> f64 {
        self.candidate.rate() - self.current.rate()
    }

    fn line(&self) -> String {
        format!(
            "{}: WER {:.2} % → {:.2} % ({:+.2} points, {} utterances)",
            self.name,
            100.0 * self.current.rate(),
            100.0 * self.candidate.rate(),
            100.0 * self.change(),
            self.utterances
        )
    }
}

/// The gate's verdict and its reasons.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub promote: bool,
    /// One line per rule, each saying whether it held and by how much.
    pub reasons: Vec<String>,
    pub frozen: Scores,
    pub drift: Scores,
    pub max_frozen_regression: f64,
}

/// A set with nothing in it: the gate cannot judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {0} has no utterances with words to score; the gate cannot judge without it")]
pub struct EmptySet(pub String);

/// Applies the two rules.
pub fn decide(frozen: Scores, drift: Scores) -> Result<Decision, EmptySet> {
    for set in [&frozen, &drift] {
        if set.utterances == 0 || set.current.reference == 0 {
            return Err(EmptySet(set.name.clone()));
        }
    }
    let drift_better = drift.candidate.errors() < drift.current.errors();
    let frozen_ok = frozen.change() <= MAX_FROZEN_REGRESSION + 1e-12;
    let reasons = vec![
        format!(
            "{} — {}",
            drift.line(),
            if drift_better { "improved (required)" } else { "NOT improved: the candidate must do better here" }
        ),
        format!(
            "{} — {}",
            frozen.line(),
            if frozen_ok {
                format!("within the {:.1}-point allowance", 100.0 * MAX_FROZEN_REGRESSION)
            } else {
                format!("regressed by more than the {:.1}-point allowance", 100.0 * MAX_FROZEN_REGRESSION)
            }
        ),
    ];
    Ok(Decision {
        promote: drift_better && frozen_ok,
        reasons,
        frozen,
        drift,
        max_frozen_regression: MAX_FROZEN_REGRESSION,
    })
}

impl Decision {
    /// A short report: the verdict, then the reasons.
    pub fn text(&self) -> String {
        let verdict =
            if self.promote { "PROMOTE: the candidate may be published" } else { "REJECT: keep the current model" };
        let mut out = format!("{verdict}\n");
        for r in &self.reasons {
            out.push_str("  ");
            out.push_str(r);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set of `n` ten-word utterances where the current model gets
    /// `current` words wrong in total and the candidate `candidate`.
    fn set(name: &str, n: u64, current: u64, candidate: u64) -> Scores {
        let words = |wrong: u64| ErrorCounts { substitutions: wrong, reference: 10 * n, ..ErrorCounts::default() };
        Scores { name: name.into(), utterances: n, current: words(current), candidate: words(candidate) }
    }

    #[test]
    fn a_better_drift_slice_at_no_cost_is_promoted() {
        let d = decide(set("frozen test split", 100, 90, 90), set("drift slice", 50, 200, 60)).unwrap();
        assert!(d.promote, "{}", d.text());
        assert!(d.text().starts_with("PROMOTE"));
        assert!(d.reasons[0].contains("40.00 % → 12.00 %"), "{}", d.reasons[0]);
    }

    #[test]
    fn the_frozen_allowance_is_half_a_point_inclusive() {
        // 1,000 words: 5 more errors is exactly 0.5 points (allowed), 6 is not.
        let ok = decide(set("frozen test split", 100, 90, 95), set("drift slice", 50, 200, 60)).unwrap();
        assert!(ok.promote, "{}", ok.text());
        let worse = decide(set("frozen test split", 100, 90, 96), set("drift slice", 50, 200, 60)).unwrap();
        assert!(!worse.promote);
        assert!(worse.reasons[1].contains("regressed by more than the 0.5-point allowance"), "{}", worse.text());
    }

    #[test]
    fn no_drift_improvement_is_rejected_even_when_the_rest_is_better() {
        let d = decide(set("frozen test split", 100, 90, 50), set("drift slice", 50, 200, 200)).unwrap();
        assert!(!d.promote);
        assert!(d.text().starts_with("REJECT"));
        assert!(d.reasons[0].contains("NOT improved"), "{}", d.text());
    }

    #[test]
    fn an_empty_set_cannot_be_judged() {
        let err = decide(set("frozen test split", 100, 1, 1), Scores::new("drift slice")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the drift slice has no utterances with words to score; the gate cannot judge without it"
        );
    }

    #[test]
    fn scores_add_utterances_word_by_word() {
        let mut s = Scores::new("drift slice");
        s.add("play jazz by miles davis", "play jazz by miles davies", "play jazz by miles davis");
        assert_eq!((s.utterances, s.current.errors(), s.candidate.errors(), s.current.reference), (1, 1, 0, 5));
        assert!((s.change() + 0.2).abs() < 1e-12);
    }
}
