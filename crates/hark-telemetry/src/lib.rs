//! The telemetry event: what a browser may send to the collector, and only
//! after the person said yes.
//!
//! This crate is compiled into both `hark-web` (which builds batches) and
//! `hark-collector` (which validates and stores them), so the wire format is
//! one Rust type. Entry points: [`Batch`], [`PredictionEvent`],
//! [`Batch::validate`].
//!
//! Schema 2 ([`v2`]: two consent levels, per-word confidence, the feature
//! summary, recordings) is what new code sends; schema 1 stays accepted.
//!
//! **API boundary:** this is a wire format. Optional fields may be added;
//! anything else needs a new [`SCHEMA_VERSION`], and the collector keeps
//! accepting the old one until no browser sends it.

use serde::{Deserialize, Serialize};

pub mod delivery;
pub mod export;
pub mod v2;

/// The event schema this build sends and accepts.
pub const SCHEMA_VERSION: u32 = 1;
/// Most events one request may carry; a bigger batch is refused whole.
pub const MAX_BATCH: usize = 100;
/// Longest text (prediction or correction) accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 1_000;
/// Most feature frames one event may carry (10 ms hop: 30 s of audio).
pub const MAX_FEATURE_FRAMES: usize = 3_000;

/// The person's choice about sending prediction logs. Off unless chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    #[default]
    Denied,
    Granted,
}

/// One request body: events from one install, sent with consent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub schema_version: u32,
    /// Must be [`Consent::Granted`]; the collector refuses anything else.
    pub consent: Consent,
    /// Random per-install identifier (not derived from anything personal).
    pub install_id: String,
    pub events: Vec<PredictionEvent>,
}

/// One recognition, as the browser saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionEvent {
    /// Client-side unique id, so a retried upload is stored once.
    pub event_id: String,
    /// Milliseconds since the Unix epoch, client clock.
    pub created_ms: u64,
    pub app_version: String,
    pub model_version: String,
    /// `webgpu` or `cpu`.
    pub backend: String,
    pub prediction: String,
    /// Utterance confidence in `0..=1`.
    pub confidence: f32,
    /// What the person edited the transcript to, if they did.
    #[serde(default)]
    pub correction: Option<String>,
    pub audio_s: f32,
    pub decode_ms: f32,
    /// Log-mel input features (`frames × mels`, row-major), when shared.
    #[serde(default)]
    pub features: Option<Features>,
}

/// Model input features attached to an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    pub mels: u32,
    pub frames: u32,
    pub values: Vec<f32>,
}

/// Why a batch was refused. Names the event and field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("schema_version {found} is not supported (this collector accepts {SCHEMA_VERSION})")]
    UnsupportedSchema { found: u32 },
    #[error("consent is not granted: prediction logs are only accepted from people who opted in")]
    NoConsent,
    #[error("batch holds {0} events; send at most {MAX_BATCH} per request")]
    TooMany(usize),
    #[error("batch holds no events")]
    Empty,
    #[error("install_id must be 8..=64 characters of [A-Za-z0-9-]")]
    BadInstallId,
    #[error("install_key must be the 64 lowercase hex digits of the install secret's SHA-256")]
    BadInstallKey,
    #[error("event {index}: {field} {problem}")]
    Field { index: usize, field: &'static str, problem: String },
}

impl Batch {
    /// Checks everything serde cannot. The whole batch is refused on any
    /// error, so a client never has to guess which events were kept.
    pub fn validate(&self) -> Result<(), EventError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(EventError::UnsupportedSchema { found: self.schema_version });
        }
        if self.consent != Consent::Granted {
            return Err(EventError::NoConsent);
        }
        check_envelope(&self.install_id, self.events.len())?;
        for (index, event) in self.events.iter().enumerate() {
            event.validate().map_err(|(field, problem)| EventError::Field { index, field, problem })?;
        }
        Ok(())
    }
}

