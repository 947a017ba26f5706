//! Training speed of the default model, side by side with PyTorch on the
//! same CPU (the tool a user would otherwise pick).
//!
//! Both train the same network (`hark_model::AcousticModel`, re-stated in
//! `pytorch_reference.py`) on the same synthetic batch of 16 × 4 s with CTC
//! and AdamW, and report seconds of audio trained per second. Prints a table;
//! `cargo xtask bench` runs it. PyTorch is found through `HARK_TORCH_PYTHON`,
//! else `~/.cache/hark/torchenv/bin/python` (made by `cargo xtask bench`),
//! else `python3`; without torch its row says so.
//!
//! Not a criterion benchmark: one training step is ~0.5 s and the figure of
//! interest is throughput over a few steps after a warm-up, which this
//! measures directly.

use std::process::Command;
use std::time::Instant;

use burn::tensor::Device;
use hark_decode::Alphabet;
use hark_model::AcousticModelConfig;
use hark_train::{Example, TrainConfig, Trainer};

const BATCH: usize = 16;
const FRAMES: usize = 400;
const STEPS: usize = 8;

fn burn_flex(model: &AcousticModelConfig, shards: usize) -> f64 {
    let text = "weather in san francisco tomorrow";
    let examples: Vec<Example> = (0..BATCH)
        .map(|b| Example {
            id: b.to_string(),
            features: (0..FRAMES * 80).map(|i| ((i * 7 + b) as f32 * 0.013).sin()).collect(),
            frames: FRAMES,
            targets: Alphabet::encode(text).expect("plain text"),
            text: text.into(),
        })
        .collect();
    let refs: Vec<&Example> = examples.iter().collect();
    let config = TrainConfig { spec_augment: None, warp: None, shards, ..TrainConfig::default() };
    let mut t = Trainer::new(model.clone(), config, Device::flex().autodiff());
    t.step(&refs);
    let start = Instant::now();
    for _ in 0..STEPS {
        t.step(&refs);
    }
    (BATCH * FRAMES * STEPS) as f64 / 100.0 / start.elapsed().as_secs_f64()
}

fn python() -> String {
    if let Ok(p) = std::env::var("HARK_TORCH_PYTHON") {
        return p;
    }
    let venv = std::env::var("HOME").map(|h| format!("{h}/.cache/hark/torchenv/bin/python")).unwrap_or_default();
    if std::path::Path::new(&venv).is_file() { venv } else { "python3".into() }
}

fn pytorch(model: &AcousticModelConfig, threads: usize) -> Result<(f64, String), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pytorch_reference.py");
    let out = Command::new(python())
        .arg(script)
        .args(["--threads", &threads.to_string()])
        .args(["--channels", &model.channels.to_string(), "--blocks", &model.blocks.to_string()])
        .args(["--kernel", &model.kernel.to_string(), "--steps", &STEPS.to_string()])
        .output()
        .map_err(|e| format!("could not run {}: {e}", python()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok((v["audio_per_s"].as_f64().unwrap_or(f64::NAN), v["backend"].as_str().unwrap_or("pytorch").to_string()))
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is not meaningful here.
    let model = AcousticModelConfig::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "training step, default model ({} ch × {} blocks, kernel {}), batch {BATCH} × {} s, {cores} cores",
        model.channels,
        model.blocks,
        model.kernel,
        FRAMES / 100
    );
    // One shard: flex's own parallelism (matmuls) only; one per core: the
    // batch split across cores as `hark train` does by default.
    let single = burn_flex(&model, 1);
    println!("{:<44} {:>10.1} s of audio / s", "burn 0.22 flex, 1 shard", single);
    let ours = burn_flex(&model, cores);
    println!("{:<44} {:>10.1} s of audio / s", format!("burn 0.22 flex, {cores} shards (hark train)"), ours);
    for threads in [cores.min(2), 1] {
        match pytorch(&model, threads) {
            Ok((theirs, backend)) => println!(
                "{:<44} {:>10.1} s of audio / s   burn = {:.2}× pytorch",
                format!("{backend} ({threads} threads)"),
                theirs,
                ours / theirs
            ),
            Err(e) => println!("{:<44} {:>10} ({e})", format!("pytorch ({threads} threads)"), "n/a"),
        }
    }
}
