//! `hark monitor`'s throughput and memory as the store grows (`cargo xtask
//! bench`): a collector store of 10⁵ and 10⁶ schema-2 events (each with a
//! feature summary; one in ten corrected; a thousand distinct queries), and
//! one report over all of it — events per second through the report, and
//! the process's peak resident memory during it (the kernel's high-water
//! mark, reset before the report); the same on PostgreSQL (a throwaway
//! server, its own memory not counted). Goal: ≥ 100,000 events/s on
//! SQLite, memory flat in the store's size.

#[path = "../../hark-collector/tests/support/postgres.rs"]
mod server;
#[path = "../tests/simulate/mod.rs"]
mod simulate;

use std::time::Instant;

use hark_monitor::{SqliteSource, WindowSpec, monitor};
use rand_chacha::ChaCha8Rng;
use rand09::{Rng, SeedableRng};
use simulate::Condition;

/// Peak resident memory of this process since the last reset, MB.
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    kb / 1024.0
}

fn reset_peak() {
    // Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn fill(dir: &std::path::Path, n: usize, pool: &[hark_monitor::RefEvent]) {
    drop(hark_collector::store::SqliteStore::open(dir).expect("a store"));
    let mut db = rusqlite::Connection::open(dir.join(hark_collector::store::DB_FILE)).expect("the store");
    db.execute_batch("PRAGMA synchronous = OFF").expect("pragma");
    let tx = db.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (event_id, install_id, received_ms, created_ms, app_version, model_version, backend,
                     prediction, confidence, correction, audio_s, decode_ms, schema_version, consent, summary)
                 VALUES (?1, 'i', ?2, ?2, '0.1.0', '0.7.0', ?3, ?4, ?5, ?6, 2.0, ?7, 2, 'predictions', ?8)",
            )
            .expect("insert");
        let summaries: Vec<String> = pool
            .iter()
            .map(|e| {
                serde_json::json!({"band_mean": e.band_mean, "band_std": vec![1.0; 16], "snr_db": e.snr_db,
                    "speech_s": e.speech_s, "sample_rate": 48000})
                .to_string()
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for i in 0..n {
            let k = rng.random_range(0..pool.len());
            let query = format!("weather in city {}", i % 1000);
            let correction = (i % 10 == 0).then(|| format!("weather in town {}", i % 1000));
            insert
                .execute(rusqlite::params![
                    format!("e{i}"),
                    1_790_000_000_000i64 + i as i64 * 1000,
                    if i % 3 == 0 { "webgpu" } else { "cpu" },
                    query,
                    pool[k].confidence as f64,
                    correction,
                    80.0 + (i % 100) as f64,
                    summaries[k],
                ])
                .expect("row");
        }
    }
    tx.commit().expect("commit");
}

/// The same events in a PostgreSQL store (`COPY`, as a bulk load).
fn fill_postgres(url: &str, n: usize, pool: &[hark_monitor::RefEvent]) {
    use std::io::Write;
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("the server");
    client.batch_execute("TRUNCATE events").expect("truncate");
    let summaries: Vec<String> = pool.iter().map(simulate::summary_json).collect();
    let mut writer = client
        .copy_in(
            "COPY events (event_id, install_id, received_ms, created_ms, schema_version, consent, app_version,
                 model_version, backend, transcript, confidence, correction, latency_ms, audio_s, summary)
             FROM STDIN (FORMAT csv)",
        )
        .expect("copy");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for i in 0..n {
        let k = rng.random_range(0..pool.len());
        let t = 1_790_000_000_000i64 + i as i64 * 1000;
        let correction = if i % 10 == 0 { format!("weather in town {}", i % 1000) } else { String::new() };
        writeln!(
            writer,
            "e{i},i,{t},{t},2,predictions,0.1.0,0.7.0,{},weather in city {},{},{},{},2.0,\"{}\"",
            if i % 3 == 0 { "webgpu" } else { "cpu" },
            i % 1000,
            pool[k].confidence,
            correction,
            80 + i % 100,
            summaries[k].replace('"', "\"\"")
        )
        .expect("a row");
    }
    writer.finish().expect("copied");
    client.batch_execute("ANALYZE events").expect("analyze");
}

fn measure(name: &str, n: usize, source: &dyn hark_monitor::WindowSource, profile: &hark_monitor::ReferenceProfile) {
    reset_peak();
    let started = Instant::now();
    let report = monitor(source, profile, &WindowSpec::default()).expect("a report");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(report.window.events, n as u64);
    println!("| {name} | {n} | {seconds:.2} | {:.0} | {:.1} |", n as f64 / seconds, peak_mb());
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let speech = simulate::speech();
    let reference = simulate::events(&speech, Condition::Room, 2000, 1);
    let pool = simulate::events(&speech, Condition::Room, 2000, 2);
    let profile = simulate::profile("0.7.0", reference, vec!["weather".into(), "in".into()]);
    println!("| store | events in it | report time, s | events/s | peak resident memory of hark monitor, MB |");
    println!("|---|---|---|---|---|");
    for n in [100_000usize, 1_000_000] {
        let dir = tempfile::tempdir().expect("a temporary folder");
        fill(dir.path(), n, &pool);
        let source = SqliteSource::open(dir.path()).expect("the store");
        measure("SQLite", n, &source, &profile);
    }
    let server = match server::Postgres::start() {
        Ok(server) => server,
        Err(e) => {
            println!("| PostgreSQL | n/a ({e}) | | | |");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(hark_collector::store::PostgresStore::connect(&server.url)).expect("the collector's schema");
    for n in [100_000usize, 1_000_000] {
        fill_postgres(&server.url, n, &pool);
        let source = hark_monitor::PostgresSource::connect(&server.url).expect("the store");
        measure("PostgreSQL", n, &source, &profile);
    }
}
