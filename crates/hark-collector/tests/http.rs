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
