//! The operators' endpoints: cameras with their latest frame and live zone
//! states, zone edits that rewrite the TOML file and apply without a
//! restart, and the configuration's version history.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::violations::path_param;
use super::{ApiError, ApiState};
use crate::api::auth::Caller;
use crate::base::time::{format_rfc3339, rfc3339};
use crate::config::{Config, ConfigError, ScheduleConfig, ZoneConfig, edit};
use crate::ingest::clocks::{ClockReport, SourceKind};
use crate::pipeline::ZoneLive;
use crate::reload::{Applied, ApplyError, ConfigStatus};

#[derive(Serialize)]
pub struct Effective {
    site: String,
    threshold: f64,
    grace_s: f64,
    clear_s: f64,
}

#[derive(Serialize)]
pub struct ZoneJson {
    id: String,
    camera: String,
    name: Option<String>,
    /// As configured (`None`: the only site).
    site: Option<String>,
    polygon: Vec<[f64; 2]>,
    threshold: Option<f64>,
    grace_s: Option<f64>,
    clear_s: Option<f64>,
    effective: Effective,
    sensors: Vec<String>,
    schedule: Option<ScheduleConfig>,
    /// A long zone's tiles on the camera's latest frame, each its four
    /// corners as `[x, y]` fractions, turned with a slanted strip (empty
    /// for a zone scored whole, or no frame yet).
    tiles: Vec<[[f64; 2]; 4]>,
    live: ZoneLive,
}

#[derive(Serialize)]
pub struct LatestJson {
    #[serde(with = "rfc3339")]
    captured_at: i64,
    width: u32,
    height: u32,
}

#[derive(Serialize)]
pub struct CameraJson {
    id: String,
    topic: String,
    latest: Option<LatestJson>,
    /// The threshold learned from the camera's presence sensors, if any.
    calibration: Option<crate::pipeline::CameraCalibration>,
    /// The camera's clock against arrival time, once it has sent a frame.
    clock: Option<ClockReport>,
    /// A pulled camera's snapshots: counts, the last error, the next try.
    snapshot: Option<crate::ingest::snapshot::PullReport>,
    /// Cluster mode: the instance that judges the camera (and has its
    /// live frame); null outside cluster mode or while no one holds it.
    holder: Option<HolderJson>,
    zones: Vec<ZoneJson>,
}

#[derive(Serialize)]
pub struct HolderJson {
    instance: String,
    api_url: Option<String>,
    /// This instance: the live frame is served here.
    here: bool,
}

#[derive(Serialize)]
pub struct SensorJson {
    id: String,
    zone: String,
    clock: Option<ClockReport>,
}

#[derive(Serialize)]
pub struct CamerasJson {
    cameras: Vec<CameraJson>,
    sensors: Vec<SensorJson>,
    config: ConfigStatus,
}

fn zone_json(state: &ApiState, config: &Config, id: &str) -> Option<ZoneJson> {
    let zone = config.zones.iter().find(|z| z.id == id)?;
    let raw = config.raw().zones.iter().find(|z| z.id == id)?;
    let live = state
        .live
        .read()
        .expect("live lock")
        .zones
        .get(id)
        .cloned()
        .unwrap_or(ZoneLive {
            state: "clear",
            score: None,
            tiles: Vec::new(),
            at: None,
            violation_id: None,
        });
    Some(ZoneJson {
        id: zone.id.clone(),
        camera: zone.camera.clone(),
        name: zone.name.clone(),
        site: raw.site.clone(),
        polygon: zone.polygon.points().to_vec(),
        threshold: raw.threshold,
        grace_s: raw.grace_s,
        clear_s: raw.clear_s,
        effective: Effective {
            site: zone.site.clone(),
            threshold: zone.params.threshold,
            grace_s: zone.params.grace_ms as f64 / 1000.0,
            clear_s: zone.params.clear_ms as f64 / 1000.0,
        },
        sensors: zone.sensors.clone(),
        schedule: raw.schedule.clone(),
        tiles: tiles_of(state, zone),
        live,
    })
}

/// The zone's tiles on its camera's latest frame, as corner fractions.
fn tiles_of(state: &ApiState, zone: &crate::config::Zone) -> Vec<[[f64; 2]; 4]> {
    let live = state.live.read().expect("live lock");
    let Some(f) = live.frames.get(&zone.camera) else {
        return Vec::new();
    };
    let (w, h) = (f64::from(f.width), f64::from(f.height));
    let tiles = zone.polygon.tiles(f.width, f.height);
    if tiles.len() < 2 {
        return Vec::new();
    }
    tiles
        .iter()
        .map(|t| t.corners().map(|(x, y)| [x / w, y / h]))
        .collect()
}

