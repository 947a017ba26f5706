//! `hark lm`: build the general English language model the decoder
//! interpolates with its voice-search LM, as the prebuilt binary the browser
//! downloads (`NgramLm::to_bytes`: counts, never rebuilt from text at start).
//!
//! Two sources:
//! * by default, counts over WordNet 3.0's example sentences, train split
//!   only (`hark_data::text::english`): no free-form evaluation sentence, no
//!   test or drift-pool name is in it (hark-data's tests hold that);
//! * `--arpa FILE`: a published backoff model — `cargo xtask lm` writes the
//!   US English trigram model that PyPI's `pocketsphinx` ships (CMU's generic
//!   English LM: 72,547 words, 2.05 M bigrams, 1.67 M trigrams of newswire
//!   and broadcast text, BSD licence) as ARPA — pruned here to
//!   `--bigrams`/`--trigrams` so it fits the browser's download.

use std::path::PathBuf;

use anyhow::Context;
use hark_data::Split;
use hark_data::text::Source;
use hark_decode::NgramLm;

/// `hark lm`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the model.
    #[arg(long)]
    pub out: PathBuf,
    /// Keep bigrams and trigrams seen at least this often (the rest back off).
    #[arg(long, default_value_t = 2)]
    pub min_count: u32,
    /// Build from this ARPA backoff model instead of counting WordNet's sentences.
    #[arg(long, value_name = "FILE")]
    pub arpa: Option<PathBuf>,
    /// With --arpa: the bigrams to keep (the most informative; the rest back off).
    #[arg(long, default_value_t = 400_000)]
    pub bigrams: usize,
    /// With --arpa: the trigrams to keep.
    #[arg(long, default_value_t = 400_000)]
    pub trigrams: usize,
}

/// Reads a general LM written by `hark lm`, naming the file if it is not one.
pub fn load(path: &std::path::Path) -> anyhow::Result<NgramLm> {
    read(path).map(|(_, lm)| lm)
}

/// The general LM file's bytes (to publish them as they are) and the LM they hold.
pub fn read(path: &std::path::Path) -> anyhow::Result<(Vec<u8>, NgramLm)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the general LM {}", path.display()))?;
    let lm = NgramLm::from_bytes(&bytes).with_context(|| path.display().to_string())?;
    Ok((bytes, lm))
}

pub fn run(o: &Args) -> anyhow::Result<()> {
    let (bytes, source) = match &o.arpa {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the ARPA model {} (cargo xtask lm writes one)", path.display()))?;
            let full = NgramLm::from_arpa(&text).with_context(|| path.display().to_string())?;
            let (b, t) = full.ngrams();
            report_perplexity("the full model", &full);
            let bytes = full.pruned(o.bigrams, o.trigrams).to_bytes(0);
            (bytes, format!("{} ({b} bigrams, {t} trigrams before pruning)", path.display()))
        }
        None => {
            let sentences = hark_data::text::english(Split::Train);
            let lm = NgramLm::train(sentences.iter().map(|q| q.text.as_str()));
            let bytes = lm.to_bytes(o.min_count);
            let source = format!(
                "{} WordNet sentences, {} tokens (n-grams seen < {} times pruned)",
                sentences.len(),
                lm.tokens(),
                o.min_count
            );
            (bytes, source)
        }
    };
    // Reported on what the browser will load: the written (pruned) model.
    let lm = NgramLm::from_bytes(&bytes).context("reading back the written model")?;
    if let Some(dir) = o.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::files::write_atomic(&o.out, &bytes)?;
    report_coverage(&lm);
    report_perplexity("the written model", &lm);
    let (bigrams, trigrams) = lm.ngrams();
    eprintln!(
        "general LM from {source}: {} words, {bigrams} bigrams, {trigrams} trigrams; {} bytes -> {}",
        lm.vocabulary_size(),
        bytes.len(),
        o.out.display()
    );
    Ok(())
}

/// Perplexity of the free-form *dev* half's queries and general sentences
/// under `lm` alone (sentence ends included; words outside it at its
/// unknown-word probability). Dev only, like the coverage.
fn report_perplexity(what: &str, lm: &NgramLm) {
    let dev = hark_data::text::freeform(Split::Dev);
    let mut line = format!("perplexity of {what} on free-form dev:");
    for source in [Source::FreeformQuery, Source::FreeformGeneral] {
        let (mut log_prob, mut tokens) = (0f64, 0usize);
        for (_, q) in dev.iter().filter(|(s, _)| *s == source) {
            let words: Vec<&str> = q.text.split(' ').collect();
            for i in 0..=words.len() {
                let (u, v) = (i.checked_sub(2).map(|j| words[j]), i.checked_sub(1).map(|j| words[j]));
                log_prob += f64::from(match words.get(i) {
                    Some(w) => lm.log_prob(u, v, w),
                    None => lm.end_log_prob(u, v),
                });
                tokens += 1;
            }
        }
        line += &format!(" {} {:.0}", source.name(), (-log_prob / tokens.max(1) as f64).exp());
    }
    eprintln!("{line}");
}

/// What share of the free-form *dev* half's words the decoder can produce as
/// words (not letter by letter), with the voice-search lexicon alone and with
/// the general LM added. Dev only: test stays unseen by every choice.
fn report_coverage(general: &NgramLm) {
    let corpus = hark_data::Corpus::load();
    let own = hark_recognizer::corpus_lm(&corpus);
    let names: std::collections::HashSet<String> = hark_recognizer::catalogue(&corpus)
        .into_iter()
        .flat_map(|(_, n)| n.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let dev = hark_data::text::freeform(Split::Dev);
    let (mut words, mut own_oov, mut both_oov) = (0usize, 0usize, 0usize);
    for (_, q) in &dev {
        for w in q.text.split(' ') {
            words += 1;
            let known = own.contains(w) || names.contains(w);
            own_oov += !known as usize;
            both_oov += !(known || general.contains(w)) as usize;
        }
    }
    let pct = |n: usize| 100.0 * n as f64 / words.max(1) as f64;
    eprintln!(
        "free-form dev ({} sentences, {words} words): outside the voice-search lexicon {:.1} %, outside it and the general LM {:.1} %",
        dev.len(),
        pct(own_oov),
        pct(both_oov)
    );
}
