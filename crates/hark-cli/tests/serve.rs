//! `hark serve`: the real server process on a free loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// One request over a plain TCP connection: `head` is the request line and
/// any headers (Host, Connection and, with a body, Content-Length are
/// added); the whole response, or why the connection failed.
fn http(addr: &str, head: &str, body: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    let length = if body.is_empty() { String::new() } else { format!("Content-Length: {}\r\n", body.len()) };
    write!(stream, "{head}\r\nHost: {addr}\r\n{length}Connection: close\r\n\r\n{body}")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// `GET path`: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let response = http(addr, &format!("GET {path} HTTP/1.1"), "").unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn serves_the_api_and_the_models_on_the_address_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("manifest.json"), r#"{"schema_version":1,"models":[]}"#).unwrap();
    let data = dir.path().join("data");
    let Serve { mut child, addr, log } = start(&[data.as_os_str(), "--models".as_ref(), models.as_os_str()]);
    let (status, body) = get(&addr, "/healthz");
    let (manifest_status, manifest) = get(&addr, "/models/manifest.json");
    child.kill().unwrap();
    let _ = child.wait();
    let log = log.unwrap().join().unwrap_or_default();
    assert!(status.contains("200"), "{status}: {body}\n{log}");
    assert!(manifest_status.contains("200") && manifest.contains("schema_version"), "{manifest_status}");
    assert!(dir.path().join("data/collector.sqlite3").is_file(), "the event database is in --data");

    let refused = Command::new(env!("CARGO_BIN_EXE_hark"))
        .args(["serve", "--addr", "127.0.0.1:0", "--site"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("has no index.html"));
}

/// A running `hark serve` on a free port, and the address it printed.
struct Serve {
    child: std::process::Child,
    addr: String,
    log: Option<std::thread::JoinHandle<String>>,
}

const ADMIN: &str = "durability-test-admin-token";

/// `hark serve --addr 127.0.0.1:0 --data ARGS...` with the admin token set.
fn start(data_and_more: &[&std::ffi::OsStr]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hark"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .args(data_and_more)
        .env("HARK_ADMIN_TOKEN", ADMIN)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok);
    let addr = lines
        .find_map(|l| l.strip_prefix("hark is serving on http://").map(|a| a.split(' ').next().unwrap().to_owned()))
        .expect("hark serve prints its address");
    // Keep reading its log, so that the server never writes into a closed pipe.
    let log = std::thread::spawn(move || lines.collect::<Vec<_>>().join("\n"));
    Serve { child, addr, log: Some(log) }
}

fn serve(data: &std::path::Path, config: &std::path::Path) -> Serve {
    start(&[data.as_os_str(), "--config".as_ref(), config.as_os_str()])
}

/// `POST /v1/events` over a plain TCP connection: the status code, or
/// `None` when the connection failed (the server was killed).
fn post_events(addr: &str, body: &str) -> Option<u16> {
    let response = http(addr, "POST /v1/events HTTP/1.1\r\nContent-Type: application/json", body).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

fn batch_of(ids: &[String]) -> String {
    let events: Vec<_> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "event_id": id, "created_ms": 1, "app_version": "0.8.0", "model_version": "0.7.0", "backend": "cpu",
                "latency_ms": 80.0, "audio_s": 1.2, "transcript": "weather in lisbon", "confidence": 0.8,
            })
        })
        .collect();
    serde_json::json!({
        "schema_version": 2, "install_id": "install-durable", "install_key": hark_collector::store::install_key("s3cret"),
        "consent": "predictions", "consent_text_version": 1, "events": events,
    })
    .to_string()
}

/// "Accepted" means committed to disk: SIGKILL in the middle of a load of
/// concurrent batches, restart, and every event that got a 2xx is there, once.
#[test]
fn every_event_answered_2xx_survives_a_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().join("data"), dir.path().join("hark.toml"));
    std::fs::write(&config, "[limits]\nper_ip_per_minute = 0\nper_install_per_minute = 0\n").unwrap();
    let mut server = serve(&data, &config);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let senders: Vec<_> = (0..8)
        .map(|t| {
            let (addr, acked) = (server.addr.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let ids: Vec<String> = (0..20).map(|k| format!("t{t}-{i}-{k}")).collect();
                    match post_events(&addr, &batch_of(&ids)) {
                        Some(status) if (200..300).contains(&status) => acked.lock().unwrap().extend(ids),
                        Some(status) => panic!("a valid batch was answered {status}"),
                        None => return i,
                    }
                }
                unreachable!()
            })
        })
        .collect();
    // Kill it once a few hundred events were acknowledged (no timing guess).
    while acked.lock().unwrap().len() < 2000 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    server.child.kill().unwrap(); // SIGKILL: no shutdown, no flush.
    server.child.wait().unwrap();
    let sent: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
    let _ = server.log.take().unwrap().join();
    let acked = acked.lock().unwrap().clone();

    let mut again = serve(&data, &config);
    let export = format!("GET /v1/admin/export?since=0 HTTP/1.1\r\nAuthorization: Bearer {ADMIN}");
    let response = http(&again.addr, &export, "").unwrap();
    again.child.kill().unwrap();
    let _ = again.child.wait();
    assert!(response.starts_with("HTTP/1.1 200"), "{}", &response[..response.len().min(300)]);
    // The body is chunked: take each line that is a record.
    let stored: Vec<String> = response
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .filter_map(|r| r["event_id"].as_str().map(str::to_owned))
        .collect();
    let unique: std::collections::HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "an event stored twice");
    let missing: Vec<&String> = acked.iter().filter(|id| !unique.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(acked.len() >= 2000 && sent >= 100, "{} acknowledged, {sent} batches", acked.len());
}

