//! The SQLite store of `hark serve` (`collector.sqlite3` in its data
//! folder), opened read-only. The drift histograms are one aggregate
//! function the database runs over the window ([`Histograms`]); everything
//! else is plain `GROUP BY`.

use std::path::{Path, PathBuf};

use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, params_from_iter};

use super::{Bucket, BucketHistograms, Group, LATENCY_STEP_MS, Param, WindowData, WindowSource, WindowSpec};
use crate::MonitorError;
use crate::drift::Edges;

/// A read-only SQLite store.
pub struct SqliteSource {
    conn: Connection,
    path: PathBuf,
}

impl SqliteSource {
    /// Opens the collector's database: `path` is the file or the `hark
    /// serve --data` folder holding it.
    pub fn open(path: &Path) -> Result<Self, MonitorError> {
        let file = if path.is_dir() { path.join("collector.sqlite3") } else { path.to_owned() };
        let fault = |why: String| MonitorError::Store { store: file.display().to_string(), why };
        if !file.is_file() {
            return Err(fault("does not exist (give the SQLite file or the `hark serve --data` folder)".into()));
        }
        let conn =
            Connection::open_with_flags(&file, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| fault(format!("cannot be opened ({e})")))?;
        let has_events: bool = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'", [], |r| r.get(0))
            .map_err(|e| fault(format!("is not a SQLite database ({e})")))?;
        if !has_events {
            return Err(fault("is not a hark collector store (no `events` table)".into()));
        }
        Ok(Self { conn, path: file })
    }

    /// Per time bucket (`bucket`: its SQL expression): each drift signal's
    /// events per bin, the events binned, and the sum of their SNR — one
    /// pass in which the database calls [`Histograms`], a Rust aggregate
    /// function registered on the connection, once per event (its summary
    /// parsed once, every signal binned by binary search). Plain SQL bins
    /// 19 signals with hundreds of comparisons per row in SQLite's bytecode
    /// and ran at a tenth of the speed.
    fn histograms(
        &self,
        filter: &str,
        args: &[Value],
        edges: &Edges,
        bucket: &str,
    ) -> Result<Vec<BucketHistograms>, MonitorError> {
        self.conn
            .create_aggregate_function(
                "hark_histograms",
                2,
                FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
                Histograms(edges.clone()),
            )
            .map_err(|e| self.fault(e))?;
        let sql = format!(
            "SELECT {bucket}, hark_histograms(summary, confidence) FROM events
             WHERE {filter} AND summary IS NOT NULL GROUP BY 1"
        );
        let rows: Vec<(i64, String)> = self.rows(&sql, args, |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.into_iter()
            .map(|(bucket, text)| {
                let (counts, binned, snr): Counts = serde_json::from_str(&text).map_err(|e| MonitorError::Store {
                    store: self.path.display().to_string(),
                    why: format!("gave unreadable histograms ({e})"),
                })?;
                // No row binned: the function's empty value.
                let counts = if binned == 0 {
                    (0..edges.signals.len()).map(|s| vec![0; edges.bins(s)]).collect()
                } else {
                    counts
                };
                Ok((bucket, counts, binned, snr))
            })
            .collect()
    }

    fn texts(&self, column: &str, filter: &str, args: &[Value]) -> Result<Vec<(String, u64)>, MonitorError> {
        let sql = format!("SELECT {column}, COUNT(*) FROM events WHERE {filter} AND {column} IS NOT NULL GROUP BY 1");
        self.rows(&sql, args, |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
    }

    fn rows<T>(
        &self,
        sql: &str,
        args: &[Value],
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, MonitorError> {
        let mut q = self.conn.prepare(sql).map_err(|e| self.fault(e))?;
        q.query_map(params_from_iter(args.iter()), map).and_then(|rows| rows.collect()).map_err(|e| self.fault(e))
    }

    fn fault(&self, e: rusqlite::Error) -> MonitorError {
        MonitorError::Store { store: self.path.display().to_string(), why: format!("could not be read ({e})") }
    }
}

impl WindowSource for SqliteSource {
    fn read(&self, spec: &WindowSpec, edges: &Edges) -> Result<WindowData, MonitorError> {
        let mut data = WindowData { spec: spec.clone(), ..WindowData::default() };
        let mut q =
            self.conn.prepare("SELECT model_version, COUNT(*) FROM events GROUP BY 1").map_err(|e| self.fault(e))?;
        data.versions = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fault(e))?;

        let (filter, params) = super::where_clause(spec, |n| format!("?{n}"));
        let args: Vec<Value> = params
            .into_iter()
            .map(|p| match p {
                Param::Int(i) => Value::Integer(i),
                Param::Text(t) => Value::Text(t),
            })
            .collect();
        let has_error: bool = self
            .conn
            .query_row("SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'error'", [], |r| r.get(0))
            .map_err(|e| self.fault(e))?;
        let (failed, recognised) = super::failure_conditions(has_error);
        let all = filter.clone();
        // Everything below but the counts reads recognitions that did not fail.
        let filter = format!("{all} AND {recognised}");
        let (events, with_summary, first, last): (i64, i64, Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                &format!("SELECT COUNT(*), COUNT(summary), MIN(received_ms), MAX(received_ms) FROM events WHERE {all}"),
                params_from_iter(args.iter()),
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(|e| self.fault(e))?;
        data.events = events as u64;
        data.with_summary = with_summary as u64;
        data.span = first.zip(last);
        let (start, bucket_ms) = super::buckets(spec, first, last);
        data.bucket_ms = bucket_ms;
        let bucket = format!("((received_ms - {start}) / {})", data.bucket_ms);

        // Per time bucket: the drift histograms, events binned, SNR sum.
        let per_bucket = self.histograms(&filter, &args, edges, &bucket)?;
        data.corrections = self.texts("correction", &filter, &args)?;
        data.predictions = self.texts("prediction", &filter, &args)?;

        let sql = format!(
            "SELECT model_version, backend, {bucket}, prediction, correction, COUNT(*) FROM events
             WHERE {filter} AND correction IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
        );
        data.corrected_pairs = self.rows(&sql, &args, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, i64>(5)? as u64))
        })?;
        let sql = format!(
            "SELECT model_version, backend, {bucket}, COUNT(*), COUNT(correction) FROM events WHERE {filter} GROUP BY 1, 2, 3"
        );
        data.groups = self.rows(&sql, &args, |r| {
            Ok(Group {
                model_version: r.get(0)?,
                backend: r.get(1)?,
                bucket: r.get(2)?,
                events: r.get::<_, i64>(3)? as u64,
                corrections: r.get::<_, i64>(4)? as u64,
            })
        })?;
        let sql = format!(
            "SELECT backend, model_version, CAST(MAX(decode_ms, 0) / {LATENCY_STEP_MS} AS INTEGER), COUNT(*) FROM events
             WHERE {filter} GROUP BY 1, 2, 3"
        );
        data.latency = self.rows(&sql, &args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64)))?;
        let sql = format!(
            "SELECT backend, model_version, SUM(CASE WHEN {failed} THEN 1 ELSE 0 END), COUNT(*) FROM events
             WHERE {all} GROUP BY 1, 2"
        );
        data.failures = self.rows(&sql, &args, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64, r.get::<_, i64>(3)? as u64))
        })?;
        let sql = format!(
            "SELECT {bucket}, COUNT(*), COUNT(correction), AVG(confidence) FROM events WHERE {filter} GROUP BY 1 ORDER BY 1"
        );
        data.series = self.rows(&sql, &args, |r| {
            Ok(Bucket {
                bucket: r.get(0)?,
                events: r.get::<_, i64>(1)? as u64,
                corrections: r.get::<_, i64>(2)? as u64,
                mean_confidence: r.get(3)?,
                mean_snr_db: None,
            })
        })?;
        super::merge(&per_bucket, edges, &mut data);
        Ok(data)
    }
}

