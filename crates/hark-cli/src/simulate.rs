//! `hark simulate --collector URL`: simulated people using the app, for
//! drills of the monitoring loop (`cargo xtask demo-drift`) and for trying a
//! collector deployment with realistic traffic.
//!
//! Each simulated install speaks a few voice-search queries in a voice no
//! split trains on (flite), part of them holding the reserved names of
//! `corpus/new_names.txt` (the world learning new names) and part of them in
//! a car (car noise at 5–10 dB: the world getting noisier). Each utterance
//! is recognised by the current model with the code the browser runs
//! (`hark_recognizer`), feature summary included; a person corrects a wrong
//! transcript with some probability. The events go to the collector through
//! its real HTTP API (`POST /v1/events`, schema 2), one batch per install,
//! with the consent level the install chose: predictions, or recordings
//! (then the 16 kHz audio too). Installs that share recordings speak with
//! flite's `kal16` and the others with `awb`, `rms` and `slt`, so a harvest
//! that trains on the recordings never trains on a voice the drift slice and
//! the frozen test are spoken in.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use burn::tensor::Device;
use hark_data::augment::{self, NoiseKind};
use hark_data::{Corpus, Query, Split};
use hark_decode::BeamConfig;
use hark_recognizer::Recognizer;
use hark_telemetry::v2::{self, ConsentLevel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::voices::{self, Engine, Voice};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The collector's base URL (`hark serve`), e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub collector: String,
    /// Utterances in all.
    #[arg(long, default_value_t = 300)]
    pub events: usize,
    /// Utterances per install.
    #[arg(long, default_value_t = 5)]
    pub per_install: usize,
    /// Share of the queries that hold a reserved name (`corpus/new_names.txt`).
    #[arg(long, default_value_t = 0.25)]
    pub new_names: f64,
    /// At most this many of the reserved names are searched for.
    #[arg(long, default_value_t = 16)]
    pub max_names: usize,
    /// Share of the utterances spoken in a car (car noise at 5–10 dB SNR).
    #[arg(long, default_value_t = 0.3)]
    pub car: f64,
    /// Share of the installs that consent to sharing recordings.
    #[arg(long, default_value_t = 0.5)]
    pub recordings: f64,
    /// Probability that a person corrects a wrong transcript.
    #[arg(long, default_value_t = 0.8)]
    pub corrects: f64,
    /// The model the installs run [default: the published current model].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The model version the events name [default: the published current model's].
    #[arg(long)]
    pub model_version: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Synthesizer processes in parallel.
    #[arg(long, default_value_t = crate::flags::default_threads())]
    pub jobs: usize,
}

/// One simulated utterance, planned.
struct Planned {
    install: usize,
    query: Query,
    voice: Voice,
    new_name: bool,
    car: Option<(f32, f32)>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.events > 0 && args.per_install > 0, "--events and --per-install must be at least 1");
    for (flag, v) in [("--new-names", args.new_names), ("--car", args.car), ("--recordings", args.recordings)] {
        anyhow::ensure!((0.0..=1.0).contains(&v), "{flag} is a share between 0 and 1, not {v}");
    }
    let base = args.collector.trim_end_matches('/').to_owned();
    anyhow::ensure!(
        base.starts_with("http://"),
        "--collector {base:?}: give the collector's http:// address (a drill runs on loopback or a test deployment)"
    );
    let corpus = Corpus::load();
    let plan = plan(args, &corpus)?;
    let used: Vec<Voice> = plan.iter().map(|p| p.voice.clone()).collect();
    voices::check_installed(&used)?;

    let loaded = crate::model::load(args.model.as_deref())?;
    let version = match &args.model_version {
        Some(v) => v.clone(),
        None => crate::monitor::current_version(&crate::model::default_models_dir())?,
    };
    let decoder = loaded.decoder(BeamConfig::default())?;
    let mut recognizer = Recognizer::new(&loaded.config, loaded.weights, Device::flex(), decoder)?;
    eprintln!(
        "simulate: {} utterances by {} installs, model {version} ({})",
        plan.len(),
        installs(args),
        loaded.describe
    );

    let tmp = tempfile::tempdir()?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.jobs.max(1)).build()?;
    let audio: Vec<anyhow::Result<Vec<f32>>> = pool.install(|| {
        plan.par_iter()
            .enumerate()
            .map(|(i, p)| {
                let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ hark_data::corpus::stable_hash(&format!("sim{i}")));
                let raw = tmp.path().join(format!("{i}.wav"));
                let samples = voices::speak_16k(&p.voice, &p.query.written, 160, 50, &raw)?;
                Ok(match p.car {
                    Some((speed, snr)) => {
                        augment::mix_at_snr(&samples, &augment::car(samples.len(), speed, &mut rng), snr)
                    }
                    None => samples,
                })
            })
            .collect()
    });

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x5eed);
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let mut batches: Vec<v2::Batch> = Vec::new();
    let (mut wrong, mut corrected, mut with_audio) = (0usize, 0usize, 0usize);
    for (i, (p, samples)) in plan.iter().zip(audio).enumerate() {
        let samples = samples?;
        if batches.len() <= p.install {
            let secret = format!("{:032x}", rng.random::<u128>());
            let consent = if is_recording_install(p.install, args) {
                ConsentLevel::Recordings
            } else {
                ConsentLevel::Predictions
            };
            batches.push(v2::Batch {
                schema_version: 2,
                install_id: format!("sim-{:016x}", rng.random::<u64>()),
                install_key: v2::install_key(&secret),
                consent,
                consent_text_version: 1,
                events: Vec::new(),
            });
        }
        let started = Instant::now();
        let (features, frames, summary) = recognizer.features_with_summary(&samples);
        let transcript = recognizer.decode(&recognizer.log_probs(&features, frames)?);
        let latency_ms = started.elapsed().as_secs_f32() * 1e3;
        let is_wrong = transcript.text != p.query.text;
        wrong += usize::from(is_wrong);
        let correction = (is_wrong && rng.random_bool(args.corrects)).then(|| p.query.text.clone());
        corrected += usize::from(correction.is_some());
        let batch = &mut batches[p.install];
        let recording = batch.consent == ConsentLevel::Recordings;
        with_audio += usize::from(recording);
        batch.events.push(v2::Event {
            event_id: format!("sim-{}-{i}-{:08x}", args.seed, rng.random::<u32>()),
            created_ms: now_ms + i as u64,
            app_version: concat!("hark-simulate ", env!("CARGO_PKG_VERSION")).into(),
            model_version: version.clone(),
            backend: "cpu".into(),
            latency_ms,
            audio_s: samples.len() as f32 / hark_dsp::SAMPLE_RATE as f32,
            transcript: transcript.text.clone(),
            confidence: transcript.confidence,
            words: transcript
                .words
                .iter()
                .map(|w| v2::Word { text: w.text.clone(), confidence: w.confidence })
                .collect(),
            correction,
            summary: summary.as_ref().map(|s| v2::Summary::new(s, hark_dsp::SAMPLE_RATE)),
            features: None,
            audio: recording.then(|| v2::Audio::from_samples(&samples)),
            error: None,
        });
    }

    let mut accepted = 0usize;
    for batch in &batches {
        for chunk in batch.events.chunks(hark_telemetry::MAX_BATCH) {
            let body = serde_json::to_string(&v2::Batch { events: chunk.to_vec(), ..batch.clone() })?;
            let url = format!("{base}/v1/events");
            let reply = match ureq::post(&url).set("content-type", "application/json").send_string(&body) {
                Ok(reply) => reply.into_string()?,
                Err(ureq::Error::Status(code, reply)) => {
                    anyhow::bail!("{url} answered {code}: {}", reply.into_string().unwrap_or_default())
                }
                Err(e) => return Err(e).with_context(|| format!("sending events to {url}; is `hark serve` running?")),
            };
            let reply: serde_json::Value =
                serde_json::from_str(&reply).with_context(|| format!("{url} answered with something not JSON"))?;
            let rejected = reply["rejected"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(rejected == 0, "{url} rejected events: {reply}");
            accepted += chunk.len();
        }
    }
    let names = plan.iter().filter(|p| p.new_name).count();
    let car = plan.iter().filter(|p| p.car.is_some()).count();
    println!(
        "sent {accepted} events from {} installs to {base}: {names} with a new name, {car} in a car, \
         {with_audio} with their recording; {wrong} transcripts wrong, {corrected} corrected",
        batches.len()
    );
    Ok(())
}

