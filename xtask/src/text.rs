//! `cargo xtask text`: the English text hark takes from Debian packages,
//! extracted once into `crates/hark-data/corpus/` (committed, so a build never
//! needs the packages; rerunning this rewrites the same files byte for byte).
//!
//! * `freeform/general.txt` — **evaluation only**: general English sentences
//!   from the `fortunes` package (BSD; quotations, proverbs and sayings of many
//!   authors), a seeded sample of those that read as plain sentences. No
//!   training text or language model may use this package.
//! * `english/wordnet.txt` — **training text**: the example sentences of
//!   WordNet 3.0's glosses (`wordnet-base`, the WordNet licence: use, copy,
//!   modify and distribute with its notice), 40,000+ short sentences that
//!   use the dictionary's words the way people use them.
//!
//! Which sentence may go where (test names, the drift pool, the free-form
//! evaluation text) is decided by `hark-data` when it loads the files, and
//! held by its tests; this module only extracts and cleans.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::tools;

/// The fortune files whose entries are mostly plain prose (the package's
/// others are ASCII art, program code, riddles, dialogue or jargon).
const FORTUNE_FILES: &[&str] = &[
    "fortunes",
    "wisdom",
    "literature",
    "people",
    "love",
    "work",
    "platitudes",
    "education",
    "food",
    "pets",
    "science",
    "sports",
    "humorists",
    "miscellaneous",
    "kids",
    "medicine",
    "law",
    "tao",
];
const FORTUNE_DIR: &str = "/usr/share/games/fortunes";
const WORDNET_DIR: &str = "/usr/share/wordnet";
/// Debian's `wamerican`: a general sentence's lower-case words must be English.
const DICTIONARY: &str = "/usr/share/dict/american-english";
/// How many general sentences the evaluation keeps (half dev, half test).
const GENERAL_SENTENCES: usize = 1_200;
/// Words that have no place in a product's evaluation set.
const BLOCKED: &[&str] = &["god", "damn", "hell", "sex", "kill", "dead", "die", "drunk", "nigger", "whore", "shit"];

