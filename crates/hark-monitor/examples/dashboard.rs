//! Writes the dashboard of a simulated drift — two days of searches in
//! which 30 % come from cars and 5 % name people and places the model has
//! never heard of — to the folder given (default `monitor-example/`): the
//! README's screenshot is this page.
//!
//! `cargo run -p hark-monitor --example dashboard -- OUT_DIR`

#[path = "../tests/simulate/mod.rs"]
mod simulate;

use hark_data::{Corpus, Split};
use hark_monitor::{SqliteSource, WindowSpec, monitor};
use simulate::{Condition, Row};

fn main() {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "monitor-example".into()));
    let speech = simulate::speech();
    let corpus = Corpus::load();
    let mut vocabulary: Vec<String> = corpus
        .generate(Split::Train, 5_000, 9)
        .iter()
        .flat_map(|q| q.text.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .chain(corpus.open_names().map(|(_, name, _)| hark_data::normalize(name)))
        .collect();
    vocabulary.sort();
    vocabulary.dedup();
    let profile = simulate::profile("0.7.0", simulate::events(&speech, Condition::Room, 1000, 11), vocabulary);
    let names: Vec<String> = hark_data::corpus::new_names().into_iter().map(|(_, n)| n).step_by(5).collect();
    let queries = corpus.generate(Split::Test, 1200, 13);
    let clean = simulate::events(&speech, Condition::Room, 1200, 14);
    let car = simulate::events(&speech, Condition::Car, 400, 15);
    let texts: Vec<(String, Option<String>)> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| match i {
            // The drift starts on the second day.
            _ if i >= 600 && i % 20 == 0 => {
                (String::from("weather in paris"), Some(format!("weather in {}", names[(i / 20) % names.len()])))
            }
            _ if i % 9 == 0 => (format!("{} the", q.text), Some(q.text.clone())),
            _ => (q.text.clone(), None),
        })
        .collect();
    let rows: Vec<Row> = texts
        .iter()
        .enumerate()
        .map(|(i, (heard, correction))| Row {
            received_ms: 1_796_083_200_000 + i as i64 * 48 * 3_600_000 / 1200,
            model_version: "0.7.0",
            backend: if i % 3 == 0 { "webgpu" } else { "cpu" },
            prediction: heard,
            correction: correction.as_deref(),
            latency_ms: 70.0 + (i % 50) as f64,
            event: if i >= 600 && i % 10 < 3 { &car[i % car.len()] } else { &clean[i] },
            error: None,
        })
        .collect();
    let store = tempfile::tempdir().expect("a temporary folder");
    simulate::store(store.path(), &rows);
    let source = SqliteSource::open(store.path()).expect("the store");
    let report = monitor(&source, &profile, &WindowSpec::default()).expect("a report");
    std::fs::create_dir_all(&out).expect("the output folder");
    std::fs::write(out.join("index.html"), report.to_html()).expect("written");
    std::fs::write(out.join("summary.json"), report.to_json()).expect("written");
    println!("{}: {}", report.state.as_str(), report.findings.join(" "));
}
