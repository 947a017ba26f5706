//! The browser benchmark: prints a table, asserts nothing.
//!
//! * cold load: a fresh Chromium profile (empty caches) opens the served
//!   app on localhost; time from navigation start to "model ready", read
//!   from the page (`#model-status[data-ready-ms]`, `performance.now()`);
//! * warm load: the same with the service worker and Cache Storage filled;
//! * end of speech → final transcript, for a 3 s utterance (a flite test
//!   voice) through the fake microphone, on each backend the app offers,
//!   with the worker's own split (features / model / beam search);
//! * wasm size, raw and gzip, of both programs.
//!
//! Run by `cargo xtask bench` after the release build (`HARK_DIST`).

use std::io::Write;
use std::time::Duration;

use hark_e2e::{AppServer, Chromium, LaunchOptions, MODEL_READY, dist_dir, microphone_wav};

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
    let state: String = app.wait(MODEL_READY, LOAD).await?;
    anyhow::ensure!(state == "ready", "the model did not load: {state}");
    let ms: String = app.wait("document.querySelector('#model-status').dataset.readyMs || null", LOAD).await?;
    Ok(ms.parse()?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dist = dist_dir()?;
    let dir = tempfile::tempdir()?;
    let wav = microphone_wav(dir.path())?;
    let server = AppServer::start().await?;

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..RUNS {
        let chromium = Chromium::launch(LaunchOptions::default()).await?;
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

    let mut latency = Vec::new();
    let mut split = Vec::new();
    let chromium = Chromium::launch(LaunchOptions { webgpu: false, fake_microphone: Some(wav), ..Default::default() }).await?;
    let app = chromium.open(&server.base_url).await?;
    ready_ms(&app).await?;
    let mut backend = String::new();
    for id in 1..=UTTERANCES {
        let (_, ms) = app.speak(id, LOAD).await?;
        let timings: String = app.eval("document.querySelector('#transcript').dataset.timings").await?;
        backend = app.eval("document.querySelector('#engine').textContent").await?;
        // The first utterance also warms the model up; leave it out.
        if id > 1 {
            latency.push(ms);
            split.push(timings.split(' ').map(|t| t.parse::<f64>().unwrap_or(f64::NAN)).collect::<Vec<_>>());
        }
    }
    chromium.close().await;
    let stage = |i: usize| median(split.iter().map(|s| s[i]).collect());

    // The WebGPU engine (SwiftShader here: headless Chromium has no GPU).
    let mut gpu_latency = Vec::new();
    let chromium = Chromium::launch(LaunchOptions { webgpu: true, fake_microphone: Some(microphone_wav(dir.path())?), ..Default::default() }).await?;
    let app = chromium.open(&server.url("/?backend=webgpu")).await?;
    let gpu_engine: Result<String, _> = app
        .wait("(() => { const e = document.querySelector('#engine'); return e && e.dataset.backend === 'webgpu' ? e.textContent : null; })()", LOAD)
        .await;
    if gpu_engine.is_ok() {
        for id in 1..=3 {
            let (_, ms) = app.speak(id, LOAD).await?;
            if id > 1 {
                gpu_latency.push(ms);
            }
        }
    }
    chromium.close().await;

    let mut out = std::io::stdout().lock();
    writeln!(out, "\nhark in headless Chromium (localhost, this machine)\n")?;
    writeln!(out, "| measure | median | range | target |")?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(out, "| cold load → model ready ({RUNS} fresh profiles) | {:.0} ms | {} ms | ≤ 1500 ms |", median(cold.clone()), range(&cold))?;
    writeln!(out, "| warm load → model ready (service worker + Cache Storage) | {:.0} ms | {} ms | |", median(warm.clone()), range(&warm))?;
    writeln!(
        out,
        "| end of speech → transcript, 3 s utterance, {backend} ({} utterances) | {:.0} ms | {} ms | ≤ 150 ms |",
        latency.len(),
        median(latency.clone()),
        range(&latency)
    )?;
    writeln!(
        out,
        "| … of which in the worker: features / model / beam search | {:.1} / {:.1} / {:.1} ms | | |",
        stage(0),
        stage(1),
        stage(2)
    )?;
    match &gpu_engine {
        Ok(engine) => writeln!(
            out,
            "| end of speech → transcript, 3 s utterance, WebGPU forced ({} utterances; {engine}) | {:.0} ms | {} ms | |",
            gpu_latency.len(),
            median(gpu_latency.clone()),
            range(&gpu_latency)
        )?,
        Err(e) => writeln!(out, "| end of speech → transcript, WebGPU | not measured: {e} | | |")?,
    }
    let mut total_gzip = 0;
    for entry in std::fs::read_dir(&dist)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let bytes = std::fs::read(&path)?;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&bytes)?;
            let gzip = gz.finish()?.len();
            total_gzip += gzip;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            writeln!(out, "| wasm {name} | {:.2} MB raw, {:.2} MB gzip | | |", bytes.len() as f64 / 1e6, gzip as f64 / 1e6)?;
        }
    }
    writeln!(out, "| wasm total, gzip | {:.2} MB | | ≤ 3 MB |", total_gzip as f64 / 1e6)?;
    Ok(())
}
