//! hark's recognition worker: a dedicated Web Worker that owns the model.
//!
//! One source, two programs: `hark-worker` runs the model on Burn's `flex`
//! CPU backend; `hark-worker-gpu` (cargo feature `webgpu`) on Burn's WebGPU
//! backend. It answers the page's [`ToWorker`] messages with [`FromWorker`]
//! ones (the protocol is in the `hark_web` library): on `Start` it acquires
//! its device, loads a model through the [`manager`], runs a warm-up
//! benchmark (the page picks the faster engine with it) and schedules update
//! checks; on `Recognize` it runs features → acoustic model → beam search.
//! Decoding here keeps the page's main thread free for the UI.

mod gpu;
mod manager;

use std::cell::{Cell, RefCell};

use burn::tensor::Device;
use hark_recognizer::MAX_SEGMENT_S;
use crate::{
    BENCHMARK_AUDIO_S, Backend, EngineStatus, FromWorker, GpuProbe, ModelStatus, Recognized, Settings, Timings,
    ToWorker, decode, encode,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use self::manager::{Loaded, Manager, Outcome};

#[cfg(not(feature = "webgpu"))]
const BACKEND: Backend = Backend::Cpu;
#[cfg(feature = "webgpu")]
const BACKEND: Backend = Backend::Webgpu;

thread_local! {
    static ACTIVE: RefCell<Option<Loaded>> = const { RefCell::new(None) };
    /// `None` before `Start` and while a check runs (one at a time).
    static MANAGER: RefCell<Option<Manager>> = const { RefCell::new(None) };
    static BUCKET: Cell<u8> = const { Cell::new(0) };
    static BENCHMARKED: Cell<bool> = const { Cell::new(false) };
}

/// This program's device: the CPU, or the browser's WebGPU adapter.
async fn acquire_device() -> Result<Device, String> {
    #[cfg(feature = "webgpu")]
    {
        Device::wgpu_options().init_async().await.map_err(|e| format!("WebGPU device: {e}"))
    }
    #[cfg(not(feature = "webgpu"))]
    {
        Ok(Device::flex())
    }
}

/// The worker program's entry point (`hark-worker`, `hark-worker-gpu`).
pub fn run() {
    console_error_panic_hook::set_once();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| handle(event.data()));
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as the page: so does its handler.
    on_message.forget();
    post(&FromWorker::Hello, None);
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// High-resolution clock (`performance.now()`), in milliseconds.
fn now_ms() -> f64 {
    scope().performance().map(|p| p.now()).unwrap_or_else(js_sys::Date::now)
}

fn post(msg: &FromWorker, samples: Option<&[f32]>) {
    match encode(msg, samples) {
        Ok((value, transfer)) => {
            if let Err(e) = scope().post_message_with_transfer(&value, &transfer) {
                web_sys::console::error_1(&e);
            }
        }
        Err(e) => web_sys::console::error_1(&format!("could not encode a message for the page: {e}").into()),
    }
}

fn handle(data: JsValue) {
    match decode::<ToWorker>(&data) {
        Ok((ToWorker::Start(settings), _)) => spawn_local(start(settings)),
        Ok((ToWorker::CheckForUpdates, _)) => spawn_local(check_for_updates()),
        Ok((ToWorker::Recognize { id, share_features }, Some(samples))) => {
            spawn_local(recognize(id, samples, share_features))
        }
        Ok((ToWorker::Recognize { id, .. }, None)) => {
            post(&FromWorker::Failed { id, error: "the page sent no audio to recognise".into() }, None)
        }
        Err(e) => web_sys::console::error_1(&format!("hark worker: {e}").into()),
    }
}

async fn start(settings: Settings) {
    BUCKET.set(settings.rollout_bucket);
    let device = match acquire_device().await {
        Ok(d) => d,
        Err(why) => return post(&FromWorker::Unavailable { backend: BACKEND, why }, None),
    };
    MANAGER.with(|m| *m.borrow_mut() = Some(Manager::new(device)));
    if BACKEND == Backend::Cpu {
        post(&FromWorker::Engine(EngineStatus { gpu: GpuProbe::Checking, active: String::new() }), None);
    }
    // The model first (the person is waiting for it), the adapter probe after.
    check_for_updates().await;
    if BACKEND == Backend::Cpu {
        let gpu = gpu::probe().await;
        post(&FromWorker::Engine(EngineStatus { gpu, active: String::new() }), None);
    }
    if settings.update_minutes > 0.0 {
        let millis = (settings.update_minutes * 60_000.0).clamp(1_000.0, i32::MAX as f64) as u32;
        gloo_timers::callback::Interval::new(millis, || spawn_local(check_for_updates())).forget();
    }
}

async fn check_for_updates() {
    let Some(mut manager) = MANAGER.with(|m| m.borrow_mut().take()) else { return };
    let active = ACTIVE.with(|a| a.borrow().as_ref().map(|l| l.entry.clone()));
    let report = |status: &ModelStatus| post(&FromWorker::Model(status.clone()), None);
    let outcome = manager.check(active.as_ref(), BUCKET.get(), &report).await;
    if let Outcome::Swap(mut loaded) = outcome {
        // One recognition of silence first, so the person's first utterance
        // does not pay for first-use allocation and code warm-up.
        let (features, frames) = loaded.recognizer.features(&vec![0.0; hark_dsp::SAMPLE_RATE as usize]);
        if let Ok(lp) = loaded.recognizer.log_probs_async(&features, frames).await {
            loaded.recognizer.decode(&lp);
        }
        // Hot swap: the next utterance uses the new model; one being decoded
        // finishes on the old one.
        ACTIVE.with(|a| *a.borrow_mut() = Some(*loaded));
        if !BENCHMARKED.replace(true) {
            benchmark().await;
        }
    }
    MANAGER.with(|m| *m.borrow_mut() = Some(manager));
}

/// Times recognition of [`BENCHMARK_AUDIO_S`] of noise three times (after
/// the warm-up run) and reports the median, for the page's engine choice.
async fn benchmark() {
    let Some(mut loaded) = ACTIVE.with(|a| a.borrow_mut().take()) else { return };
    let n = (BENCHMARK_AUDIO_S * hark_dsp::SAMPLE_RATE as f64) as usize;
    // Deterministic low-level noise: the search does real work on it.
    let mut state = 0x2545_f491u32;
    let audio: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32 - 0.5) * 0.02
        })
        .collect();
    let mut times = Vec::new();
    let mut failure = None;
    for _ in 0..3 {
        let started = now_ms();
        let (features, frames) = loaded.recognizer.features(&audio);
        match loaded.recognizer.log_probs_async(&features, frames).await {
            Ok(lp) => {
                loaded.recognizer.decode(&lp);
                times.push(now_ms() - started);
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    ACTIVE.with(|a| {
        let mut slot = a.borrow_mut();
        if slot.is_none() {
            *slot = Some(loaded);
        }
    });
    match failure {
        Some(why) => post(&FromWorker::Unavailable { backend: BACKEND, why }, None),
        None => {
            times.sort_by(f64::total_cmp);
            post(&FromWorker::Benchmark { backend: BACKEND, ms: times[times.len() / 2] }, None);
        }
    }
}

async fn recognize(id: u32, samples: Vec<f32>, share_features: bool) {
    let started = now_ms();
    let Some(mut loaded) = ACTIVE.with(|a| a.borrow_mut().take()) else {
        return post(&FromWorker::Failed { id, error: "No speech model is loaded yet; type your search.".into() }, None);
    };
    // The endpointer bounds utterances; cut anything longer rather than
    // run the model on minutes of audio.
    let max = (MAX_SEGMENT_S * hark_dsp::SAMPLE_RATE as f64) as usize;
    let samples = &samples[..samples.len().min(max)];
    let (features, frames) = loaded.recognizer.features(samples);
    let featured = now_ms();
    let result = loaded.recognizer.log_probs_async(&features, frames).await;
    let modelled = now_ms();
    let transcript = result.map(|lp| loaded.recognizer.decode(&lp));
    let searched = now_ms();
    let timings =
        Timings { features_ms: featured - started, model_ms: modelled - featured, search_ms: searched - modelled };
    let model_version = loaded.entry.version.to_string();
    ACTIVE.with(|a| {
        let mut slot = a.borrow_mut();
        // A model swapped in meanwhile wins.
        if slot.is_none() {
            *slot = Some(loaded);
        }
    });
    match transcript {
        Ok(t) => {
            let mels = (frames > 0).then(|| (features.len() / frames) as u32);
            let recognized = Recognized {
                id,
                text: t.text,
                words: t.words.into_iter().map(|w| (w.text, w.confidence)).collect(),
                confidence: t.confidence,
                audio_s: samples.len() as f32 / hark_dsp::SAMPLE_RATE as f32,
                compute_ms: searched - started,
                timings,
                model_version,
                backend: BACKEND,
                feature_mels: mels.filter(|_| share_features),
            };
            let shared = share_features.then_some(features.as_slice());
            post(&FromWorker::Transcript(recognized), shared);
        }
        Err(e) => {
            post(&FromWorker::Failed { id, error: format!("Recognition failed: {e}") }, None);
            if BACKEND == Backend::Webgpu {
                // A lost or failing GPU device: the page moves to the CPU.
                post(&FromWorker::Unavailable { backend: BACKEND, why: e.to_string() }, None);
            }
        }
    }
}
