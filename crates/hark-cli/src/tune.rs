//! `hark tune`: search the decoder's settings on held-out utterances.
//!
//! The acoustic model runs once per utterance; every combination of the
//! given settings then decodes the kept log-probabilities (on all cores), so
//! a grid of dozens of settings costs about as much as one `hark eval`.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use hark_data::Split;
use hark_decode::BeamConfig;
use hark_eval::ErrorCounts;
use hark_recognizer::Recognizer;
use hark_recognizer::listen::{Heard, Listener};
use indicatif::{ProgressBar, ProgressStyle};

/// `hark tune`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A model (as for `transcribe`). Default: the current published model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Corpus folder (holding manifest.jsonl) or a manifest file.
    #[arg(long)]
    pub data: PathBuf,
    /// Split to tune on: `dev` (never tune on test).
    #[arg(long, default_value = "dev")]
    pub split: Split,
    /// Utterances of the split, from the manifest's start.
    #[arg(long, default_value_t = 600)]
    pub max_utterances: usize,
    /// Prefixes kept by the beam search.
    #[arg(long, default_value_t = BeamConfig::default().beam)]
    pub beam: usize,
    /// Language-model weights to try.
    #[arg(long, value_delimiter = ',', default_values_t = [BeamConfig::default().alpha])]
    pub alpha: Vec<f32>,
    /// Word bonuses to try.
    #[arg(long, value_delimiter = ',', default_values_t = [BeamConfig::default().beta])]
    pub beta: Vec<f32>,
    /// Bonuses per entity-list name to try.
    #[arg(long, value_delimiter = ',', default_values_t = [BeamConfig::default().entity_boost])]
    pub entity_boost: Vec<f32>,
    /// Penalties per out-of-lexicon character to try.
    #[arg(long, value_delimiter = ',', default_values_t = [BeamConfig::default().oov_char_penalty], allow_hyphen_values = true)]
    pub oov_char_penalty: Vec<f32>,
    /// Frame pruning thresholds to try: symbols less likely than this (log) are not expanded.
    #[arg(long, value_delimiter = ',', default_values_t = [BeamConfig::default().prune_log_prob], allow_hyphen_values = true)]
    pub prune_log_prob: Vec<f32>,
    /// Hear each recording as the browser's hands-free mode does: streamed
    /// through the endpoint detector, recognising only the first utterance
    /// it ends (or what it holds at the end of the recording). Measures what
    /// endpointing costs, e.g. in car noise.
    #[arg(long)]
    pub listen: bool,
    /// Only the split's free-form evaluation utterances (text no template
    /// made: what users say), not the template queries.
    #[arg(long)]
    pub freeform: bool,
    /// A general English LM (`hark lm`) to interpolate.
    #[arg(long)]
    pub general_lm: Option<PathBuf>,
    /// Its interpolation weights to try.
    #[arg(long, value_delimiter = ',', default_values_t = [0.5])]
    pub general_weight: Vec<f32>,
}

/// What the browser's listener hands the recognizer when `samples` (16 kHz)
/// come from the microphone: the first utterance the endpoint detector
/// ends, else what it holds when the stream stops (the stop button).
fn as_heard(samples: &[f32]) -> anyhow::Result<Vec<f32>> {
    let mut listener = Listener::new(hark_dsp::SAMPLE_RATE)?;
    // 20 ms blocks, as an AudioWorklet delivers them (chunking does not change the result).
    for block in samples.chunks(320) {
        for heard in listener.push(block) {
            if let Heard::Utterance(u) = heard {
                return Ok(u);
            }
        }
    }
    Ok(listener.finish().unwrap_or_default())
}

/// Every combination of the option lists, as decoder settings and general-LM weights.
fn grid(o: &Args) -> Vec<(BeamConfig, f32)> {
    let weights = if o.general_lm.is_some() { o.general_weight.clone() } else { vec![0.0] };
    let mut out = Vec::new();
    for &weight in &weights {
        for &alpha in &o.alpha {
            for &beta in &o.beta {
                for &entity_boost in &o.entity_boost {
                    for &oov_char_penalty in &o.oov_char_penalty {
                        for &prune_log_prob in &o.prune_log_prob {
                            out.push((
                                BeamConfig {
                                    beam: o.beam,
                                    alpha,
                                    beta,
                                    entity_boost,
                                    oov_char_penalty,
                                    prune_log_prob,
                                    ..BeamConfig::default()
                                },
                                weight,
                            ));
                        }
                    }
                }
            }
        }
    }
    out
}

