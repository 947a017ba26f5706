//! The collector over real HTTP on loopback, with a real SQLite file.

use hark_collector::store::Store;
use hark_telemetry::{Batch, Consent, PredictionEvent, SCHEMA_VERSION};

struct Running {
    base: String,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), hark_collector::ServeError>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Running {
    /// Stops the server the way Ctrl-C does and waits until it has: how it
    /// ended, and its folder (kept for a look at what it left).
    async fn stop(mut self) -> (Result<(), hark_collector::ServeError>, tempfile::TempDir) {
        let _ = self.stop.take().unwrap().send(());
        let result = self.task.take().unwrap().await.unwrap();
        (result, std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The operator's token of the test servers.
const ADMIN: &str = "test-admin-token-0123456789";

fn settings() -> hark_collector::Settings {
    let mut s = hark_collector::Settings::default();
    s.admin.token = Some(ADMIN.into());
    s.limits.per_ip_per_minute = 0;
    s.limits.per_install_per_minute = 0;
    s
}

async fn start() -> Running {
    start_with(settings()).await
}

async fn start_with(settings: hark_collector::Settings) -> Running {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, settings).await
}

async fn start_in(dir: tempfile::TempDir, settings: hark_collector::Settings) -> Running {
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("manifest.json"), r#"{"schema_version":1,"models":[]}"#).unwrap();
    let config = hark_collector::Config { site: None, models: Some(models), data: dir.path().join("data"), settings };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(hark_collector::serve_on(config, listener, async {
        let _ = rx.await;
    }));
    Running { base, dir, stop: Some(tx), task: Some(task) }
}

fn batch(ids: &[&str]) -> Batch {
    Batch {
        schema_version: SCHEMA_VERSION,
        consent: Consent::Granted,
        install_id: "install-abcdef".into(),
        events: ids
            .iter()
            .map(|id| PredictionEvent {
                event_id: (*id).into(),
                created_ms: 1,
                app_version: "0.1.0".into(),
                model_version: "1.0.0".into(),
                backend: "cpu".into(),
                prediction: "directions to baker street".into(),
                confidence: 0.7,
                correction: Some("directions to 42 baker street".into()),
                audio_s: 1.5,
                decode_ms: 30.0,
                features: None,
            })
            .collect(),
    }
}

async fn admin_stats(client: &reqwest::Client, base: &str) -> serde_json::Value {
    let r = client.get(format!("{base}/v1/admin/stats")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn event_count(client: &reqwest::Client, base: &str) -> u64 {
    admin_stats(client, base).await["events"].as_u64().unwrap()
}

#[tokio::test]
async fn health_reports_ok_and_the_schemas_it_takes() {
    let server = start().await;
    let body: serde_json::Value = reqwest::get(server.url("/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["telemetry_schemas"], serde_json::json!([SCHEMA_VERSION, 2]));
    let gone = reqwest::get(server.url("/api/health")).await.unwrap();
    assert_eq!(gone.status(), 404, "the old /api paths are gone");
}

#[tokio::test]
async fn stores_consented_events_once_even_when_retried() {
    let server = start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/events", server.base);
    let r = client.post(&url).json(&batch(&["a1", "a2"])).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r: serde_json::Value =
        client.post(&url).json(&batch(&["a2", "a3"])).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["accepted"], 1);
    assert_eq!(r["duplicates"], 1);
    assert_eq!(event_count(&client, &server.base).await, 3);
}

#[tokio::test]
async fn refuses_events_without_consent_and_keeps_earlier_ones() {
    let server = start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/events", server.base);
    client.post(&url).json(&batch(&["k1"])).send().await.unwrap();
    let mut denied = batch(&["d1"]);
    denied.consent = Consent::Denied;
    let r = client.post(&url).json(&denied).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("consent"));
    assert_eq!(event_count(&client, &server.base).await, 1);
}

#[tokio::test]
async fn malformed_bodies_get_an_error_that_names_the_problem() {
    let server = start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/events", server.base);
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"schema_version\": 1, \"consent\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("line 1"), "{body}");

    let mut bad = batch(&["b1", "b2"]);
    bad.events[1].confidence = -0.5;
    let r = client.post(&url).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("event 1: confidence"), "{body}");
    assert_eq!(event_count(&client, &server.base).await, 0, "a refused batch stores nothing");
}

#[tokio::test]
async fn serves_the_model_manifest() {
    let server = start().await;
    let r = reqwest::get(format!("{}/models/manifest.json", server.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["schema_version"], 1);
}

/// The test install's secret (its browser would make a random one).
const SECRET: &str = "correct horse battery staple";

fn v2_event(id: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": id, "created_ms": 1, "app_version": "0.1.0", "model_version": "0.7.0", "backend": "cpu",
        "latency_ms": 91.0, "audio_s": 1.5, "transcript": "play some jazz", "confidence": 0.8,
        "words": [{"text": "play", "confidence": 0.9}], "correction": "play some jazz music",
    })
}

/// A recognition that failed: what failed, no words.
fn v2_failure(id: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": id, "created_ms": 1, "app_version": "0.1.0", "model_version": "0.7.0", "backend": "webgpu",
        "latency_ms": 0.0, "audio_s": 1.5, "transcript": "", "confidence": 0.0,
        "error": "Recognition failed: the GPU device was lost",
    })
}

