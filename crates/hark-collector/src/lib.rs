//! hark's one server process: the collector API for opt-in prediction logs,
//! plus static hosting of the built web app and `web/models/`.
//!
//! Only this crate knows HTTP on the server side. It accepts
//! [`hark_telemetry::Batch`]es (refusing any without consent), stores them in
//! SQLite ([`store::EventStore`]), and serves files so that `cargo xtask up`
//! is one process on one port. Entry points: [`Config`], [`router`], [`serve`].

pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use hark_telemetry::Batch;
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::store::EventStore;

/// Largest request body accepted (a full batch with features fits).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Where the server finds its files and keeps its data.
#[derive(Debug, Clone)]
pub struct Config {
    /// Built web app (trunk's `dist/`); `None` serves the API only.
    pub dist: Option<PathBuf>,
    /// Published models (`web/models/`), served under `/models/`.
    pub models: Option<PathBuf>,
    /// SQLite database of received events.
    pub db: PathBuf,
}

#[derive(Clone)]
struct AppState {
    store: Arc<EventStore>,
}

/// The whole HTTP surface: `/api/*`, `/models/*`, and the app.
pub fn router(config: &Config) -> anyhow::Result<Router> {
    let store = Arc::new(EventStore::open(&config.db)?);
    let api = Router::new()
        .route("/health", get(health))
        .route("/events", post(ingest))
        .route("/stats", get(stats))
        .fallback(api_not_found)
        .with_state(AppState { store })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

    let mut app = Router::new().nest("/api", api);
    if let Some(models) = &config.models {
        app = app.nest_service("/models", ServeDir::new(models));
    }
    if let Some(dist) = &config.dist {
        // Single-page app: unknown paths get index.html.
        let index = ServeFile::new(dist.join("index.html"));
        app = app.fallback_service(ServeDir::new(dist).fallback(index));
    }
    // Everything revalidates: model files are named by version, app assets by
    // hash, and the manifest and service worker must never be stale.
    Ok(app
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .layer(TraceLayer::new_for_http()))
}

/// Binds `addr` and serves until Ctrl-C. Returns once the server stopped.
pub async fn serve(config: Config, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr}: {e}; is another hark (or trunk serve) using the port? pick another with --port"
        )
    })?;
    serve_on(config, listener, shutdown_signal()).await
}

/// Serves on an already bound listener until `shutdown` resolves (tests bind
/// port 0 and pass their own shutdown).
pub async fn serve_on(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(&config)?;
    tracing::info!(addr = %listener.local_addr()?, "hark is serving");
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "service": "hark-collector",
        "version": env!("CARGO_PKG_VERSION"),
        "telemetry_schema": hark_telemetry::SCHEMA_VERSION,
    }))
}

async fn stats(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.count()).await {
        Ok(Ok(events)) => Json(json!({ "events": events })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the event store failed: {e}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("stats task failed: {e}")),
    }
}

async fn ingest(State(state): State<AppState>, body: Bytes) -> Response {
    let batch: Batch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body is not a telemetry batch: {e}")),
    };
    if let Err(e) = batch.validate() {
        let status = if matches!(e, hark_telemetry::EventError::NoConsent) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        return error(status, e.to_string());
    }
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.insert(&batch)).await {
        Ok(Ok(outcome)) => {
            (StatusCode::ACCEPTED, Json(json!({ "accepted": outcome.inserted, "duplicates": outcome.duplicates })))
                .into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "storing a batch failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, format!("storing the batch failed, nothing was kept: {e}"))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("ingest task failed: {e}")),
    }
}

async fn api_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such collector endpoint; see /api/health".into())
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
