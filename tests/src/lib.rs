//! The real-browser harness for hark's end-to-end tests.
//!
//! [`AppServer`] serves the built app (`dist/`), `web/models/` and the
//! collector API from one in-process `hark-collector` on a loopback port;
//! [`Chromium`] launches Debian's headless `chromium` with a fresh profile and
//! the flags this machine needs (WebGPU through SwiftShader, a WAV file as the
//! microphone) and drives it over the DevTools protocol (`chromiumoxide`).
//! [`ConsoleLog`] collects every console error, uncaught exception and
//! browser log error of a page, so tests can assert there were none.
//!
//! The app must have been built first: `cargo xtask test` does that and points
//! `HARK_DIST` at the result.

pub mod demo;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use chromiumoxide::cdp::browser_protocol::log::{self, EventEntryAdded, LogEntryLevel};
use chromiumoxide::cdp::browser_protocol::target::SetAutoAttachParams;
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::cdp::js_protocol::runtime::{ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown};
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use tokio::task::JoinHandle;

/// Repository root (the workspace that holds this crate).
///
/// Read at run time (`cargo test` sets `CARGO_MANIFEST_DIR` for the test
/// process): with one target directory shared by several clones, this
/// library may have been compiled in another clone, whose compile-time path
/// would point there.
pub fn repo_root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let dir = dir.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().map(Path::to_path_buf).expect("tests/ lives in the repository root")
}

/// The built web app: `$HARK_DIST`, else `dist/` in the repository root.
pub fn dist_dir() -> anyhow::Result<PathBuf> {
    let dist = std::env::var_os("HARK_DIST").map(PathBuf::from).unwrap_or_else(|| repo_root().join("dist"));
    if !dist.join("index.html").is_file() {
        bail!(
            "no built web app at {}: run the end-to-end tests through `cargo xtask test`, \
             or build the app first with `cargo xtask build`",
            dist.display()
        );
    }
    Ok(dist)
}

/// The model manager's `data-state` once settled: `ready`, `failed` or `none`.
pub const MODEL_READY: &str = r#"(() => {
    const el = document.querySelector('#model-status');
    return el && ['ready', 'failed', 'none'].includes(el.dataset.state) ? el.dataset.state : null;
})()"#;

/// `#engine`'s text once recognition runs on WebGPU, else `null`.
/// The service worker controls the page and has stored the shell and a model.
pub const OFFLINE_READY: &str = r#"(async () => {
    if (!navigator.serviceWorker.controller) return null;
    const keys = await caches.keys();
    if (!keys.some((k) => k.startsWith('hark-shell-'))) return null;
    const models = await (await caches.open('hark-models-v1')).keys();
    return models.some((r) => r.url.endsWith('.bpk')) ? true : null;
})()"#;

pub const ENGINE_ON_WEBGPU: &str = "(() => { const e = document.querySelector('#engine'); \
    return e && e.dataset.backend === 'webgpu' ? e.textContent : null; })()";

/// The utterance with a second of silence before it (the endpointer learns
/// the noise floor) and three after (it hears the end).
pub fn microphone_wav(dir: &Path) -> anyhow::Result<PathBuf> {
    let source = repo_root().join("crates/hark-recognizer/testdata/bangalore.wav");
    as_microphone(&source, &dir.join("mic.wav"))
}

