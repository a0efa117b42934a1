//! The one place that applies a zone's decision: evidence files first
//! (content-addressed, so writing one twice is harmless), then the violation
//! row, evidence records, outbox rows, zone and sensor state in one
//! database transaction. Only an `Ok` from [`Committer::commit`] lets the
//! caller adopt the decided state; events for MQTT and the live view go out
//! after the commit, never for a step that did not land.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::RecordError;
use super::metrics::Metrics;
use crate::alerts::outbox::Outbox;
use crate::alerts::{AlertEvent, SiteRef, ViolationMessage, ViolationView, ZoneStateView};
use crate::base::input::SensorReading;
use crate::base::kinds::{EvidenceKind, EvidenceVariant, ReviewStatus, ViolationStatus};
use crate::base::time::format_rfc3339;
use crate::config::{Config, Zone};

/// Which zone a decision belongs to: what its rows and alerts name.
#[derive(Debug, Clone, Copy)]
pub struct ZoneKey<'a> {
    pub id: &'a str,
    pub camera: &'a str,
    pub site: &'a str,
}

impl<'a> From<&'a Zone> for ZoneKey<'a> {
    fn from(z: &'a Zone) -> Self {
        ZoneKey {
            id: &z.id,
            camera: &z.camera,
            site: &z.site,
        }
    }
}
use crate::evidence::EvidenceStore;
use crate::evidence::annotate::{Caption, annotate};
use crate::evidence::closeup::closeup;
use crate::store::{EvidenceRow, Store, ViolationRow, ZoneStateRow};
use crate::tracking::zone::{Decision, Effect, EvidenceFrame, ZoneState};
use crate::vision::decode_jpeg;

/// What every violation row names besides the zone: the model that judged
/// it and the configuration it was judged under.
#[derive(Debug, Clone)]
pub struct RecordContext {
    pub model_name: String,
    pub model_sha256: String,
    pub config_sha256: String,
    pub sites: HashMap<String, SiteRef>,
}

impl RecordContext {
    pub fn sites_of(config: &Config) -> HashMap<String, SiteRef> {
        config
            .sites
            .iter()
            .map(|s| {
                let site = SiteRef {
                    id: s.id.clone(),
                    name: s.name.clone(),
                };
                (s.id.clone(), site)
            })
            .collect()
    }

    fn site(&self, id: &str) -> SiteRef {
        self.sites.get(id).cloned().unwrap_or_else(|| SiteRef {
            id: "default".into(),
            name: "default".into(),
        })
    }
}

/// Writes decisions. Owned by the pipeline.
pub struct Committer {
    pub store: Store,
    pub evidence: EvidenceStore,
    pub context: RecordContext,
    /// Where violation alerts are written with the state that caused them
    /// (the daemon's; a replay has none).
    pub outbox: Option<Arc<Outbox>>,
    /// Events after a commit: violation messages and zone states.
    pub events: Option<mpsc::UnboundedSender<AlertEvent>>,
    pub metrics: Arc<Metrics>,
    /// Cluster mode: the leases each commit must still hold.
    pub fence: Option<Arc<crate::store::Fence>>,
}

/// An evidence record waiting for the transaction.
struct PendingEvidence {
    violation: String,
    kind: EvidenceKind,
    variant: EvidenceVariant,
    stored: crate::evidence::Stored,
    captured_ms: i64,
    score: Option<f64>,
}

