//! SQLite storage of received prediction events.

use std::path::Path;
use std::sync::Mutex;

use hark_telemetry::Batch;
use rusqlite::{Connection, params};

/// The event database. One connection behind a mutex: ingest is small and
/// SQLite serialises writers anyway.
pub struct EventStore {
    conn: Mutex<Connection>,
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
}

impl EventStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let open_err = |source| StoreError::Open { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS events (
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
        )
        .map_err(open_err)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    /// Stores a validated batch in one transaction: all of it or none.
    pub fn insert(&self, batch: &Batch) -> Result<InsertOutcome, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction()?;
        let received_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let mut inserted = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for e in &batch.events {
                let features = e.features.as_ref().map(|f| serde_json::to_string(f).unwrap_or_default());
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

    /// Number of stored events.
    pub fn count(&self) -> Result<u64, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as u64)
    }
}