/// `source` (16-bit PCM WAV) written to `out` as a fake microphone plays
/// it: a second of silence before it and three after.
pub fn as_microphone(source: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let mut reader = hound::WavReader::open(source).with_context(|| format!("reading {}", source.display()))?;
    let spec = reader.spec();
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let mut w = hound::WavWriter::create(out, spec)?;
    let pad = |s: u32| std::iter::repeat_n(0i16, (s * spec.sample_rate) as usize);
    for s in pad(1).chain(samples).chain(pad(3)) {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(out.to_owned())
}

/// What [`microphone_wav`]'s utterance says.
pub const MICROPHONE_TEXT: &str = "temperature in bangalore at three twenty p m";

/// The word error rate of `heard` against [`MICROPHONE_TEXT`], and the bar
/// a transcript must be within: the published model's test WER + 10 points.
pub fn heard_wer(heard: &str) -> anyhow::Result<(f64, f64)> {
    Ok((hark_eval::ErrorCounts::words(MICROPHONE_TEXT, heard).rate(), published_test_wer()? + 0.10))
}

/// The newest published model's test-split WER (`web/models/manifest.json`).
pub fn published_test_wer() -> anyhow::Result<f64> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("web/models/manifest.json"))?)?;
    let models = manifest["models"].as_array().cloned().unwrap_or_default();
    let newest = models.last().ok_or_else(|| anyhow::anyhow!("web/models/manifest.json lists no model"))?;
    newest["metrics"]["test_wer"].as_f64().ok_or_else(|| anyhow::anyhow!("the published model has no test_wer"))
}

/// hark's server (app + models + collector API) on a free loopback port,
/// keeping its data (SQLite store, recordings, access log) in a temporary
/// folder that outlives a [`AppServer::stop`] and [`AppServer::resume`].
pub struct AppServer {
    pub base_url: String,
    data: tempfile::TempDir,
    dist: PathBuf,
    models: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), hark_collector::ServeError>>>,
}

impl AppServer {
    /// Serves the built app and the repository's `web/models/`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_models(repo_root().join("web/models")).await
    }

    /// Serves the built app with another models folder (tests that publish).
    pub async fn start_with_models(models: PathBuf) -> anyhow::Result<Self> {
        Self::start_with(dist_dir()?, models).await
    }

    /// Serves `dist` and `models`.
    pub async fn start_with(dist: PathBuf, models: PathBuf) -> anyhow::Result<Self> {
        let mut server =
            Self { base_url: String::new(), data: tempfile::tempdir()?, dist, models, stop: None, task: None };
        server.listen(None).await?;
        Ok(server)
    }

    async fn listen(&mut self, port: Option<u16>) -> anyhow::Result<()> {
        let mut settings = hark_collector::Settings::default();
        settings.log.access = Some(self.access_log());
        let config = hark_collector::Config {
            site: Some(self.dist.clone()),
            models: Some(self.models.clone()),
            data: self.data.path().to_owned(),
            settings,
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", port.unwrap_or(0)))?;
        self.base_url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(hark_collector::serve_on(config, listener, async {
            let _ = stopped.await;
        })));
        Ok(())
    }

    /// Takes the server down (a graceful shutdown: in-flight requests
    /// finish, the store is flushed); its data stays for [`Self::resume`].
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(20), &mut task).await {
                Ok(served) => served?.context("hark serve failed")?,
                Err(_) => {
                    task.abort();
                    bail!("hark serve did not stop within 20 s of being asked");
                }
            }
        }
        Ok(())
    }

    /// Brings a stopped server back on the same port (the same origin for
    /// the page and its service worker) and the same data.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let port = self.port();
        self.listen(Some(port)).await
    }

    /// The collector's data folder.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The collector's SQLite event store.
    pub fn events_db(&self) -> PathBuf {
        self.data.path().join(hark_collector::store::DB_FILE)
    }

    /// Where the server logs each request (one JSON line: method, path,
    /// status, duration).
    pub fn access_log(&self) -> PathBuf {
        self.data.path().join("access.jsonl")
    }

    /// The requests the server has answered so far: `(method, path, status)`.
    pub fn requests(&self) -> anyhow::Result<Vec<(String, String, u16)>> {
        let text = match std::fs::read_to_string(self.access_log()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).context("reading the access log"),
        };
        text.lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).context("an access log line")?;
                Ok((
                    v["method"].as_str().unwrap_or_default().to_owned(),
                    v["path"].as_str().unwrap_or_default().to_owned(),
                    v["status"].as_u64().unwrap_or_default() as u16,
                ))
            })
            .collect()
    }

    pub fn port(&self) -> u16 {
        self.base_url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }
}

