//! Opt-in prediction logs, the page's side. The rules — consent off keeps
//! nothing, recordings only under their own level, bounded, exactly once —
//! are [`Queue`]'s; this module gives it a durable copy in IndexedDB
//! ([`crate::durable`]), talks to the collector (`POST v1/events`, schema
//! 2, judged by [`hark_telemetry::delivery`]: backoff with jitter,
//! `Retry-After`, refused batches dropped and counted), flushes what is
//! final when the page is hidden or closed (`fetch` with `keepalive`,
//! under its 64 KB limit), and deletes what this install sent
//! (`DELETE v1/installs/{id}` with the install's secret).
//!
//! The person's choice lives in the queue (read by the settings panel, the
//! worker's "what to send back", and what is kept): one place.

use std::rc::Rc;

use futures::StreamExt;
use futures::channel::mpsc;
use hark_telemetry::delivery::{self, Verdict};
use hark_telemetry::v2::{self, Audio, ConsentLevel, Event, Word};
use hark_telemetry::{Features, MAX_FEATURE_FRAMES};
use hark_web::Recognized;
use hark_web::outbox::{Answer, Change, Consent, Counts, Limits, Planned, Queue};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::durable::Durable;
use crate::settings;

/// Event bytes in one ordinary batch (the collector takes 32 MB bodies).
const BATCH_BYTES: usize = 4 << 20;
/// Event bytes in a batch sent as the page goes away: `fetch(keepalive)`
/// allows 64 KB in flight, envelope included.
const KEEPALIVE_BYTES: usize = 56 << 10;
/// Longest recording shared (the collector's limit).
const MAX_AUDIO_SAMPLES: usize = (v2::MAX_AUDIO_S as usize) * v2::AUDIO_SAMPLE_RATE as usize;

/// The page's telemetry (one per page, made by the app).
#[derive(Clone, Copy)]
pub struct Telemetry {
    queue: StoredValue<Queue, LocalStorage>,
    /// Changes on their way to IndexedDB, applied in order by one task.
    durable: StoredValue<mpsc::UnboundedSender<Vec<Change>>, LocalStorage>,
    /// The recording of the utterance in flight (recordings level only).
    recording: StoredValue<Option<(u32, Vec<f32>)>, LocalStorage>,
    /// A batch is on its way (one at a time), and the retry timer.
    sending: StoredValue<bool, LocalStorage>,
    retry: StoredValue<Option<gloo_timers::callback::Timeout>, LocalStorage>,
    attempt: StoredValue<u32, LocalStorage>,
    /// What the settings panel shows.
    pub consent: RwSignal<Option<Consent>>,
    pub counts: RwSignal<Counts>,
    pub waiting: RwSignal<usize>,
    /// Why the last send failed, until one succeeds.
    pub note: RwSignal<Option<String>>,
    /// The outcome of "delete what I sent".
    pub deletion: RwSignal<Option<String>>,
}

impl Telemetry {
    /// With the choice stored on this device (off unless the person chose);
    /// reads what waits in IndexedDB and sends it.
    pub fn new() -> Self {
        let consent = settings::consent();
        let page = new_id();
        let queue = Queue::new(consent, &page, settings::counts(), Limits::default());
        let (tx, rx) = mpsc::unbounded();
        let telemetry = Self {
            queue: StoredValue::new_local(queue),
            durable: StoredValue::new_local(tx),
            recording: StoredValue::new_local(None),
            sending: StoredValue::new_local(false),
            retry: StoredValue::new_local(None),
            attempt: StoredValue::new_local(0),
            consent: RwSignal::new(consent),
            counts: RwSignal::new(settings::counts()),
            waiting: RwSignal::new(0),
            note: RwSignal::new(None),
            deletion: RwSignal::new(None),
        };
        spawn_local(telemetry.keep_durable(rx));
        telemetry.listen();
        telemetry
    }

    /// The level the person shares at, read without subscribing.
    pub fn level_untracked(self) -> Option<ConsentLevel> {
        self.consent.get_untracked().map(|c| c.level)
    }

