//! Alerts: what the pipeline tells the outside world.
//!
//! The pipeline emits [`AlertEvent`]s on state changes. Violation events
//! (`new`, `update`, `end`) go through the durable [`outbox`] in the
//! database to every channel of the zone's site — MQTT, webhooks, email —
//! and [`dispatch`] delivers them with retries; retained zone state goes
//! straight to MQTT ([`mqtt`]); [`homeassistant`] adds MQTT discovery.

pub mod acked;
pub mod dispatch;
pub mod email;
pub mod homeassistant;
pub mod mqtt;
pub mod outbox;
pub mod webhook;

use serde::{Deserialize, Serialize};

use crate::base::kinds::{EndReason, ViolationStatus};
use crate::base::time::{Millis, rfc3339};
use crate::store::ViolationRow;

pub use crate::base::kinds::ViolationEventKind;

/// A violation as published: times in RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub status: ViolationStatus,
    /// Why it ended: `cleared`, or `schedule_ended`, `zone_changed`, `zone_removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
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
            status: v.status,
            end_reason: v.end_reason,
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
    Violation(Box<ViolationMessage>),
    ZoneState(ZoneStateView),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRef {
    pub id: String,
    pub name: String,
}

/// One violation alert, as every channel gets it (the JSON body of a
/// `<prefix>/violations` message and of a webhook POST).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViolationMessage {
    pub event: ViolationEventKind,
    /// Event time of the change.
    #[serde(with = "rfc3339")]
    pub at: Millis,
    pub site: SiteRef,
    /// After the change.
    pub violation: ViolationView,
    /// Before the change; `null` for `new`.
    pub before: Option<ViolationView>,
}

impl ViolationMessage {
    /// Stable per alert: a repeated step produces the same key.
    pub fn event_key(&self) -> String {
        match self.event {
            ViolationEventKind::Update => format!("{}/update/{}", self.violation.id, self.at),
            k => format!("{}/{}", self.violation.id, k.as_str()),
        }
    }
}
