//! SQLite storage of received prediction events.

use std::path::Path;
use std::sync::Mutex;

use hark_telemetry::{Batch, v2};
use rusqlite::{Connection, OptionalExtension, params};

/// The event database. One connection behind a mutex: ingest is small and
/// SQLite serialises writers anyway.
pub struct EventStore {
    conn: Mutex<Connection>,
}

/// The database's schema, one step per version (`PRAGMA user_version`
/// records how far a file has come). Steps are only ever appended.
const MIGRATIONS: &[&str] = &[
    // 1: schema-1 events.
    "CREATE TABLE IF NOT EXISTS events (
         event_id      TEXT PRIMARY KEY,
         install_id    TEXT NOT NULL,
         received_ms   INTEGER NOT NULL,
         created_ms    INTEGER NOT NULL,
         app_version   TEXT NOT NULL,
         model_version TEXT NOT NULL,
         backend       TEXT NOT NULL,
         prediction    TEXT NOT NULL,
         confidence    REAL NOT NULL,
         correction    TEXT,
         audio_s       REAL NOT NULL,
         decode_ms     REAL NOT NULL,
         features      TEXT
     );",
    // 2: schema-2 fields (`decode_ms` holds the end-of-speech latency,
    // `prediction` the transcript).
    "ALTER TABLE events ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 1;
     ALTER TABLE events ADD COLUMN consent TEXT;
     ALTER TABLE events ADD COLUMN consent_text_version INTEGER;
     ALTER TABLE events ADD COLUMN words TEXT;
     ALTER TABLE events ADD COLUMN summary TEXT;
     ALTER TABLE events ADD COLUMN audio BLOB;",
    // 3: each install's key (the SHA-256 of a secret only its browser holds).
    "CREATE TABLE installs (
         install_id  TEXT PRIMARY KEY,
         key_sha256  TEXT NOT NULL,
         first_ms    INTEGER NOT NULL
     );
     CREATE INDEX events_by_install ON events (install_id);",
];

/// Brings the database up to the last of [`MIGRATIONS`], each step in its own transaction.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(done) {
        conn.execute_batch(&format!("BEGIN; {step} PRAGMA user_version = {}; COMMIT;", i + 1))?;
    }
    Ok(())
}

/// What [`EventStore::insert`] did with a batch.
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
    #[error("event store lock poisoned by an earlier panic")]
    Poisoned,
    #[error("an event's audio {0}")]
    Audio(String),
    #[error("the install's secret does not match the key it registered with")]
    WrongKey,
    #[error("nothing is stored under a key for this install")]
    UnknownInstall,
}

/// The key an install registers: the SHA-256 of its secret, lowercase hex.
pub fn install_key(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// A JSON column's text.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl EventStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let open_err = |source| StoreError::Open { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").map_err(open_err)?;
        migrate(&conn).map_err(open_err)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    /// Stores a validated batch in one transaction: all of it or none.
    pub fn insert(&self, batch: &Batch) -> Result<InsertOutcome, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction()?;
        let received_ms = now_ms();
        let mut inserted = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (event_id, install_id, received_ms, created_ms, app_version,
                     model_version, backend, prediction, confidence, correction, audio_s, decode_ms, features)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for e in &batch.events {
                let features = e.features.as_ref().map(json);
                inserted += stmt.execute(params![
                    e.event_id,
                    batch.install_id,
                    received_ms,
                    e.created_ms as i64,
                    e.app_version,
                    e.model_version,
                    e.backend,
                    e.prediction,
                    e.confidence as f64,
                    e.correction,
                    e.audio_s as f64,
                    e.decode_ms as f64,
                    features,
                ])?;
            }
        }
        tx.commit()?;
        Ok(InsertOutcome { inserted, duplicates: batch.events.len() - inserted })
    }

    /// Stores the events of a checked schema-2 batch (its rejected events
    /// already removed) in one transaction: all of them or none.
    /// Refused whole ([`StoreError::WrongKey`]) when the install is known
    /// under another key.
    pub fn insert_v2(&self, batch: &v2::Batch) -> Result<InsertOutcome, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction()?;
        let received_ms = now_ms();
        tx.execute(
            "INSERT OR IGNORE INTO installs (install_id, key_sha256, first_ms) VALUES (?1, ?2, ?3)",
            params![batch.install_id, batch.install_key, received_ms],
        )?;
        let key: String =
            tx.query_row("SELECT key_sha256 FROM installs WHERE install_id = ?1", [&batch.install_id], |r| r.get(0))?;
        if key != batch.install_key {
            return Err(StoreError::WrongKey);
        }
        let consent = match batch.consent {
            v2::ConsentLevel::Predictions => "predictions",
            v2::ConsentLevel::Recordings => "recordings",
        };
        let mut inserted = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (event_id, install_id, received_ms, created_ms, app_version,
                     model_version, backend, prediction, confidence, correction, audio_s, decode_ms, features,
                     schema_version, consent, consent_text_version, words, summary, audio)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 2, ?14, ?15, ?16, ?17, ?18)",
            )?;
            for e in &batch.events {
                let audio = e.audio.as_ref().map(v2::Audio::pcm_bytes).transpose().map_err(StoreError::Audio)?;
                inserted += stmt.execute(params![
                    e.event_id,
                    batch.install_id,
                    received_ms,
                    e.created_ms as i64,
                    e.app_version,
                    e.model_version,
                    e.backend,
                    e.transcript,
                    e.confidence as f64,
                    e.correction,
                    e.audio_s as f64,
                    e.latency_ms as f64,
                    e.features.as_ref().map(json),
                    consent,
                    batch.consent_text_version as i64,
                    json(&e.words),
                    e.summary.as_ref().map(json),
                    audio,
                ])?;
            }
        }
        tx.commit()?;
        Ok(InsertOutcome { inserted, duplicates: batch.events.len() - inserted })
    }

    /// Deletes everything stored for `install_id` — its events of both
    /// schemas and its key — when `secret` is the install's secret: the
    /// number of events deleted. [`StoreError::UnknownInstall`] when no key
    /// is known for it, [`StoreError::WrongKey`] when the secret does not match.
    pub fn delete_install(&self, install_id: &str, secret: &str) -> Result<usize, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction()?;
        let key: Option<String> = tx
            .query_row("SELECT key_sha256 FROM installs WHERE install_id = ?1", [install_id], |r| r.get(0))
            .optional()?;
        let Some(key) = key else { return Err(StoreError::UnknownInstall) };
        if key != install_key(secret) {
            return Err(StoreError::WrongKey);
        }
        let deleted = tx.execute("DELETE FROM events WHERE install_id = ?1", [install_id])?;
        tx.execute("DELETE FROM installs WHERE install_id = ?1", [install_id])?;
        tx.commit()?;
        Ok(deleted)
    }

    /// Number of stored events.
    pub fn count(&self) -> Result<u64, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as u64)
    }
}
