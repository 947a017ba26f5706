//! The report: its verdicts, the JSON summary and the HTML dashboard.

use std::collections::BTreeMap;
use std::fmt::Write;

use hark_eval::ErrorCounts;
use hark_eval::svg::{Series, line_chart};
use serde::Serialize;

use crate::drift::{self, Calibration, Check, Edges, State};
use crate::profile::ReferenceProfile;
use crate::store::{LATENCY_STEP_MS, WindowData, WindowSpec};
use crate::words::{Oov, Vocabulary};

/// A new word seen in at least this many corrections is worth watching…
pub const NEW_WORD_WATCH: u64 = 2;
/// …and alerts from this many, when also in ≥ [`NEW_WORD_ALERT_SHARE`] of
/// the corrected queries: people keep correcting the model to it.
pub const NEW_WORD_ALERT: u64 = 5;
pub const NEW_WORD_ALERT_SHARE: f64 = 0.01;

#[derive(Debug, Clone, Serialize)]
pub struct WindowSummary {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub model_version: Option<String>,
    pub events: u64,
    pub with_summary: u64,
    pub corrections: u64,
    pub bucket_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub state: State,
    /// Events the checks were made on (those with a feature summary).
    pub events: u64,
    pub min_window: usize,
    pub alpha: f64,
    pub watch_alpha: f64,
    pub replicates: usize,
    /// A check alerts at a p-value at most this (min-p corrected).
    pub alert_p: Option<f64>,
    pub watch_p: Option<f64>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Words {
    pub state: State,
    pub corrections: Oov,
    pub predictions: Oov,
}

/// Real error, from corrections.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRow {
    pub model_version: String,
    pub backend: String,
    /// Start of the time bucket (ms), or `None` for the whole window.
    pub bucket_start_ms: Option<i64>,
    pub events: u64,
    pub corrections: u64,
    pub correction_rate: f64,
    /// WER of the predictions against their corrections.
    pub corrected_wer: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    pub backend: String,
    pub model_version: String,
    /// Recognitions that gave a transcript.
    pub events: u64,
    /// End of speech → transcript over them (`None`: every one failed).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// Recognitions that failed (the browser's error events).
    pub failed: u64,
    /// `failed` over all recognitions of this backend and model.
    pub failure_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeriesPoint {
    pub start_ms: i64,
    pub events: u64,
    pub correction_rate: f64,
    pub mean_confidence: f64,
    pub mean_snr_db: Option<f64>,
}

/// Everything `hark monitor` found; `summary.json` is this.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub state: State,
    /// Why the state is what it is, in sentences.
    pub findings: Vec<String>,
    pub reference_model: String,
    pub reference_events: usize,
    pub reference_wer: BTreeMap<String, f64>,
    pub window: WindowSummary,
    pub drift: Drift,
    pub words: Words,
    pub errors: Vec<ErrorRow>,
    pub errors_over_time: Vec<ErrorRow>,
    pub latency: Vec<LatencyRow>,
    pub series: Vec<SeriesPoint>,
}

/// The window in words.
pub fn describe(spec: &WindowSpec) -> String {
    let mut parts = Vec::new();
    if let Some(s) = spec.since_ms {
        parts.push(format!("received from {s} ms"));
    }
    if let Some(u) = spec.until_ms {
        parts.push(format!("before {u} ms"));
    }
    if let Some(m) = &spec.model_version {
        parts.push(format!("model {m}"));
    }
    if parts.is_empty() { "the whole store".into() } else { parts.join(", ") }
}

