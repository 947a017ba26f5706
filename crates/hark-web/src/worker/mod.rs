//! hark's recognition worker: a dedicated Web Worker that owns the model.
//!
//! One source, two programs: `hark-worker` runs the model on Burn's `flex`
//! CPU backend; `hark-worker-gpu` (cargo feature `webgpu`) also holds a copy
//! on Burn's WebGPU backend, and the page says which to use. It answers the
//! page's [`ToWorker`] messages with [`FromWorker`] ones (the protocol is in
//! the `hark_web` library): on `Start` it acquires its devices, loads a model
//! through the [`manager`], runs a warm-up benchmark on each backend (the
//! page picks the faster with it) and schedules update checks; on
//! `Recognize` it runs features → acoustic model → beam search. When the GPU
//! fails (device lost) it drops the GPU copy, says so, and recognises on the
//! CPU. Decoding here keeps the page's main thread free for the UI.

mod manager;

use std::cell::RefCell;

use crate::{
    BENCHMARK_AUDIO_S, Backend, FromWorker, ModelStatus, Recognized, Settings, Timings, ToWorker, decode, encode,
};
use burn::tensor::Device;
use futures::channel::oneshot;
use hark_decode::Transcript;
use hark_recognizer::{MAX_SEGMENT_SAMPLES, Recognizer};
use hark_telemetry::v2::{ConsentLevel, Summary};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use self::manager::{Loaded, Manager, Outcome};

/// Everything the worker keeps between messages: its one owner of state.
/// Reached only through [`state`], whose borrow never spans an `await`.
#[derive(Default)]
struct WorkerState {
    /// The model on the CPU: always there once a model loaded (taken out
    /// while it serves an utterance).
    cpu: Option<Loaded>,
    /// The same model on the GPU (`hark-worker-gpu` only); empty while it
    /// warms up and after the device failed.
    gpu: Option<Loaded>,
    /// The WebGPU device, until it fails.
    gpu_device: Option<Device>,
    /// `None` before `Start` and while a check runs (one at a time).
    manager: Option<Manager>,
    /// This install's rollout bucket (`0..100`).
    bucket: u8,
    /// A CPU model exists or is being made ready: an utterance that finds
    /// the CPU slot empty waits for it (it is warming up, or serving
    /// another utterance) instead of failing.
    cpu_expected: bool,
    /// Those waiting: woken whenever a model goes (back) into the CPU slot.
    cpu_waiters: Vec<oneshot::Sender<()>>,
    /// Backends whose first model was benchmarked.
    benchmarked: Vec<Backend>,
}

impl WorkerState {
    fn slot(&mut self, backend: Backend) -> &mut Option<Loaded> {
        match backend {
            Backend::Cpu => &mut self.cpu,
            Backend::Webgpu => &mut self.gpu,
        }
    }
}

thread_local! {
    static STATE: RefCell<WorkerState> = RefCell::new(WorkerState::default());
}