pub fn run(o: &Args) -> anyhow::Result<()> {
    let configs = grid(o);
    anyhow::ensure!(!configs.is_empty(), "every setting needs at least one value (e.g. --alpha 0.5)");
    let (manifest, root) = crate::flags::corpus_manifest(&o.data);
    let utterances = hark_data::manifest::read(&manifest)?;
    let chosen: Vec<_> = utterances
        .iter()
        .filter(|u| u.split == o.split && (!o.freeform || hark_data::text::is_freeform(u)))
        .take(o.max_utterances)
        .collect();
    anyhow::ensure!(!chosen.is_empty(), "{} holds no {} utterances", manifest.display(), o.split.name());
    let loaded = crate::model::load(o.model.as_deref())?;
    let mut decoder = loaded.decoder(BeamConfig::default())?;
    if let Some(path) = &o.general_lm {
        decoder.set_general_lm(crate::lm::load(path)?, 0.5);
    }
    let mut recognizer = Recognizer::new(&loaded.config, loaded.weights, Device::flex(), decoder.clone())?;
    let bar = ProgressBar::new(chosen.len() as u64);
    bar.set_style(ProgressStyle::with_template("model [{bar:40}] {pos}/{len} eta {eta}").expect("static template"));
    let mut outputs = Vec::with_capacity(chosen.len());
    for u in chosen {
        let path = root.join(&u.audio);
        let audio = hark_dsp::wav::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut samples = hark_dsp::resample(&audio.samples, audio.sample_rate, hark_dsp::SAMPLE_RATE)?;
        if o.listen {
            samples = as_heard(&samples)?;
        }
        let (features, frames) = recognizer.features(&samples);
        outputs.push((u.text.clone(), recognizer.log_probs(&features, frames)?));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let bar = ProgressBar::new(configs.len() as u64);
    bar.set_style(ProgressStyle::with_template("decode [{bar:40}] {pos}/{len} eta {eta}").expect("static template"));
    let threads = crate::flags::default_threads().min(configs.len());
    let mut results: Vec<(f64, f64, (BeamConfig, f32))> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (configs, outputs, decoder, bar) = (&configs, &outputs, &decoder, &bar);
                scope.spawn(move || {
                    configs
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|config| {
                            let decoder = decoder.clone().with_config(config.0.clone()).with_general_weight(config.1);
                            let mut counts = ErrorCounts::default();
                            let start = std::time::Instant::now();
                            for (reference, log_probs) in outputs {
                                counts += ErrorCounts::words(reference, &decoder.decode(log_probs).text);
                            }
                            let ms = start.elapsed().as_secs_f64() * 1e3 / outputs.len() as f64;
                            bar.inc(1);
                            (counts.rate(), ms, config.clone())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("decoding does not panic")).collect()
    });
    bar.finish_and_clear();
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let heard = if o.listen { ", as heard through the endpoint detector" } else { "" };
    let kind = if o.freeform { " free-form" } else { "" };
    println!("{} {}{kind} utterances{heard}, {} settings, best first:", outputs.len(), o.split.name(), results.len());
    println!("  WER %   alpha   beta  entity_boost  oov_char_penalty  prune_log_prob  general_weight  decode ms/utt");
    for (wer, ms, (c, weight)) in &results {
        println!(
            "{:>7.2} {:>7.2} {:>6.2} {:>13.2} {:>17.2} {:>15.1} {:>15.2} {:>14.1}",
            100.0 * wer,
            c.alpha,
            c.beta,
            c.entity_boost,
            c.oov_char_penalty,
            c.prune_log_prob,
            weight,
            ms
        );
    }
    Ok(())
}
