//! Where events are kept: the [`Store`] trait and its two backends.
//!
//! * [`SqliteStore`] — the embedded default: one SQLite file in the data
//!   folder, recordings as WAV files beside it. One process.
//! * [`PostgresStore`] — for more than one machine: any number of
//!   stateless `hark serve` replicas over one PostgreSQL database,
//!   recordings in the database (replicas share no disk).
//!
//! Both answer an insert only after its transaction committed durably,
//! dedupe on `event_id` (a retried batch is stored once, whichever replica
//! gets it), register an install's key on its first schema-2 batch, and
//! delete everything of an install for its secret.

mod postgres;
mod sqlite;

use futures::future::BoxFuture;
use hark_telemetry::export::Record;
use hark_telemetry::{Batch, v2};
use serde::Serialize;

pub use postgres::PostgresStore;
pub use sqlite::{AUDIO_DIR, DB_FILE, SqliteStore};

/// What a backend does. Object-safe (`Arc<dyn Store>`): each operation
/// returns a boxed future.
pub trait Store: Send + Sync {
    /// Stores the events in one transaction: all of them or none. Refused
    /// whole ([`StoreError::WrongKey`]) when a schema-2 install is known
    /// under another key. Resolves after the commit.
    fn insert(&self, insert: Insert) -> BoxFuture<'_, Result<InsertOutcome, StoreError>>;

    /// Deletes everything stored for `install_id` — its events of both
    /// schemas, its recordings and its key — when `secret` is the install's
    /// secret: the number of events deleted. [`StoreError::UnknownInstall`]
    /// when no key is known for it, [`StoreError::WrongKey`] when the secret
    /// does not match.
    fn delete_install<'a>(&'a self, install_id: &'a str, secret: &'a str) -> BoxFuture<'a, Result<usize, StoreError>>;

    /// Applies retention at `now_ms`: events older than `events_days` go,
    /// recordings older than `audio_days` go from the events that stay
    /// (0: no limit).
    fn sweep(&self, now_ms: u64, events_days: u32, audio_days: u32) -> BoxFuture<'_, Result<Swept, StoreError>>;

    /// Number of stored events (also the health check's probe).
    fn count(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>>;

    /// Up to `limit` events received at or after `since_ms`, in (received
    /// time, event id) order, after `after` (the last of the previous page).
    fn export_page<'a>(
        &'a self,
        since_ms: u64,
        after: Option<&'a (u64, String)>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;

    /// An event's recording as a WAV file's bytes, if it has one.
    fn audio_wav<'a>(&'a self, event_id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;

    /// Writes waiting to be done (the `/metrics` queue depth).
    fn queued(&self) -> usize;

    /// Finishes the writes already accepted and releases the backend.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// A JSON column's text (words, summary, features).
pub(crate) fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A JSON column read back; `None` for NULL (or text no longer readable).
pub(crate) fn parsed<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// Where an export page starts: after `after` (the previous page's last
/// event), else before every event received at `since_ms` — event ids are
/// never empty, so `(since, "")` precedes all of them.
pub(crate) fn page_start(since_ms: u64, after: Option<&(u64, String)>) -> (i64, String) {
    after.map(|(ms, id)| (*ms as i64, id.clone())).unwrap_or((since_ms as i64, String::new()))
}

/// The cut-off times of a sweep at `now_ms`: events, then recordings.
pub(crate) fn cutoffs(now_ms: u64, events_days: u32, audio_days: u32) -> (Option<u64>, Option<u64>) {
    let before = |days: u32| (days > 0).then(|| now_ms.saturating_sub(days as u64 * 86_400_000));
    (before(events_days), before(audio_days))
}

/// What the store did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertOutcome {
    pub inserted: usize,
    /// Events whose `event_id` was already stored (a retried upload).
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the event database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Pool(String),
    #[error("cannot write or remove a recording: {0}")]
    Io(#[from] std::io::Error),
    #[error("the commit failed: {0}")]
    Commit(String),
    #[error("event store lock poisoned by an earlier panic")]
    Poisoned,
    #[error("the event store is closed (the server is shutting down)")]
    Closed,
    #[error("an event's audio {0}")]
    Audio(String),
    #[error("the install's secret does not match the key it registered with")]
    WrongKey,
    #[error("nothing is stored under a key for this install")]
    UnknownInstall,
}

pub use hark_telemetry::v2::install_key;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// The events of one request, ready to store: each as its export
/// [`Record`] and, under the recordings level, its 16-bit PCM.
pub struct Insert {
    pub(crate) install_id: String,
    /// Schema 2 registers (or must match) the install's key.
    pub(crate) install_key: Option<String>,
    pub(crate) events: Vec<(Record, Option<Vec<u8>>)>,
}

impl Insert {
    /// A validated schema-1 batch.
    pub fn v1(batch: &Batch) -> Self {
        let received = now_ms();
        let events = batch.events.iter().map(|e| (Record::from_v1(&batch.install_id, e, received), None)).collect();
        Self { install_id: batch.install_id.clone(), install_key: None, events }
    }

    /// A checked schema-2 batch, its rejected events already taken out.
    pub fn v2(batch: &v2::Batch) -> Result<Self, StoreError> {
        let received = now_ms();
        let events = batch
            .events
            .iter()
            .map(|e| {
                let pcm = e.audio.as_ref().map(v2::Audio::pcm_bytes).transpose().map_err(StoreError::Audio)?;
                Ok((Record::from_v2(batch, e, received), pcm))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self { install_id: batch.install_id.clone(), install_key: Some(batch.install_key.clone()), events })
    }
}

/// What [`Store::sweep`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Events past the events' retention.
    pub events: usize,
    /// Recordings (audio and full features) past theirs, from events kept.
    pub recordings: usize,
}

/// What `GET /v1/admin/stats` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub events: u64,
    pub installs: u64,
    pub schema_1: u64,
    pub schema_2: u64,
    pub consent_predictions: u64,
    pub consent_recordings: u64,
    pub corrections: u64,
    pub recordings: u64,
    pub oldest_received_ms: Option<u64>,
    pub newest_received_ms: Option<u64>,
}

/// 16-bit PCM (16 kHz mono) as a WAV file.
pub(crate) fn wav(pcm: &[u8]) -> Result<Vec<u8>, StoreError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: v2::AUDIO_SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::with_capacity(pcm.len() + 44));
    let mut writer = hound::WavWriter::new(&mut out, spec).map_err(|e| StoreError::Audio(e.to_string()))?;
    for s in pcm.chunks_exact(2) {
        writer.write_sample(i16::from_le_bytes([s[0], s[1]])).map_err(|e| StoreError::Audio(e.to_string()))?;
    }
    writer.finalize().map_err(|e| StoreError::Audio(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_holds_the_samples_it_was_given() {
        let pcm: Vec<u8> = [0i16, 1000, -1000, i16::MAX].iter().flat_map(|s| s.to_le_bytes()).collect();
        let bytes = wav(&pcm).unwrap();
        let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(reader.spec().sample_rate, 16_000);
        let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(samples, [0, 1000, -1000, i16::MAX]);
    }
}
