//! A PostgreSQL store of `hark serve` (several replicas over one database),
//! read in one read-only transaction. The drift histograms are one query:
//! each event's summary parsed once (`jsonb`), its 19 values unpivoted and
//! binned by `width_bucket` against the reference's edges, counted per time
//! bucket, signal and bin — PostgreSQL's own way of doing what the SQLite
//! source's aggregate function does.

use std::cell::RefCell;
use std::fmt::Write;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};

use super::{Bucket, BucketHistograms, Group, LATENCY_STEP_MS, Param, WindowData, WindowSource, WindowSpec};
use crate::MonitorError;
use crate::drift::{Edges, Signal};

pub struct PostgresSource {
    client: RefCell<Client>,
    /// The URL without its password, for messages.
    name: String,
}

impl PostgresSource {
    /// Connects to `url` (`postgres://user@host:port/database`).
    pub fn connect(url: &str) -> Result<Self, MonitorError> {
        let name = match url.split_once('@') {
            Some((scheme_user, host)) => {
                let user = scheme_user.split(':').take(2).collect::<Vec<_>>().join(":");
                format!("{user}@{host}")
            }
            None => url.to_owned(),
        };
        let fault = |why: String| MonitorError::Store { store: name.clone(), why };
        let mut client = Client::connect(url, NoTls).map_err(|e| fault(format!("cannot be reached ({e})")))?;
        let has_events: bool = client
            .query_one("SELECT to_regclass('events') IS NOT NULL", &[])
            .and_then(|r| r.try_get(0))
            .map_err(|e| fault(format!("could not be read ({e})")))?;
        if !has_events {
            return Err(fault("is not a hark collector store (no `events` table)".into()));
        }
        Ok(Self { client: RefCell::new(client), name })
    }

    fn fault(&self, e: postgres::Error) -> MonitorError {
        MonitorError::Store { store: self.name.clone(), why: format!("could not be read ({e})") }
    }

