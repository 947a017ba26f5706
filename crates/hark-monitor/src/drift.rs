//! Drift: is this window of production logs drawn from what the model was
//! published for?
//!
//! Each **check** compares one signal's distribution in the window with the
//! reference: the 16 per-band log-mel energies, the SNR, the speech duration
//! (input drift) and the utterance confidence (output drift). Values are
//! put in [`BINS`] bins at the reference's quantiles — so a window reduces
//! to counts the database computes ([`crate::store`]) — and the distance is
//! the largest gap between the two cumulative distributions (a binned
//! Kolmogorov–Smirnov statistic).
//!
//! **Calibration, not fixed cut-offs.** A distance means nothing without
//! the window's size: small windows wander further by chance. For a window
//! of `n` events, [`Calibration`] draws [`REPLICATES`] windows of `n`
//! reference events (whole events, so the bands' correlations are kept),
//! and each check's p-value is where the window's distance falls among the
//! replicates'. **Correction across checks** is Westfall–Young min-p: the
//! alert threshold is the [`ALPHA`] quantile of the *smallest* p-value of
//! each replicate, so a whole report on undrifted data alerts with
//! probability ≤ 5 % however correlated the 19 checks are (Bonferroni
//! would assume the worst and lose power). Below [`MIN_WINDOW`] events
//! there is no verdict: "not enough data".

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Binomial, Distribution};
use rayon::prelude::*;
use serde::Serialize;

use crate::profile::{RefEvent, ReferenceProfile};

/// Bins per signal, at the reference's quantiles.
pub const BINS: usize = 20;
/// Fewest events a window needs for a verdict.
pub const MIN_WINDOW: usize = 30;
/// Probability that a report on undrifted data raises any alert.
pub const ALPHA: f64 = 0.05;
/// Probability that a report on undrifted data says "watch" (or worse).
pub const WATCH_ALPHA: f64 = 0.25;
/// Reference windows drawn per calibration.
pub const REPLICATES: usize = 2000;
/// Seeded streams the replicates are drawn in (in parallel).
const CHUNKS: usize = 16;

/// One signal drift is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Mean log-mel energy of band group `i` (0: lowest).
    Band(usize),
    Snr,
    Speech,
    Confidence,
}

impl Signal {
    /// Every check, in report order.
    pub fn all() -> Vec<Signal> {
        (0..hark_dsp::SUMMARY_BANDS)
            .map(Signal::Band)
            .chain([Signal::Snr, Signal::Speech, Signal::Confidence])
            .collect()
    }

    /// A short stable key (`band_03`, `snr_db`, `speech_s`, `confidence`).
    pub fn key(self) -> String {
        match self {
            Signal::Band(i) => format!("band_{i:02}"),
            Signal::Snr => "snr_db".into(),
            Signal::Speech => "speech_s".into(),
            Signal::Confidence => "confidence".into(),
        }
    }

    /// What it is, for a person.
    pub fn label(self) -> String {
        match self {
            Signal::Band(i) => format!("energy, band {} of {}", i + 1, hark_dsp::SUMMARY_BANDS),
            Signal::Snr => "signal-to-noise ratio (dB)".into(),
            Signal::Speech => "speech duration (s)".into(),
            Signal::Confidence => "utterance confidence".into(),
        }
    }

    /// Input drift (what people sound like) or output drift (the model).
    pub fn is_input(self) -> bool {
        self != Signal::Confidence
    }

    pub fn of(self, e: &RefEvent) -> f64 {
        match self {
            Signal::Band(i) => e.band_mean.get(i).copied().unwrap_or(f32::NAN) as f64,
            Signal::Snr => e.snr_db as f64,
            Signal::Speech => e.speech_s as f64,
            Signal::Confidence => e.confidence as f64,
        }
    }
}

/// The inner bin edges of each signal (`BINS - 1` reference quantiles).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edges {
    pub signals: Vec<Signal>,
    pub edges: Vec<Vec<f64>>,
}

impl Edges {
    pub fn of(profile: &ReferenceProfile) -> Self {
        let signals = Signal::all();
        let edges = signals
            .iter()
            .map(|s| {
                let mut values: Vec<f64> = profile.events.iter().map(|e| s.of(e)).collect();
                values.sort_by(f64::total_cmp);
                let mut edges: Vec<f64> =
                    (1..BINS).map(|k| values[(k * values.len() / BINS).min(values.len() - 1)]).collect();
                edges.dedup();
                edges
            })
            .collect();
        Self { signals, edges }
    }

    /// The bin of `value` for signal number `s`: values equal to an edge go
    /// above it; NaN goes to the last bin.
    pub fn bin(&self, s: usize, value: f64) -> usize {
        if value.is_nan() {
            return self.edges[s].len();
        }
        self.edges[s].partition_point(|e| *e <= value)
    }

