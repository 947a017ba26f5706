//! Schema v2 of the upload: two consent levels, the consent text's
//! version, per-word confidence, latency, and a compact feature summary
//! ([`Summary`], made by `hark_dsp::FeatureSummary` — the same code in the
//! browser, the reference profile and the monitor) for drift monitoring.
//! Full features and the 16 kHz audio travel only under the second level,
//! [`ConsentLevel::Recordings`].
//!
//! Unlike v1, a batch is judged **item by item**: [`Batch::check`] refuses
//! the whole batch only for what concerns all of it (schema, install,
//! size), and otherwise lists each rejected event's index and reason, so
//! the collector stores the rest (partial success). [`parse`] reads any
//! supported schema from a request body.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{EventError, Features, MAX_FEATURE_FRAMES, MAX_TEXT_BYTES};

/// The schema this module describes.
pub const SCHEMA_VERSION: u32 = 2;
/// Every schema a collector built from this crate accepts.
pub const SUPPORTED_SCHEMAS: [u32; 2] = [crate::SCHEMA_VERSION, SCHEMA_VERSION];
/// Longest recording accepted, seconds.
pub const MAX_AUDIO_S: f32 = 30.0;
/// The rate recordings are sent at.
pub const AUDIO_SAMPLE_RATE: u32 = hark_dsp::SAMPLE_RATE;
/// Most words one event may list.
pub const MAX_WORDS: usize = 200;
/// Longest failure description ([`Event::error`]), bytes.
pub const MAX_ERROR_BYTES: usize = 300;

/// What the person agreed to share. Sharing is off unless they chose one
/// (then nothing is sent at all, so there is no "off" on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentLevel {
    /// What was heard, its confidence, the correction, the feature summary.
    Predictions,
    /// That, and the recordings: full features and the 16 kHz audio.
    Recordings,
}

impl ConsentLevel {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentLevel::Predictions => "predictions",
            ConsentLevel::Recordings => "recordings",
        }
    }

    /// The level named `name` on the wire.
    pub fn from_name(name: &str) -> Option<Self> {
        [ConsentLevel::Predictions, ConsentLevel::Recordings].into_iter().find(|c| c.as_str() == name)
    }
}

/// The key an install sends with its batches: the SHA-256 of its secret,
/// lowercase hex. The browser makes the secret and keeps it; the collector
/// keeps only this key, and deletes an install's data for whoever shows
/// the secret that hashes to it.
pub fn install_key(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// One request body (schema 2): events from one install.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub schema_version: u32,
    /// Random per-install identifier (not derived from anything personal).
    pub install_id: String,
    /// SHA-256 (hex) of the install's secret, made with the install and kept
    /// only in the browser: the collector deletes an install's data for
    /// whoever shows the secret, and refuses batches under another key.
    pub install_key: String,
    pub consent: ConsentLevel,
    /// The version of the consent text the person agreed to.
    pub consent_text_version: u32,
    pub events: Vec<Event>,
}

/// One recognition, as the browser saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Client-made unique id: a retried upload is stored once.
    pub event_id: String,
    /// Milliseconds since the Unix epoch, client clock.
    pub created_ms: u64,
    pub app_version: String,
    pub model_version: String,
    /// `webgpu` or `cpu`.
    pub backend: String,
    /// End of speech → transcript, milliseconds.
    pub latency_ms: f32,
    /// Length of the utterance, seconds.
    pub audio_s: f32,
    /// What was heard.
    pub transcript: String,
    /// Utterance confidence in `0..=1`.
    pub confidence: f32,
    /// Each word heard with its confidence.
    #[serde(default)]
    pub words: Vec<Word>,
    /// What the person edited the transcript to, if they did.
    #[serde(default)]
    pub correction: Option<String>,
    /// How the utterance sounded, for drift monitoring.
    #[serde(default)]
    pub summary: Option<Summary>,
    /// Log-mel features (recordings level only).
    #[serde(default)]
    pub features: Option<Features>,
    /// The 16 kHz audio (recordings level only).
    #[serde(default)]
    pub audio: Option<Audio>,
    /// Set when recognition failed (the model could not load, the GPU was
    /// lost, the worker crashed): what went wrong, in a few words. Such an
    /// event carries no transcript, words or correction; `hark monitor`
    /// counts them per backend and model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Word {
    pub text: String,
    pub confidence: f32,
}

