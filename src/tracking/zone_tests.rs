//! The zone core as tables: a sequence of observations, and what each step
//! must record.

use std::sync::Arc;

use super::*;
use crate::config::{Zone, ZoneParams};
use crate::tracking::Phase;

const MIN: Millis = 60_000;

fn zone() -> Zone {
    Zone {
        id: "lane".into(),
        name: None,
        camera: "cam".into(),
        site: "default".into(),
        polygon: ZonePolygon::new(vec![[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]).unwrap(),
        params: ZoneParams {
            threshold: 0.5,
            grace_ms: 10 * MIN,
            clear_ms: MIN,
            update_every_ms: 5 * MIN,
            reattach_ms: 0,
            ..ZoneParams::default()
        },
        sensors: Vec::new(),
        schedule: None,
        own_threshold: false,
    }
}

fn frame(at: Millis, score: f64) -> HeldFrame {
    HeldFrame {
        jpeg: Arc::new(format!("jpeg at {at}").into_bytes()),
        captured_at: at,
        score: Some(score),
        tiles: vec![score as f32],
    }
}

/// A short name for each effect, to compare whole steps at a glance.
fn names(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .map(|e| match e {
            Effect::KeepFrame(_) => "keep".to_string(),
            Effect::Open { .. } => "open".into(),
            Effect::Evidence { kind, .. } => format!("evidence:{kind}"),
            Effect::Progress { .. } => "progress".into(),
            Effect::End { reason, .. } => format!("end:{reason}"),
            Effect::Alert { kind, .. } => format!("alert:{kind}"),
            Effect::Publish { state, .. } => format!("publish:{state}"),
            Effect::SaveState => "save".into(),
        })
        .collect()
}

/// Runs frames `(minute, score)` through `decide`, adopting each state,
/// and returns each step's effect names.
fn run(z: &Zone, steps: &[(i64, f64)]) -> (ZoneState, Vec<Vec<String>>) {
    let mut state = ZoneState::default();
    let mut out = Vec::new();
    for &(minute, score) in steps {
        let f = frame(minute * MIN, score);
        let obs = Observation {
            at: minute * MIN,
            camera_score: Some((score, minute * MIN)),
            votes: &[],
            frame: Some(&f),
            latest: None,
        };
        let d = decide(z, &state, &obs);
        out.push(names(&d.effects));
        state = d.next;
    }
    (state, out)
}

#[test]
fn a_violation_from_start_to_end_records_each_moment_once() {
    let z = zone();
    let (state, steps) = run(
        &z,
        &[
            (0, 0.9),
            (5, 0.9),
            (10, 0.9),
            (15, 0.9),
            (20, 0.1),
            (21, 0.1),
        ],
    );
    let want: Vec<Vec<&str>> = vec![
        vec!["keep", "publish:obstructed", "save"],
        vec![],
        vec![
            "open",
            "evidence:first",
            "evidence:confirm",
            "alert:new",
            "publish:violation",
            "save",
        ],
        vec!["progress", "alert:update", "save"],
        // The clear run is saved: a restart keeps counting it.
        vec!["save"],
        vec![
            "end:cleared",
            "evidence:clear",
            "alert:end",
            "publish:clear",
            "save",
        ],
    ];
    assert_eq!(steps, want);
    assert_eq!(state.tracker.phase, Phase::Clear);
    assert_eq!(state.violation_id, None);
    assert_eq!(state.first, None);
}

#[test]
fn a_checkpoint_stores_progress_without_an_alert() {
    let z = zone();
    let (_, steps) = run(&z, &[(0, 0.9), (10, 0.9), (11, 0.9), (15, 0.95)]);
    let tail: Vec<Vec<&str>> = vec![
        // a minute since the confirm: stored, nobody told
        vec!["progress", "save"],
        // the reminder stores and tells
        vec!["progress", "alert:update", "save"],
    ];
    assert_eq!(steps[2..], tail);
}

#[test]
fn the_first_frame_is_named_by_its_hash_and_becomes_first_evidence() {
    let z = zone();
    let mut state = ZoneState::default();
    for (minute, score) in [(0, 0.9), (10, 0.9)] {
        let f = frame(minute * MIN, score);
        let obs = Observation {
            at: minute * MIN,
            camera_score: Some((score, minute * MIN)),
            votes: &[],
            frame: Some(&f),
            latest: None,
        };
        let d = decide(&z, &state, &obs);
        if minute == 10 {
            let first = d.effects.iter().find_map(|e| match e {
                Effect::Evidence {
                    kind: EvidenceKind::First,
                    frame: EvidenceFrame::Stored(first),
                    ..
                } => Some(first.clone()),
                _ => None,
            });
            let first = first.expect("first evidence");
            assert_eq!(first.sha256, sha256_hex(b"jpeg at 0"));
            assert_eq!(first.captured_at, 0);
        }
        state = d.next;
    }
}

#[test]
fn a_failed_commit_is_decided_again_with_the_same_violation_id() {
    let z = zone();
    let (state, _) = run(&z, &[(0, 0.9), (5, 0.9)]);
    let f10 = frame(10 * MIN, 0.9);
    fn obs(f: &HeldFrame) -> Observation<'_> {
        Observation {
            at: f.captured_at,
            camera_score: Some((0.9, f.captured_at)),
            votes: &[],
            frame: Some(f),
            latest: None,
        }
    }
    let failed = decide(&z, &state, &obs(&f10));
    assert!(failed.needs_commit());
    // The commit failed: the state is not adopted. The next frame decides
    // the confirmation again, for the same start and so the same id.
    let f11 = frame(11 * MIN, 0.9);
    let retried = decide(&z, &state, &obs(&f11));
    let id = |d: &Decision| {
        d.effects.iter().find_map(|e| match e {
            Effect::Open { id, start, .. } => Some((id.clone(), *start)),
            _ => None,
        })
    };
    assert_eq!(id(&failed), id(&retried));
    assert_eq!(id(&retried).unwrap().1, 0);
    assert_eq!(
        names(&retried.effects),
        names(&failed.effects),
        "the retry records the same things"
    );
}

