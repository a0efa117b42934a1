//! `GET /api/cluster` (admin): the instances, their heartbeats, and which
//! camera each holds, as the database has them; and a camera's live frame
//! fetched from the instance that holds it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::{ApiError, ApiState, Caller};
use crate::base::time::format_rfc3339;
use crate::store::UnwatchedCause;

#[derive(Serialize)]
pub struct MemberJson {
    id: String,
    api_url: Option<String>,
    started: String,
    heartbeat: String,
    /// Heartbeat within `lease_s`.
    live: bool,
    /// The cameras whose unexpired lease it holds.
    cameras: Vec<String>,
}

#[derive(Serialize)]
pub struct LeaseJson {
    camera: String,
    owner: String,
    epoch: i64,
    expires: String,
    taken: String,
    live: bool,
}

#[derive(Serialize)]
pub struct ClusterJson {
    /// This instance.
    instance: String,
    lease_s: f64,
    heartbeat_s: f64,
    members: Vec<MemberJson>,
    leases: Vec<LeaseJson>,
    /// Configured cameras no instance holds right now.
    unheld: Vec<String>,
    /// The newest spans (up to 100) in which a camera was judged by no
    /// instance: between a holder's release or last renewal and the next
    /// holder's lease. Frames captured then were not judged.
    unwatched: Vec<UnwatchedJson>,
}

#[derive(Serialize)]
pub struct UnwatchedJson {
    camera: String,
    previous_owner: String,
    owner: String,
    cause: UnwatchedCause,
    from: String,
    to: String,
    seconds: f64,
}

pub async fn status(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<ClusterJson>, ApiError> {
    caller.require("getCluster")?;
    let config = state.config.current();
    let Some(c) = &config.cluster else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "cluster mode is off ([cluster] enabled = false)",
        ));
    };
    let now = state.store.db_now().await?;
    let lease_ms = c.lease.as_millis() as i64;
    let leases = state.store.leases().await?;
    let members = state
        .store
        .members()
        .await?
        .into_iter()
        .map(|m| MemberJson {
            cameras: leases
                .iter()
                .filter(|l| l.owner == m.id && l.expires_ms >= now)
                .map(|l| l.camera.clone())
                .collect(),
            live: m.heartbeat_ms >= now - lease_ms,
            started: format_rfc3339(m.started_ms),
            heartbeat: format_rfc3339(m.heartbeat_ms),
            api_url: m.api_url,
            id: m.id,
        })
        .collect();
    let unheld = config
        .cameras
        .iter()
        .filter(|cam| {
            !leases
                .iter()
                .any(|l| l.camera == cam.id && l.expires_ms >= now)
        })
        .map(|cam| cam.id.clone())
        .collect();
    Ok(Json(ClusterJson {
        instance: c.instance.clone(),
        lease_s: c.lease.as_secs_f64(),
        heartbeat_s: c.heartbeat.as_secs_f64(),
        members,
        leases: leases
            .into_iter()
            .map(|l| LeaseJson {
                live: l.expires_ms >= now,
                expires: format_rfc3339(l.expires_ms),
                taken: format_rfc3339(l.taken_ms),
                camera: l.camera,
                owner: l.owner,
                epoch: l.epoch,
            })
            .collect(),
        unheld,
        unwatched: state
            .store
            .unwatched(100)
            .await?
            .into_iter()
            .map(|u| UnwatchedJson {
                seconds: (u.to_ms - u.from_ms) as f64 / 1000.0,
                from: format_rfc3339(u.from_ms),
                to: format_rfc3339(u.to_ms),
                camera: u.camera,
                previous_owner: u.previous_owner,
                owner: u.owner,
                cause: u.cause,
            })
            .collect(),
    }))
}

/// Cluster mode: camera → (holder, its API address), live leases only.
pub(super) async fn holders(
    state: &ApiState,
    config: &crate::config::Config,
) -> Result<std::collections::HashMap<String, (String, Option<String>)>, ApiError> {
    if config.cluster.is_none() {
        return Ok(Default::default());
    }
    Ok(state
        .store
        .live_holders()
        .await?
        .into_iter()
        .map(|h| (h.camera, (h.owner, h.api_url)))
        .collect())
}

/// Marks a frame request one instance passes to another, so it is never
/// passed on again.
const FORWARDED: &str = "x-firelane-forwarded";

/// Who serves a camera's latest frame.
pub(super) enum FrameSource {
    /// Another instance holds the camera: its frame, as it answered.
    Holder(axum::response::Response),
    /// This instance holds it (cluster mode): the frame kept here, named
    /// as this instance's.
    Here(String),
    /// Not cluster mode, a forwarded request, or no live holder: the frame
    /// kept here, if any.
    Local,
}

/// Cluster mode: camera `id`'s latest frame from the instance holding it,
/// asked with the caller's own token (tokens live in the shared database).
pub(super) async fn frame_from_holder(
    state: &ApiState,
    id: &str,
    headers: &axum::http::HeaderMap,
) -> Result<FrameSource, ApiError> {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let config = state.config.current();
    let Some(cluster) = &config.cluster else {
        return Ok(FrameSource::Local);
    };
    if headers.contains_key(FORWARDED) {
        return Ok(FrameSource::Local);
    }
    let Some((holder, url)) = holders(state, &config).await?.remove(id) else {
        return Ok(FrameSource::Local);
    };
    if holder == cluster.instance {
        return Ok(FrameSource::Here(holder));
    }
    let Some(url) = url else {
        return Err(ApiError::not_found(format!(
            "camera {id:?} is held by instance {holder}, which advertises no HTTP API to fetch its frame from ([http] off and FIRELANE_ADVERTISE_URL unset)"
        )));
    };
    let gateway = |why: String| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "camera {id:?} is held by instance {holder} ({url}), which did not give its frame: {why}"
            ),
        )
    };
    let mut target = url::Url::parse(&url).map_err(|e| gateway(e.to_string()))?;
    target
        .path_segments_mut()
        .map_err(|()| gateway("not a base URL".into()))?
        .pop_if_empty()
        .extend(["api", "cameras", id, "latest.jpg"]);
    let mut req = crate::alerts::webhook::client()
        .get(target)
        .header(FORWARDED, "1")
        .timeout(std::time::Duration::from_secs(5));
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        req = req.header(header::AUTHORIZATION, auth.clone());
    }
    let res = req.send().await.map_err(|e| gateway(e.to_string()))?;
    let status = res.status();
    // A frame kept here predates the handover: not the live picture.
    if status == StatusCode::NOT_FOUND {
        return Err(ApiError::not_found(format!(
            "camera {id:?} is held by instance {holder}, which has no frame from it yet"
        )));
    }
    if !status.is_success() {
        return Err(gateway(format!("HTTP {status}")));
    }
    let captured = res.headers().get("x-captured-at").cloned();
    let body = res.bytes().await.map_err(|e| gateway(e.to_string()))?;
    let mut out = (StatusCode::OK, body.to_vec()).into_response();
    let h = out.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Some(v) = captured {
        h.insert("x-captured-at", v);
    }
    if let Ok(v) = HeaderValue::from_str(&holder) {
        h.insert("x-firelane-holder", v);
    }
    Ok(FrameSource::Holder(out))
}