    /// Bins of signal `s`.
    pub fn bins(&self, s: usize) -> usize {
        self.edges[s].len() + 1
    }

    /// Counts per bin of every signal over `events`.
    pub fn histograms<'a>(&self, events: impl IntoIterator<Item = &'a RefEvent>) -> Vec<Vec<u64>> {
        let mut counts: Vec<Vec<u64>> = (0..self.signals.len()).map(|s| vec![0; self.bins(s)]).collect();
        for e in events {
            for (s, signal) in self.signals.iter().enumerate() {
                counts[s][self.bin(s, signal.of(e))] += 1;
            }
        }
        counts
    }
}

/// The largest gap between the cumulative distributions of `reference`
/// (fractions per bin) and the window's `counts`.
pub fn distance(reference: &[f64], counts: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let (mut r, mut w, mut gap) = (0.0, 0.0, 0.0f64);
    for (p, c) in reference.iter().zip(counts) {
        r += p;
        w += *c as f64 / n as f64;
        gap = gap.max((r - w).abs());
    }
    gap
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Too few events for a verdict.
    NotEnoughData,
    Ok,
    Watch,
    Alert,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::NotEnoughData => "not enough data",
            State::Ok => "ok",
            State::Watch => "watch",
            State::Alert => "alert",
        }
    }
}

/// The null distribution of every check at one window size.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub n: usize,
    /// Per signal, the reference's fraction of events in each bin.
    pub reference: Vec<Vec<f64>>,
    /// Per signal, the replicates' distances, ascending.
    null: Vec<Vec<f64>>,
    /// A check alerts when its p-value is at most this.
    pub alert_p: f64,
    /// A check is worth watching when its p-value is at most this.
    pub watch_p: f64,
}

impl Calibration {
    /// Calibrates for windows of `n` events by drawing [`REPLICATES`]
    /// windows from the reference (seeded: the same profile and `n` give
    /// the same thresholds).
    pub fn new(profile: &ReferenceProfile, edges: &Edges, n: usize) -> Self {
        let m = edges.signals.len();
        let total = profile.events.len() as f64;
        let reference: Vec<Vec<f64>> = edges
            .histograms(&profile.events)
            .into_iter()
            .map(|h| h.iter().map(|c| *c as f64 / total).collect())
            .collect();
        // Each event's bin per signal, looked up once.
        let binned: Vec<Vec<u16>> = profile
            .events
            .iter()
            .map(|e| edges.signals.iter().enumerate().map(|(s, signal)| edges.bin(s, signal.of(e)) as u16).collect())
            .collect();
        // Two-sample null: the reference itself is a sample, so each
        // replicate draws a reference of its size *and* a window of `n`,
        // both from the reference, and measures the distance between them.
        // A draw is how many times each reference event was picked (a
        // multinomial), so a replicate costs the reference's size, not the
        // window's: a window of a million events calibrates as fast.
        // Replicates run in fixed chunks, each with its own seeded stream:
        // the thresholds do not depend on the number of threads.
        let chunks: Vec<Vec<Vec<f64>>> = (0..CHUNKS)
            .into_par_iter()
            .map(|chunk| {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x6d6f_6e69 ^ ((n as u64) << 8) ^ chunk as u64);
                let mut distances = vec![Vec::with_capacity(REPLICATES / CHUNKS); m];
                let mut ref_counts: Vec<Vec<u64>> = (0..m).map(|s| vec![0; edges.bins(s)]).collect();
                let mut counts = ref_counts.clone();
                let mut fractions: Vec<Vec<f64>> = ref_counts.iter().map(|c| vec![0.0; c.len()]).collect();
                let mut picks = vec![0u64; binned.len()];
                let mut draw = |counts: &mut Vec<Vec<u64>>, size: usize, rng: &mut Xoshiro256PlusPlus| {
                    multinomial(&mut picks, size as u64, rng);
                    counts.iter_mut().for_each(|c| c.fill(0));
                    for (event, times) in binned.iter().zip(&picks).filter(|(_, t)| **t > 0) {
                        for (s, bin) in event.iter().enumerate() {
                            counts[s][*bin as usize] += times;
                        }
                    }
                };
                for _ in 0..REPLICATES / CHUNKS {
                    draw(&mut ref_counts, binned.len(), &mut rng);
                    draw(&mut counts, n, &mut rng);
                    for s in 0..m {
                        for (f, c) in fractions[s].iter_mut().zip(&ref_counts[s]) {
                            *f = *c as f64 / total;
                        }
                        distances[s].push(distance(&fractions[s], &counts[s]));
                    }
                }
                distances
            })
            .collect();
        let mut replicate = vec![Vec::with_capacity(REPLICATES); m];
        for chunk in chunks {
            for (all, part) in replicate.iter_mut().zip(chunk) {
                all.extend(part);
            }
        }
        let mut null = replicate.clone();
        null.iter_mut().for_each(|d| d.sort_by(f64::total_cmp));
        // Each replicate's smallest p-value over the checks.
        let mut min_p: Vec<f64> = (0..REPLICATES)
            .map(|b| {
                (0..m).map(|s| upper_tail(&null[s], replicate[s][b]) as f64 / REPLICATES as f64).fold(1.0, f64::min)
            })
            .collect();
        min_p.sort_by(f64::total_cmp);
        let threshold = |alpha: f64| {
            // The largest p with P(min p ≤ it) ≤ alpha; 0 (never) if none.
            let allowed = (alpha * REPLICATES as f64).floor() as usize;
            let mut t = 0.0;
            for p in &min_p {
                if min_p.partition_point(|q| q <= p) > allowed {
                    break;
                }
                t = *p;
            }
            t
        };
        Self { n, reference, null, alert_p: threshold(ALPHA), watch_p: threshold(WATCH_ALPHA) }
    }

    /// The p-value of distance `d` on signal number `s`: the share of
    /// reference windows at least that far.
    pub fn p_value(&self, s: usize, d: f64) -> f64 {
        (1 + upper_tail(&self.null[s], d)) as f64 / (REPLICATES + 1) as f64
    }

    /// The verdict of a check from its p-value.
    pub fn state(&self, p: f64) -> State {
        if p <= self.alert_p {
            State::Alert
        } else if p <= self.watch_p {
            State::Watch
        } else {
            State::Ok
        }
    }

    /// The distance at which signal `s` alerts, for the report.
    pub fn alert_distance(&self, s: usize) -> f64 {
        // Smallest distance whose p-value is within the threshold.
        let null = &self.null[s];
        let allowed = ((self.alert_p * (REPLICATES + 1) as f64) - 1.0).floor().max(0.0) as usize;
        if allowed == 0 { null.last().copied().unwrap_or(0.0) + f64::EPSILON } else { null[null.len() - allowed] }
    }
}

