//! `hark train`: train the acoustic model on a synthesized corpus.
//!
//! Writes into `--out`:
//! - `run.json`: the run configuration ([`RunConfig`]: model shape,
//!   optimizer, learning rate, batch, shards, seed, training-time noise). A
//!   resumed run must ask for the same, and is told which field differs;
//! - `config.json`: the model shape alone, for whatever reads the weights
//!   (`--model RUN`, `hark average`, `hark publish`);
//! - `metrics.jsonl`: one line per step (loss, learning rate, speed) and one
//!   per epoch (dev WER);
//! - `state-<step>.bpk` + `optim-<step>.bpk` + `progress.json`: a checkpoint
//!   every `--checkpoint-every` steps and at every epoch end. progress.json is
//!   replaced last (atomically), so it always points at complete files;
//! - `best.bpk`: weights with the lowest dev WER so far;
//! - `training.svg`: loss and dev WER curves.
//!
//! A second run with the same `--out` resumes at the exact step, optimizer
//! moments included; batch order and SpecAugment masks depend only on the
//! seed and the epoch/step, so split runs take the same steps as one run.
//! Training stops early when dev WER has not improved for `--patience`
//! epochs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::config::Config;
use burn::optim::AdamWConfig;
use burn::tensor::Device;
use hark_data::Split;
use hark_data::augment::RenoiseConfig;
use hark_decode::{Lexicon, Units};
use hark_model::AcousticModelConfig;
use hark_train::{Example, Renoise, Targets, TrainConfig, TrainState, Trainer, batches, epoch_order, load_examples};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::files::write_atomic;
use crate::flags::{self, Pair};

/// `hark train`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus folder (holding manifest.jsonl) or the manifest itself.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: run.json, metrics.jsonl, checkpoints, progress.json, best.bpk. Reusing it resumes.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 256)]
    pub channels: usize,
    #[arg(long, default_value_t = 8)]
    pub blocks: usize,
    /// Width of the depthwise convolutions (odd).
    #[arg(long, default_value_t = 11)]
    pub kernel: usize,
    /// Use at most this many utterances per split (quick runs).
    #[arg(long)]
    pub max_utterances: Option<usize>,
    /// Seed for batch order, SpecAugment and --renoise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many epochs without a better dev WER.
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Save weights and optimizer state every this many steps (0: only at epoch ends).
    #[arg(long, default_value_t = 250)]
    pub checkpoint_every: usize,
    /// Peak learning rate (reached after the warm-up).
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Start from these weights (a run folder, a .bpk with its config.json, or a manifest), e.g.
    /// to fine-tune a published model. A model of the same width with fewer --blocks grows: the
    /// extra blocks start as identities.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Split each batch into this many shards trained in parallel (default: one per core).
    /// Resume a run with the value it started with.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Share (0–1) of the clean training utterances that get fresh noise as they are
    /// loaded: car (70 %), pink or white, at an SNR drawn from --renoise-snr, over
    /// speech tilted by a high shelf drawn from --renoise-shelf. 0: train on the
    /// corpus as synthesized.
    #[arg(long, default_value_t = 0.0, value_parser = flags::share)]
    pub renoise: f32,
    /// SNR range in dB for --renoise, as LOW,HIGH.
    #[arg(long, allow_hyphen_values = true, value_parser = flags::low_high,
          default_value_t = Pair::from(RenoiseConfig::default().snr_db))]
    pub renoise_snr: Pair,
    /// Spectral-tilt range in dB (high shelf at 1 kHz) for --renoise, as LOW,HIGH.
    #[arg(long, allow_hyphen_values = true, value_parser = flags::low_high,
          default_value_t = Pair::from(RenoiseConfig::default().shelf_db))]
    pub renoise_shelf: Pair,
    /// Longest silences in s put before and after the speech for --renoise, as LEAD,TRAIL
    /// (each drawn from 0): noise that starts before the voice.
    #[arg(long, value_parser = flags::lead_trail, default_value_t = Pair(0.0, 0.0))]
    pub renoise_pad: Pair,
    /// What the model writes: letters, or phones (needs --lexicon). A phone
    /// model started from a letter model (--init) keeps its convolutions and
    /// learns a new output layer.
    #[arg(long, value_enum, default_value_t = UnitsArg::Letters)]
    pub units: UnitsArg,
    /// The pronunciation lexicon (`hark lexicon`) for --units phones; copied
    /// into the run folder as lexicon.txt, which a resumed run reads.
    #[arg(long)]
    pub lexicon: Option<PathBuf>,
}

/// `--units`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UnitsArg {
    Letters,
    Phones,
}

impl From<UnitsArg> for Units {
    fn from(u: UnitsArg) -> Self {
        match u {
            UnitsArg::Letters => Units::Letters,
            UnitsArg::Phones => Units::Phones,
        }
    }
}

