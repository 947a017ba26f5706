//! hark's one server process: the collector API for opt-in prediction logs,
//! plus static hosting of the built web app and `web/models/`.
//!
//! Only this crate knows HTTP on the server side. `POST /v1/events` takes
//! telemetry batches of schema 1 ([`hark_telemetry::Batch`], refused whole
//! on any fault, and without consent) and schema 2
//! ([`hark_telemetry::v2::Batch`], judged event by event: the response lists
//! each rejected event's index and reason, the rest are stored), and answers
//! once they are committed ([`store`] says what that guarantees; SQLite by default, PostgreSQL for several replicas).
//! `DELETE /v1/installs/{id}` removes an install's data for whoever holds its
//! secret; `/v1/admin/*` (stats, the JSONL export, recordings) is for the
//! operator's token; `/healthz` and `/metrics` for monitoring. Limits,
//! CORS origins, retention and the admin token come from [`Settings`].
//! Entry points: [`Config`], [`serve_on`] (`hark serve` calls it).

pub mod access_log;
mod error;
pub mod limits;
pub mod metrics;
pub mod settings;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use hark_telemetry::v2::{self, Upload};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::access_log::AccessLog;
pub use crate::error::ApiError;
use crate::limits::{RateLimits, Scope};
use crate::metrics::Metrics;
pub use crate::settings::Settings;
use crate::store::{Insert, PostgresStore, SqliteStore, Store, StoreError};

/// Where the server finds its files and keeps its data, and how it runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Built web app (trunk's `dist/`); `None` serves the API only.
    pub site: Option<PathBuf>,
    /// Published models (`web/models/`), served under `/models/`.
    pub models: Option<PathBuf>,
    /// The data folder: the event database and the recordings.
    pub data: PathBuf,
    pub settings: Settings,
}

#[derive(Clone)]
struct AppState {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    limits: Arc<RateLimits>,
    settings: Arc<Settings>,
    /// What the monitoring page reads: the store (the SQLite data folder or
    /// the PostgreSQL URL) and the published models (their profiles).
    monitored: Arc<(String, Option<PathBuf>)>,
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
    #[error("cannot open the access log {}: {source}; check `[log] access` in the settings", .path.display())]
    AccessLog { path: PathBuf, source: std::io::Error },
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The whole HTTP surface: `/v1/*`, `/healthz`, `/metrics`, `/models/*`, the app.
fn router(config: &Config, state: AppState, access: Option<Arc<AccessLog>>) -> Router {
    let limits = &state.settings.limits;
    let track = axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track);
    let clients = Router::new()
        .route("/events", post(ingest))
        .route("/installs/{id}", delete(delete_install))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limit_address))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let admin = Router::new()
        .route("/admin/stats", get(admin_stats))
        .route("/admin/export", get(admin_export))
        .route("/admin/audio/{event_id}", get(admin_audio))
        .route("/admin/monitor", get(admin_monitor));
    let mut v1 = clients.merge(admin).fallback(api_not_found).route_layer(track.clone()).with_state(state.clone());
    if !state.settings.cors.origins.is_empty() {
        let origins = state.settings.cors.origins.iter().filter_map(|o| HeaderValue::from_str(o).ok());
        v1 = v1.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                .max_age(Duration::from_secs(3600)),
        );
    }
    let ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route_layer(track)
        .with_state(state);
    let mut app = Router::new().nest("/v1", v1).merge(ops);
    if let Some(models) = &config.models {
        app = app.nest_service("/models", ServeDir::new(models));
    }
    if let Some(site) = &config.site {
        // Single-page app: unknown paths get index.html.
        let index = ServeFile::new(site.join("index.html"));
        app = app.fallback_service(ServeDir::new(site).fallback(index));
    }
    // Everything revalidates: model files are named by version, app assets by
    // hash, and the manifest and service worker must never be stale.
    app = app.layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    if let Some(log) = access {
        app = app.layer(axum::middleware::from_fn_with_state(log, access_log::record));
    }
    app.layer(TraceLayer::new_for_http())
}

/// A listener on `addr` (port 0: any free port; ask it for its address).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })
}

