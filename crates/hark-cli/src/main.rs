//! `hark`: the command line of the hark cycle.
//!
//! `hark data synth` (speak the query corpus with Debian's synthesizers,
//! augment, write a JSONL manifest), `hark data stats`, `hark train` (Burn,
//! CPU), `hark eval` (error analysis report) and `hark transcribe` (WAV →
//! JSON with the pipeline the browser uses).

mod average;
mod degrade;
mod eval;
mod lm;
mod model;
mod plot;
mod publish;
mod synth;
mod train;
mod transcribe;
mod tune;
mod voices;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hark_data::augment::RenoiseConfig;

#[derive(Debug, Parser)]
#[command(name = "hark", version, about = "hark: private in-browser voice search, and the ML cycle behind it")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train the acoustic model on a synthesized corpus (CPU, Burn flex).
    Train {
        /// Corpus folder (holding manifest.jsonl) or the manifest itself.
        #[arg(long)]
        data: PathBuf,
        /// Output folder: metrics.jsonl, latest.bpk, progress.json. Reusing it resumes.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 256)]
        channels: usize,
        #[arg(long, default_value_t = 8)]
        blocks: usize,
        /// Width of the depthwise convolutions (odd).
        #[arg(long, default_value_t = 11)]
        kernel: usize,
        /// Use at most this many utterances per split (quick runs).
        #[arg(long)]
        max_utterances: Option<usize>,
        /// Seed for batch order and SpecAugment.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many epochs without a better dev WER.
        #[arg(long, default_value_t = 3)]
        patience: usize,
        /// Save weights and optimizer state every this many steps (0: only at epoch ends).
        #[arg(long, default_value_t = 250)]
        checkpoint_every: usize,
        /// Peak learning rate (reached after the warm-up).
        #[arg(long, default_value_t = 3e-3)]
        lr: f64,
        /// Start from these weights (a run folder, a .bpk with its config.json, or a manifest), e.g.
        /// to fine-tune a published model. A model of the same width with fewer --blocks grows: the
        /// extra blocks start as identities.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Split each batch into this many shards trained in parallel (default: one per core).
        /// Resume a run with the value it started with.
        #[arg(long)]
        shards: Option<usize>,
        /// Share (0–1) of the clean training utterances that get fresh noise as they are
        /// loaded: car (70 %), pink or white, at an SNR drawn from --renoise-snr, over
        /// speech tilted by a high shelf drawn from --renoise-shelf. 0: train on the
        /// corpus as synthesized.
        #[arg(long, default_value_t = 0.0, value_parser = share)]
        renoise: f32,
        /// SNR range in dB for --renoise, as LOW,HIGH.
        #[arg(long, allow_hyphen_values = true, value_parser = low_high,
              default_value_t = Pair::from(RenoiseConfig::default().snr_db))]
        renoise_snr: Pair,
        /// Spectral-tilt range in dB (high shelf at 1 kHz) for --renoise, as LOW,HIGH.
        #[arg(long, allow_hyphen_values = true, value_parser = low_high,
              default_value_t = Pair::from(RenoiseConfig::default().shelf_db))]
        renoise_shelf: Pair,
        /// Longest silences in s put before and after the speech for --renoise, as LEAD,TRAIL
        /// (each drawn from 0): noise that starts before the voice.
        #[arg(long, value_parser = lead_trail, default_value_t = Pair(0.0, 0.0))]
        renoise_pad: Pair,
    },
    /// Transcribe WAV files (any rate, any length): one JSON object per file.
    Transcribe {
        /// A model: `hark train` output folder, weights file (.bpk) or manifest.json.
        /// Default: the current entry of web/models/manifest.json.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Prefixes kept by the beam search.
        #[arg(long, default_value_t = hark_decode::BeamConfig::default().beam)]
        beam: usize,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Error analysis on a corpus: report.html, summary.json, results.jsonl.
    Eval(eval::Options),
    /// Tune the decoder: run the model once over held-out utterances, then
    /// decode them with every combination of the given settings.
    Tune(tune::Options),
    /// Build the general English LM (binary) the decoder can interpolate.
    Lm(lm::Options),
    /// Average checkpoints of one run (parameter-wise mean) into a run folder.
    Average {
        /// Output folder: best.bpk and config.json.
        #[arg(long)]
        out: PathBuf,
        /// Checkpoints (run folders or .bpk files, as for `--model`), two or more.
        #[arg(required = true, num_args = 2..)]
        models: Vec<PathBuf>,
    },
    /// Publish a trained model into the static model folder (f16 weights + manifest entry).
    Publish {
        /// `hark train --out` folder.
        #[arg(long)]
        run: PathBuf,
        /// `hark eval` summary.json of this model (its metrics go into the manifest).
        #[arg(long)]
        eval: PathBuf,
        /// Version of the new model (higher than every published one).
        #[arg(long)]
        version: hark_registry::Version,
        /// Description of the training data snapshot.
        #[arg(long)]
        training_data: String,
        /// Model folder holding manifest.json.
        #[arg(long, default_value = "web/models")]
        models: PathBuf,
        /// `stable` or `beta`.
        #[arg(long, default_value = "stable")]
        channel: String,
        #[arg(long, default_value_t = 100)]
        rollout_percent: u8,
    },
    /// Data collection: synthesize and inspect the voice-search corpus.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Speak the query corpus with many synthetic voices, augment it, write manifest.jsonl.
    Synth {
        /// Size: `smoke` (seconds, for tests) or `standard` (≥ 20 h of training audio).
        #[arg(long, default_value = "smoke")]
        preset: synth::Preset,
        /// Output folder (audio/ and manifest.jsonl go here). Default: ~/.cache/hark/data/<preset>.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed for everything random: queries, voices, augmentation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Parallel synthesizer processes (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Speak only these splits, e.g. `dev,test` to evaluate a model in
        /// minutes without the hours of training audio. The recordings are
        /// the same as a full run's; the manifest lists every recording of
        /// the preset found in the folder, so a later full run (or an
        /// earlier one) keeps its entries.
        #[arg(long, value_delimiter = ',', value_parser = parse_split, default_values = ["train", "dev", "test"])]
        splits: Vec<hark_data::Split>,
    },
    /// Copy a split's clean utterances under one fixed condition (noise at an
    /// SNR, spectral tilt, leading silence): a dev stand-in for a slice that
    /// fails on test. Writes manifest-NAME.jsonl and audio/NAME/ in the corpus.
    Degrade {
        /// Corpus folder (holding manifest.jsonl) or a manifest file.
        #[arg(long)]
        data: PathBuf,
        /// Name of the copy (letters, digits, '-', '_'), e.g. dev-car5.
        #[arg(long)]
        name: String,
        /// Split to copy (`dev`: choose fixes on dev, measure them on test).
        #[arg(long, default_value = "dev", value_parser = parse_split)]
        split: hark_data::Split,
        /// Clean utterances of the split to copy, from the manifest's start.
        #[arg(long, default_value_t = 500)]
        max_utterances: usize,
        /// Background noise.
        #[arg(long, value_enum, default_value = "car")]
        noise: degrade::Noise,
        /// Speech-to-noise ratio in dB.
        #[arg(long, default_value_t = 5.0, allow_hyphen_values = true, value_parser = finite)]
        snr: f32,
        /// High shelf at 1 kHz in dB applied to the speech first (negative: darker voices).
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true, value_parser = finite)]
        shelf: f32,
        /// Silence in seconds put before the speech, with the noise running under it.
        #[arg(long, default_value_t = 0.0, value_parser = seconds)]
        lead: f32,
        /// Seed for the noise (each utterance also seeds with its id).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Hours and counts per split and tag of a manifest.
    Stats {
        /// A manifest.jsonl, or the folder holding it.
        manifest: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data { command: DataCommand::Synth { preset, out, seed, jobs, splits } } => {
            let out = out.unwrap_or_else(|| default_data_dir().join(preset.name()));
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            synth::run(&synth::Options { preset, out, seed, jobs, splits })
        }
        Command::Data { command: DataCommand::Stats { manifest } } => stats(manifest),
        Command::Data {
            command: DataCommand::Degrade { data, name, split, max_utterances, noise, snr, shelf, lead, seed },
        } => {
            let (manifest, root) = corpus_manifest(&data);
            let options = degrade::Options {
                manifest,
                root,
                name,
                split,
                max_utterances,
                noise,
                snr_db: snr,
                shelf_db: shelf,
                lead_s: lead,
                seed,
            };
            degrade::run(&options).map(|(path, n)| println!("wrote {n} utterances: {}", path.display()))
        }
        Command::Transcribe { model, beam, files } => {
            match transcribe::run(&transcribe::Options { model, files, beam }) {
                Ok(true) => Ok(()),
                Ok(false) => std::process::exit(1),
                Err(e) => Err(e),
            }
        }
        Command::Average { out, models } => average::run(&average::Options { models, out }),
        Command::Tune(options) => tune::run(&options),
        Command::Lm(options) => lm::run(&options),
        Command::Publish { run, eval, version, training_data, models, channel, rollout_percent } => {
            publish::parse_channel(&channel).and_then(|channel| {
                publish::run(&publish::Options { run, eval, version, models, training_data, channel, rollout_percent })
            })
        }
        Command::Eval(options) => eval::run(&options),
        Command::Train {
            data,
            out,
            epochs,
            batch,
            channels,
            blocks,
            kernel,
            max_utterances,
            seed,
            patience,
            checkpoint_every,
            lr,
            init,
            shards,
            renoise,
            renoise_snr,
            renoise_shelf,
            renoise_pad,
        } => {
            let renoise = (renoise > 0.0).then(|| hark_train::Renoise {
                config: RenoiseConfig {
                    share: renoise,
                    snr_db: renoise_snr.into(),
                    shelf_db: renoise_shelf.into(),
                    lead_s: renoise_pad.0,
                    trail_s: renoise_pad.1,
                    ..RenoiseConfig::default()
                },
                seed,
            });
            train::run(&train::Options {
                data,
                out,
                epochs,
                batch,
                model: hark_model::AcousticModelConfig::new()
                    .with_channels(channels)
                    .with_blocks(blocks)
                    .with_kernel(kernel),
                max_utterances,
                seed,
                patience,
                checkpoint_every,
                peak_lr: lr,
                init,
                shards: shards.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1),
                renoise,
            })
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn stats(path: PathBuf) -> anyhow::Result<()> {
    let (path, _) = corpus_manifest(&path);
    let utterances = hark_data::manifest::read(&path)?;
    print!("{}", hark_data::manifest::Stats::of(&utterances).table());
    Ok(())
}

/// A corpus given as its folder or its manifest: the manifest's path, and
/// the folder its audio paths are relative to.
fn parse_split(name: &str) -> Result<hark_data::Split, String> {
    hark_data::Split::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| format!("unknown split {name:?}: use train, dev or test"))
}