/// Runs `f` on the worker's state. Synchronous by construction: no borrow
/// of the state can be held across an `await`.
fn state<T>(f: impl FnOnce(&mut WorkerState) -> T) -> T {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// Puts `loaded` into `backend`'s slot — when `replace`, over what is there;
/// else only into an empty slot (a model swapped in meanwhile is newer and
/// wins) — and wakes the utterances waiting for the CPU model.
fn put_model(backend: Backend, loaded: Loaded, replace: bool) {
    let waiters = state(|s| {
        let slot = s.slot(backend);
        if replace || slot.is_none() {
            *slot = Some(loaded);
        }
        // All wake; one takes the model and the others wait again.
        if backend == Backend::Cpu { std::mem::take(&mut s.cpu_waiters) } else { Vec::new() }
    });
    for waiter in waiters {
        let _ = waiter.send(());
    }
}

/// The browser's WebGPU device, in the program built with it.
async fn acquire_gpu() -> Option<Result<Device, String>> {
    #[cfg(feature = "webgpu")]
    {
        Some(Device::wgpu_options().init_async().await.map_err(|e| format!("WebGPU device: {e}")))
    }
    #[cfg(not(feature = "webgpu"))]
    {
        None
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
        Ok((ToWorker::Recognize { id, share, backend, device_rate }, Some(samples))) => {
            spawn_local(recognize(id, samples, share, device_rate, backend))
        }
        Ok((ToWorker::Recognize { id, .. }, None)) => {
            let error = "the page sent no audio to recognise".into();
            post(&FromWorker::Failed { id, error, backend: None, model_version: None, audio_s: 0.0 }, None)
        }
        Err(e) => web_sys::console::error_1(&format!("hark worker: {e}").into()),
    }
}

async fn start(settings: Settings) {
    // Weights are always read on the CPU (see `Recognizer::new`). The CPU
    // copy first: the person is waiting for "ready".
    state(|s| {
        s.bucket = settings.rollout_bucket;
        s.manager = Some(Manager::new(Device::flex()));
    });
    check_for_updates().await;
    // Then the GPU, and a copy of the model on it.
    match acquire_gpu().await {
        Some(Ok(device)) => {
            state(|s| s.gpu_device = Some(device.clone()));
            let copy = with_model(Backend::Cpu, async |loaded: &mut Loaded| gpu_copy(loaded, &device)).await;
            if let Some(copy) = copy {
                swap_in(Backend::Webgpu, copy).await;
            }
        }
        Some(Err(why)) => post(&FromWorker::Unavailable { backend: Backend::Webgpu, why }, None),
        None => {}
    }
    if settings.update_minutes > 0.0 {
        let millis = (settings.update_minutes * 60_000.0).clamp(1_000.0, i32::MAX as f64) as u32;
        gloo_timers::callback::Interval::new(millis, || spawn_local(check_for_updates())).forget();
    }
}

async fn check_for_updates() {
    let Some((mut manager, active, bucket)) =
        state(|s| Some((s.manager.take()?, s.cpu.as_ref().map(|l| l.entry.clone()), s.bucket)))
    else {
        return;
    };
    let report = |status: &ModelStatus| post(&FromWorker::Model(status.clone()), None);
    let outcome = manager.check(active.as_ref(), bucket, &report).await;
    let Outcome::Swap(mut loaded) = outcome else {
        state(|s| s.manager = Some(manager));
        return;
    };
    // A worker's first model was made ready without the language model (it
    // takes a few hundred ms to build): build it now, before the model
    // serves — no utterance can have ended yet.
    if !manager.decoder_built() {
        let mut decoder = manager.decoder();
        // Names the app cannot use: the model still serves, without them
        // (the lexicon and general LM are in).
        if let Err(why) = loaded.extras.apply(&mut decoder) {
            web_sys::console::warn_1(
                &format!("model {}: its names were not added: {why}", loaded.entry.version).into(),
            );
        }
        *loaded.recognizer.decoder_mut() = decoder;
    }
    let on_gpu = state(|s| {
        s.manager = Some(manager);
        s.cpu_expected = true;
        s.gpu_device.clone()
    })
    .map(|device| gpu_copy(&loaded, &device));
    // The CPU copy first: it is quick to warm up, and serves while the GPU
    // copy warms up.
    swap_in(Backend::Cpu, *loaded).await;
    if let Some(gpu) = on_gpu {
        swap_in(Backend::Webgpu, gpu).await;
    }
}

/// `loaded`'s model (weights, decoder) on the GPU `device`.
fn gpu_copy(loaded: &Loaded, device: &Device) -> Loaded {
    Loaded {
        entry: loaded.entry.clone(),
        recognizer: loaded.recognizer.on_device(device),
        extras: loaded.extras.clone(),
    }
}

/// Warms `loaded` up, benchmarks it if it is `backend`'s first model, and
/// makes it `backend`'s model: the next utterance uses it, one being decoded
/// finishes on the old one (hot swap).
async fn swap_in(backend: Backend, mut loaded: Loaded) {
    let benchmark = state(|s| {
        let first = !s.benchmarked.contains(&backend);
        if first {
            s.benchmarked.push(backend);
        }
        first
    });
    // One recognition of silence first, so the person's first utterance
    // (and the benchmark) does not pay for first-use allocation, shader
    // compilation and code warm-up.
    let warm = run_once(&mut loaded.recognizer, &vec![0.0; hark_dsp::SAMPLE_RATE as usize]).await;
    let timed = match (warm.transcript, benchmark) {
        (Err(why), _) => Some(Err(why)),
        (Ok(_), true) => Some(time_three_runs(&mut loaded.recognizer, &benchmark_audio()).await),
        (Ok(_), false) => None,
    };
    match timed {
        Some(Err(why)) if backend == Backend::Webgpu => return gpu_failed(why),
        Some(Err(why)) => post(&FromWorker::Unavailable { backend, why }, None),
        Some(Ok(ms)) => post(&FromWorker::Benchmark { backend, ms }, None),
        None => {}
    }
    put_model(backend, loaded, true);
}

/// The GPU failed: drop its device and model for good and tell the page,
/// which moves to the CPU.
fn gpu_failed(why: String) {
    state(|s| {
        s.gpu_device = None;
        s.gpu = None;
    });
    post(&FromWorker::Unavailable { backend: Backend::Webgpu, why }, None);
}

/// [`BENCHMARK_AUDIO_S`] of deterministic low-level noise: the beam search
/// does real work on it, unlike on silence.
fn benchmark_audio() -> Vec<f32> {
    let n = (BENCHMARK_AUDIO_S * hark_dsp::SAMPLE_RATE as f64) as usize;
    let mut state = 0x2545_f491u32;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32 - 0.5) * 0.02
        })
        .collect()
}