impl Report {
    pub fn new(profile: &ReferenceProfile, edges: &Edges, data: &WindowData) -> Self {
        let n = data.with_summary as usize;
        let calibration = (n >= drift::MIN_WINDOW).then(|| Calibration::new(profile, edges, n));
        let checks = drift::check(edges, calibration.as_ref(), &data.histograms);
        let drift_state = checks.iter().map(|c| c.state).max().unwrap_or(State::NotEnoughData);
        let drift = Drift {
            state: drift_state,
            events: data.with_summary,
            min_window: drift::MIN_WINDOW,
            alpha: drift::ALPHA,
            watch_alpha: drift::WATCH_ALPHA,
            replicates: drift::REPLICATES,
            alert_p: calibration.as_ref().map(|c| c.alert_p),
            watch_p: calibration.as_ref().map(|c| c.watch_p),
            checks,
        };

        let vocabulary = Vocabulary::new(profile.vocabulary.iter().map(String::as_str));
        let corrections = vocabulary.oov(data.corrections.iter().map(|(t, c)| (t.as_str(), *c)));
        let predictions = vocabulary.oov(data.predictions.iter().map(|(t, c)| (t.as_str(), *c)));
        let corrected: u64 = data.corrections.iter().map(|(_, c)| c).sum();
        let words_state = match corrections.top_words.first() {
            Some(w) if w.count >= NEW_WORD_ALERT && w.count as f64 >= NEW_WORD_ALERT_SHARE * corrected as f64 => {
                State::Alert
            }
            Some(w) if w.count >= NEW_WORD_WATCH => State::Watch,
            _ => State::Ok,
        };
        let words = Words { state: words_state, corrections, predictions };

        let (errors, errors_over_time) = error_rows(data);
        let latency = latency_rows(data);
        let start = data.spec.since_ms.or(data.span.map(|s| s.0)).unwrap_or(0);
        let series = data
            .series
            .iter()
            .map(|b| SeriesPoint {
                start_ms: start + b.bucket * data.bucket_ms,
                events: b.events,
                correction_rate: b.corrections as f64 / b.events.max(1) as f64,
                mean_confidence: b.mean_confidence,
                mean_snr_db: b.mean_snr_db,
            })
            .collect();

        let mut findings = Vec::new();
        match drift.state {
            State::NotEnoughData => findings.push(format!(
                "Not enough data for drift: {} events with a feature summary, {} needed.",
                data.with_summary,
                drift::MIN_WINDOW
            )),
            State::Ok => findings.push(format!("No drift in {} events.", data.with_summary)),
            state => {
                // The strongest first: distance over its alert threshold.
                let mut flagged: Vec<&Check> = drift.checks.iter().filter(|c| c.state == state).collect();
                flagged.sort_by(|a, b| (b.distance / b.alert_at).total_cmp(&(a.distance / a.alert_at)));
                let mut named: Vec<String> = flagged
                    .iter()
                    .take(4)
                    .map(|c| format!("{} (distance {:.3}, alerts at {:.3})", c.label, c.distance, c.alert_at))
                    .collect();
                if flagged.len() > 4 {
                    named.push(format!("{} more", flagged.len() - 4));
                }
                let kind = match (flagged.iter().any(|c| c.input), flagged.iter().any(|c| !c.input)) {
                    (true, true) => "input and output",
                    (true, false) => "input",
                    _ => "output",
                };
                findings.push(format!("Drift, {}, {kind}: {}.", state.as_str(), named.join("; ")));
            }
        }
        if let Some(top) = words.corrections.top_words.first().filter(|_| words.state >= State::Watch) {
            let list: Vec<String> =
                words.corrections.top_words.iter().take(5).map(|w| format!("{} ({}×)", w.text, w.count)).collect();
            findings.push(format!(
                "New words, {}: people corrected the model to words it does not know: {} — e.g. \"{}\".",
                words.state.as_str(),
                list.join(", "),
                top.example
            ));
        }
        if corrected == 0 {
            findings.push("No corrections in this window: the real error rate cannot be measured.".into());
        }
        let state = drift.state.max(words.state).max(State::Ok);
        let window = WindowSummary {
            since_ms: data.spec.since_ms,
            until_ms: data.spec.until_ms,
            first_ms: data.span.map(|s| s.0),
            last_ms: data.span.map(|s| s.1),
            model_version: data.spec.model_version.clone(),
            events: data.events,
            with_summary: data.with_summary,
            corrections: corrected,
            bucket_ms: data.bucket_ms,
        };
        Self {
            state,
            findings,
            reference_model: profile.model_version.clone(),
            reference_events: profile.events.len(),
            reference_wer: profile.slice_wer.clone(),
            window,
            drift,
            words,
            errors,
            errors_over_time,
            latency,
            series,
        }
    }