fn corpus_manifest(data: &std::path::Path) -> (PathBuf, PathBuf) {
    let manifest = if data.is_dir() { data.join("manifest.jsonl") } else { data.to_path_buf() };
    let root = manifest.parent().map(PathBuf::from).unwrap_or_default();
    (manifest, root)
}

/// Generated data lives outside git: `$XDG_CACHE_HOME/hark/data` or `~/.cache/hark/data`.
fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("hark/data")
}

/// Two numbers written `A,B` on the command line (`--renoise-snr=-5,10`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pair(f32, f32);

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{}", self.0, self.1)
    }
}

impl From<(f32, f32)> for Pair {
    fn from((a, b): (f32, f32)) -> Self {
        Self(a, b)
    }
}

impl From<Pair> for (f32, f32) {
    fn from(Pair(a, b): Pair) -> Self {
        (a, b)
    }
}

impl Pair {
    /// `A,B` with both finite numbers, else `None`.
    fn parse(text: &str) -> Option<Self> {
        let number = |s: &str| s.trim().parse::<f32>().ok().filter(|v| v.is_finite());
        let (a, b) = text.split_once(',')?;
        Some(Self(number(a)?, number(b)?))
    }
}

/// A range `LOW,HIGH` with LOW ≤ HIGH, for clap.
fn low_high(text: &str) -> Result<Pair, String> {
    match Pair::parse(text) {
        Some(p) if p.0 <= p.1 => Ok(p),
        _ => Err(format!("expected LOW,HIGH: two numbers with LOW ≤ HIGH, got {text:?}")),
    }
}

