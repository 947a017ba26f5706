//! hark's audio front end: from samples to the log-mel features the model reads.
//!
//! This is the *one* feature extractor of the project. It is compiled into the
//! training pipeline (native) and into the browser (wasm32), so training and
//! serving cannot disagree about features. It knows nothing about Burn, the
//! browser or files beyond WAV.
//!
//! Entry points: [`LogMel`] (features), [`normalize_utterance`],
//! [`resample`] / [`StreamResampler`] (any rate to 16 kHz), [`Endpointer`]
//! (speech start/stop on a live stream), [`wav`] (reading and writing WAV),
//! [`FeatureSummary`] (how an utterance sounds, for drift monitoring).

pub mod wav;

mod endpoint;
mod mel;
mod resample;
mod summary;

pub use endpoint::{Endpoint, EndpointConfig, Endpointer};
pub use mel::{LogMel, LogMelConfig, normalize_utterance};
pub use resample::{ResampleError, StreamResampler, resample};
pub use summary::{FeatureSummary, SUMMARY_BANDS};

/// The sample rate every feature is computed at.
pub const SAMPLE_RATE: u32 = 16_000;