    /// `hark monitor`'s exit status: 1 on an alert, 2 when the real error
    /// rate could not be measured (no corrections), else 0.
    pub fn exit_code(&self) -> i32 {
        if self.state == State::Alert {
            1
        } else if self.window.corrections == 0 {
            2
        } else {
            0
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The dashboard: one self-contained HTML page (inline SVG, no scripts).
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let color = |s: State| match s {
            State::Alert => "#c62828",
            State::Watch => "#ef6c00",
            State::Ok => "#2e7d32",
            State::NotEnoughData => "#616161",
        };
        let _ = write!(
            h,
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>hark monitor: {state}</title>\
             <style>body{{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em}}\
             table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}\
             td:first-child,th:first-child{{text-align:left}}.state{{color:white;padding:1px 6px;border-radius:3px}}\
             .grid{{display:flex;flex-wrap:wrap;gap:8px}}.grid>svg{{flex:1 1 45%;max-width:540px;height:auto}}.small>svg{{flex:0 0 auto;max-width:260px}}</style>\
             <h1>hark monitor: <span class=\"state\" id=\"state\" style=\"background:{c}\">{state}</span></h1>",
            state = self.state.as_str(),
            c = color(self.state)
        );
        let w = &self.window;
        let _ = write!(
            h,
            "<p>Model {model}; {events} events ({with} with a feature summary, {corr} corrected); reference: \
             model {rm}, {re} dev utterances.</p><ul>",
            model = escape(w.model_version.as_deref().unwrap_or("all versions")),
            events = w.events,
            with = w.with_summary,
            corr = w.corrections,
            rm = escape(&self.reference_model),
            re = self.reference_events
        );
        for f in &self.findings {
            let _ = write!(h, "<li>{}</li>", escape(f));
        }
        h += "</ul>";

        // Over time.
        let x = |p: &SeriesPoint| (p.start_ms - self.series.first().map(|f| f.start_ms).unwrap_or(0)) as f64 / 3.6e6;
        let series = [
            ("utterance confidence (mean)", "#1565c0", self.series.iter().map(|p| (x(p), p.mean_confidence)).collect()),
            ("correction rate", "#c62828", self.series.iter().map(|p| (x(p), p.correction_rate)).collect()),
        ];
        h += "<h2>Over time</h2><div class=\"grid\">";
        for (name, c, points) in series {
            h += &line_chart(name, "hours since the window's start", name, &[Series { name, points, color: c }], false);
        }
        let snr: Vec<(f64, f64)> = self.series.iter().filter_map(|p| p.mean_snr_db.map(|s| (x(p), s))).collect();
        h += &line_chart(
            "SNR (mean, dB)",
            "hours since the window's start",
            "dB",
            &[Series { name: "SNR", points: snr, color: "#2e7d32" }],
            false,
        );
        let volume: Vec<(f64, f64)> = self.series.iter().map(|p| (x(p), p.events as f64)).collect();
        h += &line_chart(
            "events",
            "hours since the window's start",
            "events",
            &[Series { name: "events", points: volume, color: "#555" }],
            false,
        );
        h += "</div>";

        // Drift checks.
        let d = &self.drift;
        let _ = write!(
            h,
            "<h2>Drift</h2><p>Each check compares the window's distribution with the reference's (largest gap between \
             the cumulative distributions over {bins} bins at the reference's quantiles). Thresholds are calibrated by \
             drawing {r} windows of the same size from the reference and corrected across all {m} checks (min-p), so \
             that a report on undrifted data alerts at most {a:.0} % of the time; fewer than {min} events: not enough \
             data.</p><table id=\"checks\"><tr><th>signal</th><th>state</th><th>distance</th><th>alerts at</th><th>p</th></tr>",
            bins = drift::BINS,
            r = d.replicates,
            m = d.checks.len(),
            a = d.alpha * 100.0,
            min = d.min_window
        );
        for c in &d.checks {
            let _ = write!(
                h,
                "<tr data-key=\"{k}\"><td>{l}</td><td><span class=\"state\" style=\"background:{col}\">{s}</span></td>\
                 <td>{d:.3}</td><td>{a:.3}</td><td>{p:.4}</td></tr>",
                k = c.key,
                l = escape(&c.label),
                col = color(c.state),
                s = c.state.as_str(),
                d = c.distance,
                a = c.alert_at,
                p = c.p_value
            );
        }
        h += "</table><h3>Reference (grey) beside the window (colour)</h3><div class=\"grid small\">";
        for c in d.checks.iter().filter(|c| !c.reference.is_empty()) {
            h += &histogram_svg(c, color(c.state));
        }
        h += "</div>";

        // New words.
        let _ = write!(
            h,
            "<h2>New words <span class=\"state\" style=\"background:{}\">{}</span></h2>",
            color(self.words.state),
            self.words.state.as_str()
        );
        for (name, oov) in [("corrections", &self.words.corrections), ("predictions", &self.words.predictions)] {
            let _ = write!(
                h,
                "<h3>In {name}: {:.1} % of words unknown ({} of {} queries)</h3><table id=\"new-words-{name}\">\
                 <tr><th>word or name</th><th>count</th><th>example</th></tr>",
                oov.rate * 100.0,
                oov.texts_with_oov,
                oov.texts
            );
            for w in oov.top_names.iter().chain(&oov.top_words) {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&w.text),
                    w.count,
                    escape(&w.example)
                );
            }
            h += "</table>";
        }

        // Real error and latency.
        h += "<h2>Real error (prediction against the person's correction)</h2><table id=\"errors\"><tr><th>model</th>\
              <th>backend</th><th>events</th><th>corrected</th><th>correction rate</th><th>WER of corrected</th></tr>";
        for r in &self.errors {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td><td>{}</td></tr>",
                escape(&r.model_version),
                escape(&r.backend),
                r.events,
                r.corrections,
                r.correction_rate * 100.0,
                r.corrected_wer.map(|w| format!("{:.1} %", w * 100.0)).unwrap_or_else(|| "—".into())
            );
        }
        h += "</table>";
        if !self.reference_wer.is_empty() {
            h += "<p>Published WER: ";
            h += &self
                .reference_wer
                .iter()
                .map(|(k, v)| format!("{} {:.1} %", escape(k), v * 100.0))
                .collect::<Vec<_>>()
                .join(", ");
            h += "</p>";
        }
        h += "<h2>Latency (end of speech to transcript) and failed recognitions</h2><table id=\"latency\">\
              <tr><th>backend</th><th>model</th><th>events</th><th>p50</th><th>p95</th><th>failed</th></tr>";
        let ms = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.0} ms"));
        for r in &self.latency {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({:.1} %)</td></tr>",
                escape(&r.backend),
                escape(&r.model_version),
                r.events,
                ms(r.p50_ms),
                ms(r.p95_ms),
                r.failed,
                100.0 * r.failure_rate
            );
        }
        h += "</table></html>\n";
        h
    }
}

