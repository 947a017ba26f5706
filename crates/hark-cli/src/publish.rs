//! `hark publish`: put a trained model into the static model folder the
//! browser pulls (`web/models/`): f16 weights named by version, and a
//! manifest entry with sha256, size, architecture, per-slice metrics from a
//! `hark eval` summary, the training-data snapshot and the parent version.
//! Only the new model and the one before it stay in the folder (rollback
//! needs one; the repository stays lean).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use hark_registry::{Architecture, Channel, ModelEntry, Version};

/// `hark publish`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `hark train --out` folder (config.json + best.bpk), or a `hark average` folder.
    #[arg(long)]
    pub run: PathBuf,
    /// `hark eval` summary.json of this model, or the `hark gate` gate.json
    /// that promoted it (its metrics go into the manifest).
    #[arg(long)]
    pub eval: PathBuf,
    /// Version of the new model (higher than every published one).
    #[arg(long)]
    pub version: Version,
    /// Description of the training data snapshot.
    #[arg(long)]
    pub training_data: String,
    /// Model folder holding manifest.json.
    #[arg(long, default_value = "web/models")]
    pub models: PathBuf,
    /// `stable` or `beta`.
    #[arg(long, default_value = "stable")]
    pub channel: Channel,
    #[arg(long, default_value_t = 100)]
    pub rollout_percent: u8,
    /// The synthesized corpus whose dev split becomes the model's reference
    /// profile for `hark monitor` (`profile-VERSION.json` beside the weights,
    /// named in the manifest entry). Without it no profile is written.
    #[arg(long)]
    pub profile_data: Option<PathBuf>,
    /// Names (`CLASS<TAB>NAME` lines) the decoder learns with this model:
    /// `names-VERSION.json` beside the weights, named in the manifest entry.
    /// With `--run web/models/manifest.json` (the current weights) this is a
    /// decoder-only update. Names the `--run` model already had are kept.
    #[arg(long)]
    pub names: Option<PathBuf>,
    /// The general English LM (`hark lm`'s binary) the decoder interpolates
    /// with this model: `english-SHA.lm` beside the weights, named in the
    /// manifest entry with `--general-weight`. Without it a `--run` manifest's
    /// own general LM is kept.
    #[arg(long)]
    pub general_lm: Option<PathBuf>,
    /// The general LM's interpolation weight (pick it with `hark tune
    /// --freeform --general-weight ...` on the free-form dev half).
    #[arg(long, default_value_t = 0.1, requires = "general_lm")]
    pub general_weight: f64,
    /// The beam width this model decodes with (pick the search settings
    /// with `hark tune` on dev speech). Any of `--beam`, `--alpha`, `--beta`
    /// records all three in the manifest entry (the others at the app's
    /// defaults, or at a `--run` manifest's settings); none keeps a `--run`
    /// manifest's, else records none (the app's defaults).
    #[arg(long)]
    pub beam: Option<u32>,
    /// Its language-model weight.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Its word bonus.
    #[arg(long, allow_hyphen_values = true)]
    pub beta: Option<f64>,
    #[command(flatten)]
    pub key: crate::release::KeyArg,
}

/// The search settings to record: the flags given over `kept` (a `--run`
/// manifest's) or the app's defaults; checked before anything is written.
fn search(o: &Args, kept: Option<hark_registry::Search>) -> anyhow::Result<Option<hark_registry::Search>> {
    if (o.beam, o.alpha, o.beta) == (None, None, None) {
        return Ok(kept);
    }
    let d = hark_decode::BeamConfig::default();
    let base =
        kept.unwrap_or(hark_registry::Search { beam: d.beam as u32, alpha: d.alpha.into(), beta: d.beta.into() });
    let search = hark_registry::Search {
        beam: o.beam.unwrap_or(base.beam),
        alpha: o.alpha.unwrap_or(base.alpha),
        beta: o.beta.unwrap_or(base.beta),
    };
    match search.problem() {
        Some(problem) => bail!("--beam/--alpha/--beta: {problem}"),
        None => Ok(Some(search)),
    }
}

