//! The front end's numbers, checked against fixtures on every target: natively
//! and, through `cargo xtask test`, as wasm in headless Chromium.
//!
//! * `testdata/librosa_logmel.json` — an independent reference (librosa,
//!   made by `testdata/make_reference.py`): native and wasm within 1e-3.
//! * `testdata/native_logmel.json` — what native hark-dsp computes: the wasm
//!   build must reproduce it within 1e-5 (training and browser agree).
//!   Regenerate with `HARK_BLESS=1 cargo test -p hark-dsp --test features`.

use std::io::Cursor;

use hark_dsp::{LogMel, LogMelConfig, wav};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const QUERY_WAV: &[u8] = include_bytes!("../testdata/query.wav");
const LIBROSA: &str = include_str!("../testdata/librosa_logmel.json");
const NATIVE: &str = include_str!("../testdata/native_logmel.json");

fn fixture_values(json: &str) -> (usize, Vec<f32>) {
    let v: serde_json::Value = serde_json::from_str(json).expect("fixture is JSON");
    let samples = v["samples"].as_u64().expect("fixture names its sample count") as usize;
    let values =
        v["values"].as_array().expect("fixture has values").iter().map(|x| x.as_f64().unwrap() as f32).collect();
    (samples, values)
}

fn hark_features(samples: usize) -> Vec<f32> {
    let audio = wav::read_from(Cursor::new(QUERY_WAV), "query.wav").expect("fixture WAV decodes");
    assert_eq!(audio.sample_rate, 16_000);
    LogMel::new(LogMelConfig::default()).compute(&audio.samples[..samples])
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "feature counts differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn features_match_librosa_within_1e_3() {
    let (samples, reference) = fixture_values(LIBROSA);
    let ours = hark_features(samples);
    let diff = max_abs_diff(&ours, &reference);
    assert!(diff <= 1e-3, "max |hark - librosa| = {diff}");
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn features_match_the_native_build_within_1e_5() {
    let (samples, native) = fixture_values(NATIVE);
    let ours = hark_features(samples);
    #[cfg(not(target_arch = "wasm32"))]
    if std::env::var_os("HARK_BLESS").is_some() {
        let json = serde_json::json!({ "samples": samples, "frames": ours.len() / 80, "mels": 80, "values": ours });
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/native_logmel.json"), json.to_string()).unwrap();
        return;
    }
    let diff = max_abs_diff(&ours, &native);
    assert!(diff <= 1e-5, "max |this build - native fixture| = {diff}");
}