impl Args {
    /// What identifies the run: everything that changes the steps it takes.
    /// (`--epochs`, `--patience` and `--checkpoint-every` may change on resume.)
    pub fn run_config(&self) -> RunConfig {
        let train = TrainConfig { peak_lr: self.lr, seed: self.seed, ..TrainConfig::default() };
        let renoise = (self.renoise > 0.0).then(|| Renoise {
            config: RenoiseConfig {
                share: self.renoise,
                snr_db: self.renoise_snr.into(),
                shelf_db: self.renoise_shelf.into(),
                lead_s: self.renoise_pad.0,
                trail_s: self.renoise_pad.1,
                ..RenoiseConfig::default()
            },
            seed: self.seed,
        });
        RunConfig {
            model: AcousticModelConfig::new()
                .with_output(Units::from(self.units))
                .with_channels(self.channels)
                .with_blocks(self.blocks)
                .with_kernel(self.kernel),
            optimizer: train.optimizer.clone(),
            peak_lr: train.peak_lr,
            warmup_steps: train.warmup_steps,
            batch: self.batch,
            shards: self.shards.unwrap_or_else(flags::default_threads).max(1),
            seed: self.seed,
            max_utterances: self.max_utterances,
            renoise,
        }
    }
}

/// A training run's configuration, saved as `run.json` and compared whole
/// when the run resumes: the model and optimizer configs nested, as Burn's
/// own training examples save theirs.
#[derive(Config, Debug)]
pub struct RunConfig {
    pub model: AcousticModelConfig,
    pub optimizer: AdamWConfig,
    pub peak_lr: f64,
    pub warmup_steps: usize,
    pub batch: usize,
    /// Batch shards trained in parallel ([`TrainConfig::shards`]).
    pub shards: usize,
    pub seed: u64,
    /// `--max-utterances`: a quick run trains on another corpus.
    pub max_utterances: Option<usize>,
    /// Fresh noise under clean training utterances ([`hark_train::Renoise`]).
    pub renoise: Option<Renoise>,
}

impl RunConfig {
    fn train_config(&self) -> TrainConfig {
        TrainConfig {
            peak_lr: self.peak_lr,
            warmup_steps: self.warmup_steps,
            optimizer: self.optimizer.clone(),
            seed: self.seed,
            shards: self.shards,
            ..TrainConfig::default()
        }
    }

    /// The settings of `self` that differ from `saved`'s, each as "was
    /// trained with FIELD SAVED, not NOW" (nested fields by path: `model.channels`).
    fn differences(&self, saved: &RunConfig) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        json_differences("", &serde_json::to_value(saved)?, &serde_json::to_value(self)?, &mut out);
        Ok(out)
    }
}

fn json_differences(path: &str, saved: &serde_json::Value, now: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (saved, now) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let field = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                json_differences(&field, a.get(key).unwrap_or(&Value::Null), b.get(key).unwrap_or(&Value::Null), out);
            }
        }
        _ if saved != now => out.push(format!("was trained with {path} {saved}, not {now}")),
        _ => {}
    }
}

/// Where a run stands; `progress.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    /// Epochs finished.
    epoch: usize,
    /// Batches of the current epoch already trained on.
    batch_in_epoch: usize,
    step: usize,
    best_dev_wer: Option<f64>,
    best_epoch: Option<usize>,
    stopped_early: bool,
}