pub fn run(o: &Args) -> anyhow::Result<()> {
    // A key that cannot be read stops the publish before anything is written.
    let key = o.key.load()?;
    let mut loaded = crate::model::load(Some(&o.run))?;
    let search = search(o, loaded.search)?;
    // The names first: a phone model's lexicon grows by their pronunciations.
    if let Some(path) = &o.names {
        loaded.add_names(crate::model::read_names(path)?)?;
    }
    // A phone model's lexicon goes with it (`lexicon-SHA.txt`, shared by
    // entries with the same one).
    let lexicon = match (loaded.config.units(), &loaded.lexicon) {
        (hark_decode::Units::Letters, _) => None,
        (hark_decode::Units::Phones, None) => {
            bail!("{} is a phone model without its lexicon.txt; it cannot be read, so not published", loaded.describe)
        }
        (hark_decode::Units::Phones, Some(lexicon)) => {
            let text = lexicon.to_text();
            let sha256 = hark_registry::sha256_hex(text.as_bytes());
            let reference = hark_registry::FileRef { file: format!("lexicon-{}.txt", &sha256[..12]), sha256 };
            Some((text, reference))
        }
    };
    let device = burn::tensor::Device::flex();
    let model = hark_model::AcousticModel::from_bytes(&loaded.config, loaded.weights, &device)?;
    let bytes = model.to_bytes_f16()?;
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&o.eval).with_context(|| format!("reading {}", o.eval.display()))?,
    )
    .with_context(|| format!("{} is not a `hark eval` summary.json or `hark gate` gate.json", o.eval.display()))?;
    if summary["promote"] == serde_json::Value::Bool(false) {
        bail!("{}: the gate rejected this candidate ({})", o.eval.display(), summary["reasons"]);
    }
    let metrics = metrics_of(&summary);
    if metrics.is_empty() {
        bail!("{} holds no split metrics; run `hark eval` (or `hark gate`) on this model first", o.eval.display());
    }

    let mut manifest = crate::release::read_manifest(&o.models)?;
    if manifest.models.iter().any(|e| e.version == o.version) {
        bail!("version {} is already published; choose a higher one", o.version);
    }
    let parent = manifest.models.iter().map(|e| e.version).max();
    if parent.is_some_and(|p| p >= o.version) {
        bail!("version {} is not newer than the published {}", o.version, parent.expect("checked"));
    }
    let file = format!("hark-{}.bpk", o.version);
    // The names next: checked against the decoder's classes before anything is written.
    let mut names = loaded.names.clone();
    names.sort();
    names.dedup();
    let names_file = if names.is_empty() {
        None
    } else {
        let mut probe = hark_decode::BeamDecoder::new(hark_decode::BeamConfig::default(), None);
        hark_recognizer::add_names(&mut probe, &names).map_err(|e| anyhow::anyhow!("names: {e}"))?;
        let list = hark_registry::NameList {
            names: names
                .iter()
                .map(|(class, name)| hark_registry::Name { class: class.clone(), name: name.clone() })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&list)? + "\n";
        let name = format!("names-{}.json", o.version);
        Some((name, text))
    };
    // The general LM: read and checked before anything is written.
    let general = match &o.general_lm {
        Some(path) => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&o.general_weight),
                "--general-weight {} is not within 0..=1",
                o.general_weight
            );
            let (bytes, lm) = crate::lm::read(path)?;
            let sha256 = hark_registry::sha256_hex(&bytes);
            let file = format!("english-{}.lm", &sha256[..12]);
            let reference =
                hark_registry::GeneralLm { file: hark_registry::FileRef { file, sha256 }, weight: o.general_weight };
            Some((bytes, reference, lm))
        }
        None => None,
    };
    // The profile first: one that cannot be made stops the publish before the weights or manifest change.
    let profile = match &o.profile_data {
        Some(data) => {
            let version = o.version.to_string();
            let (mut profile, _) = crate::profile::build(Some(&o.run), data, &version, &o.models, 2000)?;
            // Not in the manifest yet: the WER it is published with.
            profile.slice_wer =
                metrics.iter().filter(|(k, _)| k.contains("wer")).map(|(k, v)| (k.clone(), *v)).collect();
            // The words the published decoder can write include its general LM's.
            if let Some((_, _, lm)) = &general {
                profile.vocabulary.extend(crate::profile::general_words(Some(lm)));
                profile.vocabulary.sort();
                profile.vocabulary.dedup();
            }
            let path = crate::monitor::profile_file(&o.models, &version);
            profile.save(&path)?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Some(hark_registry::FileRef::of(name, &std::fs::read(&path)?))
        }
        None => {
            eprintln!(
                "note: no --profile-data, so no reference profile: `hark monitor` needs one (`hark profile` writes it later)"
            );
            None
        }
    };
    std::fs::create_dir_all(&o.models).with_context(|| format!("creating {}", o.models.display()))?;
    crate::files::write_atomic(&o.models.join(&file), &bytes)?;
    let general_lm = match general {
        Some((lm_bytes, reference, _)) => {
            crate::files::write_atomic(&o.models.join(&reference.file.file), &lm_bytes)?;
            Some(reference)
        }
        None => loaded.general_lm.as_ref().map(|(r, _)| r.clone()),
    };
    let lexicon = match lexicon {
        Some((text, reference)) => {
            crate::files::write_atomic(&o.models.join(&reference.file), text.as_bytes())?;
            Some(reference)
        }
        None => None,
    };
    let names = match &names_file {
        Some((name, text)) => {
            crate::files::write_atomic(&o.models.join(name), text.as_bytes())?;
            Some(hark_registry::FileRef::of(name.clone(), text.as_bytes()))
        }
        None => None,
    };
    let app: Version = env!("CARGO_PKG_VERSION").parse()?;
    manifest.models.push(ModelEntry {
        version: o.version,
        file: file.clone(),
        sha256: hark_registry::sha256_hex(&bytes),
        size: bytes.len() as u64,
        created: created_now(),
        min_app_version: app,
        channel: o.channel,
        rollout_percent: o.rollout_percent,
        parent_version: parent,
        training_data: Some(o.training_data.clone()),
        metrics,
        architecture: Some(Architecture {
            channels: loaded.config.channels,
            blocks: loaded.config.blocks,
            kernel: loaded.config.kernel,
            units: loaded.config.units(),
        }),
        profile,
        names,
        general_lm,
        lexicon,
        search,
    });
    // Keep the newest two.
    manifest.models.sort_by(|a, b| b.version.cmp(&a.version));
    for old in manifest.models.split_off(2.min(manifest.models.len())) {
        crate::release::remove_files(&o.models, &old, &manifest.models);
    }
    manifest.models.reverse();
    crate::release::write_manifest(&o.models, &manifest, &key)?;
    eprintln!("published model {} as {} ({} bytes)", o.version, o.models.join(&file).display(), bytes.len());
    Ok(())
}

