//! The zone core: decide, then commit.
//!
//! [`decide`] takes a zone's state and one observation (a scored frame, a
//! sensor reading, time passing) and returns the state that follows plus
//! the [`Effect`]s that must be recorded for it to hold: a violation
//! opened, evidence, an alert, the state saved. It does no I/O. The caller
//! (`pipeline::commit`) writes the effects in one transaction and adopts
//! the new state only once that committed, so a failed write leaves the
//! zone as it was and the next observation decides the same step again.
//! Violation ids derive from camera, zone and start, so a retried step
//! names the same violation.

use std::sync::Arc;

use crate::base::digest::sha256_hex;
use crate::base::geometry::ZonePolygon;
use crate::base::ids::violation_id;
use crate::base::kinds::{EndReason, EvidenceKind, ViolationEventKind};
use crate::base::time::Millis;
use crate::config::Zone;

use super::{Phase, Reading, SensorVote, Transition, ZoneTracker, fuse};

/// A frame a zone may keep as evidence: shared bytes, never copied.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldFrame {
    pub jpeg: Arc<Vec<u8>>,
    pub captured_at: Millis,
    pub score: Option<f64>,
    /// The zone's tile scores in this frame (empty when not scored).
    pub tiles: Vec<f32>,
}

/// The first obstructed frame, named by the hash of its bytes (the
/// evidence store keeps it from the moment the obstruction starts).
#[derive(Debug, Clone, PartialEq)]
pub struct FirstFrame {
    pub sha256: String,
    pub captured_at: Millis,
    pub score: Option<f64>,
}

/// Where an evidence frame's bytes are.
#[derive(Debug, Clone, PartialEq)]
pub enum EvidenceFrame {
    Held(HeldFrame),
    Stored(FirstFrame),
}

/// What a zone remembers between observations. `tracker`, `violation_id`
/// and `first` are persisted; `clearing` and `pending` live in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoneState {
    pub tracker: ZoneTracker,
    /// The open violation, once confirmed.
    pub violation_id: Option<String>,
    pub first: Option<FirstFrame>,
    /// The first clear frame of a run that may end the violation.
    pub clearing: Option<HeldFrame>,
    /// Evidence of the open violation still waiting for a frame (it was
    /// confirmed on a sensor reading before the camera sent one).
    pub pending: Vec<EvidenceKind>,
}

impl ZoneState {
    /// A state read back from the database after a restart.
    pub fn resumed(
        phase: Phase,
        last_at: Option<Millis>,
        violation_id: Option<String>,
        first: Option<FirstFrame>,
    ) -> ZoneState {
        ZoneState {
            tracker: ZoneTracker::resume(phase, last_at),
            violation_id,
            first,
            ..ZoneState::default()
        }
    }

    /// Nothing under way: clear and no open violation.
    pub fn is_idle(&self) -> bool {
        matches!(self.tracker.phase, Phase::Clear) && self.violation_id.is_none()
    }
}

/// One thing to record for a decision to hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Keep this frame's original bytes: it is the obstruction's first
    /// frame (named in the state by its hash).
    KeepFrame(HeldFrame),
    /// A violation confirmed.
    Open {
        id: String,
        start: Millis,
        confirmed_at: Millis,
        peak: f64,
        polygon: ZonePolygon,
    },
    /// An evidence frame of a violation: the original and annotated copies.
    Evidence {
        violation: String,
        kind: EvidenceKind,
        frame: EvidenceFrame,
        polygon: ZonePolygon,
    },
    /// An open violation's latest obstructed time and peak score.
    Progress {
        violation: String,
        last_obstructed: Millis,
        peak: f64,
    },
    /// A violation ended (`cleared_at`: the first clear reading, or the
    /// instant a schedule or reconfiguration ended it).
    End {
        violation: String,
        cleared_at: Millis,
        last_obstructed: Millis,
        peak: f64,
        reason: EndReason,
    },
    /// Tell people: written to the outbox in the same transaction.
    Alert {
        kind: ViolationEventKind,
        violation: String,
        at: Millis,
    },
    /// The zone's state for MQTT and the live view, sent after the commit.
    Publish {
        state: &'static str,
        since: Millis,
        score: Option<f64>,
        violation: Option<String>,
    },
    /// Save the zone's new state (phase, open violation, first frame).
    SaveState,
}

impl Effect {
    /// Whether it needs the database (everything but [`Effect::Publish`]).
    pub fn is_durable(&self) -> bool {
        !matches!(self, Effect::Publish { .. })
    }
}

/// The state that follows, and what must be recorded for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub next: ZoneState,
    pub effects: Vec<Effect>,
}

impl Decision {
    fn unchanged(state: &ZoneState) -> Decision {
        Decision {
            next: state.clone(),
            effects: Vec::new(),
        }
    }

    /// Whether a transaction is needed before `next` may be adopted.
    pub fn needs_commit(&self) -> bool {
        self.effects.iter().any(Effect::is_durable)
    }
}