/// `hark_dsp::FeatureSummary` on the wire, with the device's sample rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Per band group (`hark_dsp::SUMMARY_BANDS`), mean log-mel over the utterance.
    pub band_mean: Vec<f32>,
    /// Per band group, its standard deviation.
    pub band_std: Vec<f32>,
    pub snr_db: f32,
    pub speech_s: f32,
    /// The microphone's own rate, before resampling to 16 kHz.
    pub sample_rate: u32,
}

impl Summary {
    /// The summary `hark_dsp` computed, from a device running at `sample_rate`.
    pub fn new(summary: &hark_dsp::FeatureSummary, sample_rate: u32) -> Self {
        Self {
            band_mean: summary.band_mean.clone(),
            band_std: summary.band_std.clone(),
            snr_db: summary.snr_db,
            speech_s: summary.speech_s,
            sample_rate,
        }
    }
}

/// A recording: 16-bit little-endian PCM, mono, base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audio {
    pub sample_rate: u32,
    pub pcm_s16le_base64: String,
}

impl Audio {
    /// `samples` (−1..1, 16 kHz) as a recording.
    pub fn from_samples(samples: &[f32]) -> Self {
        let bytes: Vec<u8> =
            samples.iter().flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes()).collect();
        Self {
            sample_rate: AUDIO_SAMPLE_RATE,
            pcm_s16le_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// The PCM bytes (16-bit little-endian samples), or why they cannot be read.
    pub fn pcm_bytes(&self) -> Result<Vec<u8>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.pcm_s16le_base64)
            .map_err(|e| format!("is not base64: {e}"))?;
        if bytes.len() % 2 != 0 {
            return Err(format!("holds {} bytes, not whole 16-bit samples", bytes.len()));
        }
        Ok(bytes)
    }

    /// The samples, or why they cannot be read.
    pub fn samples(&self) -> Result<Vec<i16>, String> {
        Ok(self.pcm_bytes()?.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect())
    }
}

/// Why one event of a batch was not stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// Its position in the batch.
    pub index: usize,
    pub field: String,
    pub problem: String,
}

/// A request body of any supported schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Upload {
    V1(crate::Batch),
    V2(Batch),
}

/// Reads a request body: its `schema_version` first, then the body as that
/// schema. An unknown version is refused naming the supported ones.
pub fn parse(body: &[u8]) -> Result<Upload, ParseError> {
    #[derive(Deserialize)]
    struct Version {
        schema_version: u32,
    }
    let version: Version = serde_json::from_slice(body).map_err(ParseError::NotABatch)?;
    match version.schema_version {
        crate::SCHEMA_VERSION => serde_json::from_slice(body).map(Upload::V1).map_err(ParseError::NotABatch),
        SCHEMA_VERSION => serde_json::from_slice(body).map(Upload::V2).map_err(ParseError::NotABatch),
        found => Err(ParseError::UnsupportedSchema { found }),
    }
}

/// Why a request body could not be read as a batch.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("request body is not a telemetry batch: {0}")]
    NotABatch(serde_json::Error),
    #[error("schema_version {found} is not supported; this collector accepts {SUPPORTED_SCHEMAS:?}")]
    UnsupportedSchema { found: u32 },
}

impl Batch {
    /// Judges the batch: `Err` for what concerns all of it (nothing is
    /// stored), else the events to refuse, each with its reason (the rest
    /// are stored).
    pub fn check(&self) -> Result<Vec<Rejection>, EventError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(EventError::UnsupportedSchema { found: self.schema_version });
        }
        crate::check_envelope(&self.install_id, self.events.len())?;
        if self.install_key.len() != 64
            || !self.install_key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(EventError::BadInstallKey);
        }
        Ok(self
            .events
            .iter()
            .enumerate()
            .filter_map(|(index, e)| {
                e.check(self.consent).err().map(|(field, problem)| Rejection {
                    index,
                    field: field.to_owned(),
                    problem,
                })
            })
            .collect())
    }

    /// [`Batch::check`], then the rejected events taken out of the batch:
    /// what is left is what may be stored.
    pub fn keep_valid(&mut self) -> Result<Vec<Rejection>, EventError> {
        let rejected = self.check()?;
        let refused: std::collections::BTreeSet<usize> = rejected.iter().map(|r| r.index).collect();
        let events = std::mem::take(&mut self.events).into_iter().enumerate();
        self.events = events.filter(|(i, _)| !refused.contains(i)).map(|(_, e)| e).collect();
        Ok(rejected)
    }
}