pub fn run(o: &Args) -> anyhow::Result<()> {
    let (manifest, root) = flags::corpus_manifest(&o.data);
    let utterances = hark_data::manifest::read(&manifest)?;
    let limit = o.max_utterances.unwrap_or(usize::MAX);
    let pick = |split: Split| utterances.iter().filter(|u| u.split == split).take(limit).cloned().collect::<Vec<_>>();

    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let config = o.run_config();
    let run_path = o.out.join("run.json");
    let resuming = o.out.join("progress.json").exists();
    match std::fs::read_to_string(&run_path) {
        Ok(text) => {
            let saved: RunConfig = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a run configuration of this hark", run_path.display()))?;
            let differences = config.differences(&saved)?;
            anyhow::ensure!(
                differences.is_empty(),
                "{} {}; resume with the same flags, or use another --out",
                o.out.display(),
                differences.join("; ")
            );
        }
        Err(_) if resuming => anyhow::bail!(
            "{} holds a run but no run.json (an older hark started it); use another --out",
            o.out.display()
        ),
        Err(_) => write_atomic(&run_path, config.to_string().as_bytes())?,
    }
    write_atomic(&o.out.join("config.json"), serde_json::to_string_pretty(&config.model)?.as_bytes())?;

    let targets = targets(o, &config.model)?;
    let started_loading = Instant::now();
    let (train, dropped) = load_examples(&root, &pick(Split::Train), config.renoise.as_ref(), &targets)?;
    let (dev, _) = load_examples(&root, &pick(Split::Dev), None, &targets)?;
    anyhow::ensure!(!train.is_empty(), "{} has no usable training utterances", manifest.display());
    if !dropped.is_empty() {
        eprintln!("left out {} utterances too short for their transcript", dropped.len());
    }
    let audio_s: f64 = train.iter().map(|e| e.frames as f64 / 100.0).sum();
    eprintln!(
        "training on {} utterances ({:.2} h), dev {}; features in {:.0} s",
        train.len(),
        audio_s / 3600.0,
        dev.len(),
        started_loading.elapsed().as_secs_f64()
    );

    let device = Device::flex().autodiff();
    let mut trainer = Trainer::new(config.model.clone(), config.train_config(), device.clone());
    let progress_path = o.out.join("progress.json");
    let mut progress = Progress::default();
    if let Ok(text) = std::fs::read_to_string(&progress_path) {
        progress = serde_json::from_str(&text).context("reading progress.json")?;
        let state = TrainState {
            weights: read(&o.out.join(format!("state-{}.bpk", progress.step)))?,
            optimizer: read(&o.out.join(format!("optim-{}.bpk", progress.step)))?,
            step: progress.step,
        };
        trainer.restore(&config.model, state)?;
        eprintln!(
            "resuming at epoch {} batch {} (step {})",
            progress.epoch + 1,
            progress.batch_in_epoch,
            progress.step
        );
    } else if let Some(init) = &o.init {
        trainer.model = initial_model(init, &config.model, &device)?;
    }
    if progress.stopped_early {
        eprintln!("this run stopped early at epoch {}: dev WER had stopped improving", progress.epoch);
        return Ok(());
    }

    let mut metrics = std::fs::OpenOptions::new().create(true).append(true).open(o.out.join("metrics.jsonl"))?;
    let groups = batches(&train, config.batch);
    while progress.epoch < o.epochs {
        let epoch = progress.epoch;
        let order = epoch_order(groups.len(), epoch, config.seed);
        let bar = ProgressBar::new(groups.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta} loss {prefix}")
                .expect("static template"),
        );
        bar.set_message(format!("{}/{}", epoch + 1, o.epochs));
        bar.set_position(progress.batch_in_epoch as u64);
        let started = Instant::now();
        let mut seconds = 0.0;
        let mut smoothed: Option<f32> = None;
        for (i, &g) in order.iter().enumerate().skip(progress.batch_in_epoch) {
            let batch: Vec<&Example> = groups[g].iter().map(|&i| &train[i]).collect();
            let lr = trainer.learning_rate();
            let loss = trainer.step(&batch);
            seconds += batch.iter().map(|e| e.frames as f64 / 100.0).sum::<f64>();
            let speed = seconds / started.elapsed().as_secs_f64();
            writeln!(
                metrics,
                "{}",
                serde_json::json!({ "epoch": epoch + 1, "step": trainer.step, "loss": loss, "lr": lr, "audio_s_per_s": speed })
            )?;
            if loss.is_finite() {
                smoothed = Some(smoothed.map_or(loss, |s| 0.98 * s + 0.02 * loss));
            }
            bar.set_prefix(format!("{:.3}", smoothed.unwrap_or(f32::NAN)));
            bar.inc(1);
            progress.batch_in_epoch = i + 1;
            progress.step = trainer.step;
            if o.checkpoint_every > 0 && trainer.step.is_multiple_of(o.checkpoint_every) && i + 1 < order.len() {
                checkpoint(&o.out, &trainer, &progress)?;
            }
        }
        bar.finish_and_clear();
        let dev_refs: Vec<&Example> = dev.iter().collect();
        let wer = trainer.greedy_wer(&dev_refs, config.model.units()).rate();
        let speed = seconds / started.elapsed().as_secs_f64().max(1e-9);
        writeln!(
            metrics,
            "{}",
            serde_json::json!({ "epoch": epoch + 1, "step": trainer.step, "dev_wer": wer, "audio_s_per_s": speed })
        )?;
        progress.epoch += 1;
        progress.batch_in_epoch = 0;
        let improved = progress.best_dev_wer.is_none_or(|best| wer < best);
        if improved {
            progress.best_dev_wer = Some(wer);
            progress.best_epoch = Some(progress.epoch);
            write_atomic(&o.out.join("best.bpk"), &trainer.model.to_bytes()?)?;
        }
        let since_best = progress.epoch - progress.best_epoch.unwrap_or(progress.epoch);
        progress.stopped_early = since_best >= o.patience.max(1) && progress.epoch < o.epochs;
        checkpoint(&o.out, &trainer, &progress)?;
        if let Err(e) = crate::plot::training_curves(&o.out.join("metrics.jsonl"), &o.out.join("training.svg")) {
            eprintln!("warning: could not draw training.svg: {}", crate::report::chain(&e));
        }
        eprintln!(
            "epoch {}: dev WER {:.1} %{}, {:.0} s of audio per second",
            progress.epoch,
            100.0 * wer,
            if improved { " (best so far, saved best.bpk)" } else { "" },
            speed
        );
        if progress.stopped_early {
            eprintln!("stopping early: dev WER has not improved for {since_best} epochs");
            break;
        }
    }
    Ok(())
}