    fn rows(&self, sql: &str, args: &[Param]) -> Result<Vec<Row>, MonitorError> {
        let params: Vec<Box<dyn ToSql + Sync>> = args
            .iter()
            .map(|p| match p {
                Param::Int(i) => Box::new(*i) as Box<dyn ToSql + Sync>,
                Param::Text(t) => Box::new(t.clone()),
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        self.client.borrow_mut().query(sql, &refs).map_err(|e| self.fault(e))
    }

    /// Per time bucket, signal and bin: events; and per bucket the SNR sum.
    fn histograms(
        &self,
        filter: &str,
        args: &[Param],
        edges: &Edges,
        bucket: &str,
    ) -> Result<Vec<BucketHistograms>, MonitorError> {
        let mut values = Vec::new();
        for (s, signal) in edges.signals.iter().enumerate() {
            let expr = match signal {
                Signal::Band(i) => format!("(j->'band_mean'->>{i})::float8"),
                Signal::Snr => "(j->>'snr_db')::float8".into(),
                Signal::Speech => "(j->>'speech_s')::float8".into(),
                Signal::Confidence => "confidence::float8".into(),
            };
            let array = if edges.edges[s].is_empty() {
                "ARRAY[]::float8[]".to_owned()
            } else {
                let mut a = String::from("ARRAY[");
                for (k, e) in edges.edges[s].iter().enumerate() {
                    let _ = write!(a, "{}{e:e}", if k > 0 { "," } else { "" });
                }
                a + "]::float8[]"
            };
            values.push(format!("({s}, {expr}, {array})"));
        }
        let sql = format!(
            "WITH w AS MATERIALIZED (
                 SELECT {bucket} AS b, summary::jsonb AS j, confidence FROM events WHERE {filter} AND summary IS NOT NULL
             )
             SELECT w.b, v.s, width_bucket(v.x, v.e), COUNT(*), SUM(v.x)
             FROM w CROSS JOIN LATERAL (VALUES {}) AS v(s, x, e)
             WHERE v.x IS NOT NULL
             GROUP BY 1, 2, 3",
            values.join(", ")
        );
        let snr = edges.signals.iter().position(|s| *s == Signal::Snr);
        let mut per_bucket: Vec<BucketHistograms> = Vec::new();
        for row in self.rows(&sql, args)? {
            let (b, s, bin, n, sum): (i64, i32, i32, i64, Option<f64>) =
                (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            let at = match per_bucket.iter().position(|p| p.0 == b) {
                Some(at) => at,
                None => {
                    per_bucket.push((b, (0..edges.signals.len()).map(|s| vec![0; edges.bins(s)]).collect(), 0, 0.0));
                    per_bucket.len() - 1
                }
            };
            let entry = &mut per_bucket[at];
            let (s, bin) = (s as usize, bin.max(0) as usize);
            if let Some(counts) = entry.1.get_mut(s) {
                let last = counts.len() - 1;
                counts[bin.min(last)] += n as u64;
            }
            // Events binned: those with the first signal.
            if s == 0 {
                entry.2 += n as u64;
            }
            if Some(s) == snr {
                entry.3 += sum.unwrap_or(0.0);
            }
        }
        Ok(per_bucket)
    }
}

impl WindowSource for PostgresSource {
    fn read(&self, spec: &WindowSpec, edges: &Edges) -> Result<WindowData, MonitorError> {
        // One snapshot for every query of the report.
        self.client
            .borrow_mut()
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|e| self.fault(e))?;
        let data = self.read_in_transaction(spec, edges);
        let _ = self.client.borrow_mut().batch_execute("COMMIT");
        data
    }
}

impl PostgresSource {
    fn read_in_transaction(&self, spec: &WindowSpec, edges: &Edges) -> Result<WindowData, MonitorError> {
        let mut data = WindowData { spec: spec.clone(), ..WindowData::default() };
        data.versions = self
            .rows("SELECT model_version, COUNT(*) FROM events GROUP BY 1", &[])?
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .collect();
        let (all, args) = super::where_clause(spec, |n| format!("${n}"));
        let has_error = self.rows(
            "SELECT COUNT(*) FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = 'events' AND column_name = 'error'",
            &[],
        )?[0]
            .get::<_, i64>(0)
            > 0;
        let (failed, recognised) = super::failure_conditions(has_error);
        // Everything below but the counts reads recognitions that did not fail.
        let filter = format!("{all} AND {recognised}");
        let row = self.rows(
            &format!("SELECT COUNT(*), COUNT(summary), MIN(received_ms), MAX(received_ms) FROM events WHERE {all}"),
            &args,
        )?;
        let (events, with_summary, first, last): (i64, i64, Option<i64>, Option<i64>) =
            (row[0].get(0), row[0].get(1), row[0].get(2), row[0].get(3));
        data.events = events as u64;
        data.with_summary = with_summary as u64;
        data.span = first.zip(last);
        let (start, bucket_ms) = super::buckets(spec, first, last);
        data.bucket_ms = bucket_ms;
        let bucket = format!("((received_ms - ({start})::bigint) / {bucket_ms})");

        let per_bucket = self.histograms(&filter, &args, edges, &bucket)?;
        let texts = |column: &str| -> Result<Vec<(String, u64)>, MonitorError> {
            let sql =
                format!("SELECT {column}, COUNT(*) FROM events WHERE {filter} AND {column} IS NOT NULL GROUP BY 1");
            Ok(self.rows(&sql, &args)?.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
        };
        data.corrections = texts("correction")?;
        data.predictions = texts("transcript")?;
        let sql = format!(
            "SELECT model_version, backend, {bucket}, transcript, correction, COUNT(*) FROM events
             WHERE {filter} AND correction IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
        );
        data.corrected_pairs = self
            .rows(&sql, &args)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get::<_, i64>(5) as u64))
            .collect();
        let sql = format!(
            "SELECT model_version, backend, {bucket}, COUNT(*), COUNT(correction) FROM events WHERE {filter} GROUP BY 1, 2, 3"
        );
        data.groups = self
            .rows(&sql, &args)?
            .iter()
            .map(|r| Group {
                model_version: r.get(0),
                backend: r.get(1),
                bucket: r.get(2),
                events: r.get::<_, i64>(3) as u64,
                corrections: r.get::<_, i64>(4) as u64,
            })
            .collect();
        let sql = format!(
            "SELECT backend, model_version, floor(GREATEST(latency_ms, 0) / {LATENCY_STEP_MS})::bigint, COUNT(*)
             FROM events WHERE {filter} GROUP BY 1, 2, 3"
        );
        data.latency =
            self.rows(&sql, &args)?.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get::<_, i64>(3) as u64)).collect();
        let sql = format!(
            "SELECT backend, model_version, COUNT(*) FILTER (WHERE {failed}), COUNT(*) FROM events
             WHERE {all} GROUP BY 1, 2"
        );
        data.failures = self
            .rows(&sql, &args)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64, r.get::<_, i64>(3) as u64))
            .collect();
        let sql = format!(
            "SELECT {bucket}, COUNT(*), COUNT(correction), AVG(confidence)::float8 FROM events
             WHERE {filter} GROUP BY 1 ORDER BY 1"
        );
        data.series = self
            .rows(&sql, &args)?
            .iter()
            .map(|r| Bucket {
                bucket: r.get(0),
                events: r.get::<_, i64>(1) as u64,
                corrections: r.get::<_, i64>(2) as u64,
                mean_confidence: r.get(3),
                mean_snr_db: None,
            })
            .collect();
        super::merge(&per_bucket, edges, &mut data);
        Ok(data)
    }
}