/// Reference and window fractions per bin, side by side.
fn histogram_svg(c: &Check, color: &str) -> String {
    let (w, ht, pad) = (260.0, 120.0, 18.0);
    let bins = c.reference.len().max(1) as f64;
    let max = c.reference.iter().chain(&c.window).fold(0.0f64, |a, b| a.max(*b)).max(1e-9);
    let bw = (w - 2.0 * pad) / bins;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {ht}\" width=\"{w}\" height=\"{ht}\" \
         font-family=\"sans-serif\" font-size=\"10\"><title>{t}</title><text x=\"{pad}\" y=\"12\">{t}</text>",
        t = escape(&c.label)
    );
    for (i, (r, v)) in c.reference.iter().zip(&c.window).enumerate() {
        let x = pad + i as f64 * bw;
        let base = ht - pad;
        let hr = r / max * (ht - 2.0 * pad);
        let hv = v / max * (ht - 2.0 * pad);
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hr:.1}\" fill=\"#bbb\"/>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hv:.1}\" fill=\"{color}\"/>",
            base - hr,
            bw / 2.0,
            x + bw / 2.0,
            base - hv,
            bw / 2.0
        );
    }
    s += "</svg>";
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn error_rows(data: &WindowData) -> (Vec<ErrorRow>, Vec<ErrorRow>) {
    type Key = (String, String, Option<i64>);
    let mut counts: BTreeMap<Key, (u64, u64, ErrorCounts)> = BTreeMap::new();
    for g in &data.groups {
        for key in [
            (g.model_version.clone(), g.backend.clone(), None),
            (g.model_version.clone(), g.backend.clone(), Some(g.bucket)),
        ] {
            let e = counts.entry(key).or_default();
            e.0 += g.events;
            e.1 += g.corrections;
        }
    }
    for (model, backend, bucket, prediction, correction, times) in &data.corrected_pairs {
        let mut one = ErrorCounts::words(correction, prediction);
        let scale = |v: u64| v * times;
        one = ErrorCounts {
            substitutions: scale(one.substitutions),
            deletions: scale(one.deletions),
            insertions: scale(one.insertions),
            reference: scale(one.reference),
        };
        for key in [(model.clone(), backend.clone(), None), (model.clone(), backend.clone(), Some(*bucket))] {
            counts.entry(key).or_default().2 += one;
        }
    }
    let start = data.spec.since_ms.or(data.span.map(|s| s.0)).unwrap_or(0);
    let mut total = Vec::new();
    let mut over_time = Vec::new();
    for ((model_version, backend, bucket), (events, corrections, errors)) in counts {
        let row = ErrorRow {
            model_version,
            backend,
            bucket_start_ms: bucket.map(|b| start + b * data.bucket_ms),
            events,
            corrections,
            correction_rate: corrections as f64 / events.max(1) as f64,
            corrected_wer: (errors.reference > 0).then(|| errors.rate()),
        };
        if bucket.is_some() { over_time.push(row) } else { total.push(row) }
    }
    (total, over_time)
}

