//! The access log (`[log] access = "PATH"`): one JSON line per request —
//! `{"ms":…,"method":"POST","path":"/v1/events","status":202,"duration_ms":…}`
//! — appended as each response is sent. It records what reached the
//! server and nothing about who sent it (no address, no header, no body),
//! so an operator can keep it; the end-to-end tests read it to prove that
//! a browser without consent sends no request at all.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

/// The open log file; lines are written whole under a lock.
pub struct AccessLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AccessLog {
    /// Opens (or creates) `path` for appending, with its folder.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { path: path.to_owned(), file: Mutex::new(file) })
    }

    fn write(&self, line: &serde_json::Value) {
        let mut text = line.to_string();
        text.push('\n');
        let written = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "the access log could not be written");
        }
    }
}

/// The middleware: runs the request, then logs it.
pub async fn record(State(log): State<Arc<AccessLog>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    log.write(&json!({
        "ms": crate::store::now_ms(),
        "method": method,
        "path": path,
        "status": response.status().as_u16(),
        "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
    }));
    response
}
