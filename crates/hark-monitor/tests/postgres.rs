//! The same window in a PostgreSQL store (a real server the test starts:
//! `initdb` into a temporary folder) and in a SQLite store gives the same
//! report: the two sources aggregate alike.

#[path = "../../hark-collector/tests/support/postgres.rs"]
mod server;
mod simulate;

use hark_monitor::{PostgresSource, SqliteSource, monitor};
use hark_monitor::{WindowSpec, drift::State};
use simulate::{Condition, Row};

#[test]
fn a_postgresql_store_reports_what_a_sqlite_store_of_the_same_events_reports() {
    let pg = server::Postgres::start().expect("a PostgreSQL server (cargo xtask test installs it)");
    // The collector makes the schema, as in production.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(hark_collector::store::PostgresStore::connect(&pg.url)).expect("the collector's schema");

    let speech = simulate::speech();
    let profile = simulate::profile(
        "0.7.0",
        simulate::events(&speech, Condition::Room, 300, 21),
        ["weather", "in", "paris", "lisbon"].map(String::from).to_vec(),
    );
    let clean = simulate::events(&speech, Condition::Room, 150, 22);
    let car = simulate::events(&speech, Condition::Car, 150, 23);
    let rows: Vec<Row> = (0..300)
        .map(|i| Row {
            received_ms: 1_796_083_200_000 + i as i64 * 600_000,
            model_version: if i % 5 == 0 { "0.6.0" } else { "0.7.0" },
            backend: if i % 2 == 0 { "webgpu" } else { "cpu" },
            prediction: if i % 4 == 0 { "weather in paris" } else { "weather in lisbon" },
            correction: (i % 6 == 0).then_some("weather in ushuaia"),
            latency_ms: 50.0 + (i % 37) as f64 * 3.0,
            event: if i >= 150 && i % 2 == 0 { &car[i % 150] } else { &clean[i % 150] },
            error: (i % 23 == 0).then_some("Recognition failed: the GPU device was lost"),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    simulate::store(dir.path(), &rows);
    let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    for (i, r) in rows.iter().enumerate() {
        let summary = simulate::summary_json(r.event);
        client
            .execute(
                "INSERT INTO events (event_id, install_id, received_ms, created_ms, schema_version, consent, app_version,
                     model_version, backend, transcript, confidence, correction, latency_ms, audio_s, summary, error)
                 VALUES ($1, 'install', $2, $2, 2, 'predictions', '0.1.0', $3, $4, $5, $6, $7, $8, 2.0, $9, $10)",
                &[
                    &format!("event-{i}"),
                    &r.received_ms,
                    &r.model_version,
                    &r.backend,
                    &r.prediction,
                    &r.event.confidence,
                    &r.correction,
                    &(r.latency_ms as f32),
                    &summary,
                    &r.error,
                ],
            )
            .unwrap();
    }

    let sqlite = SqliteSource::open(dir.path()).unwrap();
    let postgres = PostgresSource::connect(&pg.url).unwrap();
    for spec in [
        WindowSpec { model_version: Some("0.7.0".into()), ..Default::default() },
        WindowSpec {
            since_ms: Some(1_796_083_200_000 + 100 * 600_000),
            until_ms: Some(1_796_083_200_000 + 250 * 600_000),
            model_version: None,
        },
    ] {
        let a = monitor(&sqlite, &profile, &spec).unwrap();
        let b = monitor(&postgres, &profile, &spec).unwrap();
        // Everything but floating-point rounding in sums is identical.
        let json = |r: &hark_monitor::Report| {
            let mut v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
            for p in v["series"].as_array_mut().unwrap() {
                p["mean_snr_db"] = serde_json::json!(p["mean_snr_db"].as_f64().map(|x| (x * 1e3).round() / 1e3));
                p["mean_confidence"] = serde_json::json!((p["mean_confidence"].as_f64().unwrap() * 1e5).round() / 1e5);
            }
            v
        };
        assert_eq!(json(&a), json(&b), "{spec:?}");
        let in_window = |r: &&Row| {
            spec.model_version.as_deref().is_none_or(|m| m == r.model_version)
                && spec.since_ms.is_none_or(|s| r.received_ms >= s)
                && spec.until_ms.is_none_or(|u| r.received_ms < u)
        };
        let failed = rows.iter().filter(in_window).filter(|r| r.error.is_some()).count() as u64;
        assert!(failed > 0);
        assert_eq!(a.latency.iter().map(|l| l.failed).sum::<u64>(), failed, "{spec:?}");
        assert_eq!(a.window.events, if spec.model_version.is_some() { 240 } else { 150 });
    }
    let drifted = monitor(&postgres, &profile, &WindowSpec::default()).unwrap();
    assert_eq!(drifted.state, State::Alert, "{:?}", drifted.findings);
    let wrong = PostgresSource::connect(&pg.url.replace("/postgres", "/nonexistent")).err().unwrap().to_string();
    assert!(wrong.contains("cannot be reached") && !wrong.contains("password"), "{wrong}");
}