impl Committer {
    /// Records `decision` for `zone` (and the sensor reading that caused it,
    /// if any). On `Err` nothing of it is in the database.
    pub async fn commit(
        &self,
        zone: ZoneKey<'_>,
        decision: &Decision,
        sensor: Option<&SensorReading>,
    ) -> Result<(), RecordError> {
        let files = self.write_files(zone, decision)?;
        let mut tx = self.store.begin().await?;
        if let Some(fence) = &self.fence {
            let epoch =
                fence
                    .epoch(zone.camera)
                    .ok_or_else(|| crate::store::StoreError::Fenced {
                        camera: zone.camera.to_string(),
                    })?;
            tx.check_fence(zone.camera, &fence.owner, epoch).await?;
        }
        if let Some(r) = sensor {
            tx.save_sensor_state(&r.sensor, r.occupied, r.measured_at)
                .await?;
        }
        let mut files = files.into_iter();
        // A violation's row before the change is read only when an alert
        // of this decision reports it (a checkpoint's progress has none).
        let alerted = |v: &str| {
            decision
                .effects
                .iter()
                .any(|e| matches!(e, Effect::Alert { violation, .. } if violation == v))
        };
        let mut before: HashMap<&str, ViolationRow> = HashMap::new();
        let mut messages = Vec::new();
        let mut save = false;
        for effect in &decision.effects {
            match effect {
                Effect::KeepFrame(_) | Effect::Publish { .. } => {}
                Effect::SaveState => save = true,
                Effect::Open {
                    id,
                    start,
                    confirmed_at,
                    peak,
                    polygon,
                } => {
                    let row = ViolationRow {
                        id: id.clone(),
                        camera: zone.camera.to_string(),
                        zone: zone.id.to_string(),
                        start_ms: *start,
                        confirmed_ms: *confirmed_at,
                        cleared_ms: None,
                        last_obstructed_ms: *confirmed_at,
                        peak_score: *peak,
                        model_name: self.context.model_name.clone(),
                        model_sha256: self.context.model_sha256.clone(),
                        status: ViolationStatus::Open,
                        end_reason: None,
                        zone_polygon: serde_json::to_string(polygon.points())
                            .expect("points serialise"),
                        config_sha256: self.context.config_sha256.clone(),
                        review_status: ReviewStatus::Pending.as_str().to_string(),
                    };
                    tx.upsert_violation(&row).await?;
                }
                Effect::Evidence { .. } => {
                    for e in files.next().into_iter().flatten() {
                        tx.add_evidence(&EvidenceRow {
                            violation_id: e.violation,
                            kind: e.kind,
                            variant: e.variant,
                            sha256: e.stored.sha256,
                            path: e.stored.rel_path,
                            bytes: e.stored.bytes as i64,
                            captured_ms: e.captured_ms,
                            score: e.score,
                        })
                        .await?;
                    }
                }
                Effect::Progress {
                    violation,
                    last_obstructed,
                    peak,
                } => {
                    if alerted(violation)
                        && !before.contains_key(violation.as_str())
                        && let Some(row) = tx.violation(violation).await?
                    {
                        before.insert(violation, row);
                    }
                    tx.update_progress(violation, *last_obstructed, *peak)
                        .await?;
                }
                Effect::End {
                    violation,
                    cleared_at,
                    last_obstructed,
                    peak,
                    reason,
                } => {
                    if alerted(violation)
                        && !before.contains_key(violation.as_str())
                        && let Some(row) = tx.violation(violation).await?
                    {
                        before.insert(violation, row);
                    }
                    tx.end_violation(violation, *cleared_at, *last_obstructed, *peak, *reason)
                        .await?;
                }
                Effect::Alert {
                    kind,
                    violation,
                    at,
                } => {
                    let Some(after) = tx.violation(violation).await? else {
                        continue;
                    };
                    let message = ViolationMessage {
                        event: *kind,
                        at: *at,
                        site: self.context.site(zone.site),
                        violation: ViolationView::from(&after),
                        before: before.get(violation.as_str()).map(ViolationView::from),
                    };
                    if let Some(outbox) = &self.outbox {
                        tx.enqueue_outbox(&outbox.rows_for(&message)).await?;
                    }
                    messages.push(message);
                }
            }
        }
        if save {
            tx.save_zone_state(&state_row(zone, &decision.next)).await?;
        }
        tx.commit().await?;
        self.after_commit(zone, decision, messages);
        Ok(())
    }

