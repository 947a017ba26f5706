//! `hark_monitor::monitor` over a real collector store: the database's
//! histograms are the monitor's own, a burst of new names is named, the
//! real error rate comes from corrections, and bad input is refused with a
//! message that says what to do.

mod simulate;

use hark_data::{Corpus, Split};
use hark_monitor::drift::{Edges, State};
use hark_monitor::{MonitorError, ReferenceProfile, SqliteSource, WindowSource, WindowSpec, monitor};
use rand_chacha::ChaCha8Rng;
use rand09::{Rng, SeedableRng};
use simulate::{Condition, Row};

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_780_000_000_000;

/// The decoder's words as the profile lists them: the training queries'
/// words and the catalogue (the drift pool never enters it).
fn vocabulary() -> Vec<String> {
    let corpus = Corpus::load();
    let mut words: Vec<String> = corpus
        .generate(Split::Train, 5_000, 9)
        .iter()
        .flat_map(|q| q.text.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .chain(corpus.open_names().map(|(_, name, _)| hark_data::normalize(name)))
        .collect();
    words.sort();
    words.dedup();
    words
}

fn profile() -> ReferenceProfile {
    let speech = simulate::speech();
    simulate::profile("0.7.0", simulate::events(&speech, Condition::Room, 400, 11), vocabulary())
}

#[test]
fn the_database_bins_exactly_as_the_monitor_does() {
    let speech = simulate::speech();
    let profile = profile();
    let events = simulate::events(&speech, Condition::Car, 300, 12);
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<Row> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Row {
            received_ms: T0 + i as i64,
            model_version: "0.7.0",
            backend: "cpu",
            prediction: "weather in paris",
            correction: None,
            latency_ms: 90.0,
            event: e,
            error: None,
        })
        .collect();
    simulate::store(dir.path(), &rows);
    let edges = Edges::of(&profile);
    let data = SqliteSource::open(dir.path()).unwrap().read(&WindowSpec::default(), &edges).unwrap();
    assert_eq!(data.histograms, edges.histograms(&events));
    assert_eq!((data.events, data.with_summary), (300, 300));
}

#[test]
fn a_burst_of_new_names_and_car_noise_is_named_with_the_real_error_rate() {
    let speech = simulate::speech();
    let profile = profile();
    let corpus = Corpus::load();
    let queries = corpus.generate(Split::Test, 400, 13);
    let new_names: Vec<String> = hark_data::corpus::new_names().into_iter().map(|(_, n)| n).step_by(5).collect();
    let clean = simulate::events(&speech, Condition::Room, 400, 14);
    let car = simulate::events(&speech, Condition::Car, 120, 15);
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    // 400 searches over two days: 5 % name a new place or person (the model
    // wrote something else; the person corrected it), 30 % from a car.
    let mut texts = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        if i % 20 == 0 {
            let name = &new_names[(i / 20) % new_names.len()];
            texts.push((
                format!("weather in {name}"),
                Some(format!("weather in {name}")),
                "weather in paris".to_owned(),
            ));
        } else if i % 7 == 0 {
            // An ordinary correction: one word wrong.
            let mut heard: Vec<&str> = q.text.split_whitespace().collect();
            let last = heard.len() - 1;
            heard[last] = "the";
            texts.push((q.text.clone(), Some(q.text.clone()), heard.join(" ")));
        } else {
            texts.push((q.text.clone(), None, q.text.clone()));
        }
    }
    let rows: Vec<Row> = texts
        .iter()
        .enumerate()
        .map(|(i, (_, correction, heard))| Row {
            received_ms: T0 + (i as i64) * 48 * HOUR / 400,
            model_version: "0.7.0",
            backend: if i % 3 == 0 { "webgpu" } else { "cpu" },
            prediction: heard,
            correction: correction.as_deref(),
            latency_ms: rng.random_range(60.0..140.0),
            event: if i % 10 < 3 { &car[i % car.len()] } else { &clean[i] },
            // Three recognitions on WebGPU failed (events 3, 153 and 303).
            error: (i % 150 == 3).then_some("Recognition failed: the GPU device was lost"),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    simulate::store(dir.path(), &rows);
    let source = SqliteSource::open(dir.path()).unwrap();
    let report =
        monitor(&source, &profile, &WindowSpec { model_version: Some("0.7.0".into()), ..Default::default() }).unwrap();

    assert_eq!(report.state, State::Alert, "{:?}", report.findings);
    assert_eq!(report.exit_code(), 1);
    let snr = report.drift.checks.iter().find(|c| c.key == "snr_db").unwrap();
    assert_eq!(snr.state, State::Alert, "the noise shift shows in the SNR");
    assert_eq!(report.words.state, State::Alert);
    let top: Vec<&str> = report.words.corrections.top_words.iter().map(|w| w.text.as_str()).collect();
    for name in &new_names {
        let unknown: Vec<&str> =
            name.split_whitespace().filter(|w| !profile.vocabulary.iter().any(|v| v == w)).collect();
        assert!(!unknown.is_empty(), "{name} is new");
        assert!(unknown.iter().all(|w| top.contains(w)), "{name} is missing from the top new words {top:?}");
    }
    let names: Vec<&str> = report.words.corrections.top_names.iter().map(|w| w.text.as_str()).collect();
    // A name all of whose words are new is counted whole.
    let all_new = |n: &&String| n.split_whitespace().all(|w| !profile.vocabulary.iter().any(|v| v == w));
    for name in new_names.iter().filter(|n| n.contains(' ')).filter(all_new) {
        assert!(names.contains(&name.as_str()), "{name} is missing from the top names {names:?}");
    }
    // Real error: per backend, the corrected subset's WER and the rate.
    let total_corrections: u64 = report.errors.iter().map(|r| r.corrections).sum();
    assert_eq!(total_corrections, texts.iter().filter(|t| t.1.is_some()).count() as u64);
    assert!(report.errors.iter().all(|r| r.corrected_wer.is_some_and(|w| w > 0.0 && w <= 1.0)), "{:?}", report.errors);
    assert_eq!(report.latency.len(), 2);
    assert!(
        report.latency.iter().all(|l| l.p50_ms.is_some_and(|p| (60.0..=150.0).contains(&p)) && l.p95_ms >= l.p50_ms)
    );
    // Failed recognitions: counted per backend, kept out of the latency and the error rate.
    let failed: Vec<(&str, u64, u64)> =
        report.latency.iter().map(|l| (l.backend.as_str(), l.failed, l.events + l.failed)).collect();
    assert_eq!(failed, [("cpu", 0, 266), ("webgpu", 3, 134)]);
    assert!((report.latency[1].failure_rate - 3.0 / 134.0).abs() < 1e-12);
    assert!(report.series.len() >= 24, "two days in buckets: {}", report.series.len());
    // Both outputs say it.
    let html = report.to_html();
    assert!(html.contains("id=\"state\" style=\"background:#c62828\">alert"));
    assert!(html.contains(&new_names[0]));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["state"], "alert");
}

