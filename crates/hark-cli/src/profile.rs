//! `hark profile`: a model's reference profile for monitoring — the
//! feature summaries and utterance confidences of its dev split, computed by
//! the code the browser runs (`hark_recognizer::Recognizer`), the decoder's
//! vocabulary, and the published per-slice WER — written beside the model
//! as `profile-VERSION.json` for `hark monitor`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;
use hark_data::{Corpus, Split};
use hark_decode::BeamConfig;
use hark_monitor::profile::PROFILE_VERSION;
use hark_monitor::{RefEvent, ReferenceProfile};
use hark_recognizer::{Recognizer, catalogue, corpus_lm};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{flags, model, monitor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The synthesized corpus (its folder or manifest.jsonl); its dev split is the reference.
    #[arg(long)]
    pub data: PathBuf,
    /// The model (a run folder, weights, or a manifest) [default: the published current model].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The model's version, as its events name it [default: the published current model's].
    #[arg(long)]
    pub version: Option<String>,
    /// The published models folder (the version and published WER come from its manifest).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Dev utterances to profile (evenly spread over the split).
    #[arg(long, default_value_t = 2000)]
    pub limit: usize,
    /// Where to write it [default: MODELS/profile-VERSION.json].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Signs the manifest when the profile is recorded in it.
    #[command(flatten)]
    pub key: crate::release::KeyArg,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let models = args.models.clone().unwrap_or_else(model::default_models_dir);
    let version = match &args.version {
        Some(v) => v.clone(),
        None => monitor::current_version(&models)?,
    };
    let (profile, describe) = build(args.model.as_deref(), &args.data, &version, &models, args.limit)?;
    let out = args.out.clone().unwrap_or_else(|| monitor::profile_file(&models, &version));
    profile.save(&out)?;
    println!(
        "wrote {}: {} dev utterances of {describe}, {} words",
        out.display(),
        profile.events.len(),
        profile.vocabulary.len()
    );
    // Beside a published model: its manifest entry names it.
    if out.parent() == Some(models.as_path()) && record(&models, &version, &out, &args.key)? {
        println!("recorded it in {}", models.join("manifest.json").display());
    }
    Ok(())
}

/// The reference profile of `model` (default: the published current one)
/// from the dev split of the corpus `data`, as model `version`; with what
/// was loaded, for messages.
pub fn build(
    model: Option<&Path>,
    data: &Path,
    version: &str,
    models: &Path,
    limit: usize,
) -> anyhow::Result<(ReferenceProfile, String)> {
    let (manifest, root) = flags::corpus_manifest(data);
    let utterances = hark_data::manifest::read(&manifest)?;
    let dev: Vec<_> = utterances.iter().filter(|u| u.split == Split::Dev).collect();
    anyhow::ensure!(
        dev.len() >= hark_monitor::profile::MIN_REFERENCE_EVENTS,
        "{} holds {} dev utterances; a profile needs at least {} (synthesize more with `hark data synth`)",
        manifest.display(),
        dev.len(),
        hark_monitor::profile::MIN_REFERENCE_EVENTS
    );
    let step = (dev.len() as f64 / limit.max(1) as f64).max(1.0);
    let chosen: Vec<_> = (0..limit.min(dev.len())).map(|i| dev[(i as f64 * step) as usize]).collect();

    let loaded = model::load(model)?;
    let decoder = loaded.decoder(BeamConfig::default())?;
    let mut recognizer = Recognizer::new(&loaded.config, loaded.weights, Device::flex(), decoder)?;
    let bar = ProgressBar::new(chosen.len() as u64);
    bar.set_style(ProgressStyle::with_template("profile [{bar:40}] {pos}/{len} eta {eta}").expect("static template"));
    let mut events = Vec::with_capacity(chosen.len());
    for u in chosen {
        bar.inc(1);
        let path = root.join(&u.audio);
        let audio = hark_dsp::wav::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let samples = hark_dsp::resample(&audio.samples, audio.sample_rate, hark_dsp::SAMPLE_RATE)?;
        let (features, frames, summary) = recognizer.features_with_summary(&samples);
        let Some(summary) = summary else { continue };
        let transcript = recognizer.decode(&recognizer.log_probs(&features, frames)?);
        events.push(RefEvent {
            band_mean: summary.band_mean,
            snr_db: summary.snr_db,
            speech_s: summary.speech_s,
            confidence: transcript.confidence,
        });
    }
    bar.finish_and_clear();

    // The words the decoder can write: its LM's, the catalogue's and the model's own names.
    let corpus = Corpus::load();
    let mut vocabulary: Vec<String> =
        corpus_lm(&corpus)
            .vocabulary()
            .filter(|w| !w.starts_with('<'))
            .map(str::to_owned)
            .chain(
                catalogue(&corpus)
                    .into_iter()
                    .flat_map(|(_, name)| name.split_whitespace().map(str::to_owned).collect::<Vec<_>>()),
            )
            .chain(loaded.names.iter().flat_map(|(_, name)| {
                hark_data::normalize(name).split_whitespace().map(str::to_owned).collect::<Vec<_>>()
            }))
            .chain(general_words(loaded.general_lm.as_ref().map(|(_, lm)| &**lm)))
            .collect();
    vocabulary.sort();
    vocabulary.dedup();
    let slice_wer = published_wer(models, version);
    let profile = ReferenceProfile {
        profile_version: PROFILE_VERSION,
        model_version: version.to_owned(),
        events,
        vocabulary,
        slice_wer,
    };
    profile.check().map_err(|why| anyhow::anyhow!("the profile {why}"))?;
    Ok((profile, loaded.describe))
}

/// Names the profile `file` (in `models`) in the manifest entry of
/// `version`, with its sha256; `false` when that version is not published
/// there. The manifest is signed again and replaced atomically.
pub fn record(models: &Path, version: &str, file: &Path, key: &crate::release::KeyArg) -> anyhow::Result<bool> {
    let mut manifest = crate::release::read_manifest(models)?;
    let Some(entry) = manifest.models.iter_mut().find(|e| e.version.to_string() == version) else { return Ok(false) };
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    entry.profile = Some(hark_registry::FileRef::of(name, &bytes));
    crate::release::write_manifest(models, &manifest, &key.load()?)?;
    Ok(true)
}

/// The manifest entry's WER figures for `version` (none if unpublished).
fn published_wer(models: &Path, version: &str) -> std::collections::BTreeMap<String, f64> {
    let text = std::fs::read_to_string(models.join("manifest.json")).unwrap_or_default();
    let Ok(manifest) = hark_registry::Manifest::parse(&text) else { return Default::default() };
    manifest
        .models
        .iter()
        .find(|e| e.version.to_string() == version)
        .map(|e| e.metrics.iter().filter(|(k, _)| k.contains("wer")).map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default()
}

/// The words a general English LM lets the decoder write (none without one).
pub fn general_words(lm: Option<&hark_decode::NgramLm>) -> Vec<String> {
    lm.map(|lm| lm.vocabulary().filter(|w| !w.starts_with('<')).map(str::to_owned).collect()).unwrap_or_default()
}
