//! The reference profile: what a published model's users sounded like and
//! how sure it was, when it was published — the baseline every window of
//! production logs is compared with.
//!
//! It holds a sample of reference *events* (each the feature summary and
//! the utterance confidence of one dev-split utterance, computed by the code
//! the browser runs), kept whole so that calibration resamples events with
//! their correlations intact; the decoder's vocabulary; and the published
//! per-slice WER.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::MonitorError;

/// The profile format's version: a reader refuses others.
pub const PROFILE_VERSION: u32 = 1;

/// One reference utterance, as drift sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefEvent {
    /// Per band group, mean log-mel over the utterance (`hark_dsp::FeatureSummary::band_mean`).
    pub band_mean: Vec<f32>,
    pub snr_db: f32,
    pub speech_s: f32,
    /// The recognizer's utterance confidence.
    pub confidence: f32,
}

/// What a model's published dev split looked like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceProfile {
    pub profile_version: u32,
    /// The model version the profile belongs to.
    pub model_version: String,
    /// Reference utterances (a sample of the dev split).
    pub events: Vec<RefEvent>,
    /// Every word the decoder knows (LM words and entity catalogue), normalised.
    pub vocabulary: Vec<String>,
    /// Published WER per slice ("test", "freeform-test", ...).
    #[serde(default)]
    pub slice_wer: BTreeMap<String, f64>,
}

/// Fewest reference events a profile must hold to calibrate anything.
pub const MIN_REFERENCE_EVENTS: usize = 100;

impl ReferenceProfile {
    /// Reads and checks `path`; every fault is a [`MonitorError::Profile`]
    /// naming the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<Self, MonitorError> {
        let fault = |why: String| MonitorError::Profile { path: path.to_owned(), why };
        let text = std::fs::read_to_string(path).map_err(|e| fault(format!("cannot be read ({e})")))?;
        let profile: Self =
            serde_json::from_str(&text).map_err(|e| fault(format!("is not a reference profile ({e})")))?;
        profile.check().map_err(fault)?;
        Ok(profile)
    }

    /// Writes the profile as JSON (atomically: a temporary file renamed).
    pub fn save(&self, path: &Path) -> Result<(), MonitorError> {
        let fault = |e: std::io::Error| MonitorError::Profile {
            path: path.to_owned(),
            why: format!("cannot be written ({e})"),
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string(self).map_err(|e| fault(std::io::Error::other(e)))?;
        std::fs::write(&tmp, text).map_err(fault)?;
        std::fs::rename(&tmp, path).map_err(fault)
    }

    /// What makes a profile unusable, in words.
    pub fn check(&self) -> Result<(), String> {
        if self.profile_version != PROFILE_VERSION {
            return Err(format!(
                "has format version {} (this hark reads {PROFILE_VERSION}); write it again with `hark monitor profile`",
                self.profile_version
            ));
        }
        if self.events.len() < MIN_REFERENCE_EVENTS {
            return Err(format!(
                "holds {} reference utterances; calibration needs at least {MIN_REFERENCE_EVENTS}",
                self.events.len()
            ));
        }
        let bands = hark_dsp::SUMMARY_BANDS;
        for (i, e) in self.events.iter().enumerate() {
            let values = e.band_mean.iter().chain([&e.snr_db, &e.speech_s, &e.confidence]);
            if e.band_mean.len() != bands || values.clone().any(|v| !v.is_finite()) {
                return Err(format!("reference utterance {i} is malformed ({bands} finite band means expected)"));
            }
        }
        if self.vocabulary.is_empty() {
            return Err("has an empty vocabulary".into());
        }
        Ok(())
    }
}