fn clock_of(state: &ApiState, kind: SourceKind, id: &str) -> Option<ClockReport> {
    state.metrics.get()?.ingest.clocks.report(kind, id)
}

pub async fn list_cameras(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<CamerasJson>, ApiError> {
    caller.require("listCameras")?;
    let config = state.config.current();
    let holders = super::cluster::holders(&state, &config).await?;
    let cameras = config
        .cameras
        .iter()
        .map(|c| {
            let latest = state
                .live
                .read()
                .expect("live lock")
                .frames
                .get(&c.id)
                .map(|f| LatestJson {
                    captured_at: f.captured_at,
                    width: f.width,
                    height: f.height,
                });
            let calibration = state
                .live
                .read()
                .expect("live lock")
                .calibration
                .get(&c.id)
                .copied();
            CameraJson {
                id: c.id.clone(),
                topic: c.topic.clone(),
                latest,
                calibration,
                clock: clock_of(&state, SourceKind::Camera, &c.id),
                snapshot: state
                    .metrics
                    .get()
                    .and_then(|m| m.ingest.pulls.report(&c.id)),
                holder: holders.get(&c.id).map(|(instance, api_url)| HolderJson {
                    here: config
                        .cluster
                        .as_ref()
                        .is_some_and(|me| &me.instance == instance),
                    instance: instance.clone(),
                    api_url: api_url.clone(),
                }),
                zones: config
                    .zones_of(&c.id)
                    .filter_map(|z| zone_json(&state, &config, &z.id))
                    .collect(),
            }
        })
        .collect();
    Ok(Json(CamerasJson {
        cameras,
        sensors: config
            .sensors
            .iter()
            .map(|s| SensorJson {
                id: s.id.clone(),
                zone: s.zone.clone(),
                clock: clock_of(&state, SourceKind::Sensor, &s.id),
            })
            .collect(),
        config: state.config.status().await,
    }))
}

pub async fn latest_frame(
    State(state): State<ApiState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require("getLatestFrame")?;
    let id = path_param(id)?;
    // Cluster mode: another instance holding the camera has its newest
    // frame; one kept here may predate a handover.
    use super::cluster::FrameSource;
    let holder = match super::cluster::frame_from_holder(&state, &id, &headers).await? {
        FrameSource::Holder(res) => return Ok(res),
        FrameSource::Here(me) => Some(me),
        FrameSource::Local => None,
    };
    let frame = state
        .live
        .read()
        .expect("live lock")
        .frames
        .get(&id)
        .cloned();
    let Some(frame) = frame else {
        return Err(ApiError::not_found(format!(
            "no frame from camera {id:?} since the daemon started"
        )));
    };
    let mut res = (StatusCode::OK, frame.jpeg.as_slice().to_vec()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(&format_rfc3339(frame.captured_at)) {
        h.insert("x-captured-at", v);
    }
    if let Some(v) = holder.and_then(|me| HeaderValue::from_str(&me).ok()) {
        h.insert("x-firelane-holder", v);
    }
    Ok(res)
}

pub async fn get_zone(
    State(state): State<ApiState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ZoneJson>, ApiError> {
    caller.require("getZone")?;
    let id = path_param(id)?;
    zone_json(&state, &state.config.current(), &id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no zone {id:?}")))
}

/// A zone as the editor sends it; the id is the path's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneBody {
    camera: String,
    #[serde(default)]
    name: Option<String>,
    polygon: Vec<[f64; 2]>,
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default)]
    grace_s: Option<f64>,
    #[serde(default)]
    clear_s: Option<f64>,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    sensors: Vec<String>,
    #[serde(default)]
    schedule: Option<ScheduleConfig>,
}

#[derive(Serialize)]
pub struct SavedJson {
    zone: Option<ZoneJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<String>,
    config: ConfigStatus,
    /// Sections changed that take effect only after a restart.
    restart_needed: Vec<&'static str>,
}

fn apply_error(e: ApplyError) -> ApiError {
    match e {
        ApplyError::Invalid(ConfigError::Invalid { problems, .. }) => ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!(
                "the change was refused ({} problem{}); nothing was saved",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            ),
            problems,
        },
        ApplyError::Invalid(other) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string())
        }
        ApplyError::Edit(edit::EditError::UnknownZone(id)) => {
            ApiError::not_found(format!("no zone {id:?}"))
        }
        ApplyError::UnknownVersion(id) => {
            ApiError::not_found(format!("no configuration version {id}"))
        }
        e @ (ApplyError::Edit(_) | ApplyError::NoFile | ApplyError::ChangedOnDisk(_)) => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        ApplyError::Store(e) => e.into(),
        e @ ApplyError::Write { .. } => {
            tracing::error!(error = %e, "API: saving the configuration");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

async fn saved(
    state: &ApiState,
    applied: Applied,
    zone: Option<&str>,
    deleted: Option<String>,
) -> SavedJson {
    SavedJson {
        zone: zone.and_then(|id| zone_json(state, &applied.config, id)),
        deleted,
        config: state.config.status().await,
        restart_needed: applied.restart_needed,
    }
}

pub async fn put_zone(
    State(state): State<ApiState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<ZoneBody>, JsonRejection>,
) -> Result<Json<SavedJson>, ApiError> {
    caller.require("putZone")?;
    let id = path_param(id)?;
    let Json(b) =
        body.map_err(|e| ApiError::new(e.status(), format!("zone body: {}", e.body_text())))?;
    let zone = ZoneConfig {
        id: id.clone(),
        name: b.name.filter(|n| !n.trim().is_empty()),
        camera: b.camera,
        polygon: b.polygon,
        threshold: b.threshold,
        grace_s: b.grace_s,
        clear_s: b.clear_s,
        site: b.site,
        sensors: b.sensors,
        schedule: b.schedule,
    };
    // The version and its audit entry are one transaction.
    let entry = entry(&caller, "zone_save", &id, serde_json::json!({}));
    let applied = state
        .config
        .edit(&caller.name, Some(entry), |text, file| {
            edit::upsert_zone(text, file, &zone)
        })
        .await
        .map_err(apply_error)?;
    Ok(Json(saved(&state, applied, Some(&id), None).await))
}

pub async fn delete_zone(
    State(state): State<ApiState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SavedJson>, ApiError> {
    caller.require("deleteZone")?;
    let id = path_param(id)?;
    let entry = entry(&caller, "zone_delete", &id, serde_json::json!({}));
    let applied = state
        .config
        .edit(&caller.name, Some(entry), |text, file| {
            edit::delete_zone(text, file, &id)
        })
        .await
        .map_err(apply_error)?;
    Ok(Json(saved(&state, applied, None, Some(id.clone())).await))
}

#[derive(Serialize)]
pub struct VersionJson {
    id: i64,
    #[serde(with = "rfc3339")]
    at: i64,
    actor: String,
    source: String,
    sha256: String,
    bytes: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    toml: Option<String>,
}

impl VersionJson {
    fn of(v: crate::store::ConfigVersionRow, with_text: bool) -> VersionJson {
        VersionJson {
            id: v.id,
            at: v.at_ms,
            actor: v.actor,
            source: v.source,
            sha256: v.sha256,
            bytes: v.bytes,
            toml: with_text.then_some(v.toml),
        }
    }
}

#[derive(Serialize)]
pub struct HistoryJson {
    versions: Vec<VersionJson>,
}

pub async fn config_history(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<HistoryJson>, ApiError> {
    caller.require("listConfigHistory")?;
    let versions = state.store.config_versions(200).await?;
    Ok(Json(HistoryJson {
        versions: versions
            .into_iter()
            .map(|v| VersionJson::of(v, false))
            .collect(),
    }))
}

pub async fn config_version(
    State(state): State<ApiState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<VersionJson>, ApiError> {
    caller.require("getConfigVersion")?;
    let id = path_param(id)?;
    let v = state
        .store
        .config_version(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no configuration version {id}")))?;
    let mut v = VersionJson::of(v, true);
    // Operators tune zones; credentials are for admins' eyes only.
    if caller.role != crate::api::auth::Role::Admin {
        v.toml = v.toml.as_deref().map(edit::redact_secrets);
    }
    Ok(Json(v))
}

/// The audit entry of a configuration change by `caller`; the store adds
/// the version it wrote.
fn entry(
    caller: &Caller,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> crate::store::AuditDraft {
    caller
        .actor()
        .draft(action, target, detail, crate::base::time::wall_clock_ms())
}

pub async fn restore_version(
    State(state): State<ApiState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<SavedJson>, ApiError> {
    caller.require("restoreConfigVersion")?;
    let id = path_param(id)?;
    // Operators tune zones: they bring back an old version's zones, sensors
    // and [tracking], never its webhooks, storage, HTTP or MQTT settings.
    let tuning_only = caller.role != crate::api::auth::Role::Admin;
    let scope = if tuning_only {
        "zones, sensors, [tracking]"
    } else {
        "all"
    };
    let entry = entry(
        &caller,
        "config_restore",
        &id.to_string(),
        serde_json::json!({ "scope": scope }),
    );
    let applied = state
        .config
        .restore(id, &caller.name, tuning_only, Some(entry))
        .await
        .map_err(apply_error)?;
    Ok(Json(saved(&state, applied, None, None).await))
}
