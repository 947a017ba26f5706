//! `hark lexicon`: the pronunciation lexicon a phone model trains and
//! decodes with (`hark_decode::Lexicon`, `WORD<TAB>PHONES` lines).
//!
//! Every word the decoder can write — the voice-search LM's vocabulary, the
//! entity catalogue's words, the general English text's words, a general
//! LM's vocabulary (`--general-lm`) — and every
//! word of a corpus's train and dev transcripts gets festival's
//! pronunciation: Debian's `festlex-cmu` (CMUdict 0.4, 105,664 words, with
//! festival's own addenda) where the word is in it, festival's CMU
//! letter-to-sound rules where it is not. One tool for both keeps one phone
//! set and one convention (CMUdict's first, most usual pronunciation).
//! Festival is already on every machine that synthesizes the corpus. Its
//! `lex.lookup` is driven through `festival --pipe` in one process: ~1,000
//! words a second.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context;
use hark_data::Split;
use hark_decode::{Lexicon, Phones};

/// `hark lexicon`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the lexicon.
    #[arg(long)]
    pub out: PathBuf,
    /// Corpora (folders holding manifest.jsonl, or manifests) whose train and
    /// dev transcripts' words are added (test transcripts are never read).
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Only the words of --data's transcripts (a quick lexicon for a small
    /// corpus; the decoder cannot write LM words it lacks).
    #[arg(long, requires = "data")]
    pub only_data: bool,
    /// A general LM (`hark lm`) whose words are added too: the decoder writes
    /// a word of a phone model only through its pronunciation.
    #[arg(long, value_name = "FILE")]
    pub general_lm: Option<PathBuf>,
}

pub fn run(o: &Args) -> anyhow::Result<()> {
    let mut words = BTreeSet::new();
    if !o.only_data {
        let corpus = hark_data::Corpus::load();
        let lm = hark_recognizer::corpus_lm(&corpus);
        words.extend(lm.vocabulary().filter(|w| !w.starts_with('<')).map(str::to_owned));
        for (_, name) in hark_recognizer::catalogue(&corpus) {
            words.extend(name.split(' ').map(str::to_owned));
        }
        for q in hark_data::text::english(Split::Train) {
            words.extend(q.text.split(' ').map(str::to_owned));
        }
    }
    if let Some(path) = &o.general_lm {
        let general = crate::lm::load(path)?;
        words.extend(general.vocabulary().map(str::to_owned));
    }
    for data in &o.data {
        let (manifest, _) = crate::flags::corpus_manifest(data);
        for u in hark_data::manifest::read(&manifest)? {
            if u.split != Split::Test {
                words.extend(u.text.split(' ').map(str::to_owned));
            }
        }
    }
    words.retain(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '\''));
    let list: Vec<&str> = words.iter().map(String::as_str).collect();
    let lexicon = pronounce(&list)?;
    if let Some(dir) = o.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::files::write_atomic(&o.out, lexicon.to_text().as_bytes())?;
    eprintln!("lexicon: {} words -> {}", lexicon.len(), o.out.display());
    Ok(())
}

/// A pronunciation for every one of `words` (normalised: `a`–`z` and
/// apostrophes), or an error naming those that got none: festival's
/// dictionary or letter-to-sound rules, and for a word with an apostrophe
/// that neither reads, the word said without it.
pub fn pronounce(words: &[&str]) -> anyhow::Result<Lexicon> {
    if let Some(odd) = words.iter().find(|w| w.is_empty() || !w.chars().all(|c| c.is_ascii_lowercase() || c == '\'')) {
        anyhow::bail!("{odd:?} is not a normalised word (a-z and apostrophes); no pronunciation can be made for it");
    }
    let mut lexicon = festival(words)?;
    // Letter-to-sound rules do not read apostrophes: a possessive or
    // contraction outside the dictionary is said as the word without it.
    let unread: Vec<&str> = words.iter().copied().filter(|w| !lexicon.contains(w) && w.contains('\'')).collect();
    let bare: Vec<String> = unread.iter().map(|w| w.replace('\'', "")).collect();
    let read = festival(&bare.iter().map(String::as_str).collect::<Vec<_>>())?;
    for (word, bare) in unread.iter().zip(&bare) {
        for p in read.pronunciations(bare) {
            lexicon.insert(word, p.clone());
        }
    }
    let missing: Vec<&str> = words.iter().copied().filter(|w| !lexicon.contains(w)).collect();
    anyhow::ensure!(
        missing.is_empty(),
        "festival gave no pronunciation for {} of {} words (first: {:?})",
        missing.len(),
        words.len(),
        &missing[..missing.len().min(12)]
    );
    Ok(lexicon)
}

