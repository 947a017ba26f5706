//! hark-monitor: notices from the opt-in logs when the world drifts away
//! from the model — and does not cry wolf.
//!
//! A report ([`monitor`]) over a window of the collector's store, against
//! the published model's [`ReferenceProfile`]:
//!
//! * **input and output drift** ([`drift`]): the feature summary's per-band
//!   energy, SNR and speech duration, and the utterance confidence, each a
//!   distance to the reference with a threshold calibrated by bootstrap on
//!   the reference at the window's size, corrected across all checks so
//!   that a report on undrifted data alerts at most 5 % of the time;
//! * **new words** ([`words`]): the out-of-vocabulary rate of corrections
//!   and of predictions, the top new words and names with examples;
//! * **real error**: WER of the prediction against the person's correction,
//!   and the correction rate, per model version, backend and time bucket;
//! * **latency** p50/p95 and **failed recognitions** (schema 2's `error`
//!   events, kept out of every other signal) per backend and model version.
//!
//! The window is aggregated in the database ([`store`]); [`report`] writes
//! the JSON summary and the HTML dashboard. `hark monitor` is the command.

pub mod drift;
pub mod profile;
pub mod report;
pub mod store;
pub mod words;

use std::path::PathBuf;

pub use profile::{RefEvent, ReferenceProfile};
pub use report::Report;
pub use store::{PostgresSource, SqliteSource, WindowSource, WindowSpec};

/// Why a report could not be made (`hark monitor` exits 2).
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("the reference profile {path} {why}")]
    Profile { path: PathBuf, why: String },
    #[error("the store {store} {why}")]
    Store { store: String, why: String },
    #[error("the window holds no events ({0}); widen --since/--until, or check that the collector receives logs")]
    EmptyWindow(String),
    #[error("the store holds no events of model version {version:?}; it holds {known}")]
    UnknownModel { version: String, known: String },
}

/// Makes the report of `spec`'s window in `source`, against `profile`.
pub fn monitor(
    source: &dyn WindowSource,
    profile: &ReferenceProfile,
    spec: &WindowSpec,
) -> Result<Report, MonitorError> {
    let edges = drift::Edges::of(profile);
    let data = source.read(spec, &edges)?;
    if let Some(version) = &spec.model_version
        && !data.versions.contains_key(version)
    {
        let known = if data.versions.is_empty() {
            "no events at all".to_owned()
        } else {
            data.versions.iter().map(|(v, n)| format!("{v} ({n} events)")).collect::<Vec<_>>().join(", ")
        };
        return Err(MonitorError::UnknownModel { version: version.clone(), known });
    }
    if data.events == 0 {
        return Err(MonitorError::EmptyWindow(report::describe(spec)));
    }
    Ok(Report::new(profile, &edges, &data))
}
