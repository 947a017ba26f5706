//! The collector over real HTTP on loopback, with a real SQLite file.

use hark_telemetry::{Batch, Consent, PredictionEvent, SCHEMA_VERSION};

struct Running {
    base: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("manifest.json"), r#"{"schema_version":1,"models":[]}"#).unwrap();
    let config = hark_collector::Config { dist: None, models: Some(models), db: dir.path().join("events.sqlite3") };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(hark_collector::serve_on(config, listener, async {
        let _ = rx.await;
    }));
    Running { base, _dir: dir, stop: Some(tx) }
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

async fn event_count(client: &reqwest::Client, base: &str) -> u64 {
    let stats: serde_json::Value = client.get(format!("{base}/api/stats")).send().await.unwrap().json().await.unwrap();
    stats["events"].as_u64().unwrap()
}

#[tokio::test]
async fn health_reports_ok() {
    let server = start().await;
    let body: serde_json::Value =
        reqwest::get(format!("{}/api/health", server.base)).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["telemetry_schema"], SCHEMA_VERSION);
}

#[tokio::test]
async fn stores_consented_events_once_even_when_retried() {
    let server = start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/events", server.base);
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
    let url = format!("{}/api/events", server.base);
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
    let url = format!("{}/api/events", server.base);
    let r = client.post(&url).body("{\"schema_version\": 1, \"consent\": ").send().await.unwrap();
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
    let r = client.post(&url).body(r#"{"schema_version": 9}"#).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("accepts [1, 2]"), "{body}");
    assert_eq!(event_count(&client, &server.base).await, 4);
}

#[test]
fn a_schema_1_database_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
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
    let store = hark_collector::store::EventStore::open(&path).unwrap();
    assert_eq!(store.count().unwrap(), 1, "the old rows are kept");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 3);
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
