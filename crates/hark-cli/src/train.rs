//! `hark train`: train the acoustic model on a synthesized corpus.
//!
//! Writes into `--out`:
//! - `config.json`: the model shape (a resumed run must ask for the same);
//! - `renoise.json`: the training-time noise, if any (likewise);
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
use burn::tensor::Device;
use hark_data::Split;
use hark_model::AcousticModelConfig;
use hark_train::{Example, TrainConfig, TrainState, Trainer, batches, epoch_order, load_examples};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

pub struct Options {
    pub data: PathBuf,
    pub out: PathBuf,
    pub epochs: usize,
    pub batch: usize,
    pub model: AcousticModelConfig,
    pub max_utterances: Option<usize>,
    pub seed: u64,
    pub patience: usize,
    pub checkpoint_every: usize,
    pub peak_lr: f64,
    /// Start from these weights (same shape) instead of random ones.
    pub init: Option<PathBuf>,
    /// Batch shards trained in parallel ([`TrainConfig::shards`]).
    pub shards: usize,
    /// Fresh noise under clean training utterances ([`hark_train::Renoise`]).
    pub renoise: Option<hark_train::Renoise>,
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

pub fn run(o: &Options) -> anyhow::Result<()> {
    let (manifest, root) = crate::corpus_manifest(&o.data);
    let utterances = hark_data::manifest::read(&manifest)?;
    let limit = o.max_utterances.unwrap_or(usize::MAX);
    let pick = |split: Split| utterances.iter().filter(|u| u.split == split).take(limit).cloned().collect::<Vec<_>>();

    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let config_path = o.out.join("config.json");
    let shape = serde_json::to_value(&o.model)?;
    match std::fs::read_to_string(&config_path) {
        Ok(text) => {
            let saved: serde_json::Value = serde_json::from_str(&text).context("reading config.json")?;
            anyhow::ensure!(
                saved == shape,
                "{} was trained with model {saved}, not {shape}; use another --out or the same --channels/--blocks/--kernel",
                o.out.display()
            );
        }
        Err(_) => write_atomic(&config_path, serde_json::to_string_pretty(&shape)?.as_bytes())?,
    }

    let renoise_path = o.out.join("renoise.json");
    let saved_renoise: Option<hark_train::Renoise> = match std::fs::read_to_string(&renoise_path) {
        Ok(text) => Some(serde_json::from_str(&text).context("reading renoise.json")?),
        Err(_) => None,
    };
    let resuming = o.out.join("progress.json").exists();
    anyhow::ensure!(
        !resuming || saved_renoise == o.renoise,
        "{} was trained with renoise {}, not {}; resume with the same --renoise flags and --seed",
        o.out.display(),
        serde_json::to_string(&saved_renoise)?,
        serde_json::to_string(&o.renoise)?
    );
    match &o.renoise {
        Some(r) => write_atomic(&renoise_path, serde_json::to_string_pretty(r)?.as_bytes())?,
        // A fresh run without noise: no stale file from an earlier one.
        None if !resuming => {
            let _ = std::fs::remove_file(&renoise_path);
        }
        None => {}
    }

    let started_loading = Instant::now();
    let (train, dropped) = load_examples(&root, &pick(Split::Train), o.renoise.as_ref())?;
    let (dev, _) = load_examples(&root, &pick(Split::Dev), None)?;
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
    let train_config = TrainConfig { peak_lr: o.peak_lr, seed: o.seed, shards: o.shards, ..TrainConfig::default() };
    let mut trainer = Trainer::new(o.model.clone(), train_config, device.clone());
    let progress_path = o.out.join("progress.json");
    let mut progress = Progress::default();
    if let Ok(text) = std::fs::read_to_string(&progress_path) {
        progress = serde_json::from_str(&text).context("reading progress.json")?;
        let state = TrainState {
            weights: read(&o.out.join(format!("state-{}.bpk", progress.step)))?,
            optimizer: read(&o.out.join(format!("optim-{}.bpk", progress.step)))?,
            step: progress.step,
        };
        trainer.restore(&o.model, state)?;
        eprintln!(
            "resuming at epoch {} batch {} (step {})",
            progress.epoch + 1,
            progress.batch_in_epoch,
            progress.step
        );
    } else if let Some(init) = &o.init {
        trainer.model = initial_model(init, &o.model, &device)?;
    }
    if progress.stopped_early {
        eprintln!("this run stopped early at epoch {}: dev WER had stopped improving", progress.epoch);
        return Ok(());
    }

    let mut metrics = std::fs::OpenOptions::new().create(true).append(true).open(o.out.join("metrics.jsonl"))?;
    let groups = batches(&train, o.batch);
    while progress.epoch < o.epochs {
        let epoch = progress.epoch;
        let order = epoch_order(groups.len(), epoch, o.seed);
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
        let wer = trainer.greedy_wer(&dev_refs).rate();
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
            eprintln!("warning: could not draw training.svg: {e:#}");
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

pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
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
    let same_width = (from.n_mels, from.vocab, from.channels, from.kernel)
        == (shape.n_mels, shape.vocab, shape.channels, shape.kernel);
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
    let model = hark_model::AcousticModel::from_bytes(from, loaded.weights, device)
        .with_context(|| format!("--init {}", init.display()))?;
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
