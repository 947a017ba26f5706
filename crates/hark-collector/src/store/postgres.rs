//! The PostgreSQL backend: for more than one machine. Any number of
//! stateless `hark serve` replicas share one database; an insert is one
//! statement (`INSERT … ON CONFLICT (event_id) DO NOTHING`, so the same
//! event sent to two replicas is stored once), committed with PostgreSQL's
//! default `synchronous_commit = on` (on disk before the 2xx).
//! Recordings are kept in the database (`audio BYTEA`): replicas share no
//! disk. The schema is brought up to date under an advisory lock, so
//! replicas starting together migrate once.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::future::BoxFuture;
use hark_telemetry::export::{self, Record};
use hark_telemetry::v2;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::{
    Insert, InsertOutcome, Stats, Store, StoreError, Swept, cutoffs, install_key, json, now_ms, page_start, parsed, wav,
};

/// The schema, one step per version (table `hark_schema` records how far a
/// database has come). Steps are only ever appended.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE events (
         event_id             TEXT PRIMARY KEY,
         install_id           TEXT NOT NULL,
         received_ms          BIGINT NOT NULL,
         created_ms           BIGINT NOT NULL,
         schema_version       INTEGER NOT NULL,
         consent              TEXT,
         consent_text_version INTEGER,
         app_version          TEXT NOT NULL,
         model_version        TEXT NOT NULL,
         backend              TEXT NOT NULL,
         transcript           TEXT NOT NULL,
         confidence           REAL NOT NULL,
         words                TEXT,
         correction           TEXT,
         latency_ms           REAL NOT NULL,
         audio_s              REAL NOT NULL,
         summary              TEXT,
         features             TEXT,
         audio                BYTEA
     );
     CREATE INDEX events_by_install ON events (install_id);
     CREATE INDEX events_by_received ON events (received_ms, event_id);
     CREATE TABLE installs (
         install_id  TEXT PRIMARY KEY,
         key_sha256  TEXT NOT NULL,
         first_ms    BIGINT NOT NULL
     );",
    // 2: failed recognitions (schema 2's `error`).
    "ALTER TABLE events ADD COLUMN error TEXT;",
];

/// Connections one replica keeps open.
const POOL_SIZE: usize = 16;

/// A batch in one statement ([`PostgresStore::insert_events`]): `$1`..`$20`
/// the events' columns as arrays, `$21` the install, `$22` its key (NULL
/// for schema 1, which has none), `$23` now. Answers the install's key as
/// this statement sees it and the number of events stored. (The statement's
/// sub-queries share one snapshot, so a key registered by this very
/// statement is read from its `RETURNING`.)
const INSERT_BATCH: &str = "
    WITH new_install AS (
        INSERT INTO installs (install_id, key_sha256, first_ms)
        SELECT $21, $22, $23 WHERE $22::text IS NOT NULL
        ON CONFLICT DO NOTHING
        RETURNING key_sha256
    ), known AS (
        SELECT key_sha256 FROM new_install
        UNION ALL
        SELECT key_sha256 FROM installs WHERE install_id = $21 AND $22::text IS NOT NULL
    ), stored AS (
        INSERT INTO events (event_id, install_id, received_ms, created_ms, schema_version, consent,
            consent_text_version, app_version, model_version, backend, transcript, confidence, words,
            correction, latency_ms, audio_s, summary, features, audio, error)
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::integer[],
            $6::text[], $7::integer[], $8::text[], $9::text[], $10::text[], $11::text[], $12::real[],
            $13::text[], $14::text[], $15::real[], $16::real[], $17::text[], $18::text[], $19::bytea[],
            $20::text[])
        WHERE $22::text IS NULL OR (SELECT key_sha256 FROM known LIMIT 1) = $22::text
        ON CONFLICT (event_id) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT key_sha256 FROM known LIMIT 1), (SELECT COUNT(*) FROM stored)";

pub struct PostgresStore {
    pool: Pool,
}