/// One observation of a zone at event time `at`.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub at: Millis,
    /// The camera's latest score and its capture time.
    pub camera_score: Option<(f64, Millis)>,
    pub votes: &'a [SensorVote],
    /// The frame being applied, on a frame step.
    pub frame: Option<&'a HeldFrame>,
    /// The camera's latest frame: evidence for a step a sensor caused.
    pub latest: Option<&'a HeldFrame>,
}

/// Decides what `obs` does to the zone.
pub fn decide(zone: &Zone, state: &ZoneState, obs: &Observation) -> Decision {
    let mut d = Decision::unchanged(state);
    // A window that closed since the last observation ends what was open
    // at the instant it closed, even if no input came in between.
    if let Some(closed) = window_closed_since_last(zone, state, obs.at) {
        deactivate(&mut d, closed);
    }
    if !is_active(zone, obs.at) {
        deactivate(&mut d, obs.at);
        return d;
    }
    if let Some(reading) = fuse(&zone.params, obs.at, obs.camera_score, obs.votes) {
        let transitions = d.next.tracker.step(&zone.params, reading);
        for t in &transitions {
            apply(zone, &mut d, t, &reading, obs);
        }
        if !transitions.is_empty() {
            d.effects.push(Effect::SaveState);
        }
    }
    if let Some(frame) = obs.frame {
        fill_missing_evidence(zone, &mut d, frame);
    }
    d
}

/// Ends what a zone had open because its drawing no longer applies
/// (redrawn, moved or removed): `reason` at its last observed time.
pub fn detach(state: &ZoneState, reason: EndReason) -> Decision {
    let at = state.tracker.last_at.unwrap_or_default();
    let mut d = Decision::unchanged(state);
    if let Some(id) = d.next.violation_id.take() {
        end_effects(&mut d.effects, &state.tracker.phase, id, at, reason);
    }
    d.next = ZoneState {
        tracker: ZoneTracker::resume(Phase::Clear, state.tracker.last_at),
        ..ZoneState::default()
    };
    d.effects.push(Effect::SaveState);
    d
}

/// Whether `zone` is enforced at `at` (its schedule).
pub fn is_active(zone: &Zone, at: Millis) -> bool {
    zone.schedule.as_ref().is_none_or(|s| s.is_active(at))
}

fn window_closed_since_last(zone: &Zone, state: &ZoneState, at: Millis) -> Option<Millis> {
    let schedule = zone.schedule.as_ref()?;
    let last = state.tracker.last_at?;
    if state.is_idle() || last >= at || !schedule.is_active(last) {
        return None;
    }
    schedule.first_inactive_after(last, at)
}

/// Outside its schedule since `ended_at`: an open obstruction is forgotten
/// and an open violation ends at that instant.
fn deactivate(d: &mut Decision, ended_at: Millis) {
    if d.next.is_idle() {
        return;
    }
    let phase = d.next.tracker.phase.clone();
    if let Some(id) = d.next.violation_id.take() {
        end_effects(
            &mut d.effects,
            &phase,
            id,
            ended_at,
            EndReason::ScheduleEnded,
        );
    }
    d.next = ZoneState {
        tracker: ZoneTracker::resume(Phase::Clear, Some(ended_at)),
        ..ZoneState::default()
    };
    d.effects.push(Effect::Publish {
        state: "inactive",
        since: ended_at,
        score: None,
        violation: None,
    });
    d.effects.push(Effect::SaveState);
}

/// Closing violation `id` at `at` for a reason other than a clear lane.
fn end_effects(
    effects: &mut Vec<Effect>,
    phase: &Phase,
    id: String,
    at: Millis,
    reason: EndReason,
) {
    let (last_obstructed, peak) = match *phase {
        Phase::Violation {
            last_obstructed,
            peak,
            ..
        } => (last_obstructed.min(at), peak),
        _ => (at, 0.0),
    };
    effects.push(Effect::End {
        violation: id.clone(),
        cleared_at: at,
        last_obstructed,
        peak,
        reason,
    });
    effects.push(Effect::Alert {
        kind: ViolationEventKind::End,
        violation: id,
        at,
    });
}

fn first_of(frame: &HeldFrame) -> FirstFrame {
    FirstFrame {
        sha256: sha256_hex(&frame.jpeg),
        captured_at: frame.captured_at,
        score: frame.score,
    }
}

fn keep_first(d: &mut Decision, frame: &HeldFrame) {
    d.next.first = Some(first_of(frame));
    d.effects.push(Effect::KeepFrame(frame.clone()));
}

fn evidence(zone: &Zone, id: &str, kind: EvidenceKind, frame: EvidenceFrame) -> Effect {
    Effect::Evidence {
        violation: id.to_string(),
        kind,
        frame,
        polygon: zone.polygon.clone(),
    }
}

