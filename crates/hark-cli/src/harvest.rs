//! `hark harvest --monitor REPORT.json [--store STORE] --out DIR`: the data
//! of the kind that drifted, ready for `hark train --init` and `hark gate`.
//!
//! From the monitoring report (`hark_retrain::Flagged`): each new name,
//! with its class, put into the query templates of its class and spoken by
//! the **training** voices (`manifest.jsonl`, split train) and the **dev**
//! voices (split dev, for checkpoint selection), with the noise the inputs
//! drifted towards mixed under half of them; and the **drift slice**
//! (`drift.jsonl`): the same names in other queries spoken by voices no
//! split trains on (the test voices), which `hark gate --drift` judges on.
//! From the store: every corrected recording people chose to share, its
//! correction as the transcript — one install in five held out into the
//! drift slice, never trained on. Also `names.tsv` (the classed names, for a
//! decoder-only update: `hark publish --names`) and `harvest.json` (what was
//! flagged and what was made).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hark_data::augment::{self, NoiseKind};
use hark_data::manifest::Utterance;
use hark_data::text::NO_TEMPLATE;
use hark_data::{Corpus, Query, Split};
use hark_dsp::wav::{self, Audio};
use hark_retrain::{Flagged, NoiseShift};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::voices::{self, Voice};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `hark monitor`'s summary.json.
    #[arg(long)]
    pub monitor: PathBuf,
    /// The collector's store (its data folder or SQLite file, or
    /// postgres://…): corrected recordings people chose to share. Without
    /// it, only synthesized data.
    #[arg(long)]
    pub store: Option<String>,
    /// Where to write manifest.jsonl, drift.jsonl, names.tsv, audio/.
    #[arg(long)]
    pub out: PathBuf,
    /// Queries per new name spoken by the training voices.
    #[arg(long, default_value_t = 24)]
    pub per_name: usize,
    /// Queries per new name spoken by the dev voices.
    #[arg(long, default_value_t = 4)]
    pub dev_per_name: usize,
    /// Queries per new name in the drift slice (voices training never used).
    #[arg(long, default_value_t = 8)]
    pub drift_per_name: usize,
    /// At most this many new names.
    #[arg(long, default_value_t = 10)]
    pub max_names: usize,
    /// A single new word counts after this many corrections (multi-word names always do).
    #[arg(long, default_value_t = 3)]
    pub min_count: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Synthesizer processes in parallel.
    #[arg(long, default_value_t = crate::flags::default_threads())]
    pub jobs: usize,
}