fn v2_batch(consent: &str, events: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "schema_version": 2, "install_id": "install-abcdef", "install_key": hark_collector::store::install_key(SECRET),
        "consent": consent, "consent_text_version": 2,
        "events": events,
    })
}

#[tokio::test]
async fn schema_2_batches_are_stored_event_by_event_naming_the_rejected() {
    let server = start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/events", server.base);
    let mut bad = v2_event("v2-bad");
    bad["confidence"] = serde_json::json!(3.0);
    let mut audio = v2_event("v2-audio");
    audio["audio"] = serde_json::json!({"sample_rate": 16000, "pcm_s16le_base64": "AAAAQA=="});
    let r = client
        .post(&url)
        .json(&v2_batch("predictions", vec![v2_event("v2-a"), bad, v2_event("v2-b"), audio.clone()]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["accepted"], 2, "{body}");
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!((rejected[0]["index"].as_u64(), rejected[0]["field"].as_str()), (Some(1), Some("confidence")));
    assert_eq!((rejected[1]["index"].as_u64(), rejected[1]["field"].as_str()), (Some(3), Some("audio")));
    assert!(rejected[1]["problem"].as_str().unwrap().contains("recordings consent"), "{body}");
    // Under the recordings level the audio is kept; a retry is stored once.
    let r: serde_json::Value =
        client.post(&url).json(&v2_batch("recordings", vec![audio])).send().await.unwrap().json().await.unwrap();
    assert_eq!((r["accepted"].as_u64(), r["rejected"].as_array().map(Vec::len)), (Some(1), Some(0)));
    let again: serde_json::Value = client
        .post(&url)
        .json(&v2_batch("recordings", vec![v2_event("v2-audio")]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicates"], 1);
    assert_eq!(event_count(&client, &server.base).await, 3);
    // Schema 1 goes to the same endpoint; an unknown schema is named.
    let r = client.post(&url).json(&batch(&["v1-a"])).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r = client.post(&url).json(&serde_json::json!({"schema_version": 9})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("accepts [1, 2]"), "{body}");
    assert_eq!(event_count(&client, &server.base).await, 4);
}

#[tokio::test]
async fn a_schema_1_database_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(hark_collector::store::DB_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (event_id TEXT PRIMARY KEY, install_id TEXT NOT NULL, received_ms INTEGER NOT NULL,
                 created_ms INTEGER NOT NULL, app_version TEXT NOT NULL, model_version TEXT NOT NULL,
                 backend TEXT NOT NULL, prediction TEXT NOT NULL, confidence REAL NOT NULL, correction TEXT,
                 audio_s REAL NOT NULL, decode_ms REAL NOT NULL, features TEXT);
             INSERT INTO events VALUES ('old-1', 'install-abcdef', 1, 1, '0.1.0', '0.6.0', 'cpu', 'hi', 0.5, NULL, 1.0, 2.0, NULL);",
        )
        .unwrap();
    }
    let store = hark_collector::store::SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.count().await.unwrap(), 1, "the old rows are kept");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 5);
    let schema: i64 = conn.query_row("SELECT schema_version FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(schema, 1);
}

