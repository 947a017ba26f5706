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