/// One utterance to synthesize.
struct Planned {
    id: String,
    split: Split,
    query: Query,
    voice: Voice,
    /// Noise mixed under it, and the SNR.
    noise: Option<(NoiseKind, f32)>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.monitor)
        .with_context(|| format!("reading the monitoring report {}", args.monitor.display()))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", args.monitor.display()))?;
    let corpus = Corpus::load();
    let flagged = Flagged::from_report(&report, &corpus, args.min_count, args.max_names)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.monitor.display()))?;
    for n in flagged.names.iter().filter(|n| n.class.is_none()) {
        eprintln!(
            "note: {:?} (e.g. {:?}) fits no query template; it is left out of the synthesized data",
            n.name, n.example
        );
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    let plan = plan(args, &flagged, &corpus)?;
    let voices: Vec<Voice> = plan.iter().map(|p| p.voice.clone()).collect();
    voices::check_installed(&voices)?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.jobs.max(1)).build()?;
    let spoken: Vec<anyhow::Result<Utterance>> =
        pool.install(|| plan.par_iter().map(|p| speak(&args.out, p, args.seed)).collect());
    // Each synthesizer's raw output went through tmp/ and was removed.
    let _ = std::fs::remove_dir(args.out.join("tmp"));
    let mut train = Vec::new();
    let mut drift = Vec::new();
    for u in spoken {
        let u = u?;
        if u.split == Split::Test { drift.push(u) } else { train.push(u) }
    }
    let recorded = match &args.store {
        Some(store) => recordings(store, &args.out)?,
        None => Vec::new(),
    };
    let (held, trainable): (Vec<Utterance>, Vec<Utterance>) =
        recorded.into_iter().partition(|u| u.split == Split::Test);
    let recorded_counts = (trainable.len(), held.len());
    train.extend(trainable);
    drift.extend(held);
    anyhow::ensure!(
        !train.is_empty(),
        "nothing to harvest: no new name fits a query template and the store has no corrected recordings"
    );

    hark_data::manifest::write(&args.out.join("manifest.jsonl"), &train)?;
    hark_data::manifest::write(&args.out.join("drift.jsonl"), &drift)?;
    let names: String = flagged.classed().iter().map(|(class, name)| format!("{class}\t{name}\n")).collect();
    crate::files::write_atomic(&args.out.join("names.tsv"), names.as_bytes())?;
    let summary = serde_json::json!({
        "flagged": flagged,
        "train_utterances": train.iter().filter(|u| u.split == Split::Train).count(),
        "dev_utterances": train.iter().filter(|u| u.split == Split::Dev).count(),
        "drift_utterances": drift.len(),
        "recordings_trained_on": recorded_counts.0,
        "recordings_held_out": recorded_counts.1,
    });
    crate::files::write_atomic(&args.out.join("harvest.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    println!(
        "harvested {} names ({}), noise shift: {}; {} training + dev utterances ({} recordings), drift slice {} ({} recordings held out)",
        flagged.classed().len(),
        flagged.classed().iter().map(|(c, n)| format!("{n} as {c}")).collect::<Vec<_>>().join(", "),
        flagged.noise.map_or("none".to_string(), |n| format!("{n:?}").to_lowercase()),
        train.len(),
        recorded_counts.0,
        drift.len(),
        recorded_counts.1
    );
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Which voices speak which queries: training voices the train part, dev
/// voices the dev part, the test voices (never trained on) the drift slice.
fn plan(args: &Args, flagged: &Flagged, corpus: &Corpus) -> anyhow::Result<Vec<Planned>> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let sets = [
        (Split::Train, spoken_by(Split::Train), args.per_name),
        (Split::Dev, spoken_by(Split::Dev), args.dev_per_name),
        (Split::Test, spoken_by(Split::Test), args.drift_per_name),
    ];
    let mut out = Vec::new();
    for (class, name) in flagged.classed() {
        // Distinct texts: the drift slice gets its own (no drift-slice text
        // is a training text); training and dev voices go round the rest
        // (a class with few templates has few texts: they are spoken by
        // several voices, with and without noise).
        let total: usize = sets.iter().map(|(_, _, n)| n).sum();
        let pool = hark_retrain::queries_for(&name, &class, corpus, total, args.seed);
        if pool.is_empty() {
            eprintln!("note: no query template has a {class} slot; {name:?} is left out of the synthesized data");
            continue;
        }
        let drift_texts = args.drift_per_name.min(pool.len().saturating_sub(1));
        let (drift_pool, train_pool) = pool.split_at(drift_texts);
        if drift_texts < args.drift_per_name {
            eprintln!(
                "note: {name:?} ({class}) fits only {} distinct queries: {drift_texts} for the drift slice, the rest for training",
                pool.len()
            );
        }
        let mut dealt = 0;
        for (split, voices, n) in &sets {
            anyhow::ensure!(!voices.is_empty(), "no {} voices", split.name());
            let (texts, n) = if *split == Split::Test { (drift_pool, drift_texts) } else { (train_pool, *n) };
            for i in 0..n {
                let query = texts[if *split == Split::Test { i } else { (dealt + i) % texts.len() }].clone();
                let voice = voices[rng.random_range(0..voices.len())].clone();
                // Half of them in the noise the inputs drifted towards, at 5-10 dB.
                let noise = flagged.noise.filter(|_| i % 2 == 1).map(|shift| {
                    let kind = match shift {
                        NoiseShift::Car => NoiseKind::random_car(&mut rng),
                        NoiseShift::Broadband => NoiseKind::Pink,
                    };
                    (kind, rng.random_range(5.0..10.0f32))
                });
                let id = format!(
                    "harvest-{}-{}-{i}",
                    split.name(),
                    hark_data::corpus::stable_hash(&format!("{name}{}{}", query.text, voice.name))
                );
                out.push(Planned { id, split: *split, query, voice, noise });
            }
            if *split != Split::Test {
                dealt += n;
            }
        }
    }
    Ok(out)
}

/// Every voice of `split` across the data releases that this machine has
/// installed (`cargo xtask data` installs them all; espeak-ng and flite are
/// always there), saying which are missing: the more kinds of voice speak
/// the new names, the better the model learns them for voices it never heard.
fn spoken_by(split: Split) -> Vec<Voice> {
    let (installed, missing) = voices::installed(voices::every(split, true));
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|v| format!("{} {}", v.engine.name(), v.name)).collect();
        eprintln!(
            "note: {} of the {} {} voices are not installed ({}); `cargo xtask data` installs them",
            missing.len(),
            missing.len() + installed.len(),
            split.name(),
            names.join(", ")
        );
    }
    installed
}

