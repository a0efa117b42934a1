//! Violations, their evidence, reviews and the audit log over HTTP.

use std::collections::HashMap;

use crate::base::kinds::{EndReason, EvidenceKind, EvidenceVariant, ViolationStatus};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{ApiError, ApiState};
use crate::base::time::{format_rfc3339, parse_rfc3339, wall_clock_ms};
use crate::evidence::bundle;
use crate::store::{EvidenceRow, ReviewRow, ViolationFilter, ViolationRow};

const REVIEW_STATUSES: [&str; 3] = ["confirmed", "dismissed", "cited"];
const MAX_NOTE_CHARS: usize = 2000;
const THUMB_WIDTH: u32 = 320;

#[derive(Serialize)]
pub struct EvidenceJson {
    kind: EvidenceKind,
    variant: EvidenceVariant,
    sha256: String,
    bytes: i64,
    captured_at: String,
    score: Option<f64>,
    url: String,
}

#[derive(Serialize)]
pub struct ReviewJson {
    status: String,
    note: String,
    actor: String,
    actor_token: String,
    role: String,
    at: String,
}

#[derive(Serialize)]
pub struct ViolationJson {
    id: String,
    camera: String,
    zone: String,
    start: String,
    confirmed_at: String,
    cleared: Option<String>,
    last_obstructed: String,
    duration_s: f64,
    peak_score: f64,
    model_name: String,
    model_sha256: String,
    status: ViolationStatus,
    end_reason: Option<EndReason>,
    review_status: String,
    thumbnail_url: String,
    evidence: Vec<EvidenceJson>,
    reviews: Vec<ReviewJson>,
}

fn violation_json(
    v: ViolationRow,
    evidence: Vec<EvidenceRow>,
    reviews: Vec<ReviewRow>,
) -> ViolationJson {
    let end = v.cleared_ms.unwrap_or(v.last_obstructed_ms);
    ViolationJson {
        thumbnail_url: format!("/api/violations/{}/thumb.jpg", v.id),
        evidence: evidence
            .into_iter()
            .map(|e| EvidenceJson {
                url: format!(
                    "/api/violations/{}/evidence/{}/{}.jpg",
                    v.id, e.kind, e.variant
                ),
                kind: e.kind,
                variant: e.variant,
                sha256: e.sha256,
                bytes: e.bytes,
                captured_at: format_rfc3339(e.captured_ms),
                score: e.score,
            })
            .collect(),
        reviews: reviews
            .into_iter()
            .map(|r| ReviewJson {
                status: r.status,
                note: r.note,
                actor: r.actor,
                actor_token: r.actor_token,
                role: r.role,
                at: format_rfc3339(r.at_ms),
            })
            .collect(),
        start: format_rfc3339(v.start_ms),
        confirmed_at: format_rfc3339(v.confirmed_ms),
        cleared: v.cleared_ms.map(format_rfc3339),
        last_obstructed: format_rfc3339(v.last_obstructed_ms),
        duration_s: (end - v.start_ms) as f64 / 1000.0,
        id: v.id,
        camera: v.camera,
        zone: v.zone,
        peak_score: v.peak_score,
        model_name: v.model_name,
        model_sha256: v.model_sha256,
        status: v.status,
        end_reason: v.end_reason,
        review_status: v.review_status,
    }
}

#[derive(Serialize)]
pub struct Page {
    items: Vec<ViolationJson>,
    total: i64,
    limit: i64,
    offset: i64,
}

fn parse_int(name: &str, value: &str, min: i64, max: i64) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter {name}: {value:?} is not an integer in {min}..={max}"
            ))
        })
}

fn one_of(name: &str, value: &str, allowed: &[&str]) -> Result<String, ApiError> {
    if allowed.contains(&value) {
        Ok(value.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "query parameter {name}: {value:?} is not one of {}",
            allowed.join(", ")
        )))
    }
}

fn time_param(name: &str, value: &str) -> Result<i64, ApiError> {
    parse_rfc3339(value).map_err(|e| {
        ApiError::bad_request(format!(
            "query parameter {name}: {value:?} is not an RFC 3339 time ({e}), e.g. 2026-11-29T07:00:00Z"
        ))
    })
}

fn query_params(
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::bad_request(format!("query string: {}", e.body_text())))
}

pub(super) fn path_param<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad_request(format!("path: {}", e.body_text())))
}

pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    caller.require("listViolations")?;
    let mut filter = ViolationFilter::default();
    let (mut limit, mut offset) = (50, 0);
    for (name, value) in query_params(query)? {
        match name.as_str() {
            "camera" => filter.camera = Some(value),
            "zone" => filter.zone = Some(value),
            "status" => filter.status = Some(one_of(&name, &value, &["open", "cleared"])?),
            "review" => {
                filter.review_status = Some(one_of(
                    &name,
                    &value,
                    &["pending", "confirmed", "dismissed", "cited"],
                )?)
            }
            "from" => filter.from_ms = Some(time_param(&name, &value)?),
            "to" => filter.to_ms = Some(time_param(&name, &value)?),
            "limit" => limit = parse_int(&name, &value, 1, 500)?,
            "offset" => offset = parse_int(&name, &value, 0, i64::MAX)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; known: camera, zone, status, review, from, to, limit, offset"
                )));
            }
        }
    }
    let (rows, total) = state.store.violation_page(&filter, limit, offset).await?;
    let mut items = Vec::with_capacity(rows.len());
    for v in rows {
        let evidence = state.store.evidence(&v.id).await?;
        items.push(violation_json(v, evidence, Vec::new()));
    }
    Ok(Json(Page {
        items,
        total,
        limit,
        offset,
    }))
}

async fn load(state: &ApiState, id: &str) -> Result<ViolationJson, ApiError> {
    let v = state
        .store
        .violation(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no violation {id:?}")))?;
    let evidence = state.store.evidence(id).await?;
    let reviews = state.store.reviews(id).await?;
    Ok(violation_json(v, evidence, reviews))
}

pub async fn detail(
    State(state): State<ApiState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ViolationJson>, ApiError> {
    caller.require("getViolation")?;
    let id = path_param(id)?;
    Ok(Json(load(&state, &id).await?))
}

/// Reads a stored evidence file, refusing one whose bytes no longer match
/// the hash recorded for it.
fn read_evidence(state: &ApiState, e: &EvidenceRow) -> Result<Vec<u8>, ApiError> {
    let bytes = state.evidence.get(&e.sha256).map_err(|err| {
        tracing::error!(violation = %e.violation_id, error = %err, "evidence file unreadable");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "evidence file unreadable",
        )
    })?;
    if crate::base::digest::sha256_hex(&bytes) != e.sha256 {
        tracing::error!(violation = %e.violation_id, sha256 = %e.sha256, "evidence file altered on disk");
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "evidence file {} no longer matches its recorded SHA-256",
                e.sha256
            ),
        ));
    }
    Ok(bytes)
}

fn jpeg(bytes: Vec<u8>, sha256: Option<&str>) -> Response {
    let mut res = ([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Some(sha) = sha256.and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert("x-content-sha256", sha);
    }
    res
}

pub(super) async fn audit(
    state: &ApiState,
    caller: &Caller,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    state
        .audit
        .record(
            &state.store,
            &caller.actor(),
            action,
            target,
            detail,
            wall_clock_ms(),
        )
        .await?;
    Ok(())
}

pub async fn evidence_image(
    State(state): State<ApiState>,
    caller: Caller,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require("getEvidence")?;
    let (id, kind, file) = path_param(path)?;
    let variant = file.strip_suffix(".jpg").unwrap_or("");
    let rows = state.store.evidence(&id).await?;
    let row = rows
        .iter()
        .find(|e| e.kind.as_str() == kind && e.variant.as_str() == variant)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "violation {id:?} has no {kind:?} {file:?} evidence (kinds: first, confirm, clear; files: original.jpg, annotated.jpg, closeup.jpg)"
            ))
        })?;
    let bytes = read_evidence(&state, row)?;
    audit(
        &state,
        &caller,
        "evidence.view",
        &id,
        serde_json::json!({"kind": kind, "variant": variant, "sha256": row.sha256}),
    )
    .await?;
    Ok(jpeg(bytes, Some(&row.sha256)))
}

pub async fn thumbnail(
    State(state): State<ApiState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require("getThumbnail")?;
    let id = path_param(id)?;
    let rows = state.store.evidence(&id).await?;
    let pick =
        |kind: &str, variant: &str| rows.iter().find(|e| e.kind == kind && e.variant == variant);
    // The close-up shows the zone at a size a phone can show; frames
    // recorded before it existed fall back to the annotated whole frame.
    let row = pick("confirm", "closeup")
        .or_else(|| pick("first", "closeup"))
        .or_else(|| pick("confirm", "annotated"))
        .or_else(|| pick("first", "annotated"))
        .or_else(|| rows.first())
        .ok_or_else(|| ApiError::not_found(format!("violation {id:?} has no evidence frame")))?;
    let bytes = read_evidence(&state, row)?;
    let small = tokio::task::spawn_blocking(move || shrink(&bytes, THUMB_WIDTH))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "thumbnail task failed"))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("thumbnail: {e}")))?;
    audit(
        &state,
        &caller,
        "evidence.thumbnail",
        &id,
        serde_json::json!({"kind": row.kind, "variant": row.variant, "sha256": row.sha256}),
    )
    .await?;
    Ok(jpeg(small, None))
}

