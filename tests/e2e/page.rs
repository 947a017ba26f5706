//! The served page in real headless Chromium: it loads cleanly and reports
//! which recognition backend the browser can offer.

use std::time::Duration;

use hark_e2e::{AppServer, Chromium, LaunchOptions};

const WAIT: Duration = Duration::from_secs(30);

/// The WebGPU probe's `data-state` once it settled (not "checking").
const GPU_STATE: &str = r#"(() => {
    const el = document.querySelector('#webgpu-status');
    return el && el.dataset.state !== 'checking' ? el.dataset.state : null;
})()"#;

const MODEL_STATE: &str = r#"(() => {
    const el = document.querySelector('#model-status');
    return el && el.dataset.state !== 'loading' ? el.dataset.state : null;
})()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_loads_without_console_errors() -> anyhow::Result<()> {
    let server = AppServer::start().await?;
    let chromium = Chromium::launch(LaunchOptions { webgpu: true, ..Default::default() }).await?;
    let app = chromium.open(&server.base_url).await?;

    let _: String = app.wait(GPU_STATE, WAIT).await?;
    let model: String = app.wait(MODEL_STATE, WAIT).await?;
    assert_ne!(model, "failed", "the app could not read models/manifest.json");
    let title: String = app.wait("document.querySelector('h1')?.textContent", WAIT).await?;
    assert_eq!(title, "hark");
    // Let late async work (fetches, workers) report before judging.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let errors = app.console.errors();
    chromium.close().await;
    assert!(errors.is_empty(), "the page reported errors:\n{}", errors.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_a_webgpu_adapter_when_the_browser_offers_one() -> anyhow::Result<()> {
    let server = AppServer::start().await?;
    let chromium = Chromium::launch(LaunchOptions { webgpu: true, ..Default::default() }).await?;
    let app = chromium.open(&server.base_url).await?;
    let state: String = app.wait(GPU_STATE, WAIT).await?;
    let text: String = app.wait("document.querySelector('#webgpu-status').textContent", WAIT).await?;
    chromium.close().await;
    assert_eq!(state, "found", "expected a WebGPU adapter with --enable-unsafe-webgpu; page says: {text}");
    assert!(text.starts_with("WebGPU adapter found"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_the_cpu_fallback_without_webgpu() -> anyhow::Result<()> {
    let server = AppServer::start().await?;
    let chromium = Chromium::launch(LaunchOptions::default()).await?;
    let app = chromium.open(&server.base_url).await?;
    let state: String = app.wait(GPU_STATE, WAIT).await?;
    let text: String = app.wait("document.querySelector('#webgpu-status').textContent", WAIT).await?;
    chromium.close().await;
    assert_eq!(state, "absent", "page says: {text}");
    assert!(text.contains("CPU"), "{text}");
    Ok(())
}

/// Guards the guard: the no-console-errors test means something only if the
/// harness really sees console errors and uncaught exceptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_catches_console_errors_and_exceptions() -> anyhow::Result<()> {
    let chromium = Chromium::launch(LaunchOptions::default()).await?;
    let app = chromium
        .open("data:text/html,<script>console.error('boom'); setTimeout(() => { throw new Error('bang') }, 0)</script>")
        .await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut errors = app.console.errors();
    while errors.len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        errors = app.console.errors();
    }
    chromium.close().await;
    assert!(errors.iter().any(|e| e.contains("boom")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("bang")), "{errors:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_reports_no_installability_errors() -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::page::GetInstallabilityErrorsParams;
    let server = AppServer::start().await?;
    let chromium = Chromium::launch(LaunchOptions::default()).await?;
    let app = chromium.open(&server.base_url).await?;
    let _: String = app.wait(MODEL_STATE, WAIT).await?;
    let result = app.page.execute(GetInstallabilityErrorsParams::default()).await?;
    let errors: Vec<String> = result
        .result
        .installability_errors
        .iter()
        .map(|e| {
            format!("{} {:?}", e.error_id, e.error_arguments.iter().map(|a| (&a.name, &a.value)).collect::<Vec<_>>())
        })
        .collect();
    chromium.close().await;
    assert!(errors.is_empty(), "Chromium says the app is not installable: {errors:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_shows_catalogue_results_and_a_web_link_from_the_template() -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::network::{EnableParams, OverrideNetworkStateParams};
    let server = AppServer::start().await?;
    let chromium = Chromium::launch(LaunchOptions::default()).await?;
    let app = chromium.open(&server.base_url).await?;
    let _: String = app.wait(MODEL_STATE, WAIT).await?;

    app.type_into("#query", "weather in Lisbon").await?;
    app.page.evaluate("document.querySelector('#search').click()").await?;
    let hits: Vec<String> =
        app.wait("(() => { const l = document.querySelectorAll('#local-results li'); return l.length ? [...l].map((e) => e.textContent) : null; })()", WAIT).await?;
    assert!(hits[0].contains("lisbon") && hits[0].contains("place"), "{hits:?}");
    let link: String = app.eval("document.querySelector('#web-search').href").await?;
    assert_eq!(link, "https://duckduckgo.com/?q=weather%20in%20Lisbon");
    let history: String = app.eval("document.querySelector('#history').textContent").await?;
    assert!(history.contains("weather in Lisbon"), "{history}");

    // The template is the person's to choose, and a bad one is refused.
    app.type_into("#search-url", "example.org").await?;
    let error: String = app.wait("document.querySelector('#settings .error')?.textContent", WAIT).await?;
    assert!(error.contains("{query}"), "{error}");
    app.type_into("#search-url", "https://search.example/find?q={query}&lang=en").await?;
    app.page.evaluate("document.querySelector('#search').click()").await?;
    let link: String = app
        .wait("(() => { const a = document.querySelector('#web-search'); return a && a.href.startsWith('https://search.example') ? a.href : null; })()", WAIT)
        .await?;
    assert_eq!(link, "https://search.example/find?q=weather%20in%20Lisbon&lang=en");

    // Offline: catalogue results still come, the web link does not.
    app.page.execute(EnableParams::default()).await?;
    app.page.execute(OverrideNetworkStateParams::new(true, 0.0, -1.0, -1.0)).await?;
    let _: bool = app.wait("navigator.onLine === false ? true : null", WAIT).await?;
    app.type_into("#query", "directions to the eiffel tower").await?;
    app.page.evaluate("document.querySelector('#search').click()").await?;
    let note: String = app.wait("document.querySelector('#offline-note')?.textContent", WAIT).await?;
    let web_link: bool = app.eval("!!document.querySelector('#web-search')").await?;
    let errors = app.console.errors();
    chromium.close().await;
    assert!(note.contains("offline"), "{note}");
    assert!(!web_link, "no web link while offline");
    assert!(errors.is_empty(), "the page reported errors:\n{}", errors.join("\n"));
    Ok(())
}

/// URLs in this build's shell cache, once the service worker finished installing.
const SHELL_URLS: &str = r#"navigator.serviceWorker.ready.then(async () => {
    const shell = (await caches.keys()).find((k) => k.startsWith('hark-shell-'));
    if (!shell) return null;
    return (await (await caches.open(shell)).keys()).map((r) => new URL(r.url).pathname);
})"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_downloads_only_the_recognition_worker_it_runs() -> anyhow::Result<()> {
    let server = AppServer::start().await?;
    for (webgpu, runs, other) in [(true, "hark-worker-gpu", "hark-worker"), (false, "hark-worker", "hark-worker-gpu")] {
        let chromium = Chromium::launch(LaunchOptions { webgpu, ..Default::default() }).await?;
        let app = chromium.open(&server.base_url).await?;
        app.model_ready(WAIT).await?;
        let cached: Vec<String> = app.wait(SHELL_URLS, WAIT).await?;
        chromium.close().await;
        let has = |name: &str| cached.iter().any(|p| p.ends_with(&format!("/{name}_bg.wasm")));
        assert!(has(runs), "webgpu {webgpu}: {runs} not kept for offline use: {cached:?}");
        assert!(!has(other), "webgpu {webgpu}: {other} was downloaded too: {cached:?}");
    }
    Ok(())
}