/// Speaks one planned utterance (16 kHz, peak -1 dBFS, noise mixed in).
fn speak(out: &Path, p: &Planned, seed: u64) -> anyhow::Result<Utterance> {
    let folder = if p.split == Split::Test { "drift" } else { p.split.name() };
    let rel = PathBuf::from("audio").join(folder).join(format!("{}.wav", p.id));
    let path = out.join(&rel);
    std::fs::create_dir_all(path.parent().expect("audio/<split>"))
        .with_context(|| format!("creating {}", path.display()))?;
    let raw = out.join("tmp").join(format!("{}.wav", p.id));
    std::fs::create_dir_all(raw.parent().expect("tmp")).ok();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ hark_data::corpus::stable_hash(&p.id));
    let rate = rng.random_range(140..200u32);
    let pitch = rng.random_range(30..70u32);
    let mut samples = voices::speak_16k(&p.voice, &p.query.written, rate, pitch, &raw)?;
    let mut tags = BTreeMap::from([("source".to_string(), "harvest".to_string())]);
    if let Some((kind, snr_db)) = p.noise {
        let noise = match kind {
            NoiseKind::Car { speed_kmh } => augment::car(samples.len(), speed_kmh, &mut rng),
            _ => augment::pink(samples.len(), &mut rng),
        };
        samples = augment::mix_at_snr(&samples, &noise, snr_db);
        tags.extend(kind.tags(snr_db));
    } else {
        tags.insert("noise".into(), "clean".into());
    }
    let audio = Audio { sample_rate: hark_dsp::SAMPLE_RATE, samples };
    wav::write_pcm16(&path, &audio)?;
    Ok(Utterance {
        id: p.id.clone(),
        audio: rel.to_string_lossy().into_owned(),
        text: p.query.text.clone(),
        split: p.split,
        engine: p.voice.engine.name().into(),
        voice: p.voice.name.clone(),
        rate,
        pitch,
        duration_s: audio.duration_s() as f32,
        template: p.query.template,
        entities: p.query.entities.clone(),
        tags,
    })
}

/// Every corrected recording in the store: its WAV under audio/recorded/,
/// its correction as the transcript; held-out installs' as split test.
fn recordings(store: &str, out: &Path) -> anyhow::Result<Vec<Utterance>> {
    use hark_collector::store::{PostgresStore, SqliteStore, Store};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store: Box<dyn Store> = if store.starts_with("postgres://") || store.starts_with("postgresql://") {
            Box::new(PostgresStore::connect(store).await.with_context(|| format!("connecting to {store}"))?)
        } else {
            let path = Path::new(store);
            let dir = if path.is_file() { path.parent().unwrap_or(Path::new(".")) } else { path };
            anyhow::ensure!(
                dir.join(hark_collector::store::DB_FILE).is_file(),
                "{} holds no collector store ({}); pass the folder `hark serve --data` wrote",
                dir.display(),
                hark_collector::store::DB_FILE
            );
            Box::new(SqliteStore::open(dir).with_context(|| format!("opening the store in {}", dir.display()))?)
        };
        let folder = out.join("audio").join("recorded");
        std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
        let mut found = Vec::new();
        let mut after: Option<(u64, String)> = None;
        loop {
            let page = store.export_page(0, after.as_ref(), 500).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.received_ms, last.event_id.clone()));
            for record in page {
                let (Some(correction), Some(_)) = (&record.correction, &record.audio) else { continue };
                let text = hark_data::normalize(correction);
                let Some(bytes) = store.audio_wav(&record.event_id).await? else { continue };
                if text.is_empty() {
                    continue;
                }
                let name = format!("{}.wav", hark_data::corpus::stable_hash(&record.event_id));
                let path = folder.join(&name);
                std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
                let Ok(audio) = wav::read(&path) else { continue };
                let split = if hark_retrain::held_out(&record.install_id) { Split::Test } else { Split::Train };
                found.push(Utterance {
                    id: format!("recorded-{}", record.event_id),
                    audio: format!("audio/recorded/{name}"),
                    text,
                    split,
                    engine: "recorded".into(),
                    voice: format!("install-{}", hark_data::corpus::stable_hash(&record.install_id) % 1_000_000),
                    rate: 0,
                    pitch: 0,
                    duration_s: audio.duration_s() as f32,
                    template: NO_TEMPLATE,
                    entities: Vec::new(),
                    tags: BTreeMap::from([
                        ("source".into(), "recorded".into()),
                        ("noise".into(), "unknown".into()),
                        ("model".into(), record.model_version.clone()),
                    ]),
                });
            }
        }
        store.close().await;
        Ok(found)
    })
}
