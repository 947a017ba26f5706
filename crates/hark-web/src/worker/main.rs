//! hark's recognition worker: a dedicated Web Worker that owns the model.
//!
//! It answers the page's [`ToWorker`] messages with [`FromWorker`] ones (the
//! protocol is in the `hark_web` library): on `Start` it probes WebGPU, loads
//! a model through the [`manager`] and schedules update checks; on
//! `Recognize` it runs features → acoustic model → beam search. Decoding
//! here keeps the page's main thread free for the UI.

mod gpu;
mod manager;

use std::cell::{Cell, RefCell};

use hark_recognizer::MAX_SEGMENT_S;
use hark_web::{
    EngineStatus, FromWorker, GpuProbe, ModelStatus, Recognized, Settings, Timings, ToWorker, decode, encode,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::manager::{Loaded, Manager, Outcome};

thread_local! {
    static ACTIVE: RefCell<Option<Loaded>> = const { RefCell::new(None) };
    /// `None` while a check runs (one at a time).
    static MANAGER: RefCell<Option<Manager>> = RefCell::new(Some(Manager::default()));
    static BUCKET: Cell<u8> = const { Cell::new(0) };
}

fn main() {
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
    post(&FromWorker::Engine(EngineStatus { gpu: GpuProbe::Checking, active: cpu_engine() }), None);
    // The model first (the person is waiting for it), the adapter probe after.
    check_for_updates().await;
    let gpu = gpu::probe().await;
    post(&FromWorker::Engine(EngineStatus { gpu, active: cpu_engine() }), None);
    if settings.update_minutes > 0.0 {
        let millis = (settings.update_minutes * 60_000.0).clamp(1_000.0, i32::MAX as f64) as u32;
        gloo_timers::callback::Interval::new(millis, || spawn_local(check_for_updates())).forget();
    }
}

/// Recognition runs on Burn's CPU backend compiled to WebAssembly. WebGPU is
/// probed and reported, but this build carries no WebGPU kernels: on the
/// machines measured, the CPU path was the faster of the two for this model.
fn cpu_engine() -> String {
    "CPU (WebAssembly) in a background worker".into()
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
    }
    MANAGER.with(|m| *m.borrow_mut() = Some(manager));
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
                backend: "cpu".into(),
                feature_mels: mels.filter(|_| share_features),
            };
            let shared = share_features.then_some(features.as_slice());
            post(&FromWorker::Transcript(recognized), shared);
        }
        Err(e) => post(&FromWorker::Failed { id, error: format!("Recognition failed: {e}") }, None),
    }
}