    /// The one task that writes IndexedDB: first reads what an earlier
    /// visit left, then applies every change in order.
    async fn keep_durable(self, mut changes: mpsc::UnboundedReceiver<Vec<Change>>) {
        let durable = match Durable::open().await {
            Ok(d) => Rc::new(d),
            Err(e) => {
                // Private windows of some browsers: the queue lives in memory only.
                self.note.set(Some(format!("{e}; unsent logs will not survive a reload.")));
                while changes.next().await.is_some() {}
                return;
            }
        };
        match durable.load().await {
            Ok((stored, _unreadable)) => {
                let adopted = self.change(|q| q.adopt(stored));
                if let Err(e) = durable.apply(&adopted).await {
                    self.note.set(Some(e));
                }
                self.flush();
            }
            Err(e) => self.note.set(Some(e)),
        }
        while let Some(batch) = changes.next().await {
            if let Err(e) = durable.apply(&batch).await {
                self.note.set(Some(e));
            }
        }
    }

    /// Runs `f` on the queue; its changes go to IndexedDB, and the panel's
    /// figures follow.
    fn change(self, f: impl FnOnce(&mut Queue) -> Vec<Change>) -> Vec<Change> {
        let changes = self.queue.try_update_value(f).unwrap_or_default();
        if !changes.is_empty() {
            self.durable.with_value(|tx| {
                let _ = tx.unbounded_send(changes.clone());
            });
        }
        let (counts, waiting) = self.queue.with_value(|q| (q.counts(), q.len()));
        if counts != self.counts.get_untracked() {
            settings::set_counts(&counts);
            self.counts.set(counts);
        }
        self.waiting.set(waiting);
        changes
    }

    /// The person changed their choice: stored on this device; turning it
    /// off forgets at once everything not yet sent (here and in IndexedDB),
    /// lowering it forgets the recordings.
    pub fn set_consent(self, consent: Option<Consent>) {
        settings::set_consent(consent);
        self.consent.set(consent);
        self.change(|q| q.set_consent(consent));
        if consent.map(|c| c.level) != Some(ConsentLevel::Recordings) {
            self.recording.set_value(None);
        }
        if consent.is_none() {
            self.retry.set_value(None);
            self.note.set(None);
        } else {
            self.deletion.set(None);
        }
    }

    /// An utterance goes to the worker: under the recordings level its
    /// audio is kept until the transcript comes back.
    pub fn utterance(self, id: u32, samples: &[f32]) {
        let keep = self.level_untracked() == Some(ConsentLevel::Recordings);
        self.recording.set_value(keep.then(|| (id, samples[..samples.len().min(MAX_AUDIO_SAMPLES)].to_vec())));
    }

    /// A recognition happened (`features`: what the worker sent back, only
    /// under the recordings level). Kept only with consent.
    pub fn observe(self, recognized: &Recognized, features: Option<Vec<f32>>, latency_ms: f64) {
        let audio = self.recording.try_update_value(Option::take).flatten();
        let audio = audio.filter(|(id, _)| *id == recognized.id).map(|(_, samples)| Audio::from_samples(&samples));
        let event = event(recognized, features, audio, latency_ms);
        self.change(|q| q.observe(event, js_sys::Date::now()));
    }

    /// Recognising an utterance failed: with consent, an event saying what
    /// failed where (`hark monitor` counts failures per backend and model
    /// version), final at once and sent.
    pub fn failed(self, error: &str, backend: hark_web::Backend, model_version: Option<&str>, audio_s: f32) {
        let mut error = error.to_owned();
        if error.len() > v2::MAX_ERROR_BYTES {
            let mut end = v2::MAX_ERROR_BYTES;
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            error.truncate(end);
        }
        let event = Event { error: Some(error), ..new_event(model_version.unwrap_or("none"), backend, audio_s) };
        self.recording.set_value(None);
        self.change(|q| q.failed(event, js_sys::Date::now()));
        self.flush();
    }

    /// The person searched for `query`: the pending event is final (with a
    /// correction if `query` differs from what was heard) and what is final
    /// is sent — without consent nothing is kept, and nothing is sent.
    pub fn searched(self, query: &str) {
        self.change(|q| q.searched(query));
        self.flush();
    }

    /// Sends what is final now (unless a batch is on its way or a retry is
    /// scheduled by a backoff: it will send).
    pub fn flush(self) {
        if self.sending.get_value() || self.retry.with_value(Option::is_some) {
            return;
        }
        spawn_local(self.send_all());
    }

