//! hark's one server process: the collector API for opt-in prediction logs,
//! plus static hosting of the built web app and `web/models/`.
//!
//! Only this crate knows HTTP on the server side. It accepts telemetry
//! batches of schema 1 ([`hark_telemetry::Batch`], refused whole on any
//! fault, and without consent) and schema 2 ([`hark_telemetry::v2::Batch`],
//! judged event by event: the response lists each rejected event's index
//! and reason, the rest are stored) at `POST /v1/events` (and the older
//! `POST /api/events`), stores them in SQLite ([`store::EventStore`]), and
//! serves files so that `cargo xtask up` is one process on one port. Entry
//! points: [`Config`], [`router`], [`serve`].

pub mod metrics;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use hark_telemetry::v2::{self, ParseError, Upload};
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::metrics::Metrics;
use crate::store::{EventStore, StoreError};

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
    metrics: Arc<Metrics>,
}

/// Why the server could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}; is another hark (or trunk serve) using the port? pick another one")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{} has no index.html; build the web app first (`cargo xtask build`)", .0.display())]
    NoSite(PathBuf),
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a request failed. Each variant is one status code and one message for
/// the client ([`IntoResponse`]); a server-side failure answers a generic 500
/// and logs its cause instead of showing it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotABatch(ParseError),
    #[error("{0}")]
    Invalid(hark_telemetry::EventError),
    #[error("no such collector endpoint; see /api/health")]
    NotFound,
    #[error("a deletion needs the install's secret: send `Authorization: Bearer SECRET`")]
    NoSecret,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("a store task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotABatch(ParseError::NotABatch(_)) => StatusCode::BAD_REQUEST,
            ApiError::NotABatch(ParseError::UnsupportedSchema { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Invalid(hark_telemetry::EventError::NoConsent) => StatusCode::FORBIDDEN,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Store(StoreError::WrongKey) | ApiError::NoSecret => StatusCode::FORBIDDEN,
            ApiError::Store(StoreError::UnknownInstall) => StatusCode::NOT_FOUND,
            ApiError::Store(_) | ApiError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "request failed on the server");
            "the server could not read or store events; nothing from this request was kept, try again later".to_owned()
        } else {
            self.to_string()
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// The whole HTTP surface: `/api/*`, `/models/*`, and the app.
pub fn router(config: &Config) -> Result<Router, StoreError> {
    let state = AppState { store: Arc::new(EventStore::open(&config.db)?), metrics: Arc::new(Metrics::new()) };
    let track = axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track);
    let api = Router::new()
        .route("/health", get(health))
        .route("/events", post(ingest))
        .route("/stats", get(stats))
        .fallback(api_not_found)
        .route_layer(track.clone())
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let v1 = Router::new()
        .route("/events", post(ingest))
        .route("/installs/{id}", delete(delete_install))
        .route_layer(track.clone())
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route_layer(track)
        .with_state(state);
    let mut app = Router::new().nest("/api", api).nest("/v1", v1).merge(ops);
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
pub async fn serve(config: Config, addr: SocketAddr) -> Result<(), ServeError> {
    serve_on(config, bind(addr).await?, shutdown_signal()).await
}

/// A listener on `addr` (port 0: any free port; ask it for its address).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })
}

/// Serves on an already bound listener until `shutdown` resolves (tests bind
/// port 0 and pass their own shutdown). A site folder without `index.html`
/// is refused before anything is served.
pub async fn serve_on(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if let Some(dist) = config.dist.as_ref().filter(|d| !d.join("index.html").is_file()) {
        return Err(ServeError::NoSite(dist.clone()));
    }
    let app = router(&config)?;
    tracing::info!(addr = %listener.local_addr()?, "hark is serving");
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// Resolves at Ctrl-C: what `serve` stops on.
pub async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

impl AppState {
    /// Runs `work` on the store on tokio's blocking pool (SQLite blocks);
    /// a server-side failure is counted for `/metrics`.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&EventStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        let result = match tokio::task::spawn_blocking(move || work(&store)).await {
            Ok(r) => r.map_err(ApiError::Store),
            Err(e) => Err(ApiError::Task(e)),
        };
        if result.as_ref().is_err_and(|e| e.status().is_server_error()) {
            self.metrics.store_error();
        }
        result
    }
}

/// `GET /healthz`: 200 when the store answers, 503 when it does not.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.blocking(EventStore::count).await {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "the event store does not answer" })))
                .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics_text(State(state): State<AppState>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], state.metrics.render()).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "service": "hark-collector",
        "version": env!("CARGO_PKG_VERSION"),
        "telemetry_schema": hark_telemetry::SCHEMA_VERSION,
        "telemetry_schemas": v2::SUPPORTED_SCHEMAS,
    }))
}

async fn stats(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let events = state.blocking(EventStore::count).await?;
    Ok(Json(json!({ "events": events })))
}

/// A batch of either schema. Schema 1 is stored whole or refused whole;
/// schema 2 stores every event that passes its checks and names the others.
/// The answer comes after the store's transaction committed.
async fn ingest(State(state): State<AppState>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let (outcome, rejected) = match v2::parse(&body).map_err(ApiError::NotABatch)? {
        Upload::V1(batch) => {
            batch.validate().map_err(ApiError::Invalid)?;
            (state.blocking(move |store| store.insert(&batch)).await?, Vec::new())
        }
        Upload::V2(mut batch) => {
            let rejected = batch.keep_valid().map_err(ApiError::Invalid)?;
            (state.blocking(move |store| store.insert_v2(&batch)).await?, rejected)
        }
    };
    state.metrics.events(outcome.inserted, outcome.duplicates, &rejected);
    let body = json!({ "accepted": outcome.inserted, "duplicates": outcome.duplicates, "rejected": rejected });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// `DELETE /v1/installs/{id}` with `Authorization: Bearer SECRET`: removes
/// every event of that install and its key, when the secret is its own.
async fn delete_install(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|s| !s.is_empty())
        .ok_or(ApiError::NoSecret)?
        .to_owned();
    let deleted = state.blocking(move |store| store.delete_install(&id, &secret)).await?;
    Ok(Json(json!({ "deleted": deleted })))
}

async fn api_not_found() -> ApiError {
    ApiError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: ApiError) -> (StatusCode, String) {
        let response = e.into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (status, json["error"].as_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn client_errors_say_what_was_wrong_and_server_errors_keep_their_cause_in_the_log() {
        let (status, message) = answer(ApiError::Invalid(hark_telemetry::EventError::NoConsent)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(message.contains("consent"), "{message}");
        let (status, message) = answer(ApiError::Invalid(hark_telemetry::EventError::Empty)).await;
        assert_eq!((status, message.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "batch holds no events"));
        let (status, _) = answer(ApiError::NotFound).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let cause = StoreError::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        ));
        let (status, message) = answer(ApiError::Store(cause)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!message.contains("disk is full"), "the SQLite message must not reach the client: {message}");
        assert!(message.contains("nothing from this request was kept"), "{message}");
    }
}
