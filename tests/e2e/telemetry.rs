//! Opt-in prediction logs from the real app to the real collector, in
//! headless Chromium: nothing leaves the browser without consent, each level
//! shares what it says and no more, what waits survives a server outage and
//! a reload and arrives exactly once, revoking clears what waits, and
//! "delete what I sent" removes every row and recording of the install.
//!
//! What left the browser is read from the collector's own records: its
//! access log (every request it answered) and its SQLite store.

use std::path::Path;
use std::time::Duration;

use hark_e2e::{AppPage, AppServer, Chromium, LaunchOptions, MICROPHONE_TEXT, OFFLINE_READY, microphone_wav};

const LOAD: Duration = Duration::from_secs(90);

/// One stored event, as the collector keeps it.
#[derive(Debug)]
struct Row {
    install_id: String,
    prediction: String,
    correction: Option<String>,
    consent: Option<String>,
    consent_text_version: Option<i64>,
    has_summary: bool,
    has_features: bool,
    audio_file: Option<String>,
}

fn rows(server: &AppServer) -> anyhow::Result<Vec<Row>> {
    let db = rusqlite::Connection::open(server.events_db())?;
    let mut q = db.prepare(
        "SELECT install_id, prediction, correction, consent, consent_text_version, summary IS NOT NULL,
                features IS NOT NULL, audio_file
         FROM events ORDER BY created_ms",
    )?;
    let rows = q.query_map([], |r| {
        Ok(Row {
            install_id: r.get(0)?,
            prediction: r.get(1)?,
            correction: r.get(2)?,
            consent: r.get(3)?,
            consent_text_version: r.get(4)?,
            has_summary: r.get(5)?,
            has_features: r.get(6)?,
            audio_file: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Requests to the telemetry API the server has answered.
fn api_requests(server: &AppServer) -> anyhow::Result<Vec<(String, String, u16)>> {
    Ok(server.requests()?.into_iter().filter(|(_, path, _)| path.starts_with("/v1/")).collect())
}

/// Waits until the settings panel shows `sent` logs sent and `waiting` waiting.
async fn telemetry_shows(app: &AppPage, sent: u64, waiting: usize) -> anyhow::Result<String> {
    let wait = format!(
        "(() => {{ const s = document.querySelector('#telemetry-status'); \
         return s && s.dataset.sent === '{sent}' && s.dataset.waiting === '{waiting}' ? s.textContent : null; }})()"
    );
    app.wait(&wait, LOAD).await
}

/// Records in the page's IndexedDB queue.
const QUEUED: &str = "new Promise((done) => { const open = indexedDB.open('hark-telemetry'); \
    open.onsuccess = () => { const db = open.result; \
      if (!db.objectStoreNames.contains('events')) { done(0); return; } \
      const count = db.transaction('events').objectStore('events').count(); \
      count.onsuccess = () => done(count.result); }; open.onerror = () => done(-1); })";

async fn search(app: &AppPage) -> anyhow::Result<()> {
    app.page.evaluate("document.querySelector('#search').click()").await?;
    Ok(())
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() { found.extend(files_under(&path)) } else { found.push(path) }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_consent_level_shares_what_it_says_and_deleting_removes_it_from_the_server() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let wav = microphone_wav(dir.path())?;
    let server = AppServer::start().await?;
    let chromium =
        Chromium::launch(LaunchOptions { webgpu: false, fake_microphone: Some(wav), ..Default::default() }).await?;
    let app = chromium.open(&server.base_url).await?;
    app.model_ready(LOAD).await?;

    // Off by default: a recognition and a search send nothing at all.
    let level: String = app.eval("document.querySelector('#consent').dataset.level").await?;
    let off: bool = app.eval("document.querySelector('#consent-off').checked").await?;
    assert_eq!((level.as_str(), off), ("off", true), "sharing must be off until the person chooses");
    let (heard, _) = app.speak(1, LOAD).await?;
    search(&app).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let queued: i64 = app.eval(QUEUED).await?;
    assert_eq!(api_requests(&server)?, Vec::new(), "a request left the browser without consent (heard {heard:?})");
    assert_eq!(queued, 0, "without consent nothing is kept on the device either");

    // Predictions: the words, the correction typed, the feature summary;
    // never the audio or the full features.
    app.choose_consent("predictions").await?;
    let (heard, _) = app.speak(2, LOAD).await?;
    app.type_into("#query", MICROPHONE_TEXT).await?;
    search(&app).await?;
    telemetry_shows(&app, 1, 0).await?;
    let stored = rows(&server)?;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let row = &stored[0];
    assert_eq!(row.prediction, heard);
    let expected_correction = (heard != MICROPHONE_TEXT).then(|| MICROPHONE_TEXT.to_owned());
    assert_eq!(row.correction, expected_correction, "the correction is what the person searched for");
    assert_eq!((row.consent.as_deref(), row.consent_text_version), (Some("predictions"), Some(1)));
    assert!(row.has_summary, "predictions carry the feature summary for drift monitoring");
    assert!(!row.has_features && row.audio_file.is_none(), "predictions never carry audio or features: {row:?}");

    // Recordings: the audio (a WAV beside the store) and the features too.
    app.choose_consent("recordings").await?;
    let _ = app.speak(3, LOAD).await?;
    search(&app).await?;
    telemetry_shows(&app, 2, 0).await?;
    let stored = rows(&server)?;
    assert_eq!(stored.len(), 2, "{stored:?}");
    let row = &stored[1];
    assert_eq!(row.consent.as_deref(), Some("recordings"));
    assert!(row.has_summary && row.has_features, "{row:?}");
    let file = row.audio_file.clone().unwrap_or_default();
    let recording = server.data_dir().join("audio").join(&file);
    let spec = hound::WavReader::open(&recording)?.spec();
    assert_eq!(spec.sample_rate, 16_000, "{}", recording.display());

    // Revoking clears at once what waits: an utterance not yet searched for.
    let _ = app.speak(4, LOAD).await?;
    telemetry_shows(&app, 2, 1).await?;
    app.choose_consent("off").await?;
    telemetry_shows(&app, 2, 0).await?;
    let queued: i64 = app.wait(&format!("({QUEUED}).then((n) => n === 0 ? n : null)"), LOAD).await?;
    assert_eq!(queued, 0);

    // "Delete what I sent": every row and recording of this install goes.
    app.page.evaluate("document.querySelector('#delete-sent').click()").await?;
    let outcome: String = app
        .wait("(() => { const s = document.querySelector('#deletion-status')?.textContent || ''; return s.startsWith('Deleted') ? s : null; })()", LOAD)
        .await?;
    let install = stored[0].install_id.clone();
    let left = rows(&server)?;
    let recordings = files_under(&server.data_dir().join("audio"));
    let requests = api_requests(&server)?;
    let errors = app.console.errors();
    chromium.close().await;
    assert!(outcome.contains("Deleted 2 logs"), "{outcome}");
    assert!(left.is_empty(), "rows left after deleting install {install}: {left:?}");
    assert!(recordings.is_empty(), "recordings left after deleting: {recordings:?}");
    let posts = requests.iter().filter(|(m, p, _)| m == "POST" && p == "/v1/events").count();
    assert_eq!(posts, 2, "one batch per searched utterance under consent, none for the revoked one: {requests:?}");
    assert!(
        requests.iter().any(|(m, p, s)| m == "DELETE" && p == &format!("/v1/installs/{install}") && *s == 200),
        "{requests:?}"
    );
    assert!(errors.is_empty(), "the page reported errors:\n{}", errors.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_made_while_the_server_is_down_survive_a_reload_and_arrive_exactly_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let wav = microphone_wav(dir.path())?;
    let mut server = AppServer::start().await?;
    let chromium =
        Chromium::launch(LaunchOptions { webgpu: false, fake_microphone: Some(wav), ..Default::default() }).await?;
    let app = chromium.open(&server.base_url).await?;
    app.model_ready(LOAD).await?;
    let _: bool = app.wait(OFFLINE_READY, LOAD).await?;
    app.choose_consent("predictions").await?;

    // The collector goes away; two searches are made by voice meanwhile.
    server.stop().await?;
    let (first, _) = app.speak(1, LOAD).await?;
    search(&app).await?;
    let (second, _) = app.speak(2, LOAD).await?;
    search(&app).await?;
    let status = telemetry_shows(&app, 0, 2).await?;
    assert!(status.contains("could not be reached"), "the panel says why logs wait: {status}");

    // A reload while it is still down (the service worker serves the app):
    // the two logs are read back from IndexedDB.
    app.page.reload().await?;
    telemetry_shows(&app, 0, 2).await?;
    let queued: i64 = app.eval(QUEUED).await?;
    assert_eq!(queued, 2);

    // The collector comes back: the backoff's next try delivers both, once.
    server.resume().await?;
    telemetry_shows(&app, 2, 0).await?;
    let queued: i64 = app.wait(&format!("({QUEUED}).then((n) => n === 0 ? n : null)"), LOAD).await?;
    // Anything the page still had in flight has landed by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored = rows(&server)?;
    let errors = app.console.errors();
    chromium.close().await;
    assert_eq!(queued, 0);
    let predictions: Vec<&str> = stored.iter().map(|r| r.prediction.as_str()).collect();
    assert_eq!(predictions, vec![first.as_str(), second.as_str()], "each log exactly once, in order: {stored:?}");
    // Failed requests while the server was down are expected; nothing else.
    let unexpected: Vec<&String> =
        errors.iter().filter(|e| !e.contains("ERR_CONNECTION_REFUSED") && !e.contains("manifest.json")).collect();
    assert!(unexpected.is_empty(), "the page reported errors:\n{unexpected:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_recognition_is_logged_with_consent_saying_what_failed_and_nothing_heard() -> anyhow::Result<()> {
    // No published model (an empty models folder): the person speaks, the
    // worker has nothing to recognise with, the page says so — and, with
    // consent, the failure reaches the collector.
    let dir = tempfile::tempdir()?;
    let wav = microphone_wav(dir.path())?;
    let models = tempfile::tempdir()?;
    let server = AppServer::start_with_models(models.path().to_owned()).await?;
    let chromium =
        Chromium::launch(LaunchOptions { webgpu: false, fake_microphone: Some(wav), ..Default::default() }).await?;
    let app = chromium.open(&server.base_url).await?;
    app.choose_consent("predictions").await?;
    app.page.evaluate("document.querySelector('#mic').click()").await?;
    let shown: String = app
        .wait(
            "(() => { const e = document.querySelector('#mic-error')?.textContent || ''; return e ? e : null; })()",
            LOAD,
        )
        .await?;
    telemetry_shows(&app, 1, 0).await?;
    let db = rusqlite::Connection::open(server.events_db())?;
    let stored: Vec<(String, String, Option<String>, Option<String>, Option<String>)> = db
        .prepare("SELECT prediction, backend, error, words, correction FROM events")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<Result<_, _>>()?;
    let posts = api_requests(&server)?.into_iter().filter(|(m, p, _)| m == "POST" && p == "/v1/events").count();
    chromium.close().await;
    assert!(shown.contains("No speech model"), "the page says why nothing was heard: {shown}");
    assert_eq!(stored.len(), 1, "one failure, one log: {stored:?}");
    let (prediction, backend, error, words, correction) = &stored[0];
    assert_eq!(error.as_deref(), Some(shown.as_str()), "the log says what failed, as the page did");
    assert_eq!((prediction.as_str(), backend.as_str()), ("", "cpu"));
    assert!(
        words.as_deref().is_none_or(|w| w == "[]") && correction.is_none(),
        "a failure carries no words: {words:?}"
    );
    assert_eq!(posts, 1);
    Ok(())
}