    /// Batches until nothing final waits, or the collector asks to wait.
    async fn send_all(self) {
        self.sending.set_value(true);
        while let Some(plan) = self.queue.try_update_value(|q| q.plan(BATCH_BYTES, false)).flatten() {
            let answer = match build(&plan) {
                Ok(body) => post(&body, false).await,
                Err(e) => Err(e),
            };
            let (status, retry_after, text) = match answer {
                Ok(a) => (Some(a.0), a.1, a.2),
                Err(e) => (None, None, e),
            };
            let attempt = self.attempt.get_value();
            match delivery::verdict(status, retry_after.as_deref(), attempt, js_sys::Math::random(), now()) {
                Verdict::Delivered => {
                    let answer: Answer = serde_json::from_str(&text).unwrap_or_default();
                    self.change(|q| q.delivered(&plan.keys, &answer));
                    self.attempt.set_value(0);
                    self.note.set(None);
                }
                Verdict::Drop => {
                    self.change(|q| q.refused(&plan.keys));
                    let status = status.unwrap_or_default();
                    self.note
                        .set(Some(format!("the collector refused {} logs (HTTP {status}): {text}", plan.keys.len())));
                }
                Verdict::RetryAfter(wait) => {
                    self.queue.update_value(|q| q.retry_later(&plan.keys));
                    self.attempt.set_value(attempt.saturating_add(1));
                    let why = match status {
                        Some(s) => format!("the collector is busy (HTTP {s})"),
                        None => format!("the collector could not be reached ({text})"),
                    };
                    self.note.set(Some(format!("{why}; trying again in {} s.", wait.as_secs().max(1))));
                    let timer = gloo_timers::callback::Timeout::new(wait.as_millis().min(u32::MAX as u128) as u32, {
                        move || {
                            self.retry.set_value(None);
                            self.flush();
                        }
                    });
                    self.retry.set_value(Some(timer));
                    break;
                }
            }
        }
        self.sending.set_value(false);
    }

    /// The page is being hidden (`closing`: unloaded): what is final — and,
    /// when closing, the pending event as it is — goes in one batch with
    /// `keepalive`, which outlives the page. If the page lives on, its
    /// answer is applied; if not, the events wait in IndexedDB and are
    /// sent again by the next visit (stored once: the collector dedupes).
    fn send_on_hide(self, closing: bool) {
        let Some(plan) = self.queue.try_update_value(|q| q.plan(KEEPALIVE_BYTES, closing)).flatten() else { return };
        let Ok(body) = build(&plan) else { return };
        let sent = start_post(&body, true);
        spawn_local(async move {
            match sent {
                Ok(request) => match finish_post(request).await {
                    Ok((status, _, text)) if (200..300).contains(&status) => {
                        let answer: Answer = serde_json::from_str(&text).unwrap_or_default();
                        self.change(|q| q.delivered(&plan.keys, &answer));
                    }
                    _ => self.queue.update_value(|q| q.retry_later(&plan.keys)),
                },
                Err(_) => self.queue.update_value(|q| q.retry_later(&plan.keys)),
            }
        });
    }

    /// Flushes when the browser comes back online (at once, not at the next
    /// backoff), when the page is hidden, and when it is closed.
    fn listen(self) {
        let Some(window) = web_sys::window() else { return };
        let online = Closure::<dyn Fn()>::new(move || {
            self.attempt.set_value(0);
            self.retry.set_value(None);
            self.flush();
        });
        let hidden = Closure::<dyn Fn()>::new(move || {
            let hidden = web_sys::window()
                .and_then(|w| w.document())
                .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Hidden);
            if hidden {
                self.send_on_hide(false);
            }
        });
        let pagehide = Closure::<dyn Fn()>::new(move || self.send_on_hide(true));
        let _ = window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
        if let Some(document) = window.document() {
            let _ = document.add_event_listener_with_callback("visibilitychange", hidden.as_ref().unchecked_ref());
        }
        let _ = window.add_event_listener_with_callback("pagehide", pagehide.as_ref().unchecked_ref());
        // Listeners for the page's whole life.
        online.forget();
        hidden.forget();
        pagehide.forget();
    }

    /// "Delete what I sent": asks the collector to remove every event and
    /// recording of this install, proving it with the install's secret.
    pub fn delete_sent(self) {
        self.deletion.set(Some("Deleting…".into()));
        spawn_local(async move {
            let outcome = delete_install().await;
            self.deletion.set(Some(outcome));
        });
    }
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// The schema-2 event of a recognition.
fn event(recognized: &Recognized, features: Option<Vec<f32>>, audio: Option<Audio>, latency_ms: f64) -> Event {
    let features = recognized.feature_mels.zip(features).and_then(|(mels, values)| {
        let frames = values.len() / mels.max(1) as usize;
        (mels > 0 && frames <= MAX_FEATURE_FRAMES).then(|| Features { mels, frames: frames as u32, values })
    });
    Event {
        latency_ms: latency_ms.max(0.0) as f32,
        transcript: recognized.text.clone(),
        confidence: recognized.confidence.clamp(0.0, 1.0),
        words: recognized
            .words
            .iter()
            .take(v2::MAX_WORDS)
            .map(|(text, confidence)| Word { text: text.clone(), confidence: confidence.clamp(0.0, 1.0) })
            .collect(),
        summary: recognized.summary.clone(),
        features,
        audio,
        ..new_event(&recognized.model_version, recognized.backend, recognized.audio_s)
    }
}

