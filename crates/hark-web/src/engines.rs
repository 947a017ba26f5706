//! The page's recognition engine: one Web Worker. Where the browser offers
//! a WebGPU adapter it is `hark-worker-gpu`, which holds the model on the
//! CPU and on the GPU and reports a warm-up benchmark for each; the faster
//! one recognises (or the one the person forced with `?backend=`; the rule
//! is [`hark_web::choice`]). Elsewhere it is the smaller CPU-only
//! `hark-worker`. When the GPU fails (a lost device) the worker says so and
//! recognises on the CPU; when the GPU worker itself dies, the page starts
//! the CPU worker and sends it the utterance in flight — no reload either way.

use hark_telemetry::v2::ConsentLevel;
use hark_web::{Backend, FromWorker, Settings, ToWorker};
use leptos::prelude::*;

use crate::client::Client;

/// An utterance to recognise.
#[derive(Debug, Clone)]
pub struct Utterance {
    pub id: u32,
    /// 16 kHz samples.
    pub samples: Vec<f32>,
    /// What the person shares (the worker adds the summary, or features).
    pub share: Option<ConsentLevel>,
    /// The microphone's own rate.
    pub device_rate: u32,
}

/// The running worker and the utterance last sent to it (kept to send it
/// again if the worker dies).
#[derive(Default)]
struct Engine {
    worker: Option<(Backend, Client)>,
    last: Option<Utterance>,
    /// Terminated clients: kept so that no closure of theirs is dropped
    /// while it runs.
    retired: Vec<Client>,
}

/// The page's handle on its engine (one per page, made by the app).
#[derive(Clone, Copy)]
pub struct Engines(StoredValue<Engine, LocalStorage>);

impl Engines {
    pub fn new() -> Self {
        Self(StoredValue::new_local(Engine::default()))
    }

    /// Starts the worker program for `backend` (stopping one running before);
    /// `on_event` gets its messages.
    pub fn start(
        self,
        backend: Backend,
        on_event: impl Fn(FromWorker, Option<Vec<f32>>) + 'static,
        on_error: impl Fn(Backend, String) + Clone + 'static,
    ) {
        let report = on_error.clone();
        match Client::spawn(backend, on_event, move |e| report(backend, e)) {
            Ok(client) => {
                client.send(ToWorker::Start(settings()), None);
                self.0.update_value(|e| {
                    if let Some((_, old)) = e.worker.replace((backend, client)) {
                        old.terminate();
                        e.retired.push(old);
                    }
                });
            }
            Err(e) => on_error(backend, format!("{e:?}")),
        }
    }

    /// The worker program running, if any.
    pub fn program(self) -> Option<Backend> {
        self.0.try_with_value(|e| e.worker.as_ref().map(|(b, _)| *b)).flatten()
    }

    /// Sends an utterance to the worker, asking for `backend`.
    pub fn recognize(self, backend: Backend, utterance: Utterance) {
        self.0.update_value(|e| {
            if let Some((_, client)) = &e.worker {
                let Utterance { id, share, device_rate, .. } = utterance;
                client.send(ToWorker::Recognize { id, share, device_rate, backend }, Some(utterance.samples.clone()));
            }
            e.last = Some(utterance);
        });
    }

    /// The utterance last sent, taken (to send again after a worker died).
    pub fn take_last(self) -> Option<Utterance> {
        self.0.try_update_value(|e| e.last.take()).flatten()
    }

    /// Sends `msg` to the worker.
    pub fn send(self, msg: ToWorker) {
        self.0.try_with_value(|e| {
            if let Some((_, client)) = &e.worker {
                client.send(msg, None);
            }
        });
    }
}

fn settings() -> Settings {
    Settings {
        update_minutes: crate::settings::update_minutes(),
        rollout_bucket: crate::settings::rollout_bucket(),
        backend: crate::settings::backend(),
    }
}