/// Flat metric names: `test_wer`, `test_clean_wer`, `test_noise_car_wer`, ...
/// The error rate of alignment counts written in a report
/// (`hark_eval::ErrorCounts`), if they hold a reference.
fn rate_of(counts: &serde_json::Value) -> Option<f64> {
    let counts = serde_json::from_value::<hark_eval::ErrorCounts>(counts.clone()).ok()?;
    (counts.reference > 0).then(|| counts.rate())
}

fn metrics_of(summary: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    // A gate report: the candidate's WER on the frozen test and the drift slice.
    for (set, key) in [("frozen", "frozen_test_wer"), ("drift", "drift_wer")] {
        if let Some(rate) = rate_of(&summary[set]["candidate"]) {
            m.insert(key.to_owned(), round4(rate));
        }
    }
    if let Some(splits) = summary["splits"].as_object() {
        for (split, s) in splits {
            for key in ["wer", "cer", "greedy_wer"] {
                if let Some(v) = s[key].as_f64() {
                    m.insert(format!("{split}_{key}"), round4(v));
                }
            }
        }
    }
    for slice in ["noise", "snr", "engine", "entity"] {
        if let Some(values) = summary["slices"]["test"]["slices"][slice].as_object() {
            for (value, row) in values {
                if let Some(r) = rate_of(&row["words"]) {
                    let name = value.replace([' ', '-'], "_");
                    m.insert(format!("test_{slice}_{name}_wer"), round4(r));
                }
            }
        }
    }
    if let Some(b) = summary["bars"].as_object() {
        for key in ["clean_unseen_engine_wer", "car_5db_wer", "car_5db_ratio"] {
            if let Some(v) = b.get(key).and_then(|v| v.as_f64()) {
                m.insert(format!("test_{key}"), round4(v));
            }
        }
    }
    m
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// RFC 3339 UTC time to the second, from the system clock.
fn created_now() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).expect("0 ns is a valid nanosecond");
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| now.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_rfc3339() {
        let s = super::created_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }
}