/// An event of this app and install's page, the fields every event has
/// filled in, the rest empty.
fn new_event(model_version: &str, backend: hark_web::Backend, audio_s: f32) -> Event {
    Event {
        event_id: new_id(),
        created_ms: now(),
        app_version: env!("CARGO_PKG_VERSION").into(),
        model_version: model_version.into(),
        backend: backend.name().into(),
        latency_ms: 0.0,
        audio_s,
        transcript: String::new(),
        confidence: 0.0,
        words: Vec::new(),
        correction: None,
        summary: None,
        features: None,
        audio: None,
        error: None,
    }
}

/// The request body of a planned batch.
fn build(plan: &Planned) -> Result<String, String> {
    let batch = v2::Batch {
        schema_version: v2::SCHEMA_VERSION,
        install_id: settings::install_id(),
        install_key: settings::install_key(),
        consent: plan.consent.level,
        consent_text_version: plan.consent.text_version,
        events: plan.events.clone(),
    };
    serde_json::to_string(&batch).map_err(|e| e.to_string())
}

fn js_error(e: JsValue) -> String {
    e.as_string()
        .or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())))
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Starts `POST v1/events` (a `fetch` begun now, so that a `pagehide`
/// handler can start it before the page goes).
fn start_post(body: &str, keepalive: bool) -> Result<js_sys::Promise, String> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(body));
    // `keepalive` is not in web-sys's RequestInit (its WebIDL is Firefox's).
    js_sys::Reflect::set(&init, &JsValue::from_str("keepalive"), &JsValue::from_bool(keepalive)).map_err(js_error)?;
    let headers = web_sys::Headers::new().map_err(js_error)?;
    headers.set("content-type", "application/json").map_err(js_error)?;
    init.set_headers(&headers);
    let window = web_sys::window().ok_or("no window")?;
    Ok(window.fetch_with_str_and_init("v1/events", &init))
}

/// The answer: status, `Retry-After`, body text. `Err`: the network failed.
async fn finish_post(request: js_sys::Promise) -> Result<(u16, Option<String>, String), String> {
    let response: web_sys::Response = JsFuture::from(request).await.map_err(js_error)?.dyn_into().map_err(js_error)?;
    let retry_after = response.headers().get("retry-after").ok().flatten();
    let text = match response.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    };
    Ok((response.status(), retry_after, text))
}

async fn post(body: &str, keepalive: bool) -> Result<(u16, Option<String>, String), String> {
    finish_post(start_post(body, keepalive)?).await
}

/// `DELETE v1/installs/{id}` with the secret; what to tell the person.
async fn delete_install() -> String {
    let run = async {
        let init = web_sys::RequestInit::new();
        init.set_method("DELETE");
        let headers = web_sys::Headers::new().map_err(js_error)?;
        headers.set("authorization", &format!("Bearer {}", settings::install_secret())).map_err(js_error)?;
        init.set_headers(&headers);
        let window = web_sys::window().ok_or("no window")?;
        let url = format!("v1/installs/{}", settings::install_id());
        finish_post(window.fetch_with_str_and_init(&url, &init)).await
    };
    match run.await {
        Ok((200..=299, _, text)) => {
            let deleted = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v["deleted"].as_u64());
            match deleted {
                Some(0) | None => "The server holds nothing from this browser.".into(),
                Some(n) => format!("Deleted {n} logs (and their recordings) from the server."),
            }
        }
        Ok((404, _, _)) => "The server holds nothing from this browser.".into(),
        Ok((status, _, text)) => format!("The server could not delete (HTTP {status}): {text}"),
        Err(e) => format!("The server could not be reached ({e}); try again when online."),
    }
}

fn new_id() -> String {
    web_sys::window()
        .and_then(|w| w.crypto().ok())
        .map(|c| c.random_uuid())
        .unwrap_or_else(|| format!("{:x}-{:x}", js_sys::Date::now() as u64, (js_sys::Math::random() * 1e12) as u64))
}
