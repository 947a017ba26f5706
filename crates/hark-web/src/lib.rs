//! hark's browser app, in WebAssembly programs that talk by messages:
//!
//! * `hark-web` (`src/main.rs`): the page — Leptos UI, microphone, endpointing,
//!   local catalogue search, consent and telemetry. No Burn code runs here, so
//!   the page stays responsive while a model loads or decodes.
//! * one recognition Web Worker ([`worker`]) — model manager (manifest,
//!   download with progress, sha256, Cache Storage, update checks, hot swap,
//!   rollback), warm-up benchmark, recognition. Two builds of it: the page
//!   starts `hark-worker-gpu` (cargo feature `webgpu`: Burn's WebGPU backend
//!   *and* its CPU backend, size-optimised) when the browser offers a WebGPU
//!   adapter ([`gpu::probe`]), else the smaller, speed-optimised CPU-only
//!   `hark-worker`. A browser downloads one of them, never both.
//!
//! This library holds the message protocol both sides share and how a
//! message travels (a `serde-wasm-bindgen` value, with audio or features as a
//! transferred `Float32Array` beside it rather than a JS array of numbers),
//! the worker itself, and the page's rules that need no browser, each in
//! one type with its unit tests (run natively by `cargo xtask test`):
//! [`choice`] (which engine recognises), [`utterance`] (one utterance in
//! flight), [`outbox`] (consent off keeps nothing), [`model_card`] (a
//! model's figures in plain words).

pub mod choice;
pub mod gpu;
pub mod model_card;
pub mod outbox;
pub mod utterance;
pub mod worker;

use std::collections::BTreeMap;

use hark_telemetry::v2::{ConsentLevel, Summary};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Burn `flex` on the CPU (WebAssembly); in both worker programs.
    Cpu,
    /// Burn's WebGPU backend; only in `hark-worker-gpu`.
    Webgpu,
}

impl Backend {
    /// The loader script (written by trunk, `data-loader-shim`) of the
    /// worker program that can run this backend: for WebGPU the program
    /// that has both.
    pub fn script(self) -> &'static str {
        match self {
            Backend::Cpu => "hark-worker_loader.js",
            Backend::Webgpu => "hark-worker-gpu_loader.js",
        }
    }

    /// The telemetry event's vocabulary (`cpu`, `webgpu`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Webgpu => "webgpu",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Backend::Cpu => "CPU (WebAssembly)",
            Backend::Webgpu => "WebGPU",
        }
    }
}

/// Cache Storage cache holding published weights and the last manifest seen.
/// The service worker (`web/sw.js`) reads the same cache.
pub const MODEL_CACHE: &str = "hark-models-v1";

/// Settings the page hands the worker when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Minutes between update checks of `models/manifest.json`; 0 = only on load.
    pub update_minutes: f64,
    /// This install's stable rollout bucket in `0..100`.
    pub rollout_bucket: u8,
    pub backend: BackendPreference,
}

/// Which backend the person asked for (`?backend=`); `Auto` lets a warm-up
/// benchmark decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendPreference {
    Auto,
    Cpu,
    Webgpu,
}

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// First message after [`FromWorker::Hello`]: probe backends, load a model,
    /// schedule update checks.
    Start(Settings),
    /// Look for a newer (or rolled-back) model now.
    CheckForUpdates,
    /// A finished utterance; its 16 kHz samples travel beside the message.
    /// `share`: what the person agreed to share as the utterance began —
    /// with any level the answer carries the feature summary, under
    /// `recordings` the log-mel features too; `None` asks for neither.
    /// `device_rate`: the microphone's own rate (the summary records it).
    /// `backend`: the page's choice; a worker without it (or whose GPU
    /// failed) uses the CPU and says so in the answer.
    Recognize { id: u32, share: Option<ConsentLevel>, device_rate: u32, backend: Backend },
}

/// Worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker's WebAssembly is running and listening.
    Hello,
    Model(ModelStatus),
    Transcript(Recognized),
    /// Recognising `id` failed. `backend` and `model_version` say where
    /// (none when no model was loaded); `audio_s`, how long the utterance was.
    Failed {
        id: u32,
        error: String,
        #[serde(default)]
        backend: Option<Backend>,
        #[serde(default)]
        model_version: Option<String>,
        #[serde(default)]
        audio_s: f32,
    },
    /// Warm-up benchmark of the loaded model on one backend: the median
    /// time to recognise 3 s of audio (features + model + search).
    Benchmark {
        backend: Backend,
        ms: f64,
    },
    /// A backend cannot run (no device, device lost). For WebGPU the worker
    /// goes on on the CPU; an utterance it was recognising is recognised
    /// again there.
    Unavailable {
        backend: Backend,
        why: String,
    },
}

