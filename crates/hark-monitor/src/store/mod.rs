//! Reading a window of the collector's store, aggregated where the data
//! lives: the database returns histograms, counts and grouped texts, never
//! the events one by one, so a window of millions of rows costs the monitor
//! a few kilobytes. Both stores `hark serve` writes are read, read-only
//! (monitoring never changes what was collected): SQLite ([`SqliteSource`],
//! the drift histograms one Rust aggregate function the database runs) and
//! PostgreSQL ([`PostgresSource`], `width_bucket` over the summaries' JSON).

mod postgres;
mod sqlite;

pub use postgres::PostgresSource;
pub use sqlite::SqliteSource;

use std::collections::BTreeMap;
use std::path::Path;

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
    /// (backend, model, latency bucket of 10 ms, times), of recognitions
    /// that did not fail.
    pub latency: Vec<(String, String, i64, u64)>,
    /// (backend, model, failed recognitions, events): schema 2's `error`.
    pub failures: Vec<(String, String, u64, u64)>,
    pub series: Vec<Bucket>,
    /// Every model version in the store, with its event count.
    pub versions: BTreeMap<String, u64>,
}

/// Latency histogram resolution, ms.
pub const LATENCY_STEP_MS: i64 = 10;
/// Time buckets the series aims at.
const SERIES_BUCKETS: i64 = 48;

/// A store a window can be read from.
pub trait WindowSource {
    /// Aggregates the window `spec`, binning the drift signals at `edges`.
    fn read(&self, spec: &WindowSpec, edges: &Edges) -> Result<WindowData, MonitorError>;
}

/// Opens `store`: a `postgres://` URL, or a SQLite file or `hark serve
/// --data` folder.
pub fn open(store: &str) -> Result<Box<dyn WindowSource>, MonitorError> {
    if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        Ok(Box::new(PostgresSource::connect(store)?))
    } else {
        Ok(Box::new(SqliteSource::open(Path::new(store))?))
    }
}

/// One time bucket's drift histograms: (bucket, counts per signal and bin,
/// events binned, their SNR sum).
pub(crate) type BucketHistograms = (i64, Vec<Vec<u64>>, u64, f64);

/// Adds up the buckets' histograms into the window's, and fills each
/// series bucket's mean SNR.
pub(crate) fn merge(per_bucket: &[BucketHistograms], edges: &Edges, data: &mut WindowData) {
    data.histograms = (0..edges.signals.len()).map(|s| vec![0; edges.bins(s)]).collect();
    data.with_summary = 0;
    for (_, counts, rows, _) in per_bucket {
        for (total, signal) in data.histograms.iter_mut().zip(counts) {
            for (t, c) in total.iter_mut().zip(signal) {
                *t += c;
            }
        }
        data.with_summary += rows;
    }
    for b in &mut data.series {
        if let Some((_, _, rows, snr)) = per_bucket.iter().find(|p| p.0 == b.bucket).filter(|p| p.2 > 0) {
            b.mean_snr_db = Some(snr / *rows as f64);
        }
    }
}

/// The window's first bucket start and the buckets' width, ms.
pub(crate) fn buckets(spec: &WindowSpec, first: Option<i64>, last: Option<i64>) -> (i64, i64) {
    let (start, end) = (spec.since_ms.or(first).unwrap_or(0), spec.until_ms.or(last.map(|l| l + 1)).unwrap_or(1));
    (start, bucket_width(end - start))
}

/// A parameter of the window's `WHERE` clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
}

/// The window's `WHERE` clause and its parameters; `mark` writes the
/// `n`-th placeholder (`?1` for SQLite, `$1` for PostgreSQL).
pub(crate) fn where_clause(spec: &WindowSpec, mark: fn(usize) -> String) -> (String, Vec<Param>) {
    let mut clauses = vec!["1 = 1".to_owned()];
    let mut args = Vec::new();
    if let Some(since) = spec.since_ms {
        args.push(Param::Int(since));
        clauses.push(format!("received_ms >= {}", mark(args.len())));
    }
    if let Some(until) = spec.until_ms {
        args.push(Param::Int(until));
        clauses.push(format!("received_ms < {}", mark(args.len())));
    }
    if let Some(model) = &spec.model_version {
        args.push(Param::Text(model.clone()));
        clauses.push(format!("model_version = {}", mark(args.len())));
    }
    (clauses.join(" AND "), args)
}

/// SQL conditions on a failed recognition and on one that did not fail, for
/// a store that has the `error` column or not (one older than failures).
pub(crate) fn failure_conditions(has_error_column: bool) -> (&'static str, &'static str) {
    if has_error_column { ("error IS NOT NULL", "error IS NULL") } else { ("0 = 1", "1 = 1") }
}

/// A round bucket width (minute, hour, day, week multiples) giving about
/// [`SERIES_BUCKETS`] buckets over `span_ms`.
fn bucket_width(span_ms: i64) -> i64 {
    const MINUTE: i64 = 60_000;
    let steps = [MINUTE, 5 * MINUTE, 15 * MINUTE, 60 * MINUTE, 6 * 60 * MINUTE, 24 * 60 * MINUTE, 7 * 24 * 60 * MINUTE];
    let want = span_ms.max(1) / SERIES_BUCKETS;
    steps.into_iter().find(|s| *s >= want).unwrap_or(steps[steps.len() - 1])
}