/// Serves on an already bound listener until `shutdown` resolves, then
/// finishes the requests in flight, lets the store commit what it was
/// given and checkpoints it. A site folder without `index.html` is refused
/// before anything is served. Retention is applied at start and every
/// `retention.sweep_minutes`.
pub async fn serve_on(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if let Some(site) = config.site.as_ref().filter(|d| !d.join("index.html").is_file()) {
        return Err(ServeError::NoSite(site.clone()));
    }
    let store: Arc<dyn Store> = match &config.settings.store.postgres {
        Some(url) => Arc::new(PostgresStore::connect(url).await?),
        None => {
            let data = config.data.clone();
            Arc::new(tokio::task::spawn_blocking(move || SqliteStore::open(&data)).await.map_err(io_error)??)
        }
    };
    let monitored = config.settings.store.postgres.clone().unwrap_or_else(|| config.data.display().to_string());
    let state = AppState {
        store: store.clone(),
        metrics: Arc::new(Metrics::new()),
        limits: Arc::new(RateLimits::new(&config.settings.limits)),
        settings: Arc::new(config.settings.clone()),
        monitored: Arc::new((monitored, config.models.clone())),
    };
    let access = match &config.settings.log.access {
        Some(path) => Some(Arc::new(
            AccessLog::open(path).map_err(|source| ServeError::AccessLog { path: path.clone(), source })?,
        )),
        None => None,
    };
    let sweeper = tokio::spawn(sweep_forever(state.clone()));
    let app = router(&config, state, access);
    tracing::info!(addr = %listener.local_addr()?, data = %config.data.display(), "hark is serving");
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    store.close().await;
    tracing::info!("hark stopped; the event store is flushed");
    Ok(served?)
}

fn io_error(e: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(e)
}

/// Resolves at Ctrl-C or SIGTERM: what `hark serve` stops on.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Applies the retention limits now and every `sweep_minutes`.
async fn sweep_forever(state: AppState) {
    let r = state.settings.retention.clone();
    let mut every = tokio::time::interval(Duration::from_secs(r.sweep_minutes as u64 * 60));
    loop {
        every.tick().await;
        match state.store.sweep(store::now_ms(), r.events_days, r.audio_days).await {
            Ok(swept) if swept != store::Swept::default() => {
                tracing::info!(events = swept.events, recordings = swept.recordings, "retention applied")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention could not be applied; trying again at the next sweep"),
        }
        state.limits.forget_idle();
    }
}

/// The per-address limit, before a client route runs.
async fn limit_address(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
    let address = state.limits.client(peer, request.headers());
    if let Err(wait) = state.limits.check_address(address) {
        state.metrics.rate_limited(Scope::Address);
        return ApiError::RateLimited { scope: Scope::Address, wait }.into_response();
    }
    next.run(request).await
}

/// `GET /healthz`: 200 when the store answers, 503 when it does not.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.count().await {
        Ok(_) => Json(json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "telemetry_schemas": v2::SUPPORTED_SCHEMAS,
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "the event store does not answer" })))
                .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics_text(State(state): State<AppState>) -> Response {
    state.metrics.set_queue_depth(state.store.queued());
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], state.metrics.render()).into_response()
}

/// A batch of either schema. Schema 1 is stored whole or refused whole;
/// schema 2 stores every event that passes its checks and names the others.
/// The answer comes after the store's transaction committed.
async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")) {
        return Err(ApiError::ContentType(content_type.to_owned()));
    }
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge { limit: state.settings.limits.max_body_bytes },
        _ => ApiError::Body(e.body_text()),
    })?;
    let upload = v2::parse(&body).map_err(ApiError::NotABatch)?;
    let install = match &upload {
        Upload::V1(b) => &b.install_id,
        Upload::V2(b) => &b.install_id,
    };
    if let Err(wait) = state.limits.check_install(install) {
        state.metrics.rate_limited(Scope::Install);
        return Err(ApiError::RateLimited { scope: Scope::Install, wait });
    }
    let (insert, rejected) = match upload {
        Upload::V1(batch) => {
            batch.validate().map_err(ApiError::Invalid)?;
            (Insert::v1(&batch), Vec::new())
        }
        Upload::V2(mut batch) => {
            let rejected = batch.keep_valid().map_err(ApiError::Invalid)?;
            (Insert::v2(&batch)?, rejected)
        }
    };
    let outcome = state.store_result(state.store.insert(insert).await)?;
    state.metrics.events(outcome.inserted, outcome.duplicates, &rejected);
    let body = json!({ "accepted": outcome.inserted, "duplicates": outcome.duplicates, "rejected": rejected });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

impl AppState {
    /// A store answer; a server-side failure is counted for `/metrics`.
    fn store_result<T>(&self, result: Result<T, StoreError>) -> Result<T, ApiError> {
        let result = result.map_err(ApiError::Store);
        if result.as_ref().is_err_and(|e| e.status().is_server_error()) {
            self.metrics.store_error();
        }
        result
    }

    /// Refuses a request without the configured admin token.
    fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.settings.admin.token else { return Err(ApiError::AdminOff) };
        let given = bearer(headers).ok_or(ApiError::NoToken)?;
        // Compared as digests: the time taken says nothing about the token.
        if store::install_key(given) == store::install_key(token) { Ok(()) } else { Err(ApiError::WrongToken) }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|s| !s.is_empty())
}