/// Length of the warm-up benchmark's audio, in seconds.
pub const BENCHMARK_AUDIO_S: f64 = 3.0;

/// Outcome of asking `navigator.gpu` for an adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GpuProbe {
    Checking,
    /// An adapter exists; `name` is what the browser tells about it.
    Found {
        name: String,
    },
    /// No WebGPU here; recognition uses the CPU (WebAssembly).
    Absent {
        why: String,
    },
}

impl GpuProbe {
    /// Machine-readable state, for `data-state` (tests read it).
    pub fn state(&self) -> &'static str {
        match self {
            GpuProbe::Checking => "checking",
            GpuProbe::Found { .. } => "found",
            GpuProbe::Absent { .. } => "absent",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            GpuProbe::Checking => "Looking for a WebGPU adapter…".into(),
            GpuProbe::Found { name } => format!("WebGPU adapter found ({name})."),
            GpuProbe::Absent { why } => {
                format!("No WebGPU adapter ({why}); recognition will run on the CPU (WebAssembly).")
            }
        }
    }
}

/// The model manager's state, sent whole on every change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStatus {
    /// The model recognising speech now, if any.
    pub active: Option<ActiveModel>,
    pub activity: Activity,
    /// Models that were refused (failed download, sha256, load), with why.
    pub refused: Vec<String>,
    /// The manifest could not be fetched; the stored copy is in use.
    pub offline: bool,
    /// The last manifest fetched was refused (bad or missing signature,
    /// not a manifest): why. The model already running keeps working.
    #[serde(default)]
    pub manifest_refused: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveModel {
    pub version: String,
    /// Published metrics (`test_wer`, ...), for the "about this model" panel.
    pub metrics: BTreeMap<String, f64>,
    /// The version it replaced without a reload, if it was swapped in.
    pub replaced: Option<String>,
    /// Loaded from Cache Storage rather than downloaded.
    pub from_cache: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activity {
    #[default]
    Checking,
    Downloading {
        version: String,
        loaded: u64,
        total: u64,
    },
    Idle,
    NonePublished,
    Failed {
        why: String,
    },
}

impl ModelStatus {
    /// Machine-readable state for `data-state`: `loading`, `downloading`,
    /// `ready`, `none` or `failed`.
    pub fn state(&self) -> &'static str {
        if self.active.is_some() {
            return "ready";
        }
        match self.activity {
            Activity::Checking | Activity::Idle => "loading",
            Activity::Downloading { .. } => "downloading",
            Activity::NonePublished => "none",
            Activity::Failed { .. } => "failed",
        }
    }

    pub fn describe(&self) -> String {
        let mut text = match (&self.active, &self.activity) {
            (Some(a), _) => {
                let mut t = format!("Model {} is ready.", a.version);
                if let Some(old) = &a.replaced {
                    t += &format!(" Updated from {old} without a reload.");
                }
                t
            }
            (None, Activity::Checking | Activity::Idle) => "Checking for published models…".into(),
            (None, Activity::Downloading { version, .. }) => format!("Downloading model {version}…"),
            (None, Activity::NonePublished) => "No model has been published yet; typed search works.".into(),
            (None, Activity::Failed { why }) => format!("Speech model unavailable: {why}"),
        };
        if let (Some(_), Activity::Downloading { version, .. }) = (&self.active, &self.activity) {
            text += &format!(" Downloading update {version}…");
        }
        if self.offline {
            text += " Offline: using the stored copy.";
        }
        if let Some(why) = &self.manifest_refused {
            text += &format!(" The published model list was refused: {why}.");
            if self.active.is_some() {
                text += " The current model keeps working.";
            }
        }
        if !self.refused.is_empty() {
            text += &format!(" Refused: {}", self.refused.join("; "));
        }
        text
    }

    /// Download progress in `0..=1` while downloading.
    pub fn progress(&self) -> Option<f64> {
        match self.activity {
            Activity::Downloading { loaded, total, .. } if total > 0 => Some((loaded as f64 / total as f64).min(1.0)),
            _ => None,
        }
    }
}

