//! Reading a window of the collector's store, aggregated where the data
//! lives: the database returns histograms, counts and grouped texts, never
//! the events one by one, so a window of millions of rows costs the monitor
//! a few kilobytes.
//!
//! The SQLite store of `hark serve` (`collector.sqlite3` in its data
//! folder), read-only: monitoring never changes what was collected. The
//! drift histograms are one aggregate function the database runs over the
//! window ([`Histograms`]); everything else is plain `GROUP BY`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, params_from_iter};

use crate::MonitorError;
use crate::drift::Edges;

/// Which events a report covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowSpec {
    /// Received at or after (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Received before.
    pub until_ms: Option<i64>,
    /// Only this model version's events.
    pub model_version: Option<String>,
}

/// Counts per (model version, backend, time bucket).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub model_version: String,
    pub backend: String,
    pub bucket: i64,
    pub events: u64,
    pub corrections: u64,
}

/// One time bucket of the whole window.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub bucket: i64,
    pub events: u64,
    pub corrections: u64,
    pub mean_confidence: f64,
    pub mean_snr_db: Option<f64>,
}

/// Everything the monitor needs from a window.
#[derive(Debug, Clone, Default)]
pub struct WindowData {
    pub spec: WindowSpec,
    /// First and last receive time in the window (ms), if any event.
    pub span: Option<(i64, i64)>,
    /// Width of a time bucket, ms.
    pub bucket_ms: i64,
    pub events: u64,
    /// Events with a feature summary (schema 2).
    pub with_summary: u64,
    /// Per drift signal, counts per bin (events with a summary).
    pub histograms: Vec<Vec<u64>>,
    /// (correction, times) and (prediction, times).
    pub corrections: Vec<(String, u64)>,
    pub predictions: Vec<(String, u64)>,
    /// (model, backend, bucket, prediction, correction, times).
    pub corrected_pairs: Vec<(String, String, i64, String, String, u64)>,
    pub groups: Vec<Group>,
    /// (backend, model, latency bucket of 10 ms, times).
    pub latency: Vec<(String, String, i64, u64)>,
    pub series: Vec<Bucket>,
    /// Every model version in the store, with its event count.
    pub versions: BTreeMap<String, u64>,
}

/// Latency histogram resolution, ms.
pub const LATENCY_STEP_MS: i64 = 10;
/// Time buckets the series aims at.
const SERIES_BUCKETS: i64 = 48;

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

    fn fault(&self, e: rusqlite::Error) -> MonitorError {
        MonitorError::Store { store: self.path.display().to_string(), why: format!("could not be read ({e})") }
    }

    /// Aggregates the window `spec`, binning the drift signals at `edges`.
    pub fn read(&self, spec: &WindowSpec, edges: &Edges) -> Result<WindowData, MonitorError> {
        let mut data = WindowData { spec: spec.clone(), ..WindowData::default() };
        let mut q =
            self.conn.prepare("SELECT model_version, COUNT(*) FROM events GROUP BY 1").map_err(|e| self.fault(e))?;
        data.versions = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fault(e))?;

        let (filter, args) = where_clause(spec);
        let (events, with_summary, first, last): (i64, i64, Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                &format!(
                    "SELECT COUNT(*), COUNT(summary), MIN(received_ms), MAX(received_ms) FROM events WHERE {filter}"
                ),
                params_from_iter(args.iter()),
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(|e| self.fault(e))?;
        data.events = events as u64;
        data.with_summary = with_summary as u64;
        data.span = first.zip(last);
        let (start, end) = (spec.since_ms.or(first).unwrap_or(0), spec.until_ms.or(last.map(|l| l + 1)).unwrap_or(1));
        data.bucket_ms = bucket_width(end - start);
        let bucket = format!("((received_ms - {start}) / {})", data.bucket_ms);

        // Per time bucket: the drift histograms, events binned, SNR sum.
        let per_bucket = self.histograms(&filter, &args, edges, &bucket)?;
        data.histograms = (0..edges.signals.len()).map(|s| vec![0; edges.bins(s)]).collect();
        // Summaries that cannot be read (none the collector accepted) are not binned.
        data.with_summary = 0;
        for (_, counts, rows, _) in &per_bucket {
            for (total, signal) in data.histograms.iter_mut().zip(counts) {
                for (t, c) in total.iter_mut().zip(signal) {
                    *t += c;
                }
            }
            data.with_summary += rows;
        }
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
        for b in &mut data.series {
            if let Some((_, _, rows, snr)) = per_bucket.iter().find(|p| p.0 == b.bucket).filter(|p| p.2 > 0) {
                b.mean_snr_db = Some(snr / *rows as f64);
            }
        }
        Ok(data)
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
    ) -> Result<Vec<(i64, Vec<Vec<u64>>, u64, f64)>, MonitorError> {
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
}

/// The window's `WHERE` clause and its parameters.
fn where_clause(spec: &WindowSpec) -> (String, Vec<Value>) {
    let mut clauses = vec!["1 = 1".to_owned()];
    let mut args = Vec::new();
    if let Some(since) = spec.since_ms {
        args.push(Value::Integer(since));
        clauses.push(format!("received_ms >= ?{}", args.len()));
    }
    if let Some(until) = spec.until_ms {
        args.push(Value::Integer(until));
        clauses.push(format!("received_ms < ?{}", args.len()));
    }
    if let Some(model) = &spec.model_version {
        args.push(Value::Text(model.clone()));
        clauses.push(format!("model_version = ?{}", args.len()));
    }
    (clauses.join(" AND "), args)
}

/// A round bucket width (minute, hour, day, week multiples) giving about
/// [`SERIES_BUCKETS`] buckets over `span_ms`.
fn bucket_width(span_ms: i64) -> i64 {
    const MINUTE: i64 = 60_000;
    let steps = [MINUTE, 5 * MINUTE, 15 * MINUTE, 60 * MINUTE, 6 * 60 * MINUTE, 24 * 60 * MINUTE, 7 * 24 * 60 * MINUTE];
    let want = span_ms.max(1) / SERIES_BUCKETS;
    steps.into_iter().find(|s| *s >= want).unwrap_or(steps[steps.len() - 1])
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
