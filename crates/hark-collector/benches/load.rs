//! The collector under load on loopback; the server runs in this process
//! (so its peak resident memory is this process's). Two loads, each bounded
//! in time:
//!
//! 1. **throughput** — `wrk` (Debian's, another process): as many batches of
//!    20 schema-2 events as 32 connections can send: events accepted per
//!    second;
//! 2. **fixed rate** — an open-loop generator ([`open_loop`], wrk2's
//!    method, which Debian does not ship): request *i* is due at
//!    *start + i / 2,000 s* whatever happened to the ones before, over at
//!    most 64 connections, and its latency counts from when it was due, so
//!    a stall of the server shows in the percentiles (no coordinated
//!    omission) instead of lowering the rate. Three runs, each reported.
//!
//! Both for SQLite and for PostgreSQL (a throwaway local server, as in the
//! tests). Then it checks that the server accepted at least every event the
//! loads saw answered, and prints a Markdown table (also written to
//! `target/bench/collector.md`). `cargo xtask bench` runs it; alone:
//! `cargo bench -p hark-collector --bench load`. HARK_BENCH_SECONDS sets
//! each run's length (default 10); HARK_BENCH_STORES=sqlite leaves
//! PostgreSQL out.

#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const BATCH: usize = 20;
/// The fixed rate, requests per second, and the runs at it.
const RATE: f64 = 2_000.0;
const PACED_RUNS: usize = 3;
/// Connections the open-loop generator may hold at once.
const PACED_CONNECTIONS: usize = 64;

/// One schema-2 event of a realistic size (words and a feature summary),
/// `%s` standing for its id.
fn event_template() -> String {
    let bands = hark_dsp::SUMMARY_BANDS;
    let mean: Vec<String> = (0..bands).map(|b| format!("{:.3}", -4.0 + b as f32 * 0.1)).collect();
    let std: Vec<String> = (0..bands).map(|b| format!("{:.3}", 1.0 + b as f32 * 0.01)).collect();
    format!(
        r#"{{"event_id":"%s","created_ms":1796000000000,"app_version":"0.8.0","model_version":"0.7.0","backend":"webgpu","latency_ms":84.5,"audio_s":2.1,"transcript":"weather tomorrow in lisbon","confidence":0.82,"words":[{{"text":"weather","confidence":0.9}},{{"text":"tomorrow","confidence":0.85}},{{"text":"in","confidence":0.8}},{{"text":"lisbon","confidence":0.7}}],"correction":"weather tomorrow in lisbon portugal","summary":{{"band_mean":[{}],"band_std":[{}],"snr_db":18.5,"speech_s":1.6,"sample_rate":48000}}}}"#,
        mean.join(","),
        std.join(",")
    )
}

fn lua_script(run: &str) -> String {
    let head = format!(
        r#"{{"schema_version":2,"install_id":"install-bench-{run}","install_key":"{}","consent":"predictions","consent_text_version":1,"events":["#,
        hark_collector::store::install_key("bench secret")
    );
    format!(
        r#"local head = [[{head}]]
local template = [[{template}]]
local n = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = "{run}-" .. tid .. "-"
end
request = function()
  n = n + 1
  local events = {{}}
  for k = 1, {BATCH} do
    events[k] = string.format(template, prefix .. n .. "-" .. k)
  end
  local body = head .. table.concat(events, ",") .. "]}}"
  return wrk.format("POST", "/v1/events", {{["Content-Type"] = "application/json"}}, body)
end
"#,
        template = event_template(),
    )
}

/// What one wrk run reported.
#[derive(Debug, Default)]
struct Run {
    requests: u64,
    non_2xx: u64,
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn millis(text: &str) -> f64 {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len()));
    let value: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => f64::NAN,
    }
}

fn wrk(url: &str, script: &Path, connections: u32, seconds: u64) -> anyhow::Result<Run> {
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run wrk ({e}); install Debian's `wrk` (cargo xtask bench does)"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    let mut run = Run::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => run.p50_ms = millis(v),
            ["99%", v] => run.p99_ms = millis(v),
            ["Requests/sec:", v] => run.requests_per_s = v.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", v] => run.non_2xx = v.parse()?,
            [n, "requests", "in", ..] => run.requests = n.parse()?,
            _ => {}
        }
    }
    Ok(run)
}