fn pool_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Pool(e.to_string())
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/database` or
    /// `host=… user=… dbname=…`) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Pool(format!("{url:?} is not a PostgreSQL connection string: {e}")))?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(POOL_SIZE).build().map_err(pool_error)?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await?;
        // One replica at a time; the others wait, then find it done.
        tx.execute("SELECT pg_advisory_xact_lock(7414611)", &[]).await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS hark_schema (version INTEGER NOT NULL)").await?;
        let done: Option<i32> = tx.query_opt("SELECT version FROM hark_schema", &[]).await?.map(|r| r.get(0));
        let done = done.unwrap_or(0);
        for step in MIGRATIONS.iter().skip(done as usize) {
            tx.batch_execute(step).await?;
        }
        tx.execute("DELETE FROM hark_schema", &[]).await?;
        tx.execute("INSERT INTO hark_schema (version) VALUES ($1)", &[&(MIGRATIONS.len() as i32)]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One statement per batch, so one round trip and one implicit
    /// transaction: the install's key registered (schema 2) or checked, and
    /// the events stored only when it matches, from their columns as arrays.
    /// A first registration racing another replica's is not visible to the
    /// statement that lost the race: it stores nothing and runs once more.
    async fn insert_events(&self, insert: Insert) -> Result<InsertOutcome, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let statement = client.prepare_cached(INSERT_BATCH).await?;
        let events = insert.events.iter().map(|(e, _)| e);
        let texts = |f: fn(&Record) -> String| events.clone().map(f).collect::<Vec<String>>();
        let optional = |f: fn(&Record) -> Option<String>| events.clone().map(f).collect::<Vec<Option<String>>>();
        let reals = |f: fn(&Record) -> f32| events.clone().map(f).collect::<Vec<f32>>();
        let bigints = |f: fn(&Record) -> i64| events.clone().map(f).collect::<Vec<i64>>();
        let audio: Vec<Option<&[u8]>> = insert.events.iter().map(|(_, pcm)| pcm.as_deref()).collect();
        let columns: [&(dyn ToSql + Sync); 20] = [
            &texts(|e| e.event_id.clone()),
            &texts(|e| e.install_id.clone()),
            &bigints(|e| e.received_ms as i64),
            &bigints(|e| e.created_ms as i64),
            &events.clone().map(|e| e.schema_version as i32).collect::<Vec<i32>>(),
            &optional(|e| e.consent.map(|c| c.as_str().to_owned())),
            &events.clone().map(|e| e.consent_text_version.map(|v| v as i32)).collect::<Vec<Option<i32>>>(),
            &texts(|e| e.app_version.clone()),
            &texts(|e| e.model_version.clone()),
            &texts(|e| e.backend.clone()),
            &texts(|e| e.transcript.clone()),
            &reals(|e| e.confidence),
            &optional(|e| (e.schema_version >= 2).then(|| json(&e.words))),
            &optional(|e| e.correction.clone()),
            &reals(|e| e.latency_ms),
            &reals(|e| e.audio_s),
            &optional(|e| e.summary.as_ref().map(json)),
            &optional(|e| e.features.as_ref().map(json)),
            &audio,
            &optional(|e| e.error.clone()),
        ];
        let now = now_ms() as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> = columns.to_vec();
        params.push(&insert.install_id);
        params.push(&insert.install_key);
        params.push(&now);
        for _ in 0..2 {
            let row = client.query_one(&statement, &params).await?;
            let known: Option<String> = row.get(0);
            let inserted = row.get::<_, i64>(1) as usize;
            match (&insert.install_key, known) {
                (Some(_), None) => continue,
                (Some(key), Some(known)) if &known != key => return Err(StoreError::WrongKey),
                _ => return Ok(InsertOutcome { inserted, duplicates: insert.events.len() - inserted }),
            }
        }
        Err(StoreError::Commit("the install's key could not be registered; send the batch again".into()))
    }

    async fn delete(&self, install_id: &str, secret: &str) -> Result<usize, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await?;
        let key = tx
            .query_opt("SELECT key_sha256 FROM installs WHERE install_id = $1 FOR UPDATE", &[&install_id])
            .await?
            .map(|r| r.get::<_, String>(0));
        let Some(key) = key else { return Err(StoreError::UnknownInstall) };
        if key != install_key(secret) {
            return Err(StoreError::WrongKey);
        }
        let deleted = tx.execute("DELETE FROM events WHERE install_id = $1", &[&install_id]).await?;
        tx.execute("DELETE FROM installs WHERE install_id = $1", &[&install_id]).await?;
        tx.commit().await?;
        Ok(deleted as usize)
    }
}

fn record(r: &tokio_postgres::Row) -> Record {
    let event_id: String = r.get(0);
    let has_audio: bool = r.get(18);
    Record {
        install_id: r.get(1),
        received_ms: r.get::<_, i64>(2) as u64,
        created_ms: r.get::<_, i64>(3) as u64,
        schema_version: r.get::<_, i32>(4) as u32,
        consent: r.get::<_, Option<String>>(5).as_deref().and_then(v2::ConsentLevel::from_name),
        consent_text_version: r.get::<_, Option<i32>>(6).map(|v| v as u32),
        app_version: r.get(7),
        model_version: r.get(8),
        backend: r.get(9),
        transcript: r.get(10),
        confidence: r.get(11),
        words: parsed(r.get(12)).unwrap_or_default(),
        correction: r.get(13),
        latency_ms: r.get(14),
        audio_s: r.get(15),
        summary: parsed(r.get(16)),
        features: parsed(r.get(17)),
        audio: has_audio.then(|| export::audio_path(&event_id)),
        error: r.get(19),
        event_id,
    }
}

impl Store for PostgresStore {
    fn insert(&self, insert: Insert) -> BoxFuture<'_, Result<InsertOutcome, StoreError>> {
        Box::pin(self.insert_events(insert))
    }

    fn delete_install<'a>(&'a self, install_id: &'a str, secret: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(self.delete(install_id, secret))
    }

    fn sweep(&self, now_ms: u64, events_days: u32, audio_days: u32) -> BoxFuture<'_, Result<Swept, StoreError>> {
        let (events_before, audio_before) = cutoffs(now_ms, events_days, audio_days);
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_error)?;
            let mut swept = Swept::default();
            if let Some(before) = events_before {
                swept.events =
                    client.execute("DELETE FROM events WHERE received_ms < $1", &[&(before as i64)]).await? as usize;
            }
            if let Some(before) = audio_before {
                swept.recordings = client
                    .execute(
                        "UPDATE events SET audio = NULL, features = NULL
                         WHERE received_ms < $1 AND (audio IS NOT NULL OR features IS NOT NULL)",
                        &[&(before as i64)],
                    )
                    .await? as usize;
            }
            Ok(swept)
        })
    }

    fn count(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_error)?;
            Ok(client.query_one("SELECT COUNT(*) FROM events", &[]).await?.get::<_, i64>(0) as u64)
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_error)?;
            let r = client
                .query_one(
                    "SELECT COUNT(*),
                            COUNT(*) FILTER (WHERE schema_version = 1),
                            COUNT(*) FILTER (WHERE schema_version = 2),
                            COUNT(*) FILTER (WHERE consent = 'predictions'),
                            COUNT(*) FILTER (WHERE consent = 'recordings'),
                            COUNT(*) FILTER (WHERE correction IS NOT NULL),
                            COUNT(*) FILTER (WHERE audio IS NOT NULL),
                            MIN(received_ms), MAX(received_ms),
                            (SELECT COUNT(*) FROM (SELECT install_id FROM events
                                                   UNION SELECT install_id FROM installs) AS i)
                     FROM events",
                    &[],
                )
                .await?;
            let n = |i| r.get::<_, i64>(i) as u64;
            Ok(Stats {
                events: n(0),
                installs: n(9),
                schema_1: n(1),
                schema_2: n(2),
                consent_predictions: n(3),
                consent_recordings: n(4),
                corrections: n(5),
                recordings: n(6),
                oldest_received_ms: r.get::<_, Option<i64>>(7).map(|v| v as u64),
                newest_received_ms: r.get::<_, Option<i64>>(8).map(|v| v as u64),
            })
        })
    }

    fn export_page<'a>(
        &'a self,
        since_ms: u64,
        after: Option<&'a (u64, String)>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        let (after_ms, after_id) = page_start(since_ms, after);
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_error)?;
            let rows = client
                .query(
                    "SELECT event_id, install_id, received_ms, created_ms, schema_version, consent, consent_text_version,
                            app_version, model_version, backend, transcript, confidence, words, correction, latency_ms,
                            audio_s, summary, features, audio IS NOT NULL, error
                     FROM events WHERE (received_ms, event_id) > ($1, $2)
                     ORDER BY received_ms, event_id LIMIT $3",
                    &[&after_ms, &after_id, &(limit as i64)],
                )
                .await?;
            Ok(rows.iter().map(record).collect())
        })
    }

    fn audio_wav<'a>(&'a self, event_id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_error)?;
            let row = client.query_opt("SELECT audio FROM events WHERE event_id = $1", &[&event_id]).await?;
            match row.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)) {
                Some(pcm) => Ok(Some(wav(&pcm)?)),
                None => Ok(None),
            }
        })
    }

    fn queued(&self) -> usize {
        // Requests waiting for a connection.
        self.pool.status().waiting
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.pool.close();
        Box::pin(async {})
    }
}
