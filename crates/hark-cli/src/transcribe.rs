//! `hark transcribe`: one JSON object per file on stdout, with exactly the
//! front end, model and decoder the browser uses (`hark-recognizer`).
//!
//! Files are streamed in chunks (bounded memory for any length); a file that
//! cannot be read gets `{"file", "error"}` and the others are still done;
//! the exit status is 1 if any file failed.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use hark_decode::BeamConfig;
use hark_recognizer::{Recognizer, Segmenter, join};

/// `hark transcribe`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A model: `hark train` output folder, weights file (.bpk) or manifest.json.
    /// Default: the current entry of web/models/manifest.json.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prefixes kept by the beam search [default: the model's published
    /// setting, else 384].
    #[arg(long)]
    pub beam: Option<usize>,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Transcribes every file; `Ok(false)` when any of them failed.
pub fn run(o: &Args) -> anyhow::Result<bool> {
    let loaded = crate::model::load(o.model.as_deref())?;
    let search = loaded.search(o.beam, None, None, BeamConfig::default());
    let used = format!("{} (beam {}, α {}, β {})", loaded.describe, search.beam, search.alpha, search.beta);
    let decoder = loaded.decoder(search)?;
    let mut recognizer = Recognizer::new(&loaded.config, loaded.weights, Device::flex(), decoder)?;
    eprintln!("using {used}");
    let mut all_ok = true;
    for file in &o.files {
        let line = match transcribe(&mut recognizer, file) {
            Ok(line) => line,
            Err(e) => {
                all_ok = false;
                let message = crate::report::chain(&e);
                eprintln!("error: {message}");
                serde_json::json!({ "file": file.display().to_string(), "error": message }).to_string()
            }
        };
        println!("{line}");
    }
    Ok(all_ok)
}

fn transcribe(recognizer: &mut Recognizer, file: &std::path::Path) -> anyhow::Result<String> {
    let mut segmenter: Option<Segmenter> = None;
    let mut parts = Vec::new();
    let mut decode_time = std::time::Duration::ZERO;
    let mut failure: Option<anyhow::Error> = None;
    let (rate, samples) = hark_dsp::wav::stream(file, 16_000, |rate, chunk| {
        if failure.is_some() {
            return;
        }
        let seg = match &mut segmenter {
            Some(s) => s,
            None => match Segmenter::new(rate) {
                Ok(s) => segmenter.insert(s),
                Err(e) => {
                    failure = Some(e.into());
                    return;
                }
            },
        };
        for segment in seg.push(chunk) {
            let started = Instant::now();
            match recognizer.recognize_segment(&segment) {
                Ok(t) => parts.push(t),
                Err(e) => failure = Some(e.into()),
            }
            decode_time += started.elapsed();
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    for segment in segmenter.map(Segmenter::finish).unwrap_or_default() {
        let started = Instant::now();
        parts.push(recognizer.recognize_segment(&segment)?);
        decode_time += started.elapsed();
    }
    let transcript = join(parts);
    let round = |v: f64, digits: i32| (v * 10f64.powi(digits)).round() / 10f64.powi(digits);
    Ok(serde_json::to_string(&Line {
        file: file.display().to_string(),
        text: transcript.text,
        confidence: round(transcript.confidence as f64, 3),
        audio_s: round(samples as f64 / rate as f64, 3),
        decode_ms: round(decode_time.as_secs_f64() * 1e3, 2),
    })?)
}

/// One output line, fields in this order.
#[derive(serde::Serialize)]
struct Line {
    file: String,
    text: String,
    confidence: f64,
    audio_s: f64,
    decode_ms: f64,
}
