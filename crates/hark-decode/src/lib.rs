//! CTC decoding: from the acoustic model's per-frame character posteriors to
//! words, with confidence.
//!
//! Pure Rust with no IO, so the browser (wasm) and the `hark` CLI decode with
//! the same code. Entry points: [`Alphabet`] (the model's output symbols),
//! [`greedy`], [`BeamDecoder`] (CTC prefix beam search scored with a word
//! [`NgramLm`], a lexicon, and an entity list that biases decoding so new names
//! can be added without retraining the acoustic model).
//!
//! Input everywhere: `log_probs`, row-major `[frames, Alphabet::SIZE]`
//! log-softmax outputs.

mod alphabet;
mod backoff;
mod beam;
mod entities;
mod lm;
mod phones;

pub use alphabet::{Alphabet, UnknownChar};
pub use beam::{BeamConfig, BeamDecoder};
pub use entities::{class_sentence, class_token};
pub use lm::{LmError, NgramLm};
pub use phones::{Lexicon, LexiconError, MissingWord, Phones, Units};

/// A decoded utterance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transcript {
    pub text: String,
    pub words: Vec<Word>,
    /// Utterance confidence in `0..=1`: the geometric mean of word confidences.
    pub confidence: f32,
}

impl Transcript {
    /// The transcript of `words`: their texts joined by spaces, confidence
    /// the geometric mean of theirs (0 for no words).
    pub fn from_words(words: Vec<Word>) -> Self {
        let confidence = if words.is_empty() {
            0.0
        } else {
            (words.iter().map(|w| w.confidence.max(1e-6).ln()).sum::<f32>() / words.len() as f32).exp()
        };
        let text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
        Transcript { text, words, confidence }
    }
}

/// One decoded word.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Word {
    pub text: String,
    /// Mean posterior of the word's characters where they were emitted, `0..=1`.
    pub confidence: f32,
    /// First and last frame (10 ms at the model's input; the model's stride
    /// applies) where the word's characters were emitted.
    pub start_frame: usize,
    pub end_frame: usize,
}

/// Groups emitted characters `(symbol, frame, posterior)` into words.
fn words_from_emissions(emissions: &[(u32, usize, f32)]) -> Transcript {
    /// A word being read: text, posteriors, first and last frame.
    type Open = (String, Vec<f32>, usize, usize);
    fn close(open: Option<Open>, words: &mut Vec<Word>) {
        if let Some((text, ps, start_frame, end_frame)) = open {
            let confidence = ps.iter().sum::<f32>() / ps.len() as f32;
            words.push(Word { text, confidence, start_frame, end_frame });
        }
    }
    let mut words: Vec<Word> = Vec::new();
    let mut current: Option<Open> = None;
    for &(symbol, frame, p) in emissions {
        if symbol == Alphabet::SPACE {
            close(current.take(), &mut words);
            continue;
        }
        let entry = current.get_or_insert_with(|| (String::new(), Vec::new(), frame, frame));
        entry.0.push(Alphabet::char_of(symbol));
        entry.1.push(p);
        entry.3 = frame;
    }
    close(current, &mut words);
    Transcript::from_words(words)
}

/// Best-path symbols of `[frames, size]` log-probabilities in any units:
/// the most likely symbol per frame, repeats merged, blanks dropped.
pub fn greedy_symbols(log_probs: &[f32], size: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let mut previous = Alphabet::BLANK;
    for row in log_probs.chunks_exact(size.max(1)) {
        let best =
            row.iter().enumerate().fold((0, f32::NEG_INFINITY), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc }).0
                as u32;
        if best != Alphabet::BLANK && best != previous {
            out.push(best);
        }
        previous = best;
    }
    out
}

/// Best-path decoding: the most likely symbol per frame, repeats merged,
/// blanks dropped.
pub fn greedy(log_probs: &[f32]) -> Transcript {
    let mut emissions = Vec::new();
    let mut previous = Alphabet::BLANK;
    for (frame, row) in log_probs.chunks_exact(Alphabet::SIZE).enumerate() {
        let (best, lp) =
            row.iter().enumerate().fold((0, f32::NEG_INFINITY), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc });
        let best = best as u32;
        if best != Alphabet::BLANK && best != previous {
            emissions.push((best, frame, lp.exp()));
        }
        previous = best;
    }
    words_from_emissions(&emissions)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Alphabet;

    /// Fake posteriors that spell `text`: each character held for `hold`
    /// frames at probability `p`, blanks between, the rest spread evenly.
    pub fn posteriors(text: &str, hold: usize, p: f32) -> Vec<f32> {
        let mut frames: Vec<u32> = Vec::new();
        for c in text.chars() {
            let s = Alphabet::symbol_of(c).expect("test text uses the alphabet");
            frames.extend(std::iter::repeat_n(s, hold));
            frames.push(Alphabet::BLANK);
        }
        frames.into_iter().flat_map(|s| row(&[(s, p)])).collect()
    }

    /// One frame: the given symbols at the given probabilities, the rest of the
    /// mass spread evenly; returned as log-probabilities.
    pub fn row(peaks: &[(u32, f32)]) -> Vec<f32> {
        let rest = (1.0 - peaks.iter().map(|p| p.1).sum::<f32>()).max(1e-6) / (Alphabet::SIZE - peaks.len()) as f32;
        (0..Alphabet::SIZE as u32).map(|i| peaks.iter().find(|p| p.0 == i).map_or(rest, |p| p.1).ln()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_merges_repeats_and_drops_blanks() {
        let t = greedy(&testing::posteriors("hello world", 3, 0.9));
        assert_eq!(t.text, "hello world");
        assert_eq!(t.words.len(), 2);
        assert!((t.words[0].confidence - 0.9).abs() < 1e-4);
        assert!(t.words[0].end_frame < t.words[1].start_frame);
    }

    #[test]
    fn confidence_follows_the_posteriors() {
        let sure = greedy(&testing::posteriors("yes", 2, 0.95));
        let unsure = greedy(&testing::posteriors("yes", 2, 0.4));
        assert!(sure.confidence > 0.9 && unsure.confidence < 0.5, "{} {}", sure.confidence, unsure.confidence);
    }

    #[test]
    fn empty_and_all_blank_input_give_an_empty_transcript() {
        assert_eq!(greedy(&[]).text, "");
        let blanks: Vec<f32> = (0..10).flat_map(|_| testing::row(&[(Alphabet::BLANK, 0.99)])).collect();
        let t = greedy(&blanks);
        assert_eq!((t.text.as_str(), t.confidence), ("", 0.0));
    }
}
