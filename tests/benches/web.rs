//! The browser benchmark: prints a table, asserts nothing.
//!
//! * cold load: a fresh Chromium profile (empty caches) opens the served
//!   app on localhost; time from navigation start to "model ready", read
//!   from the page (`#model-status[data-ready-ms]`, `performance.now()`);
//!   without a WebGPU adapter (CPU worker) and with one (the WebGPU worker);
//! * warm load: the same with the service worker and Cache Storage filled;
//! * end of speech → final transcript, for a 3 s utterance (a flite test
//!   voice) through the fake microphone, on each worker and backend, with
//!   the worker's own split (features / model / beam search);
//! * wasm size, raw and gzip, of each program, and what a browser downloads
//!   on each path (the page and one worker).
//!
//! Run by `cargo xtask bench` after the release build (`HARK_DIST`).
//! `HARK_BENCH_MODELS=DIR` serves another models folder than `web/models/`
//! (a candidate model published there with `hark publish --models DIR`).

use std::io::Write;
use std::time::Duration;

use hark_e2e::{AppServer, Chromium, ENGINE_ON_WEBGPU, LaunchOptions, dist_dir, microphone_wav};

const RUNS: usize = 5;
const UTTERANCES: u32 = 6;
const LOAD: Duration = Duration::from_secs(120);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.0}–{hi:.0}")
}

async fn ready_ms(app: &hark_e2e::AppPage) -> anyhow::Result<f64> {
    app.model_ready(LOAD).await?;
    let ms: String = app.wait("document.querySelector('#model-status').dataset.readyMs || null", LOAD).await?;
    Ok(ms.parse()?)
}

/// Cold and warm load times over `RUNS` fresh profiles.
async fn loads(server: &AppServer, webgpu: bool) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let chromium = Chromium::launch(LaunchOptions { webgpu, ..Default::default() }).await?;
        let app = chromium.open(&server.base_url).await?;
        cold.push(ready_ms(&app).await?);
        // Second visit in the same profile: shell and model come from the caches.
        let _: bool = app
            .wait("navigator.serviceWorker.controller ? caches.keys().then((k) => k.length >= 2 || null) : null", LOAD)
            .await?;
        let again = chromium.open(&server.base_url).await?;
        warm.push(ready_ms(&again).await?);
        chromium.close().await;
    }
    Ok((cold, warm))
}

/// End-of-speech → transcript times (the first utterance, which also warms
/// up, left out), the worker's split of each, and the engine line.
struct Latency {
    ms: Vec<f64>,
    split: Vec<Vec<f64>>,
    engine: String,
    backend: String,
}

async fn latency(
    server: &AppServer,
    wav: &std::path::Path,
    webgpu: bool,
    path: &str,
    utterances: u32,
) -> anyhow::Result<Latency> {
    let options = LaunchOptions { webgpu, fake_microphone: Some(wav.to_owned()), ..Default::default() };
    let chromium = Chromium::launch(options).await?;
    let app = chromium.open(&server.url(path)).await?;
    ready_ms(&app).await?;
    // With WebGPU, wait for both benchmarks: the engine is chosen then.
    if webgpu && !path.contains("backend=") {
        let _: String = app
            .wait("(() => { const t = document.querySelector('#engine')?.textContent || ''; return t.includes('WebGPU ') && t.includes('CPU ') ? t : null; })()", LOAD)
            .await?;
    }
    if path.contains("backend=webgpu") {
        let _: String = app.wait(ENGINE_ON_WEBGPU, LOAD).await?;
    }
    let mut out = Latency { ms: Vec::new(), split: Vec::new(), engine: String::new(), backend: String::new() };
    for id in 1..=utterances {
        let (_, ms) = app.speak(id, LOAD).await?;
        let timings: String = app.eval("document.querySelector('#transcript').dataset.timings").await?;
        out.backend = app.eval("document.querySelector('#transcript').dataset.backend").await?;
        out.engine = app.eval("document.querySelector('#engine').textContent").await?;
        if id > 1 {
            out.ms.push(ms);
            out.split.push(timings.split(' ').map(|t| t.parse::<f64>().unwrap_or(f64::NAN)).collect());
        }
    }
    chromium.close().await;
    Ok(out)
}