/// A batch of [`BATCH`] events with ids unique to `prefix`.
fn batch_body(head: &str, template: &str, prefix: &str) -> String {
    let events: Vec<String> = (0..BATCH).map(|k| template.replace("%s", &format!("{prefix}-{k}"))).collect();
    format!("{head}{}]}}", events.join(","))
}

/// `seconds` of requests at [`RATE`] per second on a fixed schedule (open
/// loop): each request is sent when due or, when all connections are busy,
/// as soon as one frees, and its latency is measured from when it was due.
fn open_loop(url: &str, run: &str, seconds: u64) -> anyhow::Result<Run> {
    let head = format!(
        r#"{{"schema_version":2,"install_id":"install-bench-{run}","install_key":"{}","consent":"predictions","consent_text_version":1,"events":["#,
        hark_collector::store::install_key("bench secret")
    );
    let template = event_template();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(PACED_CONNECTIONS).build()?;
        let slots = Arc::new(tokio::sync::Semaphore::new(PACED_CONNECTIONS));
        let total = (RATE * seconds as f64) as usize;
        let start = tokio::time::Instant::now();
        let mut sent = tokio::task::JoinSet::new();
        let mut latencies = Vec::with_capacity(total);
        let mut non_2xx = 0;
        let mut record = |(latency, ok): (Duration, bool)| {
            latencies.push(latency.as_secs_f64() * 1000.0);
            non_2xx += !ok as u64;
        };
        for i in 0..total {
            // Answers are taken as they come, so the generator holds only
            // the requests in flight (a finished task kept until the end
            // would count its memory as the server's).
            while let Some(done) = sent.try_join_next() {
                record(done?);
            }
            let due = start + Duration::from_secs_f64(i as f64 / RATE);
            tokio::time::sleep_until(due).await;
            let slot = slots.clone().acquire_owned().await?;
            let request = client
                .post(format!("{url}/v1/events"))
                .header("content-type", "application/json")
                .body(batch_body(&head, &template, &format!("{run}-{i}")));
            sent.spawn(async move {
                let ok = match request.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                drop(slot);
                (due.elapsed(), ok)
            });
        }
        while let Some(done) = sent.join_next().await {
            record(done?);
        }
        let mut run = Run { requests: total as u64, non_2xx, ..Run::default() };
        run.requests_per_s = total as f64 / start.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1];
        (run.p50_ms, run.p99_ms) = (at(0.50), at(0.99));
        Ok(run)
    })
}

/// This process's peak resident memory, MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next());
    kb.and_then(|k| k.parse::<f64>().ok()).map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One backend's figures.
struct Measured {
    throughput: Run,
    paced: Vec<Run>,
    rss_mb: f64,
    stored: u64,
    answered: u64,
}

