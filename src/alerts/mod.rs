//! Alerts: what the pipeline tells the outside world.
//!
//! The pipeline emits [`AlertEvent`]s on state changes; [`mqtt`] publishes
//! them as `<prefix>/violations` events (`new`, `update`, `end`) and
//! retained `<prefix>/zones/<zone>/state`.

pub mod mqtt;

use serde::Serialize;

use crate::store::ViolationRow;
use crate::time::{Millis, rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationEventKind {
    New,
    Update,
    End,
}

/// A violation as published: times in RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViolationView {
    pub id: String,
    pub camera: String,
    pub zone: String,
    #[serde(with = "rfc3339")]
    pub start: Millis,
    #[serde(with = "rfc3339")]
    pub confirmed_at: Millis,
    #[serde(with = "rfc3339::option")]
    pub cleared: Option<Millis>,
    #[serde(with = "rfc3339")]
    pub last_obstructed: Millis,
    pub duration_s: f64,
    pub peak_score: f64,
    pub status: String,
    pub model: String,
}

impl From<&ViolationRow> for ViolationView {
    fn from(v: &ViolationRow) -> Self {
        let end = v.cleared_ms.unwrap_or(v.last_obstructed_ms);
        ViolationView {
            id: v.id.clone(),
            camera: v.camera.clone(),
            zone: v.zone.clone(),
            start: v.start_ms,
            confirmed_at: v.confirmed_ms,
            cleared: v.cleared_ms,
            last_obstructed: v.last_obstructed_ms,
            duration_s: (end - v.start_ms) as f64 / 1000.0,
            peak_score: v.peak_score,
            status: v.status.clone(),
            model: v.model_name.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneStateView {
    pub zone: String,
    pub camera: String,
    /// `clear`, `obstructed` or `violation`.
    pub state: String,
    #[serde(with = "rfc3339")]
    pub since: Millis,
    pub score: Option<f64>,
    pub violation_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlertEvent {
    Violation {
        kind: ViolationEventKind,
        violation: ViolationView,
        at: Millis,
    },
    ZoneState(ZoneStateView),
}

/// The JSON body of a `<prefix>/violations` message.
#[derive(Serialize)]
pub struct ViolationMessage<'a> {
    pub event: ViolationEventKind,
    #[serde(with = "rfc3339")]
    pub at: Millis,
    pub violation: &'a ViolationView,
}