fn installs(args: &Args) -> usize {
    args.events.div_ceil(args.per_install)
}

/// Whether install `n` shares recordings: `--recordings` of the installs,
/// spread evenly (with 0.5, every second one).
fn is_recording_install(n: usize, args: &Args) -> bool {
    let share = args.recordings;
    ((n + 1) as f64 * share).floor() > (n as f64 * share).floor()
}

/// Which install says what, in which voice, where.
fn plan(args: &Args, corpus: &Corpus) -> anyhow::Result<Vec<Planned>> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let names: Vec<(String, String)> = hark_data::corpus::new_names().into_iter().take(args.max_names).collect();
    // Each reserved name's queries, in the templates of its class.
    let mut by_name: Vec<(String, Vec<Query>)> = Vec::new();
    for (kind, name) in &names {
        let class = corpus_class(kind);
        let queries = hark_retrain::queries_for(name, class, corpus, 8, args.seed ^ 0x51);
        if !queries.is_empty() {
            by_name.push((name.clone(), queries));
        }
    }
    anyhow::ensure!(!by_name.is_empty() || args.new_names == 0.0, "no reserved name fits a query template");
    // Everyday queries: the world the model knows (the training split's
    // templates and names), so that the only new names are the reserved
    // ones; were they the test split's, monitoring would flag its names and
    // a harvest would train on the frozen test's names.
    let everyday = corpus.generate(Split::Train, args.events, args.seed ^ 0x5171);
    let speakers = [("awb", false), ("rms", false), ("slt", false), ("kal16", true)];
    let mut out = Vec::with_capacity(args.events);
    for i in 0..args.events {
        let install = i / args.per_install;
        let recording = is_recording_install(install, args);
        let voices: Vec<&str> = speakers.iter().filter(|(_, r)| *r == recording).map(|(v, _)| *v).collect();
        let voice = Voice { engine: Engine::Flite, name: voices[install % voices.len()].to_owned() };
        let new_name = !by_name.is_empty() && rng.random_bool(args.new_names);
        let query = if new_name {
            let (_, queries) = &by_name[rng.random_range(0..by_name.len())];
            queries[rng.random_range(0..queries.len())].clone()
        } else {
            everyday[i].clone()
        };
        let car = rng.random_bool(args.car).then(|| {
            let NoiseKind::Car { speed_kmh } = NoiseKind::random_car(&mut rng) else { unreachable!("a car") };
            (speed_kmh, rng.random_range(5.0..10.0f32))
        });
        out.push(Planned { install, query, voice, new_name, car });
    }
    Ok(out)
}

/// The corpus slot a `new_names.txt` kind fills.
fn corpus_class(kind: &str) -> &str {
    match kind {
        "organization" => "organisation",
        other => other,
    }
}