/// `DELETE /v1/installs/{id}` with `Authorization: Bearer SECRET`: removes
/// every event of that install, its recordings and its key, when the
/// secret is its own.
async fn delete_install(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let secret = bearer(&headers).ok_or(ApiError::NoSecret)?;
    let deleted = state.store_result(state.store.delete_install(&id, secret).await)?;
    tracing::info!(install = %id, events = deleted, "an install deleted its data");
    Ok(Json(json!({ "deleted": deleted })))
}

/// `GET /v1/admin/stats`.
async fn admin_stats(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<store::Stats>, ApiError> {
    state.admin(&headers)?;
    Ok(Json(state.store_result(state.store.stats().await)?))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// Events received at or after this time, milliseconds since the epoch.
    #[serde(default)]
    since: u64,
}

/// Rows per read of the export: bounds the memory of one export.
const EXPORT_PAGE: usize = 500;

/// `GET /v1/admin/export?since=MS`: every event received since then, one
/// JSON object ([`hark_telemetry::export::Record`]) per line, in order of
/// arrival, streamed page by page.
async fn admin_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    state.admin(&headers)?;
    let Query(query) = query.map_err(|e| ApiError::BadQuery(format!("{}; use ?since=MILLISECONDS", e.body_text())))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = state.store.clone();
    tokio::spawn(async move {
        let mut after = None;
        loop {
            let page = match store.export_page(query.since, after.as_ref(), EXPORT_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "the export stopped");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            after = Some((last.received_ms, last.event_id.clone()));
            let mut lines = Vec::new();
            for record in &page {
                let _ = serde_json::to_writer(&mut lines, record);
                lines.push(b'\n');
            }
            if tx.send(Ok(Bytes::from(lines))).await.is_err() || page.len() < EXPORT_PAGE {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|item| (item, rx)) });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorQuery {
    since: Option<i64>,
    until: Option<i64>,
    /// The model version [default: the published current model's].
    model: Option<String>,
    /// `json` for the summary instead of the dashboard.
    format: Option<String>,
}

/// `GET /v1/admin/monitor?since=MS&until=MS&model=VERSION[&format=json]`:
/// `hark monitor`'s dashboard (or its JSON summary) over this server's own
/// store, against the model's reference profile in the models folder.
async fn admin_monitor(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<MonitorQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    state.admin(&headers)?;
    let Query(query) = query.map_err(|e| {
        ApiError::BadQuery(format!("{}; use ?since=MS&until=MS&model=VERSION&format=json", e.body_text()))
    })?;
    let (store, models) = (state.monitored.0.clone(), state.monitored.1.clone());
    let models =
        models.ok_or_else(|| ApiError::Monitor("this server has no models folder, so no reference profile".into()))?;
    let version = match query.model.clone() {
        Some(v) => v,
        None => current_model(&models)?,
    };
    let json = query.format.as_deref() == Some("json");
    // The monitor's store clients block (and PostgreSQL's runs its own
    // runtime): a thread of its own, not the server's.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let run = || -> Result<hark_monitor::Report, hark_monitor::MonitorError> {
            let profile = hark_monitor::ReferenceProfile::load(&models.join(format!("profile-{version}.json")))?;
            let source = hark_monitor::store::open(&store)?;
            let spec =
                hark_monitor::WindowSpec { since_ms: query.since, until_ms: query.until, model_version: Some(version) };
            hark_monitor::monitor(source.as_ref(), &profile, &spec)
        };
        let _ = tx.send(run());
    });
    let report = rx.await.map_err(|_| ApiError::Monitor("the monitor stopped".into()))?.map_err(|e| match e {
        hark_monitor::MonitorError::Store { .. } => {
            tracing::error!(error = %e, "the monitoring page could not read the store");
            ApiError::Monitor("the store could not be read; the server's log says why".into())
        }
        e => ApiError::Monitor(e.to_string()),
    })?;
    Ok(if json {
        ([(header::CONTENT_TYPE, "application/json")], report.to_json()).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], report.to_html()).into_response()
    })
}

/// The published current model's version.
fn current_model(models: &std::path::Path) -> Result<String, ApiError> {
    let text = std::fs::read_to_string(models.join("manifest.json"))
        .map_err(|e| ApiError::Monitor(format!("the models folder has no readable manifest.json ({e})")))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ApiError::Monitor(format!("manifest.json is not JSON ({e})")))?;
    manifest["models"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|e| e["channel"] == "stable" || e["channel"].is_null()))
        .and_then(|e| e["version"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::Monitor("the manifest lists no model; pass ?model=VERSION".into()))
}

/// `GET /v1/admin/audio/{event_id}`: the event's recording, a 16 kHz WAV.
async fn admin_audio(
    State(state): State<AppState>,
    Path(event_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.admin(&headers)?;
    let wav = state.store_result(state.store.audio_wav(&event_id).await)?.ok_or(ApiError::NoRecording(event_id))?;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], wav).into_response())
}

async fn api_not_found() -> ApiError {
    ApiError::NotFound
}