/// Stores the open violation's progress; its id, if one is open.
fn progress(d: &mut Decision, last_obstructed: Millis, peak: f64) -> Option<String> {
    let id = d.next.violation_id.clone()?;
    d.effects.push(Effect::Progress {
        violation: id.clone(),
        last_obstructed,
        peak,
    });
    Some(id)
}

fn publish(d: &mut Decision, reading: &Reading) {
    let since = match d.next.tracker.phase {
        Phase::Clear => reading.at,
        Phase::Obstructed { start, .. } => start,
        Phase::Violation { confirmed_at, .. } => confirmed_at,
    };
    d.effects.push(Effect::Publish {
        state: d.next.tracker.phase.name(),
        since,
        score: Some(reading.score),
        violation: d.next.violation_id.clone(),
    });
}

fn apply(zone: &Zone, d: &mut Decision, t: &Transition, reading: &Reading, obs: &Observation) {
    match *t {
        Transition::Started { .. } => {
            // Started by a sensor: the camera's last frame predates the
            // start, so the next frame becomes the first evidence.
            d.next.first = None;
            if let Some(frame) = obs.frame {
                keep_first(d, frame);
            }
            publish(d, reading);
        }
        Transition::Confirmed {
            start,
            confirmed_at,
            peak,
        } => {
            let id = violation_id(&zone.camera, &zone.id, start);
            d.effects.push(Effect::Open {
                id: id.clone(),
                start,
                confirmed_at,
                peak,
                polygon: zone.polygon.clone(),
            });
            d.next.violation_id = Some(id.clone());
            d.next.pending.clear();
            match d.next.first.clone() {
                Some(first) => d.effects.push(evidence(
                    zone,
                    &id,
                    EvidenceKind::First,
                    EvidenceFrame::Stored(first),
                )),
                None => d.next.pending.push(EvidenceKind::First),
            }
            match obs.frame.or(obs.latest) {
                Some(f) => d.effects.push(evidence(
                    zone,
                    &id,
                    EvidenceKind::Confirm,
                    EvidenceFrame::Held(f.clone()),
                )),
                None => d.next.pending.push(EvidenceKind::Confirm),
            }
            d.effects.push(Effect::Alert {
                kind: ViolationEventKind::New,
                violation: id,
                at: confirmed_at,
            });
            publish(d, reading);
        }
        Transition::ClearingStarted { .. } => {
            d.next.clearing = obs.frame.cloned();
        }
        Transition::Checkpoint {
            last_obstructed,
            peak,
        } => {
            progress(d, last_obstructed, peak);
        }
        Transition::Reminder {
            at,
            last_obstructed,
            peak,
            ..
        } => {
            if let Some(id) = progress(d, last_obstructed, peak) {
                d.effects.push(Effect::Alert {
                    kind: ViolationEventKind::Update,
                    violation: id,
                    at,
                });
            }
        }
        Transition::Ended {
            cleared_at,
            decided_at,
            last_obstructed,
            peak,
            ..
        } => {
            if let Some(id) = d.next.violation_id.take() {
                d.effects.push(Effect::End {
                    violation: id.clone(),
                    cleared_at,
                    last_obstructed,
                    peak,
                    reason: EndReason::Cleared,
                });
                let clearing = d.next.clearing.take();
                if let Some(f) = clearing.or_else(|| obs.frame.or(obs.latest).cloned()) {
                    d.effects.push(evidence(
                        zone,
                        &id,
                        EvidenceKind::Clear,
                        EvidenceFrame::Held(f),
                    ));
                }
                d.effects.push(Effect::Alert {
                    kind: ViolationEventKind::End,
                    violation: id,
                    at: decided_at,
                });
            }
            d.next.first = None;
            d.next.clearing = None;
            d.next.pending.clear();
            publish(d, reading);
        }
        Transition::Dropped { .. } => {
            d.next.first = None;
            d.next.clearing = None;
            publish(d, reading);
        }
    }
}

/// After a frame: a zone whose obstruction or clearing began with a
/// sensor reading takes this frame as the evidence it still lacks.
fn fill_missing_evidence(zone: &Zone, d: &mut Decision, frame: &HeldFrame) {
    if let Some(id) = d.next.violation_id.clone() {
        for kind in std::mem::take(&mut d.next.pending) {
            d.effects.push(evidence(
                zone,
                &id,
                kind,
                EvidenceFrame::Held(frame.clone()),
            ));
        }
    }
    let (obstructed, clearing) = match &d.next.tracker.phase {
        Phase::Clear => (false, false),
        Phase::Obstructed { .. } => (true, false),
        Phase::Violation { clear_run, .. } => (true, clear_run.is_some()),
    };
    if obstructed && d.next.first.is_none() {
        keep_first(d, frame);
        d.effects.push(Effect::SaveState);
    }
    if clearing && d.next.clearing.is_none() {
        d.next.clearing = Some(frame.clone());
    }
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
