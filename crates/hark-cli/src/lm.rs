//! `hark lm`: build the general English language model the decoder
//! interpolates with its voice-search LM, as the prebuilt binary the browser
//! downloads (`NgramLm::to_bytes`: counts, never rebuilt from text at start).
//!
//! Text: WordNet 3.0's example sentences, train split only
//! (`hark_data::text::english`): no free-form evaluation sentence, no test
//! or drift-pool name is in it (hark-data's tests hold that).

use std::path::PathBuf;

use anyhow::Context;
use hark_data::Split;
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
    let sentences = hark_data::text::english(Split::Train);
    let lm = NgramLm::train(sentences.iter().map(|q| q.text.as_str()));
    let bytes = lm.to_bytes(o.min_count);
    if let Some(dir) = o.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::files::write_atomic(&o.out, &bytes)?;
    report_coverage(&lm);
    eprintln!(
        "general LM: {} sentences, {} tokens, {} words; {} bytes (n-grams seen < {} times pruned) -> {}",
        sentences.len(),
        lm.tokens(),
        lm.vocabulary_size(),
        bytes.len(),
        o.min_count,
        o.out.display()
    );
    Ok(())
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
