//! The collector under load, measured with `wrk` (Debian's) on loopback:
//! the server runs in this process (so its peak resident memory is this
//! process's), wrk in another. Two runs, each bounded in time:
//!
//! 1. **throughput** — as many batches of 20 schema-2 events as 32
//!    connections can send: events accepted per second;
//! 2. **fixed rate** — about 2,000 requests/s (28 connections, each pausing
//!    10 ms between requests): the latency percentiles at that load.
//!
//! Both for SQLite and for PostgreSQL (a throwaway local server, as in the
//! tests). Then it checks that the server accepted at least every event wrk
//! saw answered, and prints a Markdown table (also written to
//! `target/bench/collector.md`). `cargo xtask bench` runs it; alone:
//! `cargo bench -p hark-collector --bench load`. HARK_BENCH_SECONDS sets
//! each run's length (default 10).
//!
//! wrk's latencies are per request as sent; at a fixed rate it does not
//! correct for coordinated omission (wrk2 would), so a stall shows up as a
//! lower achieved rate, which the table reports beside the latencies.

#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BATCH: usize = 20;

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

fn lua_script(run: &str, pause_ms: Option<u32>) -> String {
    let head = format!(
        r#"{{"schema_version":2,"install_id":"install-bench-{run}","install_key":"{}","consent":"predictions","consent_text_version":1,"events":["#,
        hark_collector::store::install_key("bench secret")
    );
    let delay = pause_ms.map(|ms| format!("function delay() return {ms} end\n")).unwrap_or_default();
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
{delay}request = function()
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

/// This process's peak resident memory, MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next());
    kb.and_then(|k| k.parse::<f64>().ok()).map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One backend's figures.
struct Measured {
    throughput: Run,
    paced: Run,
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
    std::fs::write(&throughput_script, lua_script(&format!("{tag}t"), None))?;
    eprintln!("collector bench ({tag}): throughput, 32 connections, {seconds} s");
    let throughput = wrk(&url, &throughput_script, 32, seconds)?;
    let paced_script = dir.path().join("paced.lua");
    std::fs::write(&paced_script, lua_script(&format!("{tag}p"), Some(10)))?;
    eprintln!("collector bench ({tag}): ~2,000 requests/s (28 connections, 10 ms apart), {seconds} s");
    let paced = wrk(&url, &paced_script, 28, seconds)?;
    let rss_mb = peak_rss_mb();

    let stored = runtime.block_on(stored_events(&url));
    let _ = stop.send(());
    runtime.block_on(server)??;
    let answered = (throughput.requests - throughput.non_2xx + paced.requests - paced.non_2xx) * BATCH as u64;
    anyhow::ensure!(
        throughput.non_2xx == 0 && paced.non_2xx == 0,
        "some batches were refused: {} + {}",
        throughput.non_2xx,
        paced.non_2xx
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
    let pg = postgres::Postgres::start().map_err(|e| anyhow::anyhow!(e))?;
    let postgres = measure(Some(&pg.url), seconds, "g")?;
    drop(pg);

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
        format!("| {name} | {bar} | {} | {} |\n", f(&sqlite), f(&postgres))
    };
    let mut table = format!(
        "Collector under wrk (-t2, loopback, {seconds} s per run), batches of {BATCH} schema-2 events, {cores} cores ({cpu}); \
         SQLite: synchronous=FULL with group commit; PostgreSQL: a local server, synchronous_commit=on, 16 connections.\n\n\
         | measure | bar | SQLite | PostgreSQL |\n|---|---|---|---|\n"
    );
    table += &row("events accepted/s (32 connections)", "≥ 20,000", &|m| {
        format!("{:.0}", m.throughput.requests_per_s * BATCH as f64)
    });
    table += &row("p50 / p99 latency at a fixed rate, ms", "p99 ≤ 25", &|m| {
        format!("{:.2} / {:.2}", m.paced.p50_ms, m.paced.p99_ms)
    });
    table += &row("rate achieved in that run, requests/s", "2,000", &|m| format!("{:.0}", m.paced.requests_per_s));
    table += &row("peak resident memory of hark, MB", "≤ 100", &|m| format!("{:.1}", m.rss_mb));
    table += &row("events stored / answered 2xx (wrk)", "≥", &|m| format!("{} / {}", m.stored, m.answered));
    println!("{table}");
    let out = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| "target".into());
    std::fs::create_dir_all(out.join("bench"))?;
    std::fs::write(out.join("bench/collector.md"), &table)?;
    Ok(())
}
