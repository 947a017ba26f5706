//! Opt-in prediction logs, the page's side. The rule — consent off keeps
//! nothing — is [`hark_web::outbox::Outbox`], which also holds the consent
//! choice itself: the one place the page reads it (the checkbox, the
//! worker's "send features back", what is kept). With consent, each
//! recognition becomes a [`PredictionEvent`] (prediction, confidence,
//! log-mel features, and the person's correction if they edited the
//! transcript before searching) posted to the collector at `v1/events`.
//! Events that could not be sent stay queued and go with the next batch.

use hark_telemetry::{Batch, Consent, Features, MAX_FEATURE_FRAMES, PredictionEvent, SCHEMA_VERSION};
use hark_web::Recognized;
use hark_web::outbox::Outbox;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::settings;

/// The page's telemetry: the outbox (with the consent choice) and what the
/// settings panel says about sharing.
#[derive(Clone, Copy)]
pub struct Telemetry {
    outbox: RwSignal<Outbox>,
    /// Events the collector accepted during this visit.
    pub shared: RwSignal<usize>,
    /// Why the last send failed, until one succeeds.
    pub note: RwSignal<Option<String>>,
}

impl Telemetry {
    /// With the choice stored on this device (off unless the person chose).
    pub fn new() -> Self {
        Self {
            outbox: RwSignal::new(Outbox::new(settings::consent())),
            shared: RwSignal::new(0),
            note: RwSignal::new(None),
        }
    }

    /// Whether the person agreed to share (reactive).
    pub fn consent(self) -> bool {
        self.outbox.with(Outbox::consent)
    }

    /// The same, read without subscribing (in event handlers).
    pub fn consent_untracked(self) -> bool {
        self.outbox.with_untracked(Outbox::consent)
    }

    /// The person changed their choice: stored on this device; turning it
    /// off forgets everything not yet sent.
    pub fn set_consent(self, granted: bool) {
        settings::set_consent(granted);
        self.outbox.update(|o| o.set_consent(granted));
    }

    /// A recognition happened (`features`: what the worker sent back, only
    /// when consent was on as it started). The outbox keeps it only with consent.
    pub fn observe(self, recognized: &Recognized, features: Option<Vec<f32>>, decode_ms: f64) {
        let event = event(recognized, features, decode_ms);
        self.outbox.update(|o| o.observe(event));
    }

    /// The person searched for `query`: the pending event is final (with a
    /// correction if `query` differs from what was heard) and the queue is
    /// sent — without consent there is nothing in it, and nothing is sent.
    pub fn searched(self, query: &str) {
        self.outbox.update(|o| o.searched(query));
        spawn_local(self.flush());
    }

    /// Posts a batch of queued events; on failure they stay queued for the
    /// next search.
    async fn flush(self) {
        let events = self.outbox.try_update(Outbox::take_batch).unwrap_or_default();
        if events.is_empty() {
            return;
        }
        let count = events.len();
        let batch = Batch {
            schema_version: SCHEMA_VERSION,
            consent: Consent::Granted,
            install_id: settings::install_id(),
            events,
        };
        match send(&batch).await {
            Ok(()) => {
                self.shared.update(|s| *s += count);
                self.note.set(None);
            }
            Err(e) => {
                self.outbox.update(|o| o.put_back(batch.events));
                self.note.set(Some(format!("{e}; will retry with the next search.")));
            }
        }
    }
}

fn event(recognized: &Recognized, features: Option<Vec<f32>>, decode_ms: f64) -> PredictionEvent {
    let features = recognized.feature_mels.zip(features).and_then(|(mels, values)| {
        let frames = values.len() / mels.max(1) as usize;
        (mels > 0 && frames <= MAX_FEATURE_FRAMES).then(|| Features { mels, frames: frames as u32, values })
    });
    PredictionEvent {
        event_id: new_id(),
        created_ms: js_sys::Date::now() as u64,
        app_version: env!("CARGO_PKG_VERSION").into(),
        model_version: recognized.model_version.clone(),
        backend: recognized.backend.name().into(),
        prediction: recognized.text.clone(),
        confidence: recognized.confidence.clamp(0.0, 1.0),
        correction: None,
        audio_s: recognized.audio_s,
        decode_ms: decode_ms as f32,
        features,
    }
}

async fn send(batch: &Batch) -> Result<(), String> {
    let body = serde_json::to_string(batch).map_err(|e| e.to_string())?;
    let response = gloo_net::http::Request::post("v1/events")
        .header("content-type", "application/json")
        .body(body)
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| format!("the collector could not be reached: {e}"))?;
    if response.ok() {
        Ok(())
    } else {
        let why = response.text().await.unwrap_or_default();
        Err(format!("the collector refused the logs (HTTP {}): {why}", response.status()))
    }
}

fn new_id() -> String {
    web_sys::window()
        .and_then(|w| w.crypto().ok())
        .map(|c| c.random_uuid())
        .unwrap_or_else(|| format!("{:x}-{:x}", js_sys::Date::now() as u64, (js_sys::Math::random() * 1e12) as u64))
}