/// A recognised utterance. Features (when asked for) travel beside it,
/// `frames × feature_mels`, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recognized {
    pub id: u32,
    pub text: String,
    /// Words with their confidence in `0..=1`.
    pub words: Vec<(String, f32)>,
    pub confidence: f32,
    pub audio_s: f32,
    /// Time spent in the worker by stage (`timings.total_ms()`: all of it).
    pub timings: Timings,
    pub model_version: String,
    pub backend: Backend,
    /// Bands of the features travelling beside the answer (recordings level only).
    pub feature_mels: Option<u32>,
    /// How the utterance sounded (with consent only).
    pub summary: Option<Summary>,
}

/// Where a recognition's time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub features_ms: f64,
    pub model_ms: f64,
    pub search_ms: f64,
}

impl Timings {
    /// Audio in, words out.
    pub fn total_ms(&self) -> f64 {
        self.features_ms + self.model_ms + self.search_ms
    }
}

/// A message with its optional samples, as posted: `{msg, samples?}` and the
/// transfer list that moves the samples' buffer instead of copying it.
pub fn encode<T: Serialize>(msg: &T, samples: Option<&[f32]>) -> Result<(JsValue, js_sys::Array), String> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    let value = msg.serialize(&serializer).map_err(|e| e.to_string())?;
    let envelope = js_sys::Object::new();
    let transfer = js_sys::Array::new();
    let set = |key: &str, v: &JsValue| js_sys::Reflect::set(&envelope, &key.into(), v).map(|_| ());
    set("msg", &value).map_err(|e| format!("{e:?}"))?;
    if let Some(samples) = samples {
        let array = js_sys::Float32Array::from(samples);
        transfer.push(&array.buffer());
        set("samples", &array).map_err(|e| format!("{e:?}"))?;
    }
    Ok((envelope.into(), transfer))
}

/// The inverse of [`encode`]; names what was wrong with a malformed message.
pub fn decode<T: for<'de> Deserialize<'de>>(data: &JsValue) -> Result<(T, Option<Vec<f32>>), String> {
    let msg = js_sys::Reflect::get(data, &"msg".into()).map_err(|e| format!("message has no `msg`: {e:?}"))?;
    let msg = serde_wasm_bindgen::from_value(msg).map_err(|e| format!("malformed message: {e}"))?;
    let samples = js_sys::Reflect::get(data, &"samples".into())
        .ok()
        .and_then(|s| s.dyn_into::<js_sys::Float32Array>().ok())
        .map(|a| a.to_vec());
    Ok((msg, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(version: &str) -> ModelStatus {
        ModelStatus {
            active: Some(ActiveModel {
                version: version.into(),
                metrics: BTreeMap::new(),
                replaced: None,
                from_cache: false,
            }),
            activity: Activity::Idle,
            ..Default::default()
        }
    }

    #[test]
    fn states_follow_the_active_model_first() {
        assert_eq!(ModelStatus::default().state(), "loading");
        let mut s = ready("0.2.0");
        s.activity = Activity::Downloading { version: "0.3.0".into(), loaded: 5, total: 10 };
        assert_eq!(s.state(), "ready");
        assert_eq!(s.progress(), Some(0.5));
        assert!(s.describe().starts_with("Model 0.2.0 is ready."), "{}", s.describe());
        assert!(s.describe().contains("Downloading update 0.3.0"), "{}", s.describe());
        let failed = ModelStatus { activity: Activity::Failed { why: "HTTP 404".into() }, ..Default::default() };
        assert_eq!(failed.state(), "failed");
    }

    #[test]
    fn a_refused_manifest_is_told_and_the_running_model_named_as_kept() {
        let mut s = ready("0.7.0");
        s.manifest_refused = Some("its signature by key ab12 does not match its content".into());
        let text = s.describe();
        assert!(text.starts_with("Model 0.7.0 is ready."), "{text}");
        assert!(text.contains("The published model list was refused: its signature by key ab12"), "{text}");
        assert!(text.ends_with("The current model keeps working."), "{text}");
        let first = ModelStatus { manifest_refused: Some("it is not signed".into()), ..Default::default() };
        assert!(!first.describe().contains("keeps working"), "{}", first.describe());
    }

    #[test]
    fn refusals_and_swaps_are_told() {
        let mut s = ready("0.3.0");
        s.active.as_mut().unwrap().replaced = Some("0.2.0".into());
        s.refused.push("model 0.4.0 was not loaded: sha256 mismatch".into());
        let text = s.describe();
        assert!(text.contains("Updated from 0.2.0 without a reload"), "{text}");
        assert!(text.contains("Refused: model 0.4.0 was not loaded"), "{text}");
    }
}
