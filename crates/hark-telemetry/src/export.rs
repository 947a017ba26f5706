//! One stored event as the collector's admin export gives it
//! (`GET /v1/admin/export`, one JSON object per line) and as its store
//! writes it: the same shape for events that arrived as schema 1 or 2, so
//! that the retraining loop reads one type.
//!
//! **API boundary:** the retraining loop reads this from files it keeps;
//! fields may be added (with `#[serde(default)]`), never renamed.

use serde::{Deserialize, Serialize};

use crate::v2::{self, ConsentLevel, Summary, Word};
use crate::{Features, PredictionEvent};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub event_id: String,
    pub install_id: String,
    /// When the collector stored it, milliseconds since the Unix epoch.
    pub received_ms: u64,
    /// When the browser made it, client clock.
    pub created_ms: u64,
    /// The schema it arrived in.
    pub schema_version: u32,
    /// Schema 2's consent level; schema 1 had one level (predictions, and
    /// features when the person also chose to share them).
    #[serde(default)]
    pub consent: Option<ConsentLevel>,
    #[serde(default)]
    pub consent_text_version: Option<u32>,
    pub app_version: String,
    pub model_version: String,
    pub backend: String,
    pub transcript: String,
    pub confidence: f32,
    #[serde(default)]
    pub words: Vec<Word>,
    #[serde(default)]
    pub correction: Option<String>,
    /// End of speech → transcript (schema 1: decode time), milliseconds.
    pub latency_ms: f32,
    pub audio_s: f32,
    #[serde(default)]
    pub summary: Option<Summary>,
    #[serde(default)]
    pub features: Option<Features>,
    /// Where the recording can be fetched (`/v1/admin/audio/{event_id}`,
    /// a 16 kHz WAV), when there is one.
    #[serde(default)]
    pub audio: Option<String>,
    /// Schema 2's failed recognition ([`v2::Event::error`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The path of an event's recording under the collector.
pub fn audio_path(event_id: &str) -> String {
    format!("/v1/admin/audio/{event_id}")
}

impl Record {
    /// A schema-1 event of `install_id`, stored at `received_ms`.
    pub fn from_v1(install_id: &str, e: &PredictionEvent, received_ms: u64) -> Self {
        Self {
            event_id: e.event_id.clone(),
            install_id: install_id.to_owned(),
            received_ms,
            created_ms: e.created_ms,
            schema_version: crate::SCHEMA_VERSION,
            consent: None,
            consent_text_version: None,
            app_version: e.app_version.clone(),
            model_version: e.model_version.clone(),
            backend: e.backend.clone(),
            transcript: e.prediction.clone(),
            confidence: e.confidence,
            words: Vec::new(),
            correction: e.correction.clone(),
            latency_ms: e.decode_ms,
            audio_s: e.audio_s,
            summary: None,
            features: e.features.clone(),
            audio: None,
            error: None,
        }
    }

    /// A schema-2 event of `batch`, stored at `received_ms` (its audio, if
    /// any, is stored apart: `audio` names where).
    pub fn from_v2(batch: &v2::Batch, e: &v2::Event, received_ms: u64) -> Self {
        Self {
            event_id: e.event_id.clone(),
            install_id: batch.install_id.clone(),
            received_ms,
            created_ms: e.created_ms,
            schema_version: v2::SCHEMA_VERSION,
            consent: Some(batch.consent),
            consent_text_version: Some(batch.consent_text_version),
            app_version: e.app_version.clone(),
            model_version: e.model_version.clone(),
            backend: e.backend.clone(),
            transcript: e.transcript.clone(),
            confidence: e.confidence,
            words: e.words.clone(),
            correction: e.correction.clone(),
            latency_ms: e.latency_ms,
            audio_s: e.audio_s,
            summary: e.summary.clone(),
            features: e.features.clone(),
            audio: e.audio.as_ref().map(|_| audio_path(&e.event_id)),
            error: e.error.clone(),
        }
    }
}