/// Two durations `LEAD,TRAIL` in seconds, neither negative, for clap.
fn lead_trail(text: &str) -> Result<Pair, String> {
    match Pair::parse(text) {
        Some(p) if p.0 >= 0.0 && p.1 >= 0.0 => Ok(p),
        _ => Err(format!("expected LEAD,TRAIL: two durations in seconds, neither negative, got {text:?}")),
    }
}

/// A finite number, for clap.
fn finite(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("expected a number, got {text:?}")),
    }
}

/// A duration in seconds, not negative, for clap.
fn seconds(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected seconds (0 or more), got {text:?}")),
    }
}

/// A share between 0 and 1, for clap.
fn share(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a share between 0 and 1, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_two_ordered_numbers() {
        assert_eq!(low_high("-5,10"), Ok(Pair(-5.0, 10.0)));
        assert_eq!(low_high(" 3 , 3 "), Ok(Pair(3.0, 3.0)));
        for bad in ["10,0", "5", "5,", "a,b", "1,2,3", "nan,1", "-inf,0"] {
            assert!(low_high(bad).unwrap_err().contains("LOW ≤ HIGH"), "{bad:?} accepted");
        }
        // What clap shows as the default parses back to itself.
        let default = Pair::from(RenoiseConfig::default().snr_db);
        assert_eq!(low_high(&default.to_string()), Ok(default));
    }

    #[test]
    fn pads_are_two_durations_neither_negative() {
        assert_eq!(lead_trail("0.5,0"), Ok(Pair(0.5, 0.0)));
        assert_eq!(lead_trail("0,0.3"), Ok(Pair(0.0, 0.3)));
        for bad in ["0.5", "-0.1,0", "0,-1", "x,0"] {
            assert!(lead_trail(bad).unwrap_err().contains("LEAD,TRAIL"), "{bad:?} accepted");
        }
    }
}
