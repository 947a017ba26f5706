//! The PostgreSQL backend against a real PostgreSQL server the test starts
//! itself: two collector replicas over one database.

mod support;

use hark_collector::store::Store;
use support::postgres::Postgres;

const SECRET: &str = "a secret only the browser holds";
const ADMIN: &str = "postgres-test-admin-token";

struct Replica {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn replica(url: &str) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = hark_collector::Settings::default();
    settings.store.postgres = Some(url.to_owned());
    settings.admin.token = Some(ADMIN.into());
    let config = hark_collector::Config { site: None, models: None, data: dir.path().join("data"), settings };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hark_collector::serve_on(config, listener, async {
        let _ = stopped.await;
    }));
    // Ready when it answers its health check (it migrates first).
    for _ in 0..200 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    Replica { base, _stop: stop, _dir: dir }
}

fn batch(consent: &str, ids: &[&str]) -> serde_json::Value {
    let events: Vec<_> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "event_id": id, "created_ms": 1, "app_version": "0.8.0", "model_version": "0.7.0", "backend": "cpu",
                "latency_ms": 91.0, "audio_s": 1.5, "transcript": "play some jazz", "confidence": 0.8,
                "words": [{"text": "play", "confidence": 0.9}], "correction": "play some jazz music",
            })
        })
        .collect();
    serde_json::json!({
        "schema_version": 2, "install_id": "install-replicas", "install_key": hark_collector::store::install_key(SECRET),
        "consent": consent, "consent_text_version": 1, "events": events,
    })
}

async fn export_ids(client: &reqwest::Client, base: &str) -> Vec<String> {
    let text =
        client.get(format!("{base}/v1/admin/export")).bearer_auth(ADMIN).send().await.unwrap().text().await.unwrap();
    text.lines().map(|l| serde_json::from_str::<hark_telemetry::export::Record>(l).unwrap().event_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_store_an_event_once_and_delete_together() {
    let pg = Postgres::start().unwrap();
    // Both start at once: the schema is made once.
    let (a, b) = tokio::join!(replica(&pg.url), replica(&pg.url));
    let client = reqwest::Client::new();
    let post = |base: &str, body: serde_json::Value| client.post(format!("{base}/v1/events")).json(&body).send();

    // The same batch to both replicas, at the same time: stored once.
    let (ra, rb) = tokio::join!(
        post(&a.base, batch("predictions", &["p1", "p2"])),
        post(&b.base, batch("predictions", &["p1", "p2"]))
    );
    let (ra, rb): (serde_json::Value, serde_json::Value) =
        (ra.unwrap().json().await.unwrap(), rb.unwrap().json().await.unwrap());
    assert_eq!(ra["accepted"].as_u64().unwrap() + rb["accepted"].as_u64().unwrap(), 2, "{ra} {rb}");
    assert_eq!(ra["duplicates"].as_u64().unwrap() + rb["duplicates"].as_u64().unwrap(), 2, "{ra} {rb}");
    // A failed recognition keeps what failed.
    let mut failed = batch("predictions", &["p3"]);
    let error = "Recognition failed: the GPU device was lost";
    failed["events"][0] = serde_json::json!({
        "event_id": "p3", "created_ms": 1, "app_version": "0.8.0", "model_version": "0.7.0", "backend": "webgpu",
        "latency_ms": 0.0, "audio_s": 1.5, "transcript": "", "confidence": 0.0, "error": error,
    });
    let r = post(&b.base, failed).await.unwrap();
    assert_eq!(r.status(), 202);
    // Schema 1 (no install key) is still accepted, and stored once.
    let v1 = serde_json::json!({"schema_version": 1, "consent": "granted", "install_id": "install-old", "events": [{
        "event_id": "old-1", "created_ms": 1, "app_version": "0.1.0", "model_version": "1.0.0", "backend": "cpu",
        "prediction": "directions to baker street", "confidence": 0.7, "correction": null, "audio_s": 1.5,
        "decode_ms": 30.0, "features": null,
    }]});
    for replica in [&a.base, &b.base] {
        assert_eq!(post(replica, v1.clone()).await.unwrap().status(), 202);
    }
    let mut ids = export_ids(&client, &a.base).await;
    ids.sort();
    assert_eq!(ids, ["old-1", "p1", "p2", "p3"], "replica a exports what b stored");
    let text = client
        .get(format!("{}/v1/admin/export", a.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors: Vec<Option<String>> = text
        .lines()
        .map(|l| serde_json::from_str::<hark_telemetry::export::Record>(l).unwrap())
        .filter(|r| r.event_id == "p3" || r.event_id == "p1")
        .map(|r| r.error)
        .collect();
    assert_eq!(errors, [None, Some(error.to_owned())]);

    // Recordings live in the database: any replica serves them.
    let samples: Vec<f32> = (0..1600).map(|i| (i as f32 * 0.05).sin() * 0.2).collect();
    let mut rec = batch("recordings", &["rec"]);
    rec["events"][0]["audio"] = serde_json::to_value(hark_telemetry::v2::Audio::from_samples(&samples)).unwrap();
    assert_eq!(post(&a.base, rec).await.unwrap().status(), 202);
    let wav = client.get(format!("{}/v1/admin/audio/rec", b.base)).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(wav.status(), 200);
    let reader = hound::WavReader::new(std::io::Cursor::new(wav.bytes().await.unwrap())).unwrap();
    assert_eq!(reader.len(), 1600);

    // Another key for the install: refused by either.
    let mut other = batch("predictions", &["p4"]);
    other["install_key"] = serde_json::json!(hark_collector::store::install_key("another secret"));
    assert_eq!(post(&b.base, other).await.unwrap().status(), 403);

    // Deleting through a removes what b stored.
    let wrong = client.delete(format!("{}/v1/installs/install-replicas", a.base)).bearer_auth("wrong").send().await;
    assert_eq!(wrong.unwrap().status(), 403);
    let r = client.delete(format!("{}/v1/installs/install-replicas", a.base)).bearer_auth(SECRET).send().await.unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["deleted"], 4, "{body}");
    assert_eq!(export_ids(&client, &b.base).await, ["old-1"], "only the other install's event is left");
    let stats: serde_json::Value =
        client.get(format!("{}/v1/admin/stats", b.base)).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    assert_eq!((stats["events"].as_u64(), stats["installs"].as_u64()), (Some(1), Some(1)), "{stats}");
}

#[tokio::test]
async fn retention_on_postgres_drops_recordings_first() {
    let pg = Postgres::start().unwrap();
    let store = hark_collector::store::PostgresStore::connect(&pg.url).await.unwrap();
    let mut b: hark_telemetry::v2::Batch = serde_json::from_value(batch("recordings", &["old"])).unwrap();
    b.events[0].audio = Some(hark_telemetry::v2::Audio::from_samples(&[0.1; 160]));
    store.insert(hark_collector::store::Insert::v2(&b).unwrap()).await.unwrap();
    let day = 86_400_000;
    let now = hark_collector::store::now_ms();
    let swept = store.sweep(now + 10 * day, 30, 7).await.unwrap();
    assert_eq!((swept.events, swept.recordings), (0, 1));
    assert_eq!(store.audio_wav("old").await.unwrap(), None);
    assert_eq!(store.sweep(now + 31 * day, 30, 7).await.unwrap().events, 1);
    assert_eq!(store.count().await.unwrap(), 0);
}
