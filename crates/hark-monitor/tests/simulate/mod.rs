//! Simulated production: feature summaries of real speech (the repository's
//! test recordings, cut, scaled and mixed with room noise — and, for drift,
//! car noise), computed by the code the browser runs, and a collector store
//! filled with events made of them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hark_dsp::{FeatureSummary, LogMel, LogMelConfig};
use hark_monitor::{RefEvent, ReferenceProfile};
use rand_chacha::ChaCha8Rng;
use rand09::{Rng, SeedableRng};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The speech the simulation cuts utterances from, at 16 kHz.
pub fn speech() -> Vec<Vec<f32>> {
    [
        "crates/hark-recognizer/testdata/bangalore.wav",
        "crates/hark-recognizer/testdata/five_seconds.wav",
        "crates/hark-dsp/testdata/query.wav",
    ]
    .iter()
    .map(|p| {
        let audio = hark_dsp::wav::read(&repo().join(p)).expect("test recording");
        hark_dsp::resample(&audio.samples, audio.sample_rate, 16_000).expect("resampled")
    })
    .collect()
}

/// How an utterance was heard.
#[derive(Clone, Copy, PartialEq)]
pub enum Condition {
    /// A quiet room (SNR 25–40 dB).
    Room,
    /// A car at 60–120 km/h, SNR 5–10 dB.
    Car,
}

/// `count` utterances under `condition`, as the monitor sees them.
pub fn events(speech: &[Vec<f32>], condition: Condition, count: usize, seed: u64) -> Vec<RefEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let config = LogMelConfig::default();
    let hop_s = config.hop as f32 / config.sample_rate as f32;
    let n_mels = config.n_mels;
    let mut mel = LogMel::new(config);
    (0..count)
        .map(|_| {
            let clip = &speech[rng.random_range(0..speech.len())];
            let len = rng.random_range(24_000..48_000).min(clip.len());
            let start = rng.random_range(0..=clip.len() - len);
            let gain = 10f32.powf(rng.random_range(-10.0..6.0) / 20.0);
            let utterance: Vec<f32> = clip[start..start + len].iter().map(|s| s * gain).collect();
            let room: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let mut audio = hark_data::augment::mix_at_snr(&utterance, &room, rng.random_range(25.0..40.0));
            if condition == Condition::Car {
                let car = hark_data::augment::car(len, rng.random_range(60.0..120.0), &mut rng);
                audio = hark_data::augment::mix_at_snr(&audio, &car, rng.random_range(5.0..10.0));
            }
            let summary = FeatureSummary::of(&mel.compute(&audio), n_mels, hop_s).expect("a summary");
            // The recognizer's confidence: mostly sure, a tail of doubt.
            let u: f32 = rng.random_range(0.0..1.0);
            RefEvent {
                band_mean: summary.band_mean,
                snr_db: summary.snr_db,
                speech_s: summary.speech_s,
                confidence: 1.0 - 0.6 * u * u,
            }
        })
        .collect()
}

/// A profile of `events` for model `version`, knowing `vocabulary`.
pub fn profile(version: &str, events: Vec<RefEvent>, vocabulary: Vec<String>) -> ReferenceProfile {
    ReferenceProfile {
        profile_version: hark_monitor::profile::PROFILE_VERSION,
        model_version: version.into(),
        events,
        vocabulary,
        slice_wer: [("test".to_owned(), 0.093)].into_iter().collect(),
    }
}

/// One event for the store.
pub struct Row<'a> {
    pub received_ms: i64,
    pub model_version: &'a str,
    pub backend: &'a str,
    pub prediction: &'a str,
    pub correction: Option<&'a str>,
    pub latency_ms: f64,
    pub event: &'a RefEvent,
    /// A failed recognition: what failed.
    pub error: Option<&'a str>,
}

/// A collector store (made by `hark-collector` itself, so its schema is
/// the real one) in `dir`, holding `rows`.
pub fn store(dir: &Path, rows: &[Row]) -> PathBuf {
    drop(hark_collector::store::SqliteStore::open(dir).expect("a collector store"));
    let path = dir.join(hark_collector::store::DB_FILE);
    let mut db = rusqlite::Connection::open(&path).expect("the store");
    let tx = db.transaction().expect("a transaction");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (event_id, install_id, received_ms, created_ms, app_version, model_version, backend,
                     prediction, confidence, correction, audio_s, decode_ms, schema_version, consent, consent_text_version, summary,
                     error)
                 VALUES (?1, 'install', ?2, ?2, '0.1.0', ?3, ?4, ?5, ?6, ?7, 2.0, ?8, 2, 'predictions', 1, ?9, ?10)",
            )
            .expect("the insert");
        for (i, r) in rows.iter().enumerate() {
            let summary = summary_json(r.event);
            insert
                .execute(rusqlite::params![
                    format!("event-{i}"),
                    r.received_ms,
                    r.model_version,
                    r.backend,
                    r.prediction,
                    r.event.confidence as f64,
                    r.correction,
                    r.latency_ms,
                    summary,
                    r.error,
                ])
                .expect("a row");
        }
    }
    tx.commit().expect("committed");
    path
}

/// The schema-2 feature summary JSON of `event`, as the collector stores it.
pub fn summary_json(event: &RefEvent) -> String {
    serde_json::json!({
        "band_mean": event.band_mean, "band_std": vec![1.0; event.band_mean.len()],
        "snr_db": event.snr_db, "speech_s": event.speech_s, "sample_rate": 48_000,
    })
    .to_string()
}