/// The median time of three recognitions of `audio`, in milliseconds.
async fn time_three_runs(recognizer: &mut Recognizer, audio: &[f32]) -> Result<f64, String> {
    let mut times = Vec::new();
    for _ in 0..3 {
        let run = run_once(recognizer, audio).await;
        run.transcript?;
        times.push(run.timings.total_ms());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// One recognition and where its time went.
struct Run {
    transcript: Result<Transcript, String>,
    features: Vec<f32>,
    frames: usize,
    summary: Option<hark_dsp::FeatureSummary>,
    timings: Timings,
}

/// Features → acoustic model (awaited: WebGPU reads are asynchronous) →
/// beam search.
async fn run_once(recognizer: &mut Recognizer, samples: &[f32]) -> Run {
    let started = now_ms();
    let (features, frames, summary) = recognizer.features_with_summary(samples);
    let featured = now_ms();
    let log_probs = recognizer.log_probs_async(&features, frames).await;
    let modelled = now_ms();
    let transcript = log_probs.map(|lp| recognizer.decode(&lp)).map_err(|e| e.to_string());
    let searched = now_ms();
    let timings =
        Timings { features_ms: featured - started, model_ms: modelled - featured, search_ms: searched - modelled };
    Run { transcript, features, frames, summary, timings }
}

/// Runs `work` on `backend`'s model, taken out of its slot for the time (a
/// `RefCell` borrow cannot be held across the awaits of GPU reads) and put
/// back after, unless a model was swapped in meanwhile: the newer one wins.
/// `None` when that backend has no model.
async fn with_model<T>(backend: Backend, work: impl AsyncFnOnce(&mut Loaded) -> T) -> Option<T> {
    let mut loaded = take_model(backend).await?;
    let out = work(&mut loaded).await;
    put_model(backend, loaded, false);
    Some(out)
}

/// `backend`'s model out of its slot. An empty CPU slot while a CPU model
/// is expected means it is warming up or serving another utterance: wait
/// for it (up to 10 s; [`put_model`] wakes the waiters). The GPU is not
/// waited for: the CPU serves instead.
async fn take_model(backend: Backend) -> Option<Loaded> {
    let deadline = now_ms() + 10_000.0;
    loop {
        let left = deadline - now_ms();
        let wait = state(|s| {
            if let Some(loaded) = s.slot(backend).take() {
                return Err(Some(loaded));
            }
            if backend == Backend::Webgpu || !s.cpu_expected || left <= 0.0 {
                return Err(None);
            }
            let (woken, wait) = oneshot::channel();
            s.cpu_waiters.push(woken);
            Ok(wait)
        });
        let wait = match wait {
            Ok(wait) => wait,
            Err(loaded) => return loaded,
        };
        futures::future::select(wait, gloo_timers::future::TimeoutFuture::new(left.ceil() as u32)).await;
    }
}

/// Recognises one utterance; with consent (`share`) the answer carries the
/// feature summary, and under the recordings level the features too.
async fn recognize(id: u32, samples: Vec<f32>, share: Option<ConsentLevel>, device_rate: u32, asked: Backend) {
    // The endpointer bounds utterances; cut anything longer rather than
    // run the model on minutes of audio.
    let samples = &samples[..samples.len().min(MAX_SEGMENT_SAMPLES)];
    let attempt = async |backend| {
        with_model(backend, async |loaded: &mut Loaded| {
            (run_once(&mut loaded.recognizer, samples).await, loaded.entry.version.to_string())
        })
        .await
    };
    let mut backend = asked;
    let mut outcome = attempt(backend).await;
    let gpu_error = match &outcome {
        Some((run, _)) if backend == Backend::Webgpu => run.transcript.as_ref().err().cloned(),
        _ => None,
    };
    if gpu_error.is_some() || outcome.is_none() {
        // No GPU copy (never made, still warming up, or failed): the CPU's.
        if let Some(why) = gpu_error {
            gpu_failed(why);
        }
        backend = Backend::Cpu;
        outcome = attempt(backend).await;
    }
    let audio_s = samples.len() as f32 / hark_dsp::SAMPLE_RATE as f32;
    let Some((run, model_version)) = outcome else {
        let error = "No speech model is loaded yet; type your search.".into();
        return post(&FromWorker::Failed { id, error, backend: Some(backend), model_version: None, audio_s }, None);
    };
    match run.transcript {
        Ok(t) => {
            let mels = (run.frames > 0).then(|| (run.features.len() / run.frames) as u32);
            let share_features = share == Some(ConsentLevel::Recordings);
            let recognized = Recognized {
                id,
                text: t.text,
                words: t.words.into_iter().map(|w| (w.text, w.confidence)).collect(),
                confidence: t.confidence,
                audio_s,
                timings: run.timings,
                model_version,
                backend,
                feature_mels: mels.filter(|_| share_features),
                summary: share.and(run.summary.as_ref()).map(|s| Summary::new(s, device_rate)),
            };
            let shared = share_features.then_some(run.features.as_slice());
            post(&FromWorker::Transcript(recognized), shared);
        }
        Err(e) => {
            let error = format!("Recognition failed: {e}");
            let model_version = Some(model_version);
            post(&FromWorker::Failed { id, error, backend: Some(backend), model_version, audio_s }, None)
        }
    }
}
