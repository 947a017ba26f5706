//! What the CLI's test binaries share: running the real `hark` binary and
//! reading what it wrote. Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `hark ARGS`, whatever its exit status.
pub fn hark(args: &[&str]) -> Output {
    command(args).output().expect("the hark binary runs")
}

/// `hark ARGS` that must succeed (its stderr shown when it does not).
pub fn ok(args: &[&str]) -> Output {
    let out = hark(args);
    assert!(out.status.success(), "hark {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The `hark` binary with `args`, to adjust before running.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hark"));
    cmd.args(args);
    cmd
}

/// Every line of a JSONL file, parsed.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A 16-bit WAV file's samples.
pub fn samples(path: &Path) -> Vec<i16> {
    hound::WavReader::open(path).unwrap().samples::<i16>().map(Result::unwrap).collect()
}

/// Writes `samples` (in -1..1) as a 16-bit WAV file.
pub fn write_wav(path: &Path, rate: u32, channels: u16, samples: impl Iterator<Item = f32>) {
    let spec =
        hound::WavSpec { channels, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// A deterministic stand-in for a dev split's summaries: band energies
/// falling with frequency, SNR 20–40 dB, 1–3 s of speech.
pub fn event(i: usize, snr_shift: f32) -> hark_monitor::RefEvent {
    // A cheap, fixed scramble: the same events every run.
    let u = |k: usize| ((i * 7919 + k * 104_729) % 1000) as f32 / 1000.0;
    hark_monitor::RefEvent {
        band_mean: (0..hark_dsp::SUMMARY_BANDS).map(|b| -2.0 - 0.3 * b as f32 + u(b)).collect(),
        snr_db: 20.0 + 20.0 * u(20) - snr_shift,
        speech_s: 1.0 + 2.0 * u(21),
        confidence: 0.6 + 0.4 * u(22),
    }
}

/// One stored event: how it sounded, what was heard, the correction, the
/// install and (recordings consent) its 16 kHz audio.
pub struct Row<'a> {
    pub event: hark_monitor::RefEvent,
    pub heard: &'a str,
    pub correction: Option<&'a str>,
    pub install: &'a str,
    pub audio: Option<Vec<f32>>,
}

impl<'a> Row<'a> {
    pub fn new(event: hark_monitor::RefEvent, heard: &'a str, correction: Option<&'a str>) -> Self {
        Self { event, heard, correction, install: "i", audio: None }
    }
}

/// A collector store in `dir` (as `hark serve --data` makes it) holding `rows`.
pub fn store(dir: &Path, rows: &[Row]) {
    drop(hark_collector::store::SqliteStore::open(dir).unwrap());
    let db = rusqlite::Connection::open(dir.join(hark_collector::store::DB_FILE)).unwrap();
    for (i, row) in rows.iter().enumerate() {
        let e = &row.event;
        let summary = serde_json::json!({"band_mean": e.band_mean, "band_std": vec![1.0; 16], "snr_db": e.snr_db,
            "speech_s": e.speech_s, "sample_rate": 48000});
        let audio_file = row.audio.as_ref().map(|samples| {
            let name = format!("e{i}.wav");
            let audio = hark_dsp::wav::Audio { sample_rate: 16_000, samples: samples.clone() };
            hark_dsp::wav::write_pcm16(&dir.join(hark_collector::store::AUDIO_DIR).join(&name), &audio).unwrap();
            name
        });
        let consent = if audio_file.is_some() { "recordings" } else { "predictions" };
        db.execute(
            "INSERT INTO events (event_id, install_id, received_ms, created_ms, app_version, model_version, backend,
                 prediction, confidence, correction, audio_s, decode_ms, schema_version, consent, summary, audio_file)
             VALUES (?1, ?7, ?2, ?2, '0.1.0', '0.7.0', 'cpu', ?3, ?4, ?5, 2.0, 90.0, 2, ?8, ?6, ?9)",
            rusqlite::params![
                format!("e{i}"),
                1_790_000_000_000i64 + i as i64 * 60_000,
                row.heard,
                e.confidence as f64,
                row.correction,
                summary.to_string(),
                row.install,
                consent,
                audio_file
            ],
        )
        .unwrap();
    }
}
