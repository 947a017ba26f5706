//! The page's recognition engine: one Web Worker. Where the browser offers
//! a WebGPU adapter it is `hark-worker-gpu`, which holds the model on the
//! CPU and on the GPU and reports a warm-up benchmark for each; the faster
//! one recognises (or the one the person forced with `?backend=`). Elsewhere
//! it is the smaller CPU-only `hark-worker`. When the GPU fails (a lost
//! device) the worker says so and recognises on the CPU; when the GPU
//! worker itself dies, the page starts the CPU worker and sends it the
//! utterance in flight — no reload either way.

use std::cell::RefCell;

use hark_web::{Backend, BackendPreference, FromWorker, Settings, ToWorker};

use crate::client::Client;

/// What the person sees about the engine choice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choice {
    /// The engine recognising now; `None` until one has a model.
    pub active: Option<Backend>,
    pub cpu_ms: Option<f64>,
    pub gpu_ms: Option<f64>,
    /// Why WebGPU is not used, when it was tried and failed.
    pub gpu_failure: Option<String>,
    /// The person chose the engine (`?backend=`) rather than the benchmark.
    pub forced: bool,
}

impl Choice {
    pub fn describe(&self) -> String {
        let Some(active) = self.active else { return "Starting the recognition engine…".into() };
        let mut text = format!("{} in a background worker", active.describe());
        let by = if self.forced { "as asked (?backend=)" } else { "chosen by a warm-up benchmark" };
        match (self.cpu_ms, self.gpu_ms) {
            (Some(c), Some(g)) => text += &format!(", {by}: CPU {c:.0} ms, WebGPU {g:.0} ms per 3 s of audio."),
            (Some(c), None) if self.gpu_failure.is_none() => {
                text += &format!(" (warm-up: {c:.0} ms per 3 s of audio).")
            }
            (None, Some(g)) => text += &format!(" (warm-up: {g:.0} ms per 3 s of audio)."),
            _ => text += ".",
        }
        if let Some(why) = &self.gpu_failure {
            text += &format!(" WebGPU is not used: {why}");
        }
        text
    }
}

/// The engine to use given the benchmarks so far.
pub fn choose(preference: BackendPreference, choice: &Choice) -> Option<Backend> {
    let gpu_ok = choice.gpu_failure.is_none();
    match (preference, choice.cpu_ms, choice.gpu_ms) {
        (BackendPreference::Webgpu, _, Some(_)) if gpu_ok => Some(Backend::Webgpu),
        (BackendPreference::Auto, Some(c), Some(g)) if gpu_ok && g < c => Some(Backend::Webgpu),
        (_, Some(_), _) => Some(Backend::Cpu),
        // Only WebGPU has a model so far (the CPU one comes soon).
        (BackendPreference::Auto | BackendPreference::Webgpu, None, Some(_)) if gpu_ok => Some(Backend::Webgpu),
        // WebGPU failed before the CPU engine had a model: it will have one.
        _ if !gpu_ok => Some(Backend::Cpu),
        _ => choice.active,
    }
}

/// The running worker and the utterance last sent to it (kept to send it
/// again if the worker dies).
#[derive(Default)]
struct Engine {
    worker: Option<(Backend, Client)>,
    last: Option<Utterance>,
}

/// An utterance to recognise: its id, 16 kHz samples, and whether the
/// worker should send its features back (for opted-in telemetry).
pub type Utterance = (u32, Vec<f32>, bool);

thread_local! {
    static ENGINE: RefCell<Engine> = RefCell::new(Engine::default());
}

pub fn settings() -> Settings {
    Settings {
        update_minutes: crate::settings::update_minutes(),
        rollout_bucket: crate::settings::rollout_bucket(),
        backend: crate::settings::backend(),
    }
}

/// Starts the worker program for `backend` (stopping one running before);
/// `on_event` gets its messages.
pub fn start(
    backend: Backend,
    on_event: impl Fn(FromWorker, Option<Vec<f32>>) + 'static,
    on_error: impl Fn(Backend, String) + Clone + 'static,
) {
    let report = on_error.clone();
    match Client::spawn(backend, on_event, move |e| report(backend, e)) {
        Ok(client) => {
            client.send(ToWorker::Start(settings()), None);
            let old = ENGINE.with(|e| e.borrow_mut().worker.replace((backend, client)));
            if let Some((_, old)) = old {
                old.terminate();
            }
        }
        Err(e) => on_error(backend, format!("{e:?}")),
    }
}

/// The worker program running, if any.
pub fn program() -> Option<Backend> {
    ENGINE.with(|e| e.borrow().worker.as_ref().map(|(b, _)| *b))
}

/// Sends an utterance to the worker, asking for `backend`.
pub fn recognize(backend: Backend, (id, samples, share_features): Utterance) {
    ENGINE.with(|e| {
        let mut e = e.borrow_mut();
        if let Some((_, client)) = &e.worker {
            client.send(ToWorker::Recognize { id, share_features, backend }, Some(samples.clone()));
        }
        e.last = Some((id, samples, share_features));
    });
}

/// The utterance last sent, taken (to send again after a worker died).
pub fn take_last() -> Option<Utterance> {
    ENGINE.with(|e| e.borrow_mut().last.take())
}

/// Sends `msg` to the worker.
pub fn send(msg: ToWorker) {
    ENGINE.with(|e| {
        if let Some((_, client)) = &e.borrow().worker {
            client.send(msg, None);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(cpu: Option<f64>, gpu: Option<f64>) -> Choice {
        Choice { active: None, cpu_ms: cpu, gpu_ms: gpu, gpu_failure: None, forced: false }
    }

    #[test]
    fn the_faster_engine_wins_unless_the_person_chose() {
        assert_eq!(choose(BackendPreference::Auto, &choice(Some(60.0), Some(300.0))), Some(Backend::Cpu));
        assert_eq!(choose(BackendPreference::Auto, &choice(Some(60.0), Some(20.0))), Some(Backend::Webgpu));
        assert_eq!(choose(BackendPreference::Auto, &choice(Some(60.0), None)), Some(Backend::Cpu));
        assert_eq!(choose(BackendPreference::Webgpu, &choice(Some(60.0), Some(300.0))), Some(Backend::Webgpu));
        assert_eq!(choose(BackendPreference::Cpu, &choice(Some(60.0), Some(20.0))), Some(Backend::Cpu));
        let mut failed = choice(Some(60.0), Some(20.0));
        failed.gpu_failure = Some("device lost".into());
        assert_eq!(choose(BackendPreference::Webgpu, &failed), Some(Backend::Cpu));
        // WebGPU was recognising while the CPU engine still loaded, then failed.
        let mut early = choice(None, Some(20.0));
        early.active = Some(Backend::Webgpu);
        assert_eq!(choose(BackendPreference::Auto, &early), Some(Backend::Webgpu));
        early.gpu_failure = Some("device lost".into());
        assert_eq!(choose(BackendPreference::Auto, &early), Some(Backend::Cpu));
    }
}