pub fn run(root: &Path) -> anyhow::Result<()> {
    tools::ensure_text_packages()?;
    let corpus = root.join("crates/hark-data/corpus");
    let dictionary = std::fs::read_to_string(DICTIONARY).with_context(|| format!("reading {DICTIONARY}"))?;
    let dictionary: BTreeSet<&str> = dictionary.lines().collect();
    let mut general = general_sentences(Path::new(FORTUNE_DIR))?;
    general.retain(|s| english_words(s, &dictionary));
    anyhow::ensure!(general.len() >= GENERAL_SENTENCES, "only {} usable sentences in {FORTUNE_DIR}", general.len());
    let mut out = String::from(
        "# General English sentences: the free-form evaluation set's second half.\n\
         # Source: Debian package `fortunes` (fortune-mod's data files; BSD licence),\n\
         # the files named in xtask/src/text.rs, split into sentences and filtered\n\
         # to plain prose of 5-16 words; a fixed sample, written by `cargo xtask text`.\n\
         # Evaluation only: no training text or language model uses this package.\n",
    );
    for s in general.iter().take(GENERAL_SENTENCES) {
        let _ = writeln!(out, "{s}");
    }
    write(&corpus.join("freeform/general.txt"), &out)?;

    let examples = wordnet_examples(Path::new(WORDNET_DIR))?;
    let mut out = String::from(
        "# Training text: the example sentences of WordNet 3.0's glosses.\n\
         # Source: Debian package `wordnet-base` (data.noun, data.verb, data.adj,\n\
         # data.adv). WordNet 3.0 Copyright 2006 by Princeton University; the\n\
         # WordNet licence allows use, copying and distribution with this notice.\n\
         # Written by `cargo xtask text`; hark-data drops any sentence holding a\n\
         # reserved name or an evaluation sentence when it loads this file.\n",
    );
    for s in &examples {
        let _ = writeln!(out, "{s}");
    }
    write(&corpus.join("english/wordnet.txt"), &out)?;
    eprintln!(
        "{} general sentences of {} usable; {} WordNet examples",
        GENERAL_SENTENCES,
        general.len(),
        examples.len()
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// FNV-1a, as `hark_data::corpus::stable_hash`: the sample never moves.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Every plain sentence of the fortune files, deduplicated, in the order of
/// their hash (the sample is the first N).
fn general_sentences(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in FORTUNE_FILES {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for entry in text.split("\n%\n") {
            // Attributions ("-- Mark Twain") are not part of the saying.
            let body: Vec<&str> = entry.lines().take_while(|l| !l.trim_start().starts_with("--")).collect();
            for sentence in sentences(&body.join(" ")) {
                if plain_prose(&sentence) && seen.insert(sentence.to_lowercase()) {
                    out.push(sentence);
                }
            }
        }
    }
    out.sort_by_key(|s| stable_hash(&s.to_lowercase()));
    Ok(out)
}

/// Words whose full stop does not end a sentence.
const ABBREVIATIONS: &[&str] = &["Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "vs", "etc", "Prof", "Mt", "Gen", "Col"];

/// Splits prose at `.`, `?` and `!` followed by a space or the end.
fn sentences(text: &str) -> Vec<String> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if !matches!(b, b'.' | b'?' | b'!') || bytes.get(i + 1).is_some_and(|&n| n != b' ') {
            continue;
        }
        // `i` is an ASCII byte, so a char boundary.
        let word = text[start..i].rsplit(' ').next().unwrap_or("");
        if b != b'.' || !ABBREVIATIONS.contains(&word) {
            out.push(text[start..=i].trim().to_owned());
            start = i + 1;
        }
    }
    out
}

/// A sentence a person could read aloud as it stands: 5-16 words of letters,
/// commas and apostrophes, not shouted, nothing blocked.
fn plain_prose(s: &str) -> bool {
    let body = s.trim_end_matches(['.', '?', '!']);
    let words: Vec<&str> = body.split_whitespace().collect();
    // Title Case Is A Headline, not a sentence.
    let capitalised =
        words.iter().skip(1).filter(|w| w.starts_with(|c: char| c.is_ascii_uppercase()) && **w != "I").count();
    (5..=16).contains(&words.len())
        && capitalised <= 2
        && body.chars().all(|c| c.is_ascii_alphabetic() || matches!(c, ' ' | ',' | '\''))
        && !body.contains(",,")
        && words.iter().all(|w| {
            let letters = w.trim_matches([',', '\'']);
            !letters.is_empty()
                && (letters == "I" || letters.chars().skip(1).all(|c| c.is_ascii_lowercase() || c == '\''))
                && !BLOCKED.contains(&letters.to_ascii_lowercase().as_str())
        })
}

/// Every lower-case word (less a final `'s`) is in the dictionary: no
/// mock German, no invented words a reader could not say.
fn english_words(sentence: &str, dictionary: &BTreeSet<&str>) -> bool {
    sentence.split(|c: char| c == ' ' || c == ',').filter(|w| !w.is_empty()).all(|w| {
        let w = w.trim_end_matches(['.', '?', '!']).trim_matches('\'');
        let w = w.strip_suffix("'s").unwrap_or(w);
        w.is_empty() || w.starts_with(|c: char| c.is_ascii_uppercase()) || dictionary.contains(w)
    })
}

/// The quoted example sentences of every WordNet gloss, deduplicated, in file
/// order (nouns, verbs, adjectives, adverbs).
fn wordnet_examples(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for pos in ["noun", "verb", "adj", "adv"] {
        let path = dir.join(format!("data.{pos}"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        // Lines starting with two spaces are the licence header.
        for line in text.lines().filter(|l| !l.starts_with("  ")) {
            let Some((_, gloss)) = line.split_once(" | ") else { continue };
            for (i, part) in gloss.split('"').enumerate() {
                let example = part.trim().trim_end_matches([',', ';']).trim();
                let words = example.split_whitespace().count();
                let clean = example.chars().all(|c| c.is_ascii_alphanumeric() || " ,.'?!;:-$%".contains(c));
                if i % 2 == 1 && (3..=20).contains(&words) && clean && seen.insert(example.to_lowercase()) {
                    out.push(example.to_owned());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_sentences_are_dictionary_english() {
        let dictionary: BTreeSet<&str> = ["the", "pig", "annoys", "time", "your", "wastes", "it", "don't"].into();
        assert!(english_words("It wastes your time, the pig's time.", &dictionary));
        assert!(english_words("Don't annoys the pig.", &dictionary), "capitalised first word");
        assert!(!english_words("It wastes das dummkopfen.", &dictionary));
    }

    #[test]
    fn splits_sentences_and_keeps_only_plain_prose() {
        let s = sentences("A meeting is an event at which the minutes are kept. Are you a turtle? Q: Why?");
        assert_eq!(s, ["A meeting is an event at which the minutes are kept.", "Are you a turtle?", "Q: Why?"]);
        assert!(plain_prose(&s[0]));
        assert!(!plain_prose(&s[1]), "too short");
        assert!(!plain_prose("He said, \"Just lie down on the floor and keep calm.\""), "quotes");
        assert!(!plain_prose("THIS IS A VERY LOUD SENTENCE INDEED."), "shouted");
        assert!(!plain_prose("There were 42 reasons to go home early."), "digits");
        assert!(!plain_prose("Wear Glasses If You Need Them Today."), "title case");
        assert_eq!(sentences("Ask Mr. Smith. Now."), ["Ask Mr. Smith.", "Now."]);
        assert!(plain_prose("I am two fools, I know, for loving, and for saying so."));
    }
}
