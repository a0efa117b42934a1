//! The HTTP API and the officers' web page, served by the daemon (axum).
//!
//! Every `/api` route but the OpenAPI document needs a bearer token
//! ([`auth`]); errors are JSON `{"error", "message"}`. Nothing in a request
//! names a file: evidence is found through the database by hash.

pub mod auth;
mod cluster;
pub mod metrics;
mod violations;
mod web;
mod zones;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::evidence::EvidenceStore;
use crate::evidence::signing::SiteKey;
use crate::pipeline::LiveView;
use crate::reload::LiveConfig;
use crate::store::{Store, StoreError};
use auth::{AuthError, Caller, Role};

/// The OpenAPI 3.1 document served at `/api/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest request body taken (a review note is at most 2,000 characters).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub evidence: Arc<EvidenceStore>,
    pub site_key: Arc<SiteKey>,
    pub audit: Arc<AuditLog>,
    /// The running configuration, for the zone editor.
    pub config: Arc<LiveConfig>,
    /// Zone states and latest frames from the pipeline.
    pub live: Arc<RwLock<LiveView>>,
    /// Counters for `/metrics`, once the engine runs.
    pub metrics: Arc<std::sync::OnceLock<metrics::MetricsSources>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/app.css", get(web::style))
        .route("/editor.js", get(web::editor_script))
        .route("/healthz", get(health))
        .route("/api/openapi.json", get(openapi))
        .route("/api/me", get(me))
        .route("/metrics", get(metrics::metrics))
        .route("/api/violations", get(violations::list))
        .route("/api/violations/{id}", get(violations::detail))
        .route(
            "/api/violations/{id}/evidence/{kind}/{file}",
            get(violations::evidence_image),
        )
        .route("/api/violations/{id}/thumb.jpg", get(violations::thumbnail))
        .route("/api/violations/{id}/bundle.zip", get(violations::bundle))
        .route("/api/violations/{id}/review", post(violations::review))
        .route("/api/audit", get(violations::audit_list))
        .route("/api/cameras", get(zones::list_cameras))
        .route("/api/cluster", get(cluster::status))
        .route("/api/cameras/{id}/latest.jpg", get(zones::latest_frame))
        .route(
            "/api/zones/{id}",
            get(zones::get_zone)
                .put(zones::put_zone)
                .delete(zones::delete_zone),
        )
        .route("/api/config/history", get(zones::config_history))
        .route("/api/config/history/{id}", get(zones::config_version))
        .route(
            "/api/config/history/{id}/restore",
            post(zones::restore_version),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Binds `addr` and serves until `shutdown`. Returns the bound address (the
/// port may have been 0) once listening.
pub async fn serve(
    addr: &str,
    state: ApiState,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let app = router(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    tracing::info!(listen = %bound, "HTTP API and web page");
    Ok((bound, task))
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'",
        ),
    );
    res
}

/// An error answer: status plus `{"error": code, "message": reason}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// For 422: each problem, as `check-config` names it.
    pub problems: Vec<crate::config::Problem>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    problems: &'a [crate::config::Problem],
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            problems: Vec::new(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    fn code(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_config",
            StatusCode::CONFLICT => "conflict",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_client_error() => "bad_request",
            _ => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ErrorBody {
            error: self.code(),
            message: &self.message,
            problems: &self.problems,
        })
        .expect("error body serialises");
        let mut res = (self.status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "API: database error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "database error")
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Store(s) => s.into(),
            other => ApiError::new(StatusCode::UNAUTHORIZED, other.to_string()),
        }
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(auth::authenticate(&state.store, header).await?)
    }
}

impl Caller {
    /// 403 unless this caller's role may call `operation`.
    pub fn require(&self, operation: &str) -> Result<(), ApiError> {
        let allowed = auth::roles_of(operation);
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            let names: Vec<&str> = allowed.iter().map(|r| Role::as_str(*r)).collect();
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{operation} needs role {}; this token is {}",
                    names.join(" or "),
                    self.role
                ),
            ))
        }
    }
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn me(caller: Caller) -> Result<axum::Json<Caller>, ApiError> {
    caller.require("getMe")?;
    Ok(axum::Json(caller))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}