/// festival's pronunciation of each of `words` (normalised: `a`–`z` and
/// apostrophes), dictionary or letter-to-sound rules; one festival process
/// per core, each with its share of the words.
pub fn festival(words: &[&str]) -> anyhow::Result<Lexicon> {
    let threads = crate::flags::default_threads().max(1);
    let chunk = words.len().div_ceil(threads).max(1);
    let parts: Vec<anyhow::Result<Lexicon>> = std::thread::scope(|scope| {
        let handles: Vec<_> = words.chunks(chunk).map(|part| scope.spawn(move || festival_one(part))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("festival thread panicked"))))
            .collect()
    });
    let mut lexicon = Lexicon::default();
    for part in parts {
        for (w, p) in part?.entries() {
            lexicon.insert(w, p.clone());
        }
    }
    Ok(lexicon)
}

fn festival_one(words: &[&str]) -> anyhow::Result<Lexicon> {
    let mut script = String::new();
    for w in words {
        script.push_str(&format!("(print (lex.lookup \"{w}\" nil))\n"));
    }
    let mut child = Command::new("festival")
        .arg("--pipe")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running festival (install Debian's festival and festlex-cmu)")?;
    let mut stdin = child.stdin.take().context("festival's stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let output = child.wait_with_output().context("reading festival's output")?;
    writer.join().map_err(|_| anyhow::anyhow!("writing to festival failed"))??;
    anyhow::ensure!(
        output.status.success(),
        "festival failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lexicon = Lexicon::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some((word, phones)) = parse_lookup(line)? {
            lexicon.insert(&word, phones);
        }
    }
    Ok(lexicon)
}

/// One `lex.lookup` result, `("coldplay" nil (((k ow l d) 1) ((p l ey) 1)))`
/// (a word festival reads as a symbol comes unquoted): the word and its
/// phones. Lines that are not lookups are skipped.
fn parse_lookup(line: &str) -> anyhow::Result<Option<(String, Vec<u32>)>> {
    let Some(rest) = line.strip_prefix('(') else { return Ok(None) };
    let word: String = rest.trim_start_matches('"').chars().take_while(|&c| c != '"' && c != ' ').collect();
    // Syllables are the innermost lists: the text after the last '(' of
    // every ')'-separated piece that has one ("(((k ow l d" → "k ow l d").
    let mut phones = Vec::new();
    for piece in rest[word.len()..].split(')') {
        let Some(at) = piece.rfind('(') else { continue };
        for name in piece[at + 1..].split_whitespace() {
            let symbol = Phones::symbol_of(name)
                .with_context(|| format!("festival gave {word:?} the phone {name:?}, not one of hark's"))?;
            phones.push(symbol);
        }
    }
    // Some dictionary entries come back as written ("NASA", "February").
    Ok((!word.is_empty() && !phones.is_empty()).then(|| (word.to_lowercase(), phones)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hark_decode::Units;

    #[test]
    fn festival_lookups_parse_into_phones() {
        let (w, p) = parse_lookup("(\"coldplay\" nil (((k ow l d) 1) ((p l ey) 1)))").unwrap().unwrap();
        assert_eq!((w.as_str(), Units::Phones.render(&p).as_str()), ("coldplay", "k ow l d p l ey"));
        let (w, p) = parse_lookup("(before nil (((b iy) 0) ((f ao r) 1)))").unwrap().unwrap();
        assert_eq!((w.as_str(), Units::Phones.render(&p).as_str()), ("before", "b iy f ao r"));
        let (w, _) = parse_lookup("(\"NASA\" n (((n ae) 1) ((s ae) 1)))").unwrap().unwrap();
        assert_eq!(w, "nasa");
        assert!(parse_lookup("festival> ").unwrap().is_none());
        assert!(parse_lookup("(\"x\" nil (((q) 1)))").is_err());
    }
}