impl Drop for AppServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Copies the files of `from` (one level, as `dist/` and `web/models/` are
/// laid out) into a new temporary folder a test may change.
pub fn copy_folder(from: &Path) -> anyhow::Result<tempfile::TempDir> {
    let to = tempfile::tempdir()?;
    copy_tree(from, to.path())?;
    Ok(to)
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// How to launch Chromium.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// Pass `--enable-unsafe-webgpu`: headless Chromium then offers a WebGPU
    /// adapter (SwiftShader). Without it the app must take the CPU path.
    pub webgpu: bool,
    /// Feed this WAV file as the microphone (and auto-accept the prompt).
    pub fake_microphone: Option<PathBuf>,
    /// With `fake_microphone`: do not auto-accept the permission prompt
    /// (a test then denies it over CDP).
    pub no_auto_accept: bool,
}

/// A headless Chromium with its own throwaway profile.
pub struct Chromium {
    pub browser: Browser,
    handler: JoinHandle<()>,
    _profile: tempfile::TempDir,
}

/// Debian's Chromium, or `$CHROMIUM`.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

impl Chromium {
    pub async fn launch(options: LaunchOptions) -> anyhow::Result<Self> {
        let exe = chromium_path();
        if !exe.is_file() {
            bail!("{} not found: install Debian's `chromium` package (cargo xtask test does)", exe.display());
        }
        let profile = tempfile::tempdir()?;
        // Flag names without the leading "--": chromiumoxide adds it.
        let mut flags = vec![
            "disable-background-networking",
            "disable-component-update",
            "disable-sync",
            "disable-quic",
            "no-first-run",
            "no-default-browser-check",
            "disable-dev-shm-usage",
            "mute-audio",
        ];
        if options.webgpu {
            flags.push("enable-unsafe-webgpu");
        }
        let wav = options.fake_microphone.as_ref().map(|p| p.display().to_string());
        if wav.is_some() {
            flags.push("use-fake-device-for-media-stream");
            if !options.no_auto_accept {
                flags.push("use-fake-ui-for-media-stream");
            }
        }
        let config = BrowserConfig::builder()
            .chrome_executable(exe)
            .disable_default_args()
            .no_sandbox()
            .user_data_dir(profile.path())
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            .args(flags)
            .args(wav.as_deref().map(|wav| ("use-file-for-fake-audio-capture", wav)))
            .build()
            .map_err(anyhow::Error::msg)?;
        let (browser, mut events) = Browser::launch(config).await.context("launching headless chromium")?;
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Ok(Self { browser, handler, _profile: profile })
    }

    /// Opens `url` in a new tab with a [`ConsoleLog`] attached before the
    /// page starts loading, so nothing it prints is missed.
    pub async fn open(&self, url: &str) -> anyhow::Result<AppPage> {
        let page = self.browser.new_page("about:blank").await?;
        // chromiumoxide auto-attaches to new targets with "wait for debugger
        // on start" and then detaches from service workers, which left them
        // paused for good: registration never finished. Attach without
        // pausing instead.
        page.execute(
            SetAutoAttachParams::builder()
                .auto_attach(true)
                .wait_for_debugger_on_start(false)
                .flatten(true)
                .build()
                .map_err(anyhow::Error::msg)?,
        )
        .await?;
        let console = ConsoleLog::attach(&page).await?;
        page.goto(url).await.with_context(|| format!("navigating to {url}"))?;
        Ok(AppPage { page, console })
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// A tab showing the app, with everything it reported.
pub struct AppPage {
    pub page: Page,
    pub console: ConsoleLog,
}

impl AppPage {
    /// [`wait_for_value`], adding the page's errors to a timeout: a page that
    /// crashed should say why, not just that it never got ready.
    pub async fn wait<T: serde::de::DeserializeOwned>(&self, expression: &str, timeout: Duration) -> anyhow::Result<T> {
        wait_for_value(&self.page, expression, timeout).await.map_err(|e| {
            let errors = self.console.errors();
            if errors.is_empty() { e } else { e.context(format!("the page reported:\n{}", errors.join("\n"))) }
        })
    }

    /// Waits until a model is ready; a model that failed to load (or none
    /// published) fails, with what the page says about it.
    pub async fn model_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let state: String = self.wait(MODEL_READY, timeout).await?;
        if state != "ready" {
            let text: String =
                self.eval("document.querySelector('#model-status').textContent").await.unwrap_or_default();
            bail!("the model did not load ({state}): {text}");
        }
        Ok(())
    }

    /// Evaluates `expression` once (awaiting a promise) and returns its value.
    pub async fn eval<T: serde::de::DeserializeOwned>(&self, expression: &str) -> anyhow::Result<T> {
        let result = self.page.evaluate_expression(evaluate(expression)?).await?;
        Ok(serde_json::from_value(result.value().cloned().unwrap_or(serde_json::Value::Null))?)
    }

    /// Types `text` into the input `selector` as a person would (the app
    /// listens to `input` and `change` events).
    pub async fn type_into(&self, selector: &str, text: &str) -> anyhow::Result<()> {
        let js = format!(
            "(() => {{ const el = document.querySelector({sel}); el.value = {text}; \
             el.dispatchEvent(new Event('input', {{bubbles: true}})); \
             el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
            sel = serde_json::to_string(selector)?,
            text = serde_json::to_string(text)?,
        );
        let _: bool = self.eval(&js).await?;
        Ok(())
    }

    /// Chooses a sharing level in Settings (`off`, `predictions`,
    /// `recordings`) as a person would, and waits until the app holds it.
    pub async fn choose_consent(&self, level: &str) -> anyhow::Result<()> {
        // The settings may not be drawn yet (a test that does not wait for the model).
        let choice = format!("document.querySelector('#consent-{level}')");
        let _: bool = self.wait(&format!("{choice} ? true : null"), Duration::from_secs(90)).await?;
        self.page.evaluate(format!("{choice}.click()")).await?;
        let wait = format!("document.querySelector('#consent').dataset.level === '{level}' ? true : null");
        let _: bool = self.wait(&wait, Duration::from_secs(90)).await?;
        Ok(())
    }

    /// Clicks the microphone and waits for transcript number `id` (1 for the
    /// first utterance of the visit); returns the search box's text and the
    /// end-of-speech → transcript time the page measured, in ms.
    pub async fn speak(&self, id: u32, timeout: Duration) -> anyhow::Result<(String, f64)> {
        self.page.evaluate("document.querySelector('#mic').click()").await?;
        let wait = format!(
            "(() => {{ const t = document.querySelector('#transcript'); \
             return t && t.dataset.id === '{id}' ? [document.querySelector('#query').value, Number(t.dataset.decodeMs)] : null; }})()"
        );
        self.wait(&wait, timeout).await
    }
}

/// A second DevTools connection to a [`Chromium`], for the targets that
/// chromiumoxide does not expose as pages: the app's Web Workers.
pub struct DevTools {
    socket: async_tungstenite::WebSocketStream<async_tungstenite::tokio::ConnectStream>,
    next_id: u64,
}

impl DevTools {
    pub async fn connect(chromium: &Chromium) -> anyhow::Result<Self> {
        let url = chromium.browser.websocket_address().clone();
        let (socket, _) = async_tungstenite::tokio::connect_async(&url)
            .await
            .with_context(|| format!("connecting to DevTools at {url}"))?;
        Ok(Self { socket, next_id: 1 })
    }

    /// Sends one command (to `session`'s target, or the browser) and returns
    /// its result; events arriving meanwhile are skipped.
    pub async fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        use async_tungstenite::tungstenite::Message;
        let id = self.next_id;
        self.next_id += 1;
        let mut command = serde_json::json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = session.into();
        }
        self.socket.send(Message::text(command.to_string())).await?;
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(message) = self.socket.next().await {
                if let Message::Text(text) = message? {
                    let value: serde_json::Value = serde_json::from_str(&text)?;
                    if value["id"] == id {
                        return Ok(value);
                    }
                }
            }
            bail!("DevTools closed the connection")
        })
        .await
        .with_context(|| format!("no answer to {method} in 30 s"))??;
        if let Some(error) = answer.get("error") {
            bail!("{method} failed: {error}");
        }
        Ok(answer["result"].clone())
    }

    /// Evaluates `expression` in the dedicated worker whose script URL
    /// contains `url_part` (waiting up to `timeout` for it to exist) and
    /// returns its value.
    pub async fn eval_in_worker(
        &mut self,
        url_part: &str,
        expression: &str,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let target = loop {
            let targets = self.call(None, "Target.getTargets", serde_json::json!({})).await?;
            let found = targets["targetInfos"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "worker" && t["url"].as_str().is_some_and(|u| u.contains(url_part)));
            if let Some(t) = found {
                break t["targetId"].clone();
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("no worker whose URL contains {url_part:?} appeared in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let attached = self
            .call(None, "Target.attachToTarget", serde_json::json!({ "targetId": target, "flatten": true }))
            .await?;
        let session = attached["sessionId"].as_str().context("attachToTarget gave no sessionId")?.to_owned();
        let result = self
            .call(
                Some(&session),
                "Runtime.evaluate",
                serde_json::json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("the worker threw: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }
}

/// Errors a page reported: console errors, uncaught exceptions, and browser
/// log entries at error level (failed loads, CSP, ...).
#[derive(Clone, Default)]
pub struct ConsoleLog {
    errors: Arc<Mutex<Vec<String>>>,
}

impl ConsoleLog {
    async fn attach(page: &Page) -> anyhow::Result<Self> {
        let log = Self::default();
        page.execute(log::EnableParams::default()).await?;

        let mut console = page.event_listener::<EventConsoleApiCalled>().await?;
        let sink = log.errors.clone();
        tokio::spawn(async move {
            while let Some(event) = console.next().await {
                if matches!(event.r#type, ConsoleApiCalledType::Error | ConsoleApiCalledType::Assert) {
                    let text: Vec<String> = event
                        .args
                        .iter()
                        .map(|a| a.value.as_ref().map(|v| v.to_string()).or(a.description.clone()).unwrap_or_default())
                        .collect();
                    sink.lock().unwrap().push(format!("console.error: {}", text.join(" ")));
                }
            }
        });

        let mut exceptions = page.event_listener::<EventExceptionThrown>().await?;
        let sink = log.errors.clone();
        tokio::spawn(async move {
            while let Some(event) = exceptions.next().await {
                let d = &event.exception_details;
                let detail = d.exception.as_ref().and_then(|e| e.description.clone()).unwrap_or_default();
                sink.lock().unwrap().push(format!("uncaught exception: {} {detail}", d.text));
            }
        });

        let mut entries = page.event_listener::<EventEntryAdded>().await?;
        let sink = log.errors.clone();
        tokio::spawn(async move {
            while let Some(event) = entries.next().await {
                if event.entry.level == LogEntryLevel::Error {
                    let url = event.entry.url.clone().unwrap_or_default();
                    sink.lock().unwrap().push(format!("browser log error: {} {url}", event.entry.text));
                }
            }
        });
        Ok(log)
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

/// `expression` evaluated in the page, promises awaited, the value returned as JSON.
fn evaluate(expression: &str) -> anyhow::Result<EvaluateParams> {
    EvaluateParams::builder()
        .expression(expression)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(anyhow::Error::msg)
}

/// Polls `expression` in the page (awaiting it if it is a promise) until it
/// yields a non-null JSON value, or
/// fails after `timeout` naming what it waited for.
pub async fn wait_for_value<T: serde::de::DeserializeOwned>(
    page: &Page,
    expression: &str,
    timeout: Duration,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match page.evaluate_expression(evaluate(expression)?).await {
            Ok(result) => match result.value() {
                Some(v) if !v.is_null() => return Ok(serde_json::from_value(v.clone())?),
                _ => {}
            },
            Err(e) => last_error = Some(e.to_string()),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for `{expression}` (last error: {last_error:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