/// Per backend and model version: latency quantiles of the recognitions
/// that gave a transcript, and how many failed.
fn latency_rows(data: &WindowData) -> Vec<LatencyRow> {
    let mut by: BTreeMap<(String, String), (BTreeMap<i64, u64>, u64)> = BTreeMap::new();
    for (backend, model, bucket, n) in &data.latency {
        *by.entry((backend.clone(), model.clone())).or_default().0.entry(*bucket).or_default() += n;
    }
    for (backend, model, failed, _) in data.failures.iter().filter(|f| f.2 > 0) {
        by.entry((backend.clone(), model.clone())).or_default().1 += failed;
    }
    by.into_iter()
        .map(|((backend, model_version), (hist, failed))| {
            let events: u64 = hist.values().sum();
            let quantile = |q: f64| {
                let target = (q * events as f64).ceil().max(1.0) as u64;
                let mut seen = 0;
                for (bucket, n) in &hist {
                    seen += n;
                    if seen >= target {
                        // The bucket's middle.
                        return Some((*bucket as f64 + 0.5) * LATENCY_STEP_MS as f64);
                    }
                }
                None
            };
            let failure_rate = failed as f64 / (events + failed).max(1) as f64;
            LatencyRow {
                backend,
                model_version,
                events,
                p50_ms: quantile(0.5),
                p95_ms: quantile(0.95),
                failed,
                failure_rate,
            }
        })
        .collect()
}