#[path = "../../hark-collector/tests/support/postgres.rs"]
mod postgres;

/// Two `hark serve` processes over one PostgreSQL database (what a load
/// balancer in front of replicas sees): the same batch sent to both is
/// stored once; a deletion through one removes what the other stored.
#[test]
fn two_hark_serve_processes_share_one_postgres_database() {
    let pg = postgres::Postgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hark.toml");
    std::fs::write(&config, format!("[store]\npostgres = \"{}\"\n", pg.url)).unwrap();
    let mut a = serve(&dir.path().join("a"), &config);
    let mut b = serve(&dir.path().join("b"), &config);
    let ids: Vec<String> = (0..5).map(|i| format!("shared-{i}")).collect();
    let body = batch_of(&ids);
    let (ra, rb) = std::thread::scope(|s| {
        let ra = s.spawn(|| post_events(&a.addr, &body));
        let rb = s.spawn(|| post_events(&b.addr, &body));
        (ra.join().unwrap(), rb.join().unwrap())
    });
    assert_eq!((ra, rb), (Some(202), Some(202)));
    let exported = |addr: &str| {
        let response =
            http(addr, &format!("GET /v1/admin/export HTTP/1.1\r\nAuthorization: Bearer {ADMIN}"), "").unwrap();
        response.lines().filter(|l| l.contains("\"event_id\"")).count()
    };
    assert_eq!(exported(&a.addr), 5, "stored once although both replicas took it");
    let delete = "DELETE /v1/installs/install-durable HTTP/1.1\r\nAuthorization: Bearer s3cret";
    let response = http(&b.addr, delete, "").unwrap();
    assert!(response.starts_with("HTTP/1.1 200") && response.contains("\"deleted\":5"), "{response}");
    assert_eq!(exported(&a.addr), 0, "deleted through b, gone for a");
    for server in [&mut a, &mut b] {
        server.child.kill().unwrap();
        let _ = server.child.wait();
    }
}

/// `hark simulate` against a real `hark serve`: every event stored once,
/// recordings only from the installs that consented to them, a correction
/// only where the model misheard, and the feature summary on every event.
#[test]
fn simulated_users_send_consented_telemetry_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Serve { mut child, addr, log } = start(&[data.as_os_str()]);
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hark"))
            .args(["simulate", "--events", "8", "--per-install", "2", "--recordings", "0.5"])
            .args(extra)
            .output()
            .unwrap()
    };
    let sent = run(&["--collector", &format!("http://{addr}")]);
    let bad_share = run(&["--collector", &format!("http://{addr}"), "--car", "1.5"]);
    let https = run(&["--collector", "https://collector.example"]);
    child.kill().unwrap();
    let _ = child.wait();
    let log = log.unwrap().join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "{stderr}\n{log}");
    assert!(String::from_utf8_lossy(&sent.stdout).contains("sent 8 events from 4 installs"));

    let db = rusqlite::Connection::open(data.join("collector.sqlite3")).unwrap();
    let rows: Vec<(String, String, Option<String>, String, bool, bool)> = db
        .prepare("SELECT install_id, prediction, correction, consent, audio_file IS NOT NULL, summary IS NOT NULL FROM events")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 8, "{rows:?}");
    let installs: std::collections::BTreeSet<&String> = rows.iter().map(|r| &r.0).collect();
    assert_eq!(installs.len(), 4);
    for (_, prediction, correction, consent, audio, summary) in &rows {
        assert!(summary, "every event carries the feature summary");
        assert_eq!(*audio, consent == "recordings", "audio only under the recordings consent");
        assert_ne!(correction.as_deref(), Some(prediction.as_str()), "a correction is only made to a wrong transcript");
    }
    assert_eq!(rows.iter().filter(|r| r.4).count(), 4, "half the installs share recordings");

    assert!(!bad_share.status.success());
    assert!(String::from_utf8_lossy(&bad_share.stderr).contains("--car is a share between 0 and 1"));
    assert!(!https.status.success());
    assert!(String::from_utf8_lossy(&https.stderr).contains("http://"));
}