/// The decoder's contract on any input, as the fuzz target (`fuzz/`) and
/// the test suite's short run check it: [`parse`] answers every body with
/// a batch or an error, never a panic; a batch the collector would store
/// (schema 1 valid, or schema 2 after [`Batch::keep_valid`]) has readable
/// audio and comes back the same from its own JSON. Panics when the
/// contract is broken (that is the finding).
pub fn fuzz_decoder(body: &[u8]) {
    match parse(body) {
        Ok(Upload::V1(batch)) => {
            if batch.validate().is_ok() {
                let again = serde_json::to_vec(&batch).expect("a valid batch serializes");
                assert_eq!(
                    parse(&again).ok(),
                    Some(Upload::V1(batch)),
                    "a valid schema-1 batch changed in a round trip"
                );
            }
        }
        Ok(Upload::V2(mut batch)) => {
            if batch.keep_valid().is_ok() {
                for e in &batch.events {
                    if let Some(a) = &e.audio {
                        assert!(a.samples().is_ok(), "kept audio does not decode");
                    }
                }
                let again = serde_json::to_vec(&batch).expect("a checked batch serializes");
                assert_eq!(
                    parse(&again).ok(),
                    Some(Upload::V2(batch)),
                    "a kept schema-2 batch changed in a round trip"
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

type Fault = (&'static str, String);

fn non_negative(field: &'static str, value: f32) -> Result<(), Fault> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err((field, format!("must be a non-negative number, got {value}")))
    }
}

fn unit(field: &'static str, value: f32) -> Result<(), Fault> {
    if (0.0..=1.0).contains(&value) { Ok(()) } else { Err((field, format!("must be within 0..=1, got {value}"))) }
}

fn text(field: &'static str, value: &str) -> Result<(), Fault> {
    if value.len() <= MAX_TEXT_BYTES {
        Ok(())
    } else {
        Err((field, format!("is {} bytes, limit {MAX_TEXT_BYTES}", value.len())))
    }
}

impl Event {
    fn check(&self, consent: ConsentLevel) -> Result<(), Fault> {
        if self.event_id.is_empty()
            || self.event_id.len() > 64
            || !self.event_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(("event_id", "must be 1..=64 characters of [A-Za-z0-9_-]".into()));
        }
        if !matches!(self.backend.as_str(), "webgpu" | "cpu") {
            return Err(("backend", format!("must be \"webgpu\" or \"cpu\", got {:?}", self.backend)));
        }
        text("app_version", &self.app_version)?;
        text("model_version", &self.model_version)?;
        text("transcript", &self.transcript)?;
        if let Some(c) = &self.correction {
            text("correction", c)?;
        }
        if let Some(error) = &self.error {
            if error.trim().is_empty() || error.len() > MAX_ERROR_BYTES {
                return Err(("error", format!("must say what failed in 1..={MAX_ERROR_BYTES} bytes")));
            }
            if !self.transcript.is_empty() || !self.words.is_empty() || self.correction.is_some() {
                return Err(("error", "a failed recognition carries no transcript, words or correction".into()));
            }
        }
        unit("confidence", self.confidence)?;
        non_negative("latency_ms", self.latency_ms)?;
        non_negative("audio_s", self.audio_s)?;
        if self.words.len() > MAX_WORDS {
            return Err(("words", format!("lists {} words, limit {MAX_WORDS}", self.words.len())));
        }
        for w in &self.words {
            text("words", &w.text)?;
            unit("words", w.confidence)?;
        }
        if let Some(s) = &self.summary {
            let bands = hark_dsp::SUMMARY_BANDS;
            if s.band_mean.len() != bands || s.band_std.len() != bands {
                return Err(("summary", format!("must hold {bands} band means and {bands} deviations")));
            }
            if s.band_mean.iter().chain(&s.band_std).chain([&s.snr_db]).any(|v| !v.is_finite()) {
                return Err(("summary", "contains NaN or infinity".into()));
            }
            if s.band_std.iter().any(|v| *v < 0.0) {
                return Err(("summary", "has a negative standard deviation".into()));
            }
            non_negative("summary", s.speech_s)?;
            if !(8_000..=192_000).contains(&s.sample_rate) {
                return Err(("summary", format!("sample_rate {} is not a microphone's (8–192 kHz)", s.sample_rate)));
            }
        }
        let recordings = consent >= ConsentLevel::Recordings;
        if let Some(f) = &self.features {
            if !recordings {
                return Err(("features", "are sent only under the recordings consent level".into()));
            }
            if f.frames as usize > MAX_FEATURE_FRAMES || f.values.len() != f.frames as usize * f.mels as usize {
                return Err(("features", format!("must be frames × mels values, at most {MAX_FEATURE_FRAMES} frames")));
            }
            if f.values.iter().any(|v| !v.is_finite()) {
                return Err(("features", "contain NaN or infinity".into()));
            }
        }
        if let Some(a) = &self.audio {
            if !recordings {
                return Err(("audio", "is sent only under the recordings consent level".into()));
            }
            if a.sample_rate != AUDIO_SAMPLE_RATE {
                return Err(("audio", format!("must be {AUDIO_SAMPLE_RATE} Hz, got {}", a.sample_rate)));
            }
            let max_bytes = (MAX_AUDIO_S * AUDIO_SAMPLE_RATE as f32) as usize * 2;
            // base64 is 4 characters per 3 bytes: refuse before decoding.
            if a.pcm_s16le_base64.len() > max_bytes.div_ceil(3) * 4 {
                return Err(("audio", format!("is longer than {MAX_AUDIO_S} s")));
            }
            a.pcm_bytes().map_err(|why| ("audio", why))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_BATCH;

    fn event(i: usize) -> Event {
        Event {
            event_id: format!("ev-{i}"),
            created_ms: 1_790_000_000_000,
            app_version: "0.1.0".into(),
            model_version: "0.7.0".into(),
            backend: "cpu".into(),
            latency_ms: 91.0,
            audio_s: 2.1,
            transcript: "play some jazz".into(),
            confidence: 0.8,
            words: vec![Word { text: "play".into(), confidence: 0.9 }],
            correction: Some("play some jazz music".into()),
            summary: Some(summary()),
            features: None,
            audio: None,
            error: None,
        }
    }

    fn summary() -> Summary {
        let mut mel = hark_dsp::LogMel::new(hark_dsp::LogMelConfig::default());
        let samples: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.07).sin() * 0.1).collect();
        let s = hark_dsp::FeatureSummary::of(&mel.compute(&samples), 80, 0.01).unwrap();
        Summary::new(&s, 48_000)
    }

    fn batch(n: usize, consent: ConsentLevel) -> Batch {
        Batch {
            schema_version: SCHEMA_VERSION,
            install_id: "install-0001".into(),
            install_key: "ab".repeat(32),
            consent,
            consent_text_version: 2,
            events: (0..n).map(event).collect(),
        }
    }

    #[test]
    fn a_valid_batch_round_trips_through_parse() {
        let b = batch(3, ConsentLevel::Predictions);
        assert_eq!(b.check().unwrap(), []);
        let body = serde_json::to_vec(&b).unwrap();
        assert_eq!(parse(&body).unwrap(), Upload::V2(b));
    }

    #[test]
    fn version_1_stays_accepted_and_unknown_versions_are_named() {
        let v1 = crate::Batch {
            schema_version: crate::SCHEMA_VERSION,
            consent: crate::Consent::Granted,
            install_id: "install-0001".into(),
            events: vec![],
        };
        assert!(matches!(parse(&serde_json::to_vec(&v1).unwrap()).unwrap(), Upload::V1(_)));
        let err = parse(br#"{"schema_version": 7, "events": []}"#).unwrap_err();
        assert_eq!(err.to_string(), "schema_version 7 is not supported; this collector accepts [1, 2]");
        assert!(matches!(parse(b"{not json").unwrap_err(), ParseError::NotABatch(_)));
    }

    #[test]
    fn bad_items_are_rejected_one_by_one() {
        let mut b = batch(5, ConsentLevel::Predictions);
        b.events[1].confidence = f32::NAN;
        b.events[3].summary.as_mut().unwrap().band_std[0] = -1.0;
        b.events[4].transcript = "x".repeat(MAX_TEXT_BYTES + 1);
        let rejected = b.check().unwrap();
        let at: Vec<_> = rejected.iter().map(|r| (r.index, r.field.as_str())).collect();
        assert_eq!(at, [(1, "confidence"), (3, "summary"), (4, "transcript")]);
        assert!(rejected[2].problem.contains("bytes"), "{:?}", rejected[2]);
        assert_eq!(b.keep_valid().unwrap(), rejected);
        let kept: Vec<_> = b.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(kept, ["ev-0", "ev-2"], "the rejected events are taken out, the order kept");
    }

    #[test]
    fn a_failed_recognition_says_what_failed_and_carries_no_words() {
        let failed = |e: Event| Event {
            transcript: String::new(),
            words: vec![],
            correction: None,
            confidence: 0.0,
            error: Some("the GPU device was lost".into()),
            ..e
        };
        let mut b = batch(5, ConsentLevel::Predictions);
        b.events[0] = failed(event(0));
        b.events[1] = Event { error: Some("  ".into()), ..failed(event(1)) };
        b.events[2] = Event { error: Some("x".repeat(MAX_ERROR_BYTES + 1)), ..failed(event(2)) };
        b.events[3] = Event { transcript: "play".into(), ..failed(event(3)) };
        b.events[4] = Event { correction: Some("play jazz".into()), ..failed(event(4)) };
        let at: Vec<_> = b.check().unwrap().iter().map(|r| (r.index, r.field.clone())).collect();
        assert_eq!(at, [(1, "error".to_owned()), (2, "error".into()), (3, "error".into()), (4, "error".into())]);
        // It round-trips, and an event without one serializes as before (no `error` key).
        let ok = batch(1, ConsentLevel::Predictions);
        assert!(!String::from_utf8(serde_json::to_vec(&ok).unwrap()).unwrap().contains("\"error\""));
        let one = Batch { events: vec![failed(event(0))], ..ok };
        assert_eq!(parse(&serde_json::to_vec(&one).unwrap()).unwrap(), Upload::V2(one));
    }

    #[test]
    fn recordings_travel_only_under_the_second_consent_level() {
        let mut b = batch(1, ConsentLevel::Predictions);
        b.events[0].audio = Some(Audio::from_samples(&[0.0, 0.5, -0.5]));
        assert_eq!(b.check().unwrap()[0].field, "audio");
        b.consent = ConsentLevel::Recordings;
        assert_eq!(b.check().unwrap(), []);
        assert_eq!(b.events[0].audio.as_ref().unwrap().samples().unwrap(), [0, 16384, -16384]);
        // Over 30 s, or not 16 kHz: refused.
        b.events[0].audio = Some(Audio::from_samples(&vec![0.0; 31 * 16_000]));
        assert!(b.check().unwrap()[0].problem.contains("longer than"));
        b.events[0].audio = Some(Audio { sample_rate: 44_100, ..Audio::from_samples(&[0.0]) });
        assert!(b.check().unwrap()[0].problem.contains("16000 Hz"));
    }

    #[test]
    fn whole_batch_faults_refuse_it_all() {
        assert_eq!(batch(0, ConsentLevel::Predictions).check(), Err(EventError::Empty));
        assert_eq!(batch(MAX_BATCH + 1, ConsentLevel::Predictions).check(), Err(EventError::TooMany(MAX_BATCH + 1)));
        let mut b = batch(1, ConsentLevel::Predictions);
        b.install_id = "short".into();
        assert_eq!(b.check(), Err(EventError::BadInstallId));
        let mut b = batch(1, ConsentLevel::Predictions);
        b.install_key = "the secret itself".into();
        assert_eq!(b.check(), Err(EventError::BadInstallKey));
    }
}