/// What every schema asks of a batch as a whole: a well-formed install id
/// and 1..=[`MAX_BATCH`] events.
fn check_envelope(install_id: &str, events: usize) -> Result<(), EventError> {
    if !(8..=64).contains(&install_id.len()) || !install_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(EventError::BadInstallId);
    }
    if events == 0 {
        return Err(EventError::Empty);
    }
    if events > MAX_BATCH {
        return Err(EventError::TooMany(events));
    }
    Ok(())
}

impl PredictionEvent {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.event_id.is_empty() || self.event_id.len() > 64 {
            return Err(("event_id", "must be 1..=64 characters".into()));
        }
        if self.prediction.len() > MAX_TEXT_BYTES {
            return Err(("prediction", format!("is {} bytes, limit {MAX_TEXT_BYTES}", self.prediction.len())));
        }
        if let Some(c) = self.correction.as_ref().filter(|c| c.len() > MAX_TEXT_BYTES) {
            return Err(("correction", format!("is {} bytes, limit {MAX_TEXT_BYTES}", c.len())));
        }
        if !(0.0..=1.0).contains(&self.confidence) {
            return Err(("confidence", format!("must be within 0..=1, got {}", self.confidence)));
        }
        if !self.audio_s.is_finite() || self.audio_s < 0.0 {
            return Err(("audio_s", format!("must be a non-negative number, got {}", self.audio_s)));
        }
        if !self.decode_ms.is_finite() || self.decode_ms < 0.0 {
            return Err(("decode_ms", format!("must be a non-negative number, got {}", self.decode_ms)));
        }
        if !matches!(self.backend.as_str(), "webgpu" | "cpu") {
            return Err(("backend", format!("must be \"webgpu\" or \"cpu\", got {:?}", self.backend)));
        }
        if let Some(f) = &self.features {
            if f.frames as usize > MAX_FEATURE_FRAMES {
                return Err(("features", format!("has {} frames, limit {MAX_FEATURE_FRAMES}", f.frames)));
            }
            if f.values.len() != f.frames as usize * f.mels as usize {
                return Err((
                    "features",
                    format!("holds {} values, frames × mels = {}", f.values.len(), f.frames as usize * f.mels as usize),
                ));
            }
            if f.values.iter().any(|v| !v.is_finite()) {
                return Err(("features", "contains NaN or infinity".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> PredictionEvent {
        PredictionEvent {
            event_id: format!("ev-{i}"),
            created_ms: 1_790_000_000_000,
            app_version: "0.1.0".into(),
            model_version: "1.0.0".into(),
            backend: "cpu".into(),
            prediction: "weather in lisbon tomorrow".into(),
            confidence: 0.9,
            correction: None,
            audio_s: 2.1,
            decode_ms: 40.0,
            features: None,
        }
    }

    fn batch(n: usize) -> Batch {
        Batch {
            schema_version: SCHEMA_VERSION,
            consent: Consent::Granted,
            install_id: "install-0001".into(),
            events: (0..n).map(event).collect(),
        }
    }

    #[test]
    fn consent_is_off_by_default() {
        assert_eq!(Consent::default(), Consent::Denied);
    }

    #[test]
    fn accepts_a_valid_batch_and_round_trips() {
        let b = batch(3);
        b.validate().unwrap();
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Batch>(&json).unwrap(), b);
    }

    #[test]
    fn refuses_batches_without_consent() {
        let mut b = batch(1);
        b.consent = Consent::Denied;
        assert_eq!(b.validate(), Err(EventError::NoConsent));
    }

    #[test]
    fn rejects_batch_over_100_items() {
        assert_eq!(batch(MAX_BATCH + 1).validate(), Err(EventError::TooMany(MAX_BATCH + 1)));
        assert!(batch(MAX_BATCH).validate().is_ok());
    }

    #[test]
    fn names_the_event_and_field_at_fault() {
        let mut b = batch(3);
        b.events[2].confidence = 1.5;
        let err = b.validate().unwrap_err();
        assert!(matches!(err, EventError::Field { index: 2, field: "confidence", .. }), "{err}");
        let mut b = batch(1);
        b.events[0].features = Some(Features { mels: 80, frames: 2, values: vec![0.0; 159] });
        assert!(b.validate().unwrap_err().to_string().contains("features"));
    }
}
