//! The page's recognition engines: the CPU worker, always started, and the
//! WebGPU worker, started when the browser offers an adapter. Each loads the
//! model and reports a warm-up benchmark; the faster one recognises (or the
//! one the person forced with `?backend=`). When the WebGPU engine fails (a
//! lost device), the page moves to the CPU without a reload and the
//! utterance in flight is recognised again there.

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
            (Some(c), Some(g)) => {
                text += &format!(", {by}: CPU {c:.0} ms, WebGPU {g:.0} ms per 3 s of audio.")
            }
            (Some(c), None) if self.gpu_failure.is_none() => text += &format!(" (warm-up: {c:.0} ms per 3 s of audio)."),
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
        _ => choice.active,
    }
}

#[derive(Default)]
struct Engines {
    cpu: Option<Client>,
    gpu: Option<Client>,
    active: Option<Backend>,
    /// The utterance last sent, kept to retry it on the CPU if WebGPU fails.
    last: Option<(u32, Vec<f32>, bool)>,
}

thread_local! {
    static ENGINES: RefCell<Engines> = RefCell::new(Engines::default());
}

pub fn settings() -> Settings {
    Settings {
        update_minutes: crate::settings::update_minutes(),
        rollout_bucket: crate::settings::rollout_bucket(),
        backend: crate::settings::backend(),
    }
}

/// Starts `backend`'s worker; `on_event` gets its messages tagged with it.
pub fn start(
    backend: Backend,
    on_event: impl Fn(Backend, FromWorker, Option<Vec<f32>>) + 'static,
    on_error: impl Fn(Backend, String) + Clone + 'static,
) {
    let report = on_error.clone();
    let client = Client::spawn(backend, move |m, s| on_event(backend, m, s), move |e| report(backend, e));
    match client {
        Ok(client) => {
            client.send(ToWorker::Start(settings()), None);
            ENGINES.with(|e| {
                let mut e = e.borrow_mut();
                match backend {
                    Backend::Cpu => e.cpu = Some(client),
                    Backend::Webgpu => e.gpu = Some(client),
                }
            });
        }
        Err(e) => on_error(backend, format!("{e:?}")),
    }
}

pub fn is_started(backend: Backend) -> bool {
    ENGINES.with(|e| match backend {
        Backend::Cpu => e.borrow().cpu.is_some(),
        Backend::Webgpu => e.borrow().gpu.is_some(),
    })
}

/// Routes recognition to `backend`; an unused WebGPU worker is stopped.
pub fn activate(backend: Backend) {
    ENGINES.with(|e| {
        let mut e = e.borrow_mut();
        e.active = Some(backend);
        if backend == Backend::Cpu && crate::settings::backend() != BackendPreference::Webgpu {
            if let Some(gpu) = e.gpu.take() {
                gpu.terminate();
            }
        }
    });
}

/// WebGPU failed: stop its worker, use the CPU, and return the utterance
/// that was in flight on it (to recognise again).
pub fn drop_gpu() -> Option<(u32, Vec<f32>, bool)> {
    ENGINES.with(|e| {
        let mut e = e.borrow_mut();
        if let Some(gpu) = e.gpu.take() {
            gpu.terminate();
        }
        let was_gpu = e.active == Some(Backend::Webgpu);
        e.active = Some(Backend::Cpu);
        if was_gpu { e.last.take() } else { None }
    })
}

/// Sends an utterance to the active engine.
pub fn recognize(id: u32, samples: Vec<f32>, share_features: bool) {
    ENGINES.with(|e| {
        let mut e = e.borrow_mut();
        let target = if e.active == Some(Backend::Webgpu) { e.gpu.as_ref() } else { e.cpu.as_ref() };
        if let Some(client) = target {
            client.send(ToWorker::Recognize { id, share_features }, Some(samples.clone()));
        }
        e.last = Some((id, samples, share_features));
    });
}

/// Sends `msg` to every running engine.
pub fn broadcast(msg: ToWorker) {
    ENGINES.with(|e| {
        let e = e.borrow();
        for client in [e.cpu.as_ref(), e.gpu.as_ref()].into_iter().flatten() {
            client.send(msg.clone(), None);
        }
    });
}

pub fn active() -> Option<Backend> {
    ENGINES.with(|e| e.borrow().active)
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
    }
}
