//! `GET /api/cluster` (admin): the instances, their heartbeats, and which
//! camera each holds, as the database has them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::{ApiError, ApiState, Caller};
use crate::base::time::format_rfc3339;

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
    }))
}
