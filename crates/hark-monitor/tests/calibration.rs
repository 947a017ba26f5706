//! The monitor measured: how often it cries wolf on undrifted windows, and
//! how often it catches a real shift (car noise in part of the traffic).
//! Windows are drawn from utterances made apart from the reference's (same
//! process, other draws), so the reference's own sampling error counts.

mod simulate;

use hark_monitor::drift::{self, Calibration, Edges, State};
use hark_monitor::{RefEvent, ReferenceProfile};
use rand_chacha::ChaCha8Rng;
use rand09::{Rng, SeedableRng};
use simulate::Condition;

/// Wilson score interval (95 %) of `k` successes in `n` trials.
fn wilson(k: usize, n: usize) -> (f64, f64) {
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    (centre - half, centre + half)
}

/// In how many of `TRIALS` windows of `n` events (each event drawn by
/// `draw(i)`) the report alerts, with the 95 % interval of that share.
fn alerts<'a>(
    profile: &ReferenceProfile,
    edges: &Edges,
    n: usize,
    mut draw: impl FnMut(usize) -> &'a RefEvent,
) -> (usize, f64, f64, Calibration) {
    let calibration = Calibration::new(profile, edges, n);
    let alerted = (0..TRIALS)
        .filter(|_| {
            let counts = edges.histograms((0..n).map(&mut draw));
            drift::check(edges, Some(&calibration), &counts).iter().any(|c| c.state == State::Alert)
        })
        .count();
    let (lo, hi) = wilson(alerted, TRIALS);
    (alerted, lo, hi, calibration)
}

const TRIALS: usize = 400;

#[test]
fn undrifted_windows_alert_at_most_five_percent_of_the_time_and_car_noise_is_caught() {
    let speech = simulate::speech();
    let reference = simulate::events(&speech, Condition::Room, 1000, 1);
    let undrifted = simulate::events(&speech, Condition::Room, 3000, 2);
    let car = simulate::events(&speech, Condition::Car, 600, 3);
    let profile = simulate::profile("0.7.0", reference, vec!["weather".into()]);
    let edges = Edges::of(&profile);
    let mut rng = ChaCha8Rng::seed_from_u64(4);

    for n in [50, 200, 1000] {
        let (false_alarms, lo, hi, calibration) =
            alerts(&profile, &edges, n, |_| &undrifted[rng.random_range(0..undrifted.len())]);
        eprintln!(
            "n = {n}: false alarms {false_alarms}/{TRIALS} = {:.1} % (95 % interval {:.1}–{:.1} %), alert at p ≤ {:.5}",
            100.0 * false_alarms as f64 / TRIALS as f64,
            100.0 * lo,
            100.0 * hi,
            calibration.alert_p
        );
        assert!(
            lo <= 0.05,
            "n = {n}: {false_alarms} false alarms in {TRIALS}: interval {lo:.3}–{hi:.3} lies above 5 %"
        );
    }

    // Power: 30 % of a 200-event window spoken in a car at 5–10 dB.
    let n = 200;
    let (caught, lo, hi, _) = alerts(&profile, &edges, n, |i| {
        if i < n * 3 / 10 {
            &car[rng.random_range(0..car.len())]
        } else {
            &undrifted[rng.random_range(0..undrifted.len())]
        }
    });
    eprintln!(
        "car noise in 30 % of {n}: caught {caught}/{TRIALS} = {:.1} % (95 % interval {:.1}–{:.1} %)",
        100.0 * caught as f64 / TRIALS as f64,
        100.0 * lo,
        100.0 * hi
    );
    assert!(caught as f64 >= 0.95 * TRIALS as f64, "car noise caught in only {caught} of {TRIALS} windows");
}