fn shrink(jpeg_bytes: &[u8], width: u32) -> Result<Vec<u8>, String> {
    let img = crate::vision::decode::decode_jpeg(jpeg_bytes).map_err(|e| e.to_string())?;
    let height = (img.height() as u64 * width as u64 / img.width().max(1) as u64).max(1) as u32;
    let small = image::imageops::thumbnail(&img, width, height);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&small)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

pub async fn bundle(
    State(state): State<ApiState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require("exportBundle")?;
    let id = path_param(id)?;
    let zip = bundle::export(
        &state.store,
        &state.evidence,
        &state.site_key,
        &id,
        wall_clock_ms(),
    )
    .await
    .map_err(|e| match e {
        bundle::BundleError::NotFound(_) => ApiError::not_found(format!("no violation {id:?}")),
        other => {
            tracing::error!(violation = %id, error = %other, "bundle export failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    })?;
    audit(
        &state,
        &caller,
        "bundle.export",
        &id,
        serde_json::json!({"bytes": zip.len(), "sha256": crate::base::digest::sha256_hex(&zip)}),
    )
    .await?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{id}.zip\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let mut res = ([(header::CONTENT_TYPE, "application/zip")], zip).into_response();
    res.headers_mut()
        .insert(header::CONTENT_DISPOSITION, disposition);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    status: String,
    #[serde(default)]
    note: String,
}

pub async fn review(
    State(state): State<ApiState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<ReviewBody>, JsonRejection>,
) -> Result<Json<ViolationJson>, ApiError> {
    caller.require("reviewViolation")?;
    let id = path_param(id)?;
    let Json(body) =
        body.map_err(|e| ApiError::new(e.status(), format!("review body: {}", e.body_text())))?;
    if !REVIEW_STATUSES.contains(&body.status.as_str()) {
        return Err(ApiError::bad_request(format!(
            "review body: status {:?} is not one of confirmed, dismissed, cited",
            body.status
        )));
    }
    let chars = body.note.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(ApiError::bad_request(format!(
            "review body: note has {chars} characters, at most {MAX_NOTE_CHARS}"
        )));
    }
    let row = ReviewRow {
        violation_id: id.clone(),
        status: body.status.clone(),
        note: body.note.clone(),
        actor: caller.name.clone(),
        actor_token: caller.id.clone(),
        role: caller.role.to_string(),
        at_ms: wall_clock_ms(),
    };
    // The review and its audit entry commit together or not at all: a
    // retry after a failure neither duplicates the review nor misses it.
    let entry = caller.actor().draft(
        "review",
        &id,
        serde_json::json!({"status": body.status, "note": body.note}),
        row.at_ms,
    );
    if state.store.add_review(&row, &entry).await?.is_none() {
        return Err(ApiError::not_found(format!("no violation {id:?}")));
    }
    Ok(Json(load(&state, &id).await?))
}

#[derive(Serialize)]
pub struct AuditJson {
    seq: i64,
    at: String,
    actor: String,
    actor_token: String,
    role: String,
    action: String,
    target: String,
    detail: serde_json::Value,
    prev_hash: String,
    hash: String,
}

pub async fn audit_list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require("listAudit")?;
    let (mut after, mut limit) = (0, 100);
    for (name, value) in query_params(query)? {
        match name.as_str() {
            "after" => after = parse_int(&name, &value, 0, i64::MAX)?,
            "limit" => limit = parse_int(&name, &value, 1, 1000)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; known: after, limit"
                )));
            }
        }
    }
    let rows = state.store.audit_entries(after, limit).await?;
    let items: Vec<AuditJson> = rows
        .into_iter()
        .map(|a| AuditJson {
            seq: a.seq,
            at: format_rfc3339(a.at_ms),
            detail: serde_json::from_str(&a.detail).unwrap_or(serde_json::Value::Null),
            actor: a.actor,
            actor_token: a.actor_token,
            role: a.role,
            action: a.action,
            target: a.target,
            prev_hash: a.prev_hash,
            hash: a.hash,
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items })))
}
