//! `hark train`: train the acoustic model on a synthesized corpus.
//!
//! Writes into `--out`: `metrics.jsonl` (one line per step, one per epoch
//! with dev WER), `latest.bpk` (weights after the last finished epoch) and
//! `progress.json` (epoch and step reached). A second run with the same
//! `--out` resumes from `latest.bpk` at the next epoch; optimizer moments
//! restart (exact optimizer resume is still to do).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::Device;
use hark_data::Split;
use hark_model::{AcousticModel, AcousticModelConfig};
use hark_train::{Example, TrainConfig, Trainer, batches, load_examples};
use indicatif::{ProgressBar, ProgressStyle};

pub struct Options {
    pub data: PathBuf,
    pub out: PathBuf,
    pub epochs: usize,
    pub batch: usize,
    pub channels: usize,
    pub blocks: usize,
    pub max_utterances: Option<usize>,
}

pub fn run(o: &Options) -> anyhow::Result<()> {
    let manifest = if o.data.is_dir() { o.data.join("manifest.jsonl") } else { o.data.clone() };
    let root = manifest.parent().map(PathBuf::from).unwrap_or_default();
    let utterances = hark_data::manifest::read(&manifest)?;
    let limit = o.max_utterances.unwrap_or(usize::MAX);
    let pick = |split: Split| utterances.iter().filter(|u| u.split == split).take(limit).cloned().collect::<Vec<_>>();
    let (train, dropped) = load_examples(&root, &pick(Split::Train))?;
    let (dev, _) = load_examples(&root, &pick(Split::Dev))?;
    anyhow::ensure!(!train.is_empty(), "{} has no usable training utterances", manifest.display());
    if !dropped.is_empty() {
        eprintln!("left out {} utterances too short for their transcript", dropped.len());
    }
    let audio_s: f64 = train.iter().map(|e| e.frames as f64 / 100.0).sum();
    eprintln!("training on {} utterances ({:.2} h), dev {}", train.len(), audio_s / 3600.0, dev.len());

    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let config = AcousticModelConfig::new().with_channels(o.channels).with_blocks(o.blocks);
    let device = Device::flex().autodiff();
    let mut trainer = Trainer::new(config.clone(), TrainConfig::default(), device.clone());
    let progress_path = o.out.join("progress.json");
    let mut first_epoch = 0;
    if let Ok(text) = std::fs::read_to_string(&progress_path) {
        let p: serde_json::Value = serde_json::from_str(&text).context("reading progress.json")?;
        let bytes = std::fs::read(o.out.join("latest.bpk")).context("progress.json without latest.bpk")?;
        trainer.model = AcousticModel::from_bytes(&config, bytes, &device)?;
        first_epoch = p["epoch"].as_u64().unwrap_or(0) as usize;
        trainer.step = p["step"].as_u64().unwrap_or(0) as usize;
        eprintln!("resuming after epoch {first_epoch} (step {})", trainer.step);
    }
    let mut metrics = std::fs::OpenOptions::new().create(true).append(true).open(o.out.join("metrics.jsonl"))?;
    let groups = batches(&train, o.batch);
    for epoch in first_epoch..o.epochs {
        let bar = ProgressBar::new(groups.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {msg} [{bar:40}] {pos}/{len} eta {eta}").expect("static template"),
        );
        bar.set_message(format!("{}", epoch + 1));
        let started = Instant::now();
        let mut seconds = 0.0;
        for group in &groups {
            let batch: Vec<&Example> = group.iter().map(|&i| &train[i]).collect();
            let lr = trainer.learning_rate();
            let loss = trainer.step(&batch);
            seconds += batch.iter().map(|e| e.frames as f64 / 100.0).sum::<f64>();
            let line = serde_json::json!({ "epoch": epoch + 1, "step": trainer.step, "loss": loss, "lr": lr,
                "audio_s_per_s": seconds / started.elapsed().as_secs_f64() });
            writeln!(metrics, "{line}")?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let dev_refs: Vec<&Example> = dev.iter().collect();
        let wer = trainer.greedy_wer(&dev_refs);
        let speed = seconds / started.elapsed().as_secs_f64();
        writeln!(
            metrics,
            "{}",
            serde_json::json!({ "epoch": epoch + 1, "dev_wer": wer.rate(), "audio_s_per_s": speed })
        )?;
        // Checkpoint: weights first, then the progress that points at them.
        let tmp = o.out.join("latest.bpk.partial");
        std::fs::write(&tmp, trainer.model.to_bytes()?)?;
        std::fs::rename(&tmp, o.out.join("latest.bpk"))?;
        std::fs::write(&progress_path, serde_json::json!({ "epoch": epoch + 1, "step": trainer.step }).to_string())?;
        eprintln!("epoch {}: dev WER {:.1} %, {:.0} s of audio per second", epoch + 1, 100.0 * wer.rate(), speed);
    }
    Ok(())
}