/// The run's targets: letters, or phones through the run's `lexicon.txt`
/// (copied there from `--lexicon` when the run starts).
fn targets(o: &Args, model: &AcousticModelConfig) -> anyhow::Result<Targets> {
    if model.units() == Units::Letters {
        anyhow::ensure!(o.lexicon.is_none(), "--lexicon is for --units phones");
        return Ok(Targets::Letters);
    }
    let saved = o.out.join(LEXICON);
    if let Some(given) = &o.lexicon {
        let text = std::fs::read_to_string(given).with_context(|| format!("reading --lexicon {}", given.display()))?;
        match std::fs::read_to_string(&saved) {
            Ok(old) if old != text => anyhow::bail!(
                "{} was trained with another lexicon than {}; resume without --lexicon or use another --out",
                o.out.display(),
                given.display()
            ),
            Ok(_) => {}
            Err(_) => write_atomic(&saved, text.as_bytes())?,
        }
    }
    let text = std::fs::read_to_string(&saved).with_context(|| {
        format!("--units phones needs --lexicon (`hark lexicon` builds one); {} has none", saved.display())
    })?;
    let lexicon = Lexicon::parse(&text).with_context(|| saved.display().to_string())?;
    Ok(Targets::Phones(lexicon))
}

/// A phone run's lexicon, in its folder.
pub const LEXICON: &str = "lexicon.txt";

/// Weights and optimizer state for the current step, then progress.json
/// pointing at them; older state files are removed afterwards.
fn checkpoint(out: &Path, trainer: &Trainer, progress: &Progress) -> anyhow::Result<()> {
    let state = trainer.state()?;
    let keep = [format!("state-{}.bpk", state.step), format!("optim-{}.bpk", state.step)];
    write_atomic(&out.join(&keep[0]), &state.weights)?;
    write_atomic(&out.join(&keep[1]), &state.optimizer)?;
    write_atomic(&out.join("progress.json"), serde_json::to_string_pretty(progress)?.as_bytes())?;
    for entry in std::fs::read_dir(out)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.starts_with("state-") || name.starts_with("optim-")) && name.ends_with(".bpk") && !keep.contains(&name)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("progress.json points at {}, which cannot be read", path.display()))
}

/// `--init`'s weights (a run folder, a `.bpk` with its `config.json`, or a
/// manifest) as a model of shape `shape`. A model of the same width with
/// fewer blocks grows: its blocks are kept and the missing ones are appended
/// as identities, so it starts out computing exactly what it did.
fn initial_model(
    init: &Path,
    shape: &AcousticModelConfig,
    device: &Device,
) -> anyhow::Result<hark_model::AcousticModel> {
    let loaded = crate::model::load(Some(init)).with_context(|| format!("--init {}", init.display()))?;
    let from = &loaded.config;
    let same_width = (from.n_mels, from.channels, from.kernel) == (shape.n_mels, shape.channels, shape.kernel);
    if !same_width || from.blocks > shape.blocks {
        anyhow::bail!(
            "--init {} is a model of {} channels × {} blocks (kernel {}), this run trains {} × {} (kernel {}): \
             pass the same --channels and --kernel, and --blocks of at least {}",
            init.display(),
            from.channels,
            from.blocks,
            from.kernel,
            shape.channels,
            shape.blocks,
            shape.kernel,
            from.blocks
        );
    }
    let mut model = hark_model::AcousticModel::from_bytes(from, loaded.weights, device)
        .with_context(|| format!("--init {}", init.display()))?;
    if (from.units(), from.vocab) != (shape.units(), shape.vocab) {
        eprintln!(
            "a new output layer over {} {:?} symbols (the start wrote {:?})",
            shape.vocab,
            shape.units(),
            from.units()
        );
        model = model.with_head(shape.vocab);
    }
    if from.blocks < shape.blocks {
        eprintln!(
            "starting from {} and deepening it from {} to {} blocks (the new ones start as identities)",
            loaded.describe, from.blocks, shape.blocks
        );
    } else {
        eprintln!("starting from the weights in {}", loaded.describe);
    }
    Ok(model.deepened(shape.blocks))
}