fn latency_rows(out: &mut impl Write, what: &str, l: &Latency, target: &str) -> std::io::Result<()> {
    let stage = |i: usize| median(l.split.iter().map(|s| s[i]).collect());
    writeln!(
        out,
        "| end of speech → transcript, 3 s utterance, {what}: ran on {} ({} utterances) | {:.0} ms | {} ms | {target} |",
        l.backend,
        l.ms.len(),
        median(l.ms.clone()),
        range(&l.ms)
    )?;
    writeln!(
        out,
        "| … of which in the worker: features / model / beam search | {:.1} / {:.1} / {:.1} ms | | |",
        stage(0),
        stage(1),
        stage(2)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dist = dist_dir()?;
    let dir = tempfile::tempdir()?;
    let wav = microphone_wav(dir.path())?;
    let server = match std::env::var_os("HARK_BENCH_MODELS") {
        Some(models) => AppServer::start_with_models(models.into()).await?,
        None => AppServer::start().await?,
    };

    let (cold, warm) = loads(&server, false).await?;
    // `HARK_BENCH_ONLY=cpu-load`: just the CPU path's load times (quick A/B
    // comparisons of builds on a noisy machine).
    if std::env::var("HARK_BENCH_ONLY").is_ok_and(|v| v == "cpu-load") {
        println!(
            "cold {:.0} ms ({}), warm {:.0} ms ({})",
            median(cold.clone()),
            range(&cold),
            median(warm.clone()),
            range(&warm)
        );
        return Ok(());
    }
    let (gpu_cold, gpu_warm) = loads(&server, true).await?;
    let cpu = latency(&server, &wav, false, "/", UTTERANCES).await?;
    // SwiftShader here (headless Chromium has no GPU): the benchmark picks
    // the CPU inside the WebGPU worker, which is built for size.
    let gpu_worker_cpu = latency(&server, &wav, true, "/", UTTERANCES).await?;
    let gpu = latency(&server, &wav, true, "/?backend=webgpu", 3).await;

    let mut out = std::io::stdout().lock();
    writeln!(out, "\nhark in headless Chromium (localhost, this machine)\n")?;
    writeln!(out, "| measure | median | range | target |")?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(
        out,
        "| cold load → model ready, no WebGPU: CPU worker ({RUNS} fresh profiles) | {:.0} ms | {} ms | ≤ 1500 ms |",
        median(cold.clone()),
        range(&cold)
    )?;
    writeln!(
        out,
        "| warm load → model ready (service worker + Cache Storage) | {:.0} ms | {} ms | |",
        median(warm.clone()),
        range(&warm)
    )?;
    writeln!(
        out,
        "| cold load → model ready, WebGPU adapter: WebGPU worker ({RUNS} fresh profiles) | {:.0} ms | {} ms | ≤ 1500 ms |",
        median(gpu_cold.clone()),
        range(&gpu_cold)
    )?;
    writeln!(
        out,
        "| warm load → model ready, WebGPU worker | {:.0} ms | {} ms | |",
        median(gpu_warm.clone()),
        range(&gpu_warm)
    )?;
    latency_rows(&mut out, "CPU worker", &cpu, "≤ 150 ms")?;
    latency_rows(
        &mut out,
        &format!("WebGPU worker, engine chosen by benchmark ({})", gpu_worker_cpu.engine),
        &gpu_worker_cpu,
        "≤ 150 ms on the CPU",
    )?;
    match &gpu {
        Ok(l) => latency_rows(&mut out, "WebGPU worker, WebGPU forced", l, "")?,
        Err(e) => writeln!(out, "| end of speech → transcript, WebGPU | not measured: {e} | | |")?,
    }
    let mut gzip_of = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&dist)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let bytes = std::fs::read(&path)?;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&bytes)?;
            let gzip = gz.finish()?.len();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            writeln!(
                out,
                "| wasm {name} | {:.2} MB raw, {:.2} MB gzip | | |",
                bytes.len() as f64 / 1e6,
                gzip as f64 / 1e6
            )?;
            gzip_of.insert(name, gzip);
        }
    }
    // Trunk hashes the page's file name; the workers keep theirs.
    let page: usize = gzip_of.iter().filter(|(n, _)| n.starts_with("hark-web")).map(|(_, g)| *g).sum();
    for (path, worker) in [("no WebGPU", "hark-worker_bg.wasm"), ("WebGPU adapter", "hark-worker-gpu_bg.wasm")] {
        let total = page + gzip_of.get(worker).copied().unwrap_or(0);
        writeln!(out, "| wasm downloaded, {path} (page + {worker}), gzip | {:.2} MB | | ≤ 3 MB |", total as f64 / 1e6)?;
    }
    Ok(())
}