/// Serves on a free port with `postgres` (or SQLite in a temporary folder)
/// and runs both loads against it.
fn measure(postgres: Option<&str>, seconds: u64, tag: &str) -> anyhow::Result<Measured> {
    // The peak resident size counts from here (Linux: "5" resets it).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let dir = tempfile::tempdir()?;
    let mut settings = hark_collector::Settings::default();
    settings.limits.per_ip_per_minute = 0;
    settings.limits.per_install_per_minute = 0;
    settings.store.postgres = postgres.map(str::to_owned);
    settings.admin.token = Some(ADMIN.into());
    let config = hark_collector::Config { site: None, models: None, data: dir.path().join("data"), settings };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listener = runtime.block_on(hark_collector::bind("127.0.0.1:0".parse()?))?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(hark_collector::serve_on(config, listener, async {
        let _ = stopped.await;
    }));
    std::thread::sleep(Duration::from_millis(500));

    let throughput_script = dir.path().join("throughput.lua");
    std::fs::write(&throughput_script, lua_script(&format!("{tag}t")))?;
    eprintln!("collector bench ({tag}): throughput, 32 connections, {seconds} s");
    let throughput = wrk(&url, &throughput_script, 32, seconds)?;
    let mut paced = Vec::new();
    for i in 0..PACED_RUNS {
        eprintln!("collector bench ({tag}): {RATE} requests/s on a fixed schedule, {seconds} s, run {}", i + 1);
        let run = open_loop(&url, &format!("{tag}p{i}"), seconds)?;
        eprintln!("  p50 {:.2} ms, p99 {:.2} ms, {:.0} requests/s", run.p50_ms, run.p99_ms, run.requests_per_s);
        paced.push(run);
    }
    let rss_mb = peak_rss_mb();

    let stored = runtime.block_on(stored_events(&url));
    let _ = stop.send(());
    runtime.block_on(server)??;
    let paced_ok: u64 = paced.iter().map(|r| r.requests - r.non_2xx).sum();
    let paced_failed: u64 = paced.iter().map(|r| r.non_2xx).sum();
    let answered = (throughput.requests - throughput.non_2xx + paced_ok) * BATCH as u64;
    anyhow::ensure!(
        throughput.non_2xx == 0 && paced_failed == 0,
        "some batches were refused: {} + {paced_failed}",
        throughput.non_2xx,
    );
    let stored = stored?;
    anyhow::ensure!(stored >= answered, "the store holds {stored} events, wrk saw {answered} accepted");
    Ok(Measured { throughput, paced, rss_mb, stored, answered })
}

/// The operator's token of the bench server.
const ADMIN: &str = "collector-bench-admin-token";

/// The number of events in the store, from `GET /v1/admin/stats`.
async fn stored_events(url: &str) -> anyhow::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "GET /v1/admin/stats HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let stats: serde_json::Value = serde_json::from_str(body)?;
    stats["events"].as_u64().ok_or_else(|| anyhow::anyhow!("no event count in {body}"))
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("HARK_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let sqlite = measure(None, seconds, "s")?;
    // HARK_BENCH_STORES=sqlite measures SQLite alone (when tuning it).
    let postgres = match std::env::var("HARK_BENCH_STORES").as_deref() {
        Ok("sqlite") => None,
        _ => {
            let pg = postgres::Postgres::start().map_err(|e| anyhow::anyhow!(e))?;
            Some(measure(Some(&pg.url), seconds, "g")?)
        }
    };

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let row = |name: &str, bar: &str, f: &dyn Fn(&Measured) -> String| {
        let pg = postgres.as_ref().map_or_else(|| "not run".to_owned(), f);
        format!("| {name} | {bar} | {} | {pg} |\n", f(&sqlite))
    };
    let mut table = format!(
        "Collector on loopback (throughput: wrk -t2; fixed rate: open-loop generator in the bench process), {seconds} s per run, batches of {BATCH} schema-2 events, {cores} cores ({cpu}); \
         SQLite: synchronous=FULL with group commit; PostgreSQL: a local server, synchronous_commit=on, 16 connections.\n\n\
         | measure | bar | SQLite | PostgreSQL |\n|---|---|---|---|\n"
    );
    table += &row("events accepted/s (32 connections)", "≥ 20,000", &|m| {
        format!("{:.0}", m.throughput.requests_per_s * BATCH as f64)
    });
    let each = |m: &Measured, f: &dyn Fn(&Run) -> String| m.paced.iter().map(f).collect::<Vec<_>>().join("; ");
    table += &row(
        &format!(
            "p50 / p99 latency at a fixed {RATE} requests/s (open loop, from the scheduled time), ms, {PACED_RUNS} runs"
        ),
        "p99 ≤ 25",
        &|m| each(m, &|r| format!("{:.2} / {:.2}", r.p50_ms, r.p99_ms)),
    );
    table += &row("requests/s completed in those runs", "2,000", &|m| each(m, &|r| format!("{:.0}", r.requests_per_s)));
    table += &row("peak resident memory of hark, MB", "≤ 100", &|m| format!("{:.1}", m.rss_mb));
    table += &row("events stored / answered 2xx (wrk)", "≥", &|m| format!("{} / {}", m.stored, m.answered));
    println!("{table}");
    let out = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| "target".into());
    std::fs::create_dir_all(out.join("bench"))?;
    std::fs::write(out.join("bench/collector.md"), &table)?;
    Ok(())
}