/// Fills `picks` with how many of `size` uniform draws (with replacement)
/// fell on each slot: one draw at a time for small sizes, else a binomial
/// per slot given what is left (the same distribution in `O(slots)`).
fn multinomial(picks: &mut [u64], size: u64, rng: &mut Xoshiro256PlusPlus) {
    picks.fill(0);
    let slots = picks.len();
    if slots == 0 {
        return;
    }
    if size <= 4 * slots as u64 {
        for _ in 0..size {
            picks[rng.random_range(0..slots)] += 1;
        }
        return;
    }
    let mut left = size;
    for (i, pick) in picks.iter_mut().enumerate() {
        if left == 0 {
            break;
        }
        let remaining_slots = (slots - i) as f64;
        *pick = if i + 1 == slots {
            left
        } else {
            Binomial::new(left, 1.0 / remaining_slots).map(|b| b.sample(rng)).unwrap_or(0)
        };
        left -= *pick;
    }
}

/// How many of `sorted` are ≥ `d`.
fn upper_tail(sorted: &[f64], d: f64) -> usize {
    sorted.len() - sorted.partition_point(|x| *x < d - 1e-12)
}

/// One check of a window.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub signal: Signal,
    pub key: String,
    pub label: String,
    pub input: bool,
    pub distance: f64,
    /// The distance at which this check alerts, at this window's size.
    pub alert_at: f64,
    pub p_value: f64,
    pub state: State,
    /// Reference and window fractions per bin (for the dashboard).
    pub reference: Vec<f64>,
    pub window: Vec<f64>,
    /// The bins' inner edges.
    pub edges: Vec<f64>,
}

/// Every check of a window of `n` events with these per-signal `counts`.
pub fn check(edges: &Edges, calibration: Option<&Calibration>, counts: &[Vec<u64>]) -> Vec<Check> {
    edges
        .signals
        .iter()
        .enumerate()
        .map(|(s, signal)| {
            let n: u64 = counts[s].iter().sum();
            let window: Vec<f64> = counts[s].iter().map(|c| if n == 0 { 0.0 } else { *c as f64 / n as f64 }).collect();
            let (distance, alert_at, p_value, state, reference) = match calibration {
                Some(cal) => {
                    let d = distance(&cal.reference[s], &counts[s]);
                    let p = cal.p_value(s, d);
                    (d, cal.alert_distance(s), p, cal.state(p), cal.reference[s].clone())
                }
                None => (0.0, 0.0, 1.0, State::NotEnoughData, Vec::new()),
            };
            Check {
                signal: *signal,
                key: signal.key(),
                label: signal.label(),
                input: signal.is_input(),
                distance,
                alert_at,
                p_value,
                state,
                reference,
                window,
                edges: edges.edges[s].clone(),
            }
        })
        .collect()
}
