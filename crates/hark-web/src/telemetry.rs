//! Opt-in prediction logs. Nothing here runs unless the person ticked
//! "share": without consent no event is even kept. With it, each
//! recognition becomes a [`PredictionEvent`] (prediction, confidence,
//! log-mel features, and the person's correction if they edited the
//! transcript before searching) posted to the collector at `api/events`.
//! Events that could not be sent stay queued and go with the next batch.

use std::cell::RefCell;

use hark_telemetry::{Batch, Consent, Features, MAX_BATCH, MAX_FEATURE_FRAMES, PredictionEvent, SCHEMA_VERSION};
use hark_web::Recognized;

thread_local! {
    /// The latest recognition, waiting to learn whether it was corrected.
    static PENDING: RefCell<Option<PredictionEvent>> = const { RefCell::new(None) };
    /// Events accepted for sending.
    static OUTBOX: RefCell<Vec<PredictionEvent>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `recognized` as the pending event (consent checked by the caller).
/// An earlier pending one that was never searched goes out uncorrected.
pub fn observe(recognized: &Recognized, features: Option<Vec<f32>>, decode_ms: f64) {
    let features = recognized.feature_mels.zip(features).and_then(|(mels, values)| {
        let frames = values.len() / mels.max(1) as usize;
        (mels > 0 && frames <= MAX_FEATURE_FRAMES).then(|| Features { mels, frames: frames as u32, values })
    });
    let event = PredictionEvent {
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
    };
    if let Some(previous) = PENDING.with(|p| p.borrow_mut().replace(event)) {
        OUTBOX.with(|o| o.borrow_mut().push(previous));
    }
}

/// The person searched for `query`: the pending event is final, with a
/// correction if `query` differs from what was recognised.
pub fn searched(query: &str) {
    if let Some(mut event) = PENDING.with(|p| p.borrow_mut().take()) {
        let query = hark_data::normalize(query);
        if query != event.prediction {
            event.correction = Some(query);
        }
        OUTBOX.with(|o| o.borrow_mut().push(event));
    }
}

/// Consent withdrawn: forget everything not yet sent.
pub fn forget() {
    PENDING.with(|p| p.borrow_mut().take());
    OUTBOX.with(|o| o.borrow_mut().clear());
}

/// Posts queued events; returns how many the collector accepted. On failure
/// they stay queued for the next try.
pub async fn flush(install_id: String) -> Result<usize, String> {
    let events: Vec<PredictionEvent> = OUTBOX.with(|o| {
        let mut o = o.borrow_mut();
        let n = o.len().min(MAX_BATCH);
        o.drain(..n).collect()
    });
    if events.is_empty() {
        return Ok(0);
    }
    let count = events.len();
    let batch = Batch { schema_version: SCHEMA_VERSION, consent: Consent::Granted, install_id, events };
    let result = send(&batch).await;
    if result.is_err() {
        OUTBOX.with(|o| {
            let mut o = o.borrow_mut();
            let later = std::mem::take(&mut *o);
            *o = batch.events;
            o.extend(later);
        });
    }
    result.map(|()| count)
}

async fn send(batch: &Batch) -> Result<(), String> {
    let body = serde_json::to_string(batch).map_err(|e| e.to_string())?;
    let response = gloo_net::http::Request::post("api/events")
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