#[test]
fn a_sensor_confirmed_violation_waits_for_a_frame_for_its_evidence() {
    let mut z = zone();
    z.sensors = vec!["loop".into()];
    z.params.sensor_weight = 10.0;
    let vote = |at| SensorVote {
        occupied: true,
        measured_at: at,
    };
    let mut state = ZoneState::default();
    let mut steps = Vec::new();
    for minute in [0, 10] {
        let votes = [vote(0)];
        let obs = Observation {
            at: minute * MIN,
            camera_score: None,
            votes: &votes,
            frame: None,
            latest: None,
        };
        let d = decide(&z, &state, &obs);
        steps.push(names(&d.effects));
        state = d.next;
    }
    assert_eq!(steps[0], vec!["publish:obstructed", "save"]);
    assert_eq!(
        steps[1],
        vec!["open", "alert:new", "publish:violation", "save"]
    );
    assert_eq!(
        state.pending,
        vec![EvidenceKind::First, EvidenceKind::Confirm]
    );
    // The camera's next frame supplies both, and becomes the first frame
    // (a minute after the confirmation, it also checkpoints the progress).
    let f = frame(11 * MIN, 0.2);
    let votes = [vote(0)];
    let obs = Observation {
        at: 11 * MIN,
        camera_score: Some((0.2, 11 * MIN)),
        votes: &votes,
        frame: Some(&f),
        latest: None,
    };
    let d = decide(&z, &state, &obs);
    assert_eq!(
        names(&d.effects),
        vec![
            "progress",
            "save",
            "evidence:first",
            "evidence:confirm",
            "keep",
            "save"
        ]
    );
    assert!(d.next.pending.is_empty());
}

#[test]
fn detaching_ends_an_open_violation_with_its_reason() {
    let z = zone();
    let (state, _) = run(&z, &[(0, 0.9), (10, 0.9), (12, 0.9)]);
    assert!(state.violation_id.is_some());
    let d = detach(&state, EndReason::ZoneChanged);
    assert_eq!(
        names(&d.effects),
        vec!["end:zone_changed", "alert:end", "save"]
    );
    match &d.effects[0] {
        Effect::End { cleared_at, .. } => assert_eq!(*cleared_at, 12 * MIN),
        e => panic!("{e:?}"),
    }
    assert!(d.next.is_idle());
    // An idle zone only has its state reset.
    assert_eq!(
        names(&detach(&ZoneState::default(), EndReason::ZoneRemoved).effects),
        vec!["save"]
    );
}
