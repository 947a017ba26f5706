//! [`ApiError`]: why a request failed, as one status and one message.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use hark_telemetry::EventError;
use hark_telemetry::v2::ParseError;
use serde_json::json;

use crate::limits::Scope;
use crate::store::StoreError;

/// Why a request failed. Each variant is one status code and one message for
/// the client ([`IntoResponse`]); a server-side failure answers a generic 500
/// and logs its cause instead of showing it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotABatch(ParseError),
    #[error("{0}")]
    Invalid(EventError),
    #[error("the request body is larger than this collector's limit of {limit} bytes; send fewer events per batch")]
    TooLarge { limit: usize },
    #[error("the request body could not be read: {0}")]
    Body(String),
    #[error("send the batch as JSON: `Content-Type: application/json`, not {0:?}")]
    ContentType(String),
    #[error("no such collector endpoint; the API is /v1/events, /v1/installs/{{id}}, /v1/admin/*, /healthz, /metrics")]
    NotFound,
    #[error("a deletion needs the install's secret: send `Authorization: Bearer SECRET`")]
    NoSecret,
    #[error("the admin API is off: start the server with an admin token (HARK_ADMIN_TOKEN or [admin] token)")]
    AdminOff,
    #[error("the admin API needs the admin token: send `Authorization: Bearer TOKEN`")]
    NoToken,
    #[error("the admin token is wrong")]
    WrongToken,
    #[error("{0}")]
    BadQuery(String),
    #[error("event {0} has no recording")]
    NoRecording(String),
    /// The monitoring page could not be made (no profile, an empty window…).
    #[error("{0}")]
    Monitor(String),
    #[error("too many requests from this {}; retry after {} s", .scope.as_str(), .wait.as_secs().max(1))]
    RateLimited { scope: Scope, wait: Duration },
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotABatch(ParseError::NotABatch(_)) | ApiError::Body(_) | ApiError::BadQuery(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::NotABatch(ParseError::UnsupportedSchema { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Invalid(EventError::NoConsent) => StatusCode::FORBIDDEN,
            ApiError::Invalid(EventError::TooMany(_)) | ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound | ApiError::AdminOff | ApiError::NoRecording(_) | ApiError::Monitor(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::NoToken | ApiError::WrongToken => StatusCode::UNAUTHORIZED,
            ApiError::Store(StoreError::WrongKey) | ApiError::NoSecret => StatusCode::FORBIDDEN,
            ApiError::Store(StoreError::UnknownInstall) => StatusCode::NOT_FOUND,
            ApiError::Store(StoreError::Closed) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        let retry_after = match &self {
            ApiError::RateLimited { wait, .. } => Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            ApiError::Store(StoreError::Closed) => Some(5),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
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
        let (status, message) = answer(ApiError::Invalid(EventError::NoConsent)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(message.contains("consent"), "{message}");
        let (status, message) = answer(ApiError::Invalid(EventError::Empty)).await;
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

    /// The statuses this server answers and what `hark_telemetry::delivery`
    /// tells a client to do with them agree: overload and shutdown are
    /// retried (after the `Retry-After` sent), every fault of the request
    /// is dropped, never resent.
    #[test]
    fn clients_retry_exactly_the_answers_that_can_succeed_later() {
        use hark_telemetry::delivery::{Verdict, verdict};
        let retried = [
            ApiError::RateLimited { scope: Scope::Address, wait: Duration::from_secs(3) },
            ApiError::Store(StoreError::Closed),
        ];
        for e in retried {
            let response = e.into_response();
            let retry_after = response.headers()[header::RETRY_AFTER].to_str().unwrap().to_owned();
            let v = verdict(Some(response.status().as_u16()), Some(&retry_after), 0, 0.5, 0);
            assert!(matches!(v, Verdict::RetryAfter(d) if d.as_secs() == retry_after.parse::<u64>().unwrap()), "{v:?}");
        }
        let dropped = [
            ApiError::Invalid(EventError::TooMany(101)),
            ApiError::Invalid(EventError::Empty),
            ApiError::TooLarge { limit: 1024 },
            ApiError::ContentType("text/plain".into()),
            ApiError::Body("cut".into()),
            ApiError::Invalid(EventError::NoConsent),
            ApiError::Store(StoreError::WrongKey),
        ];
        for e in dropped {
            let status = e.status().as_u16();
            assert_eq!(verdict(Some(status), None, 0, 0.5, 0), Verdict::Drop, "{status}");
        }
    }

    #[test]
    fn a_rate_limited_answer_says_when_to_come_back() {
        let response =
            ApiError::RateLimited { scope: Scope::Install, wait: Duration::from_millis(2500) }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }
}
