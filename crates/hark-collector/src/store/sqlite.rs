//! The event store: one SQLite database in WAL mode, and the recordings as
//! WAV files beside it (`audio/INSTALL/EVENT.wav`).
//!
//! **What "accepted" means.** Every write goes through one writer thread
//! that takes all the jobs waiting for it, runs each in its own savepoint
//! of one transaction, commits, and only then answers them (group commit).
//! The database runs with `synchronous = FULL`: the commit returns once the
//! write-ahead log is on disk, so an event the collector answered 2xx for
//! survives the process being killed *and* the machine losing power.
//! (`NORMAL` would survive a killed process but may lose the last commits
//! on power loss; the group commit pays for `FULL`'s one fsync per group
//! instead of one per request.) A recording's file is written and synced
//! before the commit that names it.
//!
//! Reads (counts, statistics, the export) use their own connection and do
//! not wait for the writer.
//!
//! **Keeping the writer's path short.** The writer is the one thread every
//! accepted event passes through, so it does only what needs the
//! connection: the rows arrive encoded ([`Rows`]: JSON columns and WAV
//! bytes made on the request's own task) and its statements are prepared
//! once. (A checkpointing thread of its own was tried and measured no
//! better than SQLite's automatic checkpoint after a commit: under steady
//! writes a checkpoint from another connection cannot restart the log.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use futures::future::BoxFuture;
use hark_telemetry::export::{self, Record};
use hark_telemetry::v2;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

use super::{
    Insert, InsertOutcome, Stats, Store, StoreError, Swept, cutoffs, install_key, json, now_ms, page_start, parsed, wav,
};

/// The database's file name in the data folder.
pub const DB_FILE: &str = "collector.sqlite3";
/// The recordings' folder in the data folder.
pub const AUDIO_DIR: &str = "audio";
/// Most jobs one group commit takes.
const MAX_GROUP: usize = 256;

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
    // 4: recordings as files beside the database (`audio` keeps the blobs
    // of databases from before), and the export's order.
    "ALTER TABLE events ADD COLUMN audio_file TEXT;
     CREATE INDEX events_by_received ON events (received_ms, event_id);",
    // 5: failed recognitions (schema 2's `error`).
    "ALTER TABLE events ADD COLUMN error TEXT;",
];

/// Brings the database up to the last of [`MIGRATIONS`], each step in its own transaction.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(done) {
        conn.execute_batch(&format!("BEGIN; {step} PRAGMA user_version = {}; COMMIT;", i + 1))?;
    }
    Ok(())
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Job {
    Insert(Rows, Reply<InsertOutcome>),
    Delete { install_id: String, secret: String, reply: Reply<usize> },
    Sweep { events_before: Option<u64>, audio_before: Option<u64>, reply: Reply<Swept> },
}

/// Sends a job's answer once its group's commit is known: `None` when it
/// succeeded, else why it failed.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// A job done inside the group's transaction, waiting for the commit.
struct Done {
    /// Files it wrote: removed again if the commit fails.
    written: Vec<PathBuf>,
    /// Files and folders to remove once the commit succeeded.
    remove: Vec<PathBuf>,
    answer: Answer,
}

fn finish<T: Send + 'static>(reply: Reply<T>, value: T) -> Answer {
    Box::new(move |failed: Option<&str>| {
        let _ = reply.send(match failed {
            None => Ok(value),
            Some(why) => Err(StoreError::Commit(why.to_owned())),
        });
    })
}

/// The SQLite backend. [`Store::close`] (also run on drop) finishes the
/// writer's queue and checkpoints the database.
pub struct SqliteStore {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    reader: Arc<Reader>,
    queued: Arc<AtomicUsize>,
}