/// The fields of a stored feature summary the drift checks read.
#[derive(serde::Deserialize)]
struct Summary {
    band_mean: Vec<f64>,
    snr_db: f64,
    speech_s: f64,
}

/// `hark_histograms(summary, confidence)`: the drift signals' bin counts
/// over the rows aggregated, as JSON `[counts per signal, rows binned, SNR sum]`.
struct Histograms(Edges);

type Counts = (Vec<Vec<u64>>, u64, f64);

impl Aggregate<Counts, String> for Histograms {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Counts> {
        Ok(((0..self.0.signals.len()).map(|s| vec![0; self.0.bins(s)]).collect(), 0, 0.0))
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Counts) -> rusqlite::Result<()> {
        let ValueRef::Text(text) = ctx.get_raw(0) else { return Ok(()) };
        let Ok(summary) = serde_json::from_slice::<Summary>(text) else { return Ok(()) };
        if summary.band_mean.len() != hark_dsp::SUMMARY_BANDS {
            return Ok(());
        }
        let confidence: f64 = ctx.get(1).unwrap_or(f64::NAN);
        for (s, signal) in self.0.signals.iter().enumerate() {
            let value = match signal {
                crate::drift::Signal::Band(i) => summary.band_mean[*i],
                crate::drift::Signal::Snr => summary.snr_db,
                crate::drift::Signal::Speech => summary.speech_s,
                crate::drift::Signal::Confidence => confidence,
            };
            acc.0[s][self.0.bin(s, value)] += 1;
        }
        acc.1 += 1;
        if summary.snr_db.is_finite() {
            acc.2 += summary.snr_db;
        }
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<Counts>) -> rusqlite::Result<String> {
        let acc = acc.unwrap_or_else(|| (Vec::new(), 0, 0.0));
        serde_json::to_string(&acc).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
    }
}