    /// Evidence files of `decision`, one entry per `Evidence` effect in
    /// order, and the kept first frames.
    fn write_files(
        &self,
        zone: ZoneKey<'_>,
        decision: &Decision,
    ) -> Result<Vec<Vec<PendingEvidence>>, RecordError> {
        let mut out = Vec::new();
        for effect in &decision.effects {
            match effect {
                Effect::KeepFrame(f) => {
                    self.evidence.put(&f.jpeg)?;
                }
                Effect::Evidence {
                    violation,
                    kind,
                    frame,
                    polygon,
                } => {
                    let (jpeg, captured_ms, score, tiles) = match frame {
                        EvidenceFrame::Held(h) => {
                            (h.jpeg.clone(), h.captured_at, h.score, h.tiles.as_slice())
                        }
                        EvidenceFrame::Stored(f) => (
                            Arc::new(self.evidence.get(&f.sha256)?),
                            f.captured_at,
                            f.score,
                            &[][..],
                        ),
                    };
                    let record = |variant, stored| PendingEvidence {
                        violation: violation.clone(),
                        kind: *kind,
                        variant,
                        stored,
                        captured_ms,
                        score,
                    };
                    let mut rows =
                        vec![record(EvidenceVariant::Original, self.evidence.put(&jpeg)?)];
                    // Decoded here: scoring threads keep no frames
                    // (transitions are rare, frames are not).
                    match decode_jpeg(&jpeg) {
                        Ok(image) => {
                            let caption = Caption {
                                zone: zone.id,
                                camera: zone.camera,
                                kind: kind.as_str(),
                                score,
                                captured_at: captured_ms,
                                tiles,
                            };
                            let annotated = annotate(&image, polygon, &caption)?;
                            rows.push(record(
                                EvidenceVariant::Annotated,
                                self.evidence.put(&annotated)?,
                            ));
                            let close = closeup(&image, polygon, &caption)?;
                            rows.push(record(EvidenceVariant::Closeup, self.evidence.put(&close)?));
                        }
                        Err(e) => {
                            tracing::warn!(violation = %violation, kind = %kind, error = %e, "evidence frame cannot be annotated");
                        }
                    }
                    out.push(rows);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn after_commit(
        &self,
        zone: ZoneKey<'_>,
        decision: &Decision,
        messages: Vec<ViolationMessage>,
    ) {
        for effect in &decision.effects {
            match effect {
                Effect::Open { id, start, .. } => {
                    Metrics::inc(&self.metrics.violations_opened, 1);
                    tracing::info!(violation = %id, zone = %zone.id, start = %format_rfc3339(*start), "violation confirmed");
                }
                Effect::End {
                    violation,
                    cleared_at,
                    reason,
                    ..
                } => {
                    Metrics::inc(&self.metrics.violations_ended, 1);
                    tracing::info!(violation = %violation, zone = %zone.id, ended = %format_rfc3339(*cleared_at), reason = %reason, "violation ended");
                }
                _ => {}
            }
        }
        if let Some(outbox) = &self.outbox
            && !messages.is_empty()
        {
            outbox.wake.notify_one();
        }
        let Some(tx) = &self.events else { return };
        let mut messages = messages.into_iter();
        for effect in &decision.effects {
            match effect {
                Effect::Alert { .. } => {
                    if let Some(m) = messages.next() {
                        let _ = tx.send(AlertEvent::Violation(Box::new(m)));
                    }
                }
                Effect::Publish {
                    state,
                    since,
                    score,
                    violation,
                } => {
                    let _ = tx.send(AlertEvent::ZoneState(ZoneStateView {
                        zone: zone.id.to_string(),
                        camera: zone.camera.to_string(),
                        state: state.to_string(),
                        since: *since,
                        score: *score,
                        violation_id: violation.clone(),
                    }));
                }
                _ => {}
            }
        }
    }
}

/// The stored form of a zone's state.
pub fn state_row(zone: ZoneKey<'_>, s: &ZoneState) -> ZoneStateRow {
    ZoneStateRow {
        zone: zone.id.to_string(),
        camera: zone.camera.to_string(),
        phase: s.tracker.phase.clone(),
        last_at_ms: s.tracker.last_at,
        violation_id: s.violation_id.clone(),
        first_sha256: s.first.as_ref().map(|f| f.sha256.clone()),
        first_captured_ms: s.first.as_ref().map(|f| f.captured_at),
        first_score: s.first.as_ref().and_then(|f| f.score),
    }
}
