//! `hark serve`: the real server process on a free loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// `GET path` over a plain TCP connection: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_hark"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--models")
        .arg(&models)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok);
    let addr = lines
        .find_map(|l| l.strip_prefix("hark is serving on http://").map(|a| a.split(' ').next().unwrap().to_owned()))
        .expect("hark serve prints its address");
    // Keep reading its log, so that the server never writes into a closed pipe.
    let log = std::thread::spawn(move || lines.collect::<Vec<_>>().join("\n"));
    let (status, body) = get(&addr, "/healthz");
    let (manifest_status, manifest) = get(&addr, "/models/manifest.json");
    child.kill().unwrap();
    let _ = child.wait();
    let log = log.join().unwrap_or_default();
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
