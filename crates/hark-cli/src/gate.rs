//! `hark gate CANDIDATE`: may the candidate replace the current model? Both
//! are run through the shipped recognition pipeline on the frozen test split
//! and on the drift slice; `hark_eval::gate` applies the rules. Writes
//! `gate.json` and `gate.txt` (the verdict and why) and exits 0 (promote),
//! 1 (reject) or 2 (could not judge) — so a retraining script can
//! `hark gate … && hark publish …`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;
use hark_data::Split;
use hark_data::manifest::Utterance;
use hark_decode::BeamConfig;
use hark_eval::gate::{Scores, decide};
use hark_recognizer::Recognizer;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The candidate model (a run folder, weights, or a manifest).
    pub candidate: PathBuf,
    /// Names (a `CLASS<TAB>NAME` file) the candidate adds to the decoder:
    /// with the current model's weights as CANDIDATE, a decoder-only update.
    #[arg(long)]
    pub candidate_names: Option<PathBuf>,
    /// The model it would replace [default: the published current model].
    #[arg(long)]
    pub current: Option<PathBuf>,
    /// The corpus whose template test split is the frozen test (its folder or manifest.jsonl).
    #[arg(long)]
    pub test: PathBuf,
    /// The drift slice: a manifest.jsonl of held-out utterances of the kind
    /// monitoring flagged (every utterance in it is scored).
    #[arg(long)]
    pub drift: PathBuf,
    /// At most this many utterances of each set (evenly spread) [default: all].
    #[arg(long)]
    pub max_utterances: Option<usize>,
    /// Where to write gate.json and gate.txt.
    #[arg(long, default_value = "target/gate")]
    pub out: PathBuf,
}

/// Exit status: 0 promote, 1 reject, 2 could not judge (message printed).
pub fn run(args: &Args) -> i32 {
    match judge(args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            crate::report::eprint(&e);
            2
        }
    }
}

fn judge(args: &Args) -> anyhow::Result<bool> {
    let limit = args.max_utterances.unwrap_or(usize::MAX);
    let (test_manifest, test_root) = crate::flags::corpus_manifest(&args.test);
    let test: Vec<Utterance> = hark_data::manifest::read(&test_manifest)?
        .into_iter()
        .filter(|u| u.split == Split::Test && !hark_data::text::is_freeform(u))
        .collect();
    let (drift_manifest, drift_root) = crate::flags::corpus_manifest(&args.drift);
    let drift = hark_data::manifest::read(&drift_manifest)?;
    anyhow::ensure!(!test.is_empty(), "{} has no template test split to hold the models to", test_manifest.display());
    anyhow::ensure!(
        !drift.is_empty(),
        "{} lists no utterances: there is no drift slice to judge on",
        drift_manifest.display()
    );

    let extra = args.candidate_names.as_deref().map(crate::model::read_names).transpose()?;
    let candidate = recognizer(Some(&args.candidate), extra)?;
    let current = recognizer(args.current.as_deref(), None)?;
    eprintln!("gate: candidate {} against current {}", candidate.1, current.1);
    let (mut candidate, mut current) = (candidate.0, current.0);
    let frozen = score("frozen test split", &spread(&test, limit), &test_root, &mut current, &mut candidate)?;
    let drift = score("drift slice", &spread(&drift, limit), &drift_root, &mut current, &mut candidate)?;
    let decision = decide(frozen, drift)?;

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    crate::files::write_atomic(&args.out.join("gate.json"), serde_json::to_string_pretty(&decision)?.as_bytes())?;
    crate::files::write_atomic(&args.out.join("gate.txt"), decision.text().as_bytes())?;
    print!("{}", decision.text());
    Ok(decision.promote)
}

/// At most `limit` utterances, evenly spread (sets are ordered by query).
fn spread(all: &[Utterance], limit: usize) -> Vec<&Utterance> {
    let step = (all.len() / limit.max(1)).max(1);
    all.iter().step_by(step).take(limit).collect()
}

fn recognizer(model: Option<&Path>, extra: Option<Vec<(String, String)>>) -> anyhow::Result<(Recognizer, String)> {
    let mut loaded = crate::model::load(model)?;
    let mut describe = loaded.describe.clone();
    if let Some(extra) = extra {
        describe += &format!(" + {} names", extra.len());
        loaded.add_names(extra)?;
    }
    let decoder = loaded.decoder(BeamConfig::default())?;
    Ok((Recognizer::new(&loaded.config, loaded.weights, Device::flex(), decoder)?, describe))
}

fn score(
    name: &str,
    utterances: &[&Utterance],
    root: &Path,
    current: &mut Recognizer,
    candidate: &mut Recognizer,
) -> anyhow::Result<Scores> {
    let bar = ProgressBar::new(utterances.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!("{name} [{{bar:40}}] {{pos}}/{{len}}")).expect("static template"),
    );
    let mut scores = Scores::new(name);
    for u in utterances {
        let path = root.join(&u.audio);
        let audio = hark_dsp::wav::read(&path).with_context(|| format!("{name}: utterance {}", u.id))?;
        let samples = hark_dsp::resample(&audio.samples, audio.sample_rate, hark_dsp::SAMPLE_RATE)?;
        let heard = |r: &mut Recognizer| -> anyhow::Result<String> {
            let (features, frames) = r.features(&samples);
            let log_probs = r.log_probs(&features, frames)?;
            Ok(r.decode(&log_probs).text)
        };
        scores.add(&u.text, &heard(current)?, &heard(candidate)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(scores)
}