#[tokio::test]
async fn an_install_deletes_what_it_sent_with_its_secret_and_nobody_else_can() {
    let server = start().await;
    let client = reqwest::Client::new();
    let events = format!("{}/v1/events", server.base);
    let install = format!("{}/v1/installs/install-abcdef", server.base);
    client.post(&events).json(&batch(&["old-v1"])).send().await.unwrap();
    let r =
        client.post(&events).json(&v2_batch("predictions", vec![v2_event("e1"), v2_event("e2")])).send().await.unwrap();
    assert_eq!(r.status(), 202);
    // Another key for the same install id: refused whole.
    let mut other = v2_batch("predictions", vec![v2_event("e3")]);
    other["install_key"] = serde_json::json!(hark_collector::store::install_key("another secret"));
    let r = client.post(&events).json(&other).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(event_count(&client, &server.base).await, 3);

    let r = client.delete(&install).send().await.unwrap();
    assert_eq!(r.status(), 403, "no secret");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Authorization: Bearer"), "{body}");
    let r = client.delete(&install).bearer_auth("a wrong secret").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(event_count(&client, &server.base).await, 3, "a refused deletion deletes nothing");
    let r =
        client.delete(format!("{}/v1/installs/install-unknown", server.base)).bearer_auth(SECRET).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let r: serde_json::Value = client.delete(&install).bearer_auth(SECRET).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["deleted"], 3, "both schemas' events of the install");
    assert_eq!(event_count(&client, &server.base).await, 0);
    // The key went with them: the id can start afresh.
    let r = client.post(&events).json(&other).send().await.unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn health_and_metrics_tell_an_operator_what_happened() {
    let server = start().await;
    let client = reqwest::Client::new();
    let r = client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut bad = v2_event("m-bad");
    bad["confidence"] = serde_json::json!(-1.0);
    let url = format!("{}/v1/events", server.base);
    client.post(&url).json(&v2_batch("predictions", vec![v2_event("m-1"), bad])).send().await.unwrap();
    client.post(&url).json(&v2_batch("predictions", vec![v2_event("m-1")])).send().await.unwrap();
    let text = client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(has(r#"hark_events_total{outcome="accepted",field=""} 1"#), "{text}");
    assert!(has(r#"hark_events_total{outcome="duplicate",field=""} 1"#), "{text}");
    assert!(has(r#"hark_events_total{outcome="rejected",field="confidence"} 1"#), "{text}");
    assert!(has(r#"hark_http_requests_total{route="/v1/events",status="202"} 2"#), "{text}");
    assert!(text.contains("hark_http_request_seconds_bucket"), "{text}");
    assert!(has("hark_store_errors_total 0"), "{text}");
}

#[tokio::test]
async fn the_access_log_has_one_line_per_request_and_nothing_about_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/access.jsonl");
    let mut settings = settings();
    settings.log.access = Some(log.clone());
    let server = start_in(dir, settings).await;
    let client = reqwest::Client::new();
    client.get(server.url("/healthz")).send().await.unwrap();
    let r = client.post(server.url("/v1/events")).json(&v2_batch("predictions", vec![v2_event("a-1")])).send().await;
    assert_eq!(r.unwrap().status(), 202);
    client.get(server.url("/models/manifest.json")).send().await.unwrap();
    let (stopped, _dir) = server.stop().await;
    stopped.unwrap();
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seen: Vec<_> = lines
        .iter()
        .map(|l| format!("{} {} {}", l["method"].as_str().unwrap(), l["path"].as_str().unwrap(), l["status"]))
        .collect();
    assert_eq!(seen, ["GET /healthz 200", "POST /v1/events 202", "GET /models/manifest.json 200"]);
    for line in &lines {
        let mut keys: Vec<_> = line.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["duration_ms", "method", "ms", "path", "status"], "{line}");
    }
}

/// A recording of `ms` milliseconds of a 440 Hz tone, as the browser sends it.
fn recording(ms: usize) -> serde_json::Value {
    let samples: Vec<f32> =
        (0..ms * 16).map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin()).collect();
    serde_json::to_value(hark_telemetry::v2::Audio::from_samples(&samples)).unwrap()
}

fn audio_files(server: &Running) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for install in std::fs::read_dir(server.dir.path().join("data/audio")).unwrap().flatten() {
        files.extend(std::fs::read_dir(install.path()).unwrap().flatten().map(|f| f.path()));
    }
    files
}

#[tokio::test]
async fn recordings_are_wav_files_beside_the_database_and_deletion_removes_them() {
    let server = start().await;
    let client = reqwest::Client::new();
    let mut with_audio = v2_event("rec-1");
    with_audio["audio"] = recording(500);
    let r = client.post(server.url("/v1/events")).json(&v2_batch("recordings", vec![with_audio])).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let files = audio_files(&server);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("install-abcdef/rec-1.wav"), "{files:?}");
    let reader = hound::WavReader::open(&files[0]).unwrap();
    assert_eq!((reader.spec().sample_rate, reader.len()), (16_000, 8_000));
    // The operator fetches it by its event.
    let wav = client.get(server.url("/v1/admin/audio/rec-1")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!((wav.status().as_u16(), wav.headers()["content-type"].to_str().unwrap()), (200, "audio/wav"));
    assert_eq!(wav.bytes().await.unwrap(), std::fs::read(&files[0]).unwrap());

    let r = client.delete(server.url("/v1/installs/install-abcdef")).bearer_auth(SECRET).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(audio_files(&server).is_empty(), "no file of the install is left");
    assert!(!server.dir.path().join("data/audio/install-abcdef").exists());
    assert_eq!(event_count(&client, &server.base).await, 0);
}

#[tokio::test]
async fn the_admin_export_streams_every_event_since_a_time_as_json_lines() {
    let server = start().await;
    let client = reqwest::Client::new();
    // More than one page of the export.
    for chunk in 0..7 {
        let events = (0..100).map(|i| v2_event(&format!("x-{chunk}-{i:03}"))).collect();
        let r = client.post(server.url("/v1/events")).json(&v2_batch("predictions", events)).send().await.unwrap();
        assert_eq!(r.status(), 202);
    }
    client.post(server.url("/v1/events")).json(&batch(&["old-v1"])).send().await.unwrap();
    let r = client.post(server.url("/v1/events")).json(&v2_batch("predictions", vec![v2_failure("failed-1")]));
    assert_eq!(r.send().await.unwrap().status(), 202);
    let export = client.get(server.url("/v1/admin/export?since=0")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let text = export.text().await.unwrap();
    let records: Vec<hark_telemetry::export::Record> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 702);
    let ids: std::collections::HashSet<_> = records.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids.len(), 702, "every event once");
    let failed: Vec<_> = records.iter().filter(|r| r.error.is_some()).map(|r| r.event_id.as_str()).collect();
    assert_eq!(failed, ["failed-1"], "what failed is kept, and only there");
    let first = records.iter().find(|r| r.event_id == "x-0-000").unwrap();
    assert_eq!(first.correction.as_deref(), Some("play some jazz music"));
    assert_eq!(first.consent, Some(hark_telemetry::v2::ConsentLevel::Predictions));
    assert_eq!(first.words[0].text, "play");
    let v1 = records.iter().find(|r| r.event_id == "old-v1").unwrap();
    assert_eq!((v1.schema_version, v1.transcript.as_str()), (1, "directions to baker street"));
    // Later than everything: nothing.
    let later = records.iter().map(|r| r.received_ms).max().unwrap() + 1;
    let r = client.get(server.url(&format!("/v1/admin/export?since={later}"))).bearer_auth(ADMIN).send().await;
    assert_eq!(r.unwrap().text().await.unwrap(), "");

    let stats = admin_stats(&client, &server.base).await;
    assert_eq!(
        (stats["events"].as_u64(), stats["schema_2"].as_u64(), stats["installs"].as_u64()),
        (Some(702), Some(701), Some(1))
    );
    assert_eq!(stats["corrections"].as_u64(), Some(701));

    let r = client.get(server.url("/v1/admin/export?since=yesterday")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("since=MILLISECONDS"));
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_fault_stores_nothing_and_the_server_keeps_serving() {
    let mut s = settings();
    s.limits.max_body_bytes = 2 << 20;
    let server = start_with(s).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/events");
    client.post(&url).json(&v2_batch("predictions", vec![v2_event("kept")])).send().await.unwrap();
    let json_body = |body: Vec<u8>| client.post(&url).header("content-type", "application/json").body(body);
    let huge = v2_batch("predictions", (0..101).map(|i| v2_event(&format!("many-{i}"))).collect());
    let mut long = v2_event("long");
    long["transcript"] = serde_json::json!("x".repeat(1 << 20));
    let mut weird = v2_batch("predictions", vec![v2_event("nan")]);
    weird["events"][0]["latency_ms"] = serde_json::json!(-3.0);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("malformed JSON", json_body(b"{\"schema_version\": 2, \"events\": [".to_vec()), 400, "EOF while parsing"),
        ("unknown schema", json_body(br#"{"schema_version": 3}"#.to_vec()), 422, "schema_version 3"),
        ("NaN", json_body(br#"{"schema_version": 2, "x": NaN}"#.to_vec()), 400, "expected value"),
        ("a huge number", json_body(br#"{"schema_version": 1e400}"#.to_vec()), 400, "number out of range"),
        (
            "invalid UTF-8",
            json_body(b"{\"schema_version\": 2, \"install_id\": \"\xff\xfe\"}".to_vec()),
            400,
            "invalid unicode",
        ),
        ("oversized body", json_body(vec![b' '; 3 << 20]), 413, "limit of 2097152 bytes"),
        ("over 100 events", client.post(&url).json(&huge), 413, "at most 100"),
        ("a 1 MB string", client.post(&url).json(&v2_batch("predictions", vec![long])), 202, "transcript"),
        ("a negative latency", client.post(&url).json(&weird), 202, "latency_ms"),
        (
            "wrong content type",
            client.post(&url).header("content-type", "text/plain").body("{}"),
            415,
            "application/json",
        ),
        ("no content type", client.post(&url).body("{}"), 415, "application/json"),
        (
            "a wrong install secret",
            client.delete(server.url("/v1/installs/install-abcdef")).bearer_auth("not the secret"),
            403,
            "secret does not match",
        ),
        ("admin without a token", client.get(server.url("/v1/admin/stats")), 401, "admin token"),
        ("admin with a wrong token", client.get(server.url("/v1/admin/export")).bearer_auth("nope"), 401, "wrong"),
        ("an unknown route", client.get(server.url("/v1/nothing")), 404, "/v1/events"),
    ];
    for (what, request, status, says) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "{what}: {body}");
        let health = client.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200, "still serving after {what}");
    }
    assert_eq!(event_count(&client, &server.base).await, 1, "nothing of the bad requests was stored");
}

#[tokio::test]
async fn past_its_rate_limit_an_install_is_told_when_to_retry() {
    let mut s = settings();
    s.limits.per_install_per_minute = 2;
    let server = start_with(s).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/events");
    for id in ["r1", "r2"] {
        let r = client.post(&url).json(&v2_batch("predictions", vec![v2_event(id)])).send().await.unwrap();
        assert_eq!(r.status(), 202);
    }
    let r = client.post(&url).json(&v2_batch("predictions", vec![v2_event("r3")])).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert!(r.text().await.unwrap().contains("this install"));
    assert_eq!(event_count(&client, &server.base).await, 2);
    let metrics = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == r#"hark_rate_limited_total{scope="install"} 1"#), "{metrics}");

    let mut s = settings();
    s.limits.per_ip_per_minute = 1;
    let server = start_with(s).await;
    let first = client.get(server.url("/v1/events")).send().await.unwrap();
    assert_eq!(first.status(), 405, "one request passes");
    let r = client.post(server.url("/v1/events")).json(&batch(&["ip-1"])).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("this address"));
}

#[tokio::test]
async fn only_configured_origins_may_call_the_api_from_their_pages() {
    let mut s = settings();
    s.cors.origins = vec!["https://search.example.org".into()];
    let server = start_with(s).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, server.url("/v1/events"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://search.example.org").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://search.example.org");
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn retention_removes_old_recordings_before_old_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = hark_collector::store::SqliteStore::open(dir.path()).unwrap();
    let mut event: hark_telemetry::v2::Event = serde_json::from_value(v2_event("old-rec")).unwrap();
    event.audio = Some(serde_json::from_value(recording(100)).unwrap());
    let batch = hark_telemetry::v2::Batch {
        schema_version: 2,
        install_id: "install-abcdef".into(),
        install_key: hark_collector::store::install_key(SECRET),
        consent: hark_telemetry::v2::ConsentLevel::Recordings,
        consent_text_version: 1,
        events: vec![event],
    };
    store.insert(hark_collector::store::Insert::v2(&batch).unwrap()).await.unwrap();
    let file = dir.path().join("audio/install-abcdef/old-rec.wav");
    assert!(file.is_file());
    let day = 86_400_000;
    let now = hark_collector::store::now_ms();
    // 10 days later, with 7 days for recordings and 30 for events.
    let swept = store.sweep(now + 10 * day, 30, 7).await.unwrap();
    assert_eq!((swept.events, swept.recordings), (0, 1));
    assert!(!file.exists(), "the recording's file went with it");
    assert_eq!(store.count().await.unwrap(), 1, "the event stays");
    let swept = store.sweep(now + 31 * day, 30, 7).await.unwrap();
    assert_eq!(swept.events, 1);
    assert_eq!(store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn shutting_down_finishes_the_requests_in_flight_and_flushes_the_store() {
    let server = start().await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/events");
    let first = client.post(&url).json(&v2_batch("predictions", vec![v2_event("s-first")])).send().await.unwrap();
    assert_eq!(first.status(), 202);
    let sends: Vec<_> = (0..20)
        .map(|i| {
            let request = client.post(&url).json(&v2_batch("predictions", vec![v2_event(&format!("s-{i}"))]));
            tokio::spawn(request.send())
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (stopped, dir) = server.stop().await;
    assert!(stopped.is_ok(), "{stopped:?}");
    let mut accepted = 1;
    for send in sends {
        if let Ok(Ok(r)) = send.await
            && r.status() == 202
        {
            accepted += 1;
        }
    }
    let data = dir.path().join("data");
    let wal = data.join(format!("{}-wal", hark_collector::store::DB_FILE));
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0, "the log was folded into the database");
    let conn = rusqlite::Connection::open(data.join(hark_collector::store::DB_FILE)).unwrap();
    let stored: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap();
    assert!(stored >= accepted, "{stored} stored, {accepted} accepted");
}

/// A reference profile of model 0.7.0 in the server's models folder.
fn write_profile(server: &Running) {
    let events = (0..200)
        .map(|i| hark_monitor::RefEvent {
            band_mean: (0..16).map(|b| -2.0 - 0.2 * b as f32 + ((i * 37 + b * 11) % 100) as f32 / 100.0).collect(),
            snr_db: 20.0 + (i % 20) as f32,
            speech_s: 1.0 + (i % 10) as f32 / 5.0,
            confidence: 0.6 + (i % 40) as f32 / 100.0,
        })
        .collect();
    let profile = hark_monitor::ReferenceProfile {
        profile_version: hark_monitor::profile::PROFILE_VERSION,
        model_version: "0.7.0".into(),
        events,
        vocabulary: ["play", "some", "jazz"].map(String::from).to_vec(),
        slice_wer: Default::default(),
    };
    profile.save(&server.dir.path().join("models/profile-0.7.0.json")).unwrap();
}

#[tokio::test]
async fn the_monitoring_dashboard_is_an_admin_page_over_the_server_s_own_store() {
    let server = start().await;
    let client = reqwest::Client::new();
    let page = |query: &'static str, token: Option<&'static str>| {
        let mut r = client.get(server.url(&format!("/v1/admin/monitor{query}")));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    // Behind the token.
    assert_eq!(page("?model=0.7.0", None).await.unwrap().status(), 401);
    // No profile yet: says how to make one.
    let r = page("?model=0.7.0", Some(ADMIN)).await.unwrap();
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(text.contains("profile-0.7.0.json") && text.contains("cannot be read"), "{text}");

    write_profile(&server);
    let with_summary = |i: usize| {
        let mut e = v2_event(&format!("m-{i:03}"));
        e["summary"] = serde_json::json!({"band_mean": vec![-3.0; 16], "band_std": vec![1.0; 16], "snr_db": 5.0,
            "speech_s": 2.0, "sample_rate": 48000});
        e
    };
    let events: Vec<_> = (0..60).map(with_summary).collect();
    let r = client.post(server.url("/v1/events")).json(&v2_batch("predictions", events)).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r = page("?model=0.7.0", Some(ADMIN)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("hark monitor: <span") && html.contains(">alert</span>"), "SNR 5 dB everywhere is drift");
    let json: serde_json::Value = page("?model=0.7.0&format=json", Some(ADMIN)).await.unwrap().json().await.unwrap();
    assert_eq!((json["state"].as_str(), json["window"]["events"].as_u64()), (Some("alert"), Some(60)));
    assert_eq!(json["words"]["corrections"]["top_words"][0]["text"], "music", "the correction's new word");
    // A model the store has no events of.
    let r = page("?model=9.9.9", Some(ADMIN)).await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("profile-9.9.9.json"));
}