#[test]
fn bad_input_is_refused_with_what_to_do() {
    let speech = simulate::speech();
    let profile = profile();
    let events = simulate::events(&speech, Condition::Room, 40, 17);
    let rows: Vec<Row> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Row {
            received_ms: T0 + i as i64 * 1000,
            model_version: "0.7.0",
            backend: "cpu",
            prediction: "weather in paris",
            correction: None,
            latency_ms: 80.0,
            event: e,
            error: None,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    simulate::store(dir.path(), &rows);
    let source = SqliteSource::open(dir.path()).unwrap();

    // An empty window.
    let later = WindowSpec { since_ms: Some(T0 + 10 * HOUR), ..Default::default() };
    let e = monitor(&source, &profile, &later).unwrap_err();
    assert!(matches!(e, MonitorError::EmptyWindow(_)) && e.to_string().contains("widen --since"), "{e}");
    // An unknown model version: the versions the store holds are named.
    let other = WindowSpec { model_version: Some("9.9.9".into()), ..Default::default() };
    let e = monitor(&source, &profile, &other).unwrap_err().to_string();
    assert!(e.contains("9.9.9") && e.contains("0.7.0 (40 events)"), "{e}");
    // No corrections: the report is made, says so, and exits 2.
    let report = monitor(&source, &profile, &WindowSpec::default()).unwrap();
    assert_eq!(report.window.corrections, 0);
    assert_eq!(report.exit_code(), 2);
    assert!(report.findings.iter().any(|f| f.contains("No corrections")), "{:?}", report.findings);
    // Too few events for drift: no verdict rather than an alarm.
    let few = WindowSpec { until_ms: Some(T0 + 20_000), ..Default::default() };
    let report = monitor(&source, &profile, &few).unwrap();
    assert_eq!(report.drift.state, State::NotEnoughData);
    assert!(report.findings[0].starts_with("Not enough data for drift: 20 events"), "{:?}", report.findings);
    // A missing, a corrupt and a too-small profile.
    let missing = dir.path().join("none.json");
    let e = ReferenceProfile::load(&missing).unwrap_err().to_string();
    assert!(e.contains("none.json") && e.contains("cannot be read"), "{e}");
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{\"profile_version\": 1, \"events\": [").unwrap();
    let e = ReferenceProfile::load(&corrupt).unwrap_err().to_string();
    assert!(e.contains("is not a reference profile"), "{e}");
    let small = dir.path().join("small.json");
    let mut tiny = profile.clone();
    tiny.events.truncate(10);
    tiny.save(&small).unwrap();
    let e = ReferenceProfile::load(&small).unwrap_err().to_string();
    assert!(e.contains("holds 10 reference utterances"), "{e}");
    // Not a store at all.
    let e = SqliteSource::open(&corrupt).err().unwrap().to_string();
    assert!(e.contains("corrupt.json"), "{e}");
}
