//! `hark retrain --harvest DIR --replay CORPUS --out RUN`: fine-tune the
//! current weights on a harvest (`hark harvest`) plus a replay sample of the
//! original training data, so that the new kind of speech is learnt and the
//! old slices are not forgotten. It is `hark train --init MODEL` over one
//! manifest (`RUN/retrain-data.jsonl`) that mixes the two; the run folder is
//! a `hark train` run (resumable, `best.bpk` by dev WER). The candidate is
//! `RUN/candidate/`: that checkpoint interpolated with the starting model
//! (`--keep`), ready for `hark gate RUN/candidate` and `hark publish --run
//! RUN/candidate`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use hark_data::Split;
use hark_data::manifest::Utterance;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `hark harvest --out` folder (its manifest.jsonl: train and dev).
    #[arg(long)]
    pub harvest: PathBuf,
    /// The corpus the current model was trained on (its folder or
    /// manifest.jsonl): a sample of its train and dev splits is replayed.
    #[arg(long)]
    pub replay: PathBuf,
    /// Also replay the English-text release (`text` tag: WordNet
    /// sentences, free-form text); the published models so far were trained
    /// on the query templates and vocabulary releases only.
    #[arg(long)]
    pub replay_english: bool,
    /// Replayed utterances per harvested one.
    #[arg(long, default_value_t = 1.0)]
    pub replay_ratio: f64,
    /// The model to fine-tune [default: the published current model].
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// The run folder (reusing it resumes).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Peak learning rate: a fine-tune's, below a fresh run's.
    #[arg(long, default_value_t = 4e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Stop after this many epochs without a better dev WER (the dev set is
    /// mostly replay, whose WER a fine-tune hardly moves: be patient).
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of the starting model's weights in the candidate: the fine-tune
    /// is interpolated with the model it started from (weight-space
    /// ensembling), which keeps most of the drift slice's gain and gives
    /// back most of the frozen test's loss. 0 keeps the fine-tune as is.
    #[arg(long, default_value_t = 0.25)]
    pub keep: f32,
}

/// `hark train`'s own argument parser, so that every option not given here
/// keeps `hark train`'s default.
#[derive(Parser)]
struct TrainCommand {
    #[command(flatten)]
    args: crate::train::Args,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let (harvest_manifest, harvest_root) = crate::flags::corpus_manifest(&args.harvest);
    let harvested = absolute(hark_data::manifest::read(&harvest_manifest)?, &harvest_root)?;
    let count = |rows: &[Utterance], split: Split| rows.iter().filter(|u| u.split == split).count();
    let (new_train, new_dev) = (count(&harvested, Split::Train), count(&harvested, Split::Dev));
    anyhow::ensure!(
        new_train > 0 && harvested.iter().all(|u| u.split != Split::Test),
        "{} must hold training utterances and no test split (is it a `hark harvest` manifest.jsonl?)",
        harvest_manifest.display()
    );

    let (replay_manifest, replay_root) = crate::flags::corpus_manifest(&args.replay);
    let original = hark_data::manifest::read(&replay_manifest)?;
    let mut mixed = harvested;
    let mut replayed = [0usize; 2];
    for (i, (split, new)) in [(Split::Train, new_train), (Split::Dev, new_dev.max(1))].into_iter().enumerate() {
        let pool: Vec<&Utterance> = original
            .iter()
            .filter(|u| u.split == split && (args.replay_english || !u.tags.contains_key("text")))
            .collect();
        let want = ((new as f64 * args.replay_ratio).round() as usize).min(pool.len());
        let step = (pool.len() / want.max(1)).max(1);
        let sample: Vec<Utterance> = pool.into_iter().step_by(step).take(want).cloned().collect();
        replayed[i] = sample.len();
        mixed.extend(absolute(sample, &replay_root)?);
    }
    anyhow::ensure!(
        replayed[0] > 0 || args.replay_ratio == 0.0,
        "{} has no train split to replay; pass the corpus the current model was trained on",
        replay_manifest.display()
    );

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let data = args.out.join("retrain-data.jsonl");
    hark_data::manifest::write(&data, &mixed)?;
    let from = args.from.clone().unwrap_or_else(|| crate::model::default_models_dir().join("manifest.json"));
    let shape = crate::model::load(Some(&from))?.config;
    eprintln!(
        "retrain: {} from {}: {new_train} + {new_dev} harvested (train + dev), {} + {} replayed from {}",
        args.out.display(),
        from.display(),
        replayed[0],
        replayed[1],
        replay_manifest.display()
    );
    let text = |v: &dyn ToString| v.to_string();
    let train = TrainCommand::try_parse_from([
        "train".to_string(),
        "--data".into(),
        data.display().to_string(),
        "--out".into(),
        args.out.display().to_string(),
        "--init".into(),
        from.display().to_string(),
        "--epochs".into(),
        text(&args.epochs),
        "--lr".into(),
        text(&args.lr),
        "--batch".into(),
        text(&args.batch),
        "--patience".into(),
        text(&args.patience),
        "--seed".into(),
        text(&args.seed),
        "--channels".into(),
        text(&shape.channels),
        "--blocks".into(),
        text(&shape.blocks),
        "--kernel".into(),
        text(&shape.kernel),
    ])
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::train::run(&train.args)?;
    interpolate(&args.out, &from, args.keep)
}

/// `RUN/candidate/` (best.bpk + config.json): the run's best checkpoint and
/// the starting model, weighted `1 - keep` and `keep`.
fn interpolate(run: &Path, from: &Path, keep: f32) -> anyhow::Result<()> {
    anyhow::ensure!((0.0..1.0).contains(&keep), "--keep is a share in [0, 1), not {keep}");
    let device = burn::tensor::Device::flex();
    let tuned = crate::model::load(Some(run))?;
    let mut parts = vec![(hark_model::AcousticModel::from_bytes(&tuned.config, tuned.weights, &device)?, 1.0 - keep)];
    if keep > 0.0 {
        let start = crate::model::load(Some(from))?;
        parts.push((hark_model::AcousticModel::from_bytes(&start.config, start.weights, &device)?, keep));
    }
    let candidate = hark_model::AcousticModel::weighted_average(parts)?;
    let out = run.join("candidate");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    crate::files::write_atomic(&out.join("best.bpk"), &candidate.to_bytes()?)?;
    crate::files::write_atomic(&out.join("config.json"), serde_json::to_string_pretty(&tuned.config)?.as_bytes())?;
    println!(
        "candidate: {} ({:.0} % the fine-tune, {:.0} % {}); judge it with `hark gate {}`",
        out.display(),
        (1.0 - keep) * 100.0,
        keep * 100.0,
        from.display(),
        out.display()
    );
    Ok(())
}

/// `rows` with their audio paths made absolute (the merged manifest lives
/// elsewhere than either corpus).
fn absolute(mut rows: Vec<Utterance>, root: &Path) -> anyhow::Result<Vec<Utterance>> {
    let root = std::fs::canonicalize(root).with_context(|| format!("finding {}", root.display()))?;
    for u in &mut rows {
        u.audio = root.join(&u.audio).display().to_string();
    }
    Ok(rows)
}