/// The reading connection, apart from the writer's (WAL lets both work at once).
struct Reader {
    conn: Mutex<Connection>,
    dir: PathBuf,
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open { path: path.display().to_string(), source };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")
        .map_err(open_err)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (or makes) the store in the data folder `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir.join(AUDIO_DIR))?;
        let path = dir.join(DB_FILE);
        let conn = open_connection(&path)?;
        migrate(&conn).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        let reader = Reader { conn: Mutex::new(open_connection(&path)?), dir: dir.to_owned() };
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = Writer { conn, audio: dir.join(AUDIO_DIR), queued: queued.clone() };
        let handle = std::thread::Builder::new().name("hark-store-writer".into()).spawn(move || writer.run(rx))?;
        Ok(Self { jobs: Mutex::new(Some(tx)), writer: Mutex::new(Some(handle)), reader: Arc::new(reader), queued })
    }

    async fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let jobs = self.jobs.lock().map_err(|_| StoreError::Poisoned)?;
            let sender = jobs.as_ref().ok_or(StoreError::Closed)?;
            self.queued.fetch_add(1, Ordering::Relaxed);
            sender.send(job(reply)).map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a read on tokio's blocking pool (SQLite blocks).
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection, &Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.conn.lock().map_err(|_| StoreError::Poisoned)?;
            query(&conn, &reader.dir)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    fn stop_writer(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }
}

impl Store for SqliteStore {
    fn insert(&self, insert: Insert) -> BoxFuture<'_, Result<InsertOutcome, StoreError>> {
        Box::pin(async move {
            let rows = Rows::encode(insert)?;
            self.submit(|reply| Job::Insert(rows, reply)).await
        })
    }

    fn delete_install<'a>(&'a self, install_id: &'a str, secret: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        let (install_id, secret) = (install_id.to_owned(), secret.to_owned());
        Box::pin(self.submit(|reply| Job::Delete { install_id, secret, reply }))
    }

    /// Also removes recordings' folders of installs no longer known (left
    /// by a crash between a deletion's commit and its files' removal).
    fn sweep(&self, now_ms: u64, events_days: u32, audio_days: u32) -> BoxFuture<'_, Result<Swept, StoreError>> {
        let (events_before, audio_before) = cutoffs(now_ms, events_days, audio_days);
        Box::pin(self.submit(move |reply| Job::Sweep { events_before, audio_before, reply }))
    }

    fn count(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.read(|c, _| Ok(c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as u64)))
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(self.read(|c, _| Ok(stats(c)?)))
    }

    fn export_page<'a>(
        &'a self,
        since_ms: u64,
        after: Option<&'a (u64, String)>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        let (after_ms, after_id) = page_start(since_ms, after);
        Box::pin(self.read(move |c, _| {
            let mut stmt = c.prepare_cached(
                "SELECT event_id, install_id, received_ms, created_ms, schema_version, consent, consent_text_version,
                        app_version, model_version, backend, prediction, confidence, words, correction, decode_ms,
                        audio_s, summary, features, audio_file IS NOT NULL OR audio IS NOT NULL, error
                 FROM events WHERE (received_ms, event_id) > (?1, ?2)
                 ORDER BY received_ms, event_id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![after_ms, after_id, limit as i64], record)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        }))
    }

    fn audio_wav<'a>(&'a self, event_id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        let event_id = event_id.to_owned();
        Box::pin(self.read(move |c, dir| {
            let row: Option<(Option<String>, Option<Vec<u8>>)> = c
                .query_row("SELECT audio_file, audio FROM events WHERE event_id = ?1", [&event_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            match row {
                Some((Some(file), _)) => Ok(Some(std::fs::read(dir.join(AUDIO_DIR).join(file))?)),
                Some((None, Some(pcm))) => Ok(Some(wav(&pcm)?)),
                _ => Ok(None),
            }
        }))
    }

    fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Finishes the jobs already queued, checkpoints the write-ahead log
    /// into the database file and stops the writer; later writes answer
    /// [`StoreError::Closed`].
    fn close(&self) -> BoxFuture<'_, ()> {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        Box::pin(async move {
            if let Some(handle) = writer {
                let _ = tokio::task::spawn_blocking(move || handle.join()).await;
            }
        })
    }
}

fn stats(c: &Connection) -> rusqlite::Result<Stats> {
    let mut s = c.query_row(
        "SELECT COUNT(*),
            COUNT(*) FILTER (WHERE schema_version = 1),
            COUNT(*) FILTER (WHERE schema_version = 2),
            COUNT(*) FILTER (WHERE consent = 'predictions'),
            COUNT(*) FILTER (WHERE consent = 'recordings'),
            COUNT(*) FILTER (WHERE correction IS NOT NULL),
            COUNT(*) FILTER (WHERE audio_file IS NOT NULL OR audio IS NOT NULL),
            MIN(received_ms), MAX(received_ms)
     FROM events",
        [],
        |r| {
            let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
            Ok(Stats {
                events: n(0)?,
                installs: 0,
                schema_1: n(1)?,
                schema_2: n(2)?,
                consent_predictions: n(3)?,
                consent_recordings: n(4)?,
                corrections: n(5)?,
                recordings: n(6)?,
                oldest_received_ms: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                newest_received_ms: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
            })
        },
    )?;
    s.installs = c.query_row(
        "SELECT COUNT(*) FROM (SELECT install_id FROM events UNION SELECT install_id FROM installs)",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    Ok(s)
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop_writer();
    }
}

/// A stored row as its export record.
fn record(r: &rusqlite::Row) -> rusqlite::Result<Record> {
    let event_id: String = r.get(0)?;
    let has_audio: bool = r.get(18)?;
    Ok(Record {
        install_id: r.get(1)?,
        received_ms: r.get::<_, i64>(2)? as u64,
        created_ms: r.get::<_, i64>(3)? as u64,
        schema_version: r.get(4)?,
        consent: r.get::<_, Option<String>>(5)?.as_deref().and_then(v2::ConsentLevel::from_name),
        consent_text_version: r.get(6)?,
        app_version: r.get(7)?,
        model_version: r.get(8)?,
        backend: r.get(9)?,
        transcript: r.get(10)?,
        confidence: r.get::<_, f64>(11)? as f32,
        words: parsed(r.get(12)?).unwrap_or_default(),
        correction: r.get(13)?,
        latency_ms: r.get::<_, f64>(14)? as f32,
        audio_s: r.get::<_, f64>(15)? as f32,
        summary: parsed(r.get(16)?),
        features: parsed(r.get(17)?),
        audio: has_audio.then(|| export::audio_path(&event_id)),
        error: r.get(19)?,
        event_id,
    })
}

/// Writes `bytes` to `path` durably: a temporary file, synced, renamed.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The thread that owns the writing connection.
struct Writer {
    conn: Connection,
    audio: PathBuf,
    queued: Arc<AtomicUsize>,
}

impl Writer {
    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.queued.fetch_sub(group.len(), Ordering::Relaxed);
            self.commit_group(group);
        }
        // The queue is closed and empty: fold the log into the database.
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!(error = %e, "closing the event store: the checkpoint failed (the log stays, nothing is lost)");
        }
    }

    fn commit_group(&mut self, group: Vec<Job>) {
        let tx = match self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let why = e.to_string();
                for job in group {
                    job.fail(&why);
                }
                return;
            }
        };
        let mut done = Vec::with_capacity(group.len());
        for job in group {
            if let Some(d) = apply(&tx, &self.audio, job) {
                done.push(d);
            }
        }
        let failed = tx.commit().err().map(|e| e.to_string());
        for d in done {
            let paths = if failed.is_some() { &d.written } else { &d.remove };
            for p in paths {
                let _ = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
            }
            (d.answer)(failed.as_deref());
        }
    }
}

impl Job {
    fn fail(self, why: &str) {
        let err = || StoreError::Commit(why.to_owned());
        match self {
            Job::Insert(_, reply) => drop(reply.send(Err(err()))),
            Job::Delete { reply, .. } => drop(reply.send(Err(err()))),
            Job::Sweep { reply, .. } => drop(reply.send(Err(err()))),
        }
    }
}

/// Runs one job in its own savepoint of `tx`. A job that fails is rolled
/// back to its savepoint, answered at once, and `None` returned.
fn apply(tx: &Transaction, audio: &Path, job: Job) -> Option<Done> {
    fn scoped<T>(
        tx: &Transaction,
        written: &mut Vec<PathBuf>,
        work: impl FnOnce(&Transaction, &mut Vec<PathBuf>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let run = |sql: &str| tx.prepare_cached(sql).and_then(|mut s| s.execute([]));
        run("SAVEPOINT job")?;
        let result = work(tx, written);
        if result.is_ok() {
            run("RELEASE job")?;
        } else {
            run("ROLLBACK TO job")?;
            run("RELEASE job")?;
            for p in written.drain(..) {
                let _ = std::fs::remove_file(p);
            }
        }
        result
    }
    let mut written = Vec::new();
    match job {
        Job::Insert(rows, reply) => match scoped(tx, &mut written, |tx, w| insert_events(tx, audio, &rows, w)) {
            Ok(outcome) => Some(Done { written, remove: Vec::new(), answer: finish(reply, outcome) }),
            Err(e) => {
                let _ = reply.send(Err(e));
                None
            }
        },
        Job::Delete { install_id, secret, reply } => {
            match scoped(tx, &mut written, |tx, _| delete_install(tx, &install_id, &secret)) {
                Ok(n) => Some(Done { written, remove: vec![audio.join(&install_id)], answer: finish(reply, n) }),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    None
                }
            }
        }
        Job::Sweep { events_before, audio_before, reply } => {
            match scoped(tx, &mut written, |tx, _| sweep(tx, audio, events_before, audio_before)) {
                Ok((swept, remove)) => Some(Done { written, remove, answer: finish(reply, swept) }),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    None
                }
            }
        }
    }
}

/// A request's events encoded for their columns, on the request's task,
/// so that the writer only binds and steps.
struct Rows {
    install_id: String,
    install_key: Option<String>,
    rows: Vec<Row>,
}

struct Row {
    record: Record,
    words: Option<String>,
    summary: Option<String>,
    features: Option<String>,
    /// The recording's file (`INSTALL/EVENT.wav`) and bytes.
    recording: Option<(String, Vec<u8>)>,
}

impl Rows {
    fn encode(insert: Insert) -> Result<Self, StoreError> {
        let rows = insert
            .events
            .into_iter()
            .map(|(record, pcm)| {
                let recording = match pcm {
                    Some(pcm) => Some((format!("{}/{}.wav", record.install_id, record.event_id), wav(&pcm)?)),
                    None => None,
                };
                Ok(Row {
                    words: (record.schema_version >= 2).then(|| json(&record.words)),
                    summary: record.summary.as_ref().map(json),
                    features: record.features.as_ref().map(json),
                    recording,
                    record,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self { install_id: insert.install_id, install_key: insert.install_key, rows })
    }
}

fn insert_events(
    tx: &Transaction,
    audio: &Path,
    rows: &Rows,
    written: &mut Vec<PathBuf>,
) -> Result<InsertOutcome, StoreError> {
    if let Some(key) = &rows.install_key {
        tx.prepare_cached("INSERT OR IGNORE INTO installs (install_id, key_sha256, first_ms) VALUES (?1, ?2, ?3)")?
            .execute(params![rows.install_id, key, now_ms() as i64])?;
        let known: String = tx
            .prepare_cached("SELECT key_sha256 FROM installs WHERE install_id = ?1")?
            .query_row([&rows.install_id], |r| r.get(0))?;
        if &known != key {
            return Err(StoreError::WrongKey);
        }
    }
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO events (event_id, install_id, received_ms, created_ms, app_version, model_version,
             backend, prediction, confidence, correction, audio_s, decode_ms, features, schema_version, consent,
             consent_text_version, words, summary, audio_file, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?;
    let mut inserted = 0;
    for row in &rows.rows {
        let e = &row.record;
        let file = row.recording.as_ref().map(|(file, _)| file);
        let stored = stmt.execute(params![
            e.event_id,
            e.install_id,
            e.received_ms as i64,
            e.created_ms as i64,
            e.app_version,
            e.model_version,
            e.backend,
            e.transcript,
            e.confidence as f64,
            e.correction,
            e.audio_s as f64,
            e.latency_ms as f64,
            row.features,
            e.schema_version,
            e.consent.map(v2::ConsentLevel::as_str),
            e.consent_text_version,
            row.words,
            row.summary,
            file,
            e.error,
        ])?;
        inserted += stored;
        // A duplicate's recording is already on disk under the same name.
        if let (1, Some((file, bytes))) = (stored, &row.recording) {
            let path = audio.join(file);
            write_synced(&path, bytes)?;
            written.push(path);
        }
    }
    Ok(InsertOutcome { inserted, duplicates: rows.rows.len() - inserted })
}

fn delete_install(tx: &Transaction, install_id: &str, secret: &str) -> Result<usize, StoreError> {
    let key: Option<String> =
        tx.query_row("SELECT key_sha256 FROM installs WHERE install_id = ?1", [install_id], |r| r.get(0)).optional()?;
    let Some(key) = key else { return Err(StoreError::UnknownInstall) };
    if key != install_key(secret) {
        return Err(StoreError::WrongKey);
    }
    let deleted = tx.execute("DELETE FROM events WHERE install_id = ?1", [install_id])?;
    tx.execute("DELETE FROM installs WHERE install_id = ?1", [install_id])?;
    Ok(deleted)
}

fn sweep(
    tx: &Transaction,
    audio: &Path,
    events_before: Option<u64>,
    audio_before: Option<u64>,
) -> Result<(Swept, Vec<PathBuf>), StoreError> {
    let files = |sql: &str, before: u64| -> rusqlite::Result<Vec<PathBuf>> {
        let mut stmt = tx.prepare(sql)?;
        let rows = stmt.query_map([before as i64], |r| r.get::<_, String>(0))?;
        rows.map(|f| f.map(|f| audio.join(f))).collect()
    };
    let mut swept = Swept::default();
    let mut remove = Vec::new();
    if let Some(before) = events_before {
        remove
            .extend(files("SELECT audio_file FROM events WHERE received_ms < ?1 AND audio_file IS NOT NULL", before)?);
        swept.events = tx.execute("DELETE FROM events WHERE received_ms < ?1", [before as i64])?;
    }
    if let Some(before) = audio_before {
        remove
            .extend(files("SELECT audio_file FROM events WHERE received_ms < ?1 AND audio_file IS NOT NULL", before)?);
        swept.recordings = tx.execute(
            "UPDATE events SET audio_file = NULL, audio = NULL, features = NULL
             WHERE received_ms < ?1 AND (audio_file IS NOT NULL OR audio IS NOT NULL OR features IS NOT NULL)",
            [before as i64],
        )?;
    }
    // Folders of installs that were deleted while their files could not
    // be removed (a crash between the commit and the removal).
    if let Ok(dirs) = std::fs::read_dir(audio) {
        let mut known = tx.prepare("SELECT 1 FROM events WHERE install_id = ?1 LIMIT 1")?;
        for dir in dirs.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            if !known.exists([&name])? {
                remove.push(dir.path());
            }
        }
    }
    Ok((swept, remove))
}
