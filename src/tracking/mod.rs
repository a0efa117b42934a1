//! Zone tracking: a pure state machine per zone, on event time.
//!
//! [`fusion`] turns the latest camera score and presence-sensor readings
//! into one [`Reading`]; [`ZoneTracker::step`] turns readings into
//! [`Transition`]s. Nothing here does I/O or reads a clock: time is the
//! capture time the caller passes in, so a replay at full speed decides
//! exactly as the live daemon would.
//!
//! The rules, per zone:
//! - clear → obstructed on the first obstructed reading (`Started`);
//! - obstructed → violation when a reading still obstructed comes
//!   `grace` after the start (`Confirmed`; start stays the first frame);
//! - obstructed or violation → clear once readings have stayed clear for
//!   `clear` *and* at least two clear readings came in a row (`Dropped` /
//!   `Ended`, cleared at the first clear reading). One misread frame can
//!   therefore neither end a violation nor, being shorter than any grace,
//!   start one;
//! - a violation ends only once clear for the longer of `clear` and the
//!   re-attach window: a lane blocked again sooner continues the same
//!   violation (one parked vehicle, one violation);
//! - while a violation is open, `Reminder` every `update_every` of event
//!   time, carrying the latest peak score; between reminders a silent
//!   `Checkpoint` once the peak has risen by [`PEAK_STEP`] or
//!   `checkpoint` has passed, so a crash loses at most that much.

pub mod calibration;
pub mod fusion;
pub mod zone;

use serde::{Deserialize, Serialize};

use crate::base::time::Millis;

pub use fusion::{SensorVote, fuse};

pub use crate::config::ZoneParams;

/// A rise of the peak score worth storing at once.
pub const PEAK_STEP: f64 = 0.01;

/// One fused observation of a zone at capture time `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub at: Millis,
    pub obstructed: bool,
    /// Obstruction score in 0..1 (the camera's, or 1/0 from a sensor alone).
    pub score: f64,
}

/// A run of clear readings that may end an obstruction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClearRun {
    pub since: Millis,
    pub readings: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Clear,
    Obstructed {
        start: Millis,
        last_obstructed: Millis,
        peak: f64,
        clear_run: Option<ClearRun>,
    },
    Violation {
        start: Millis,
        confirmed_at: Millis,
        last_obstructed: Millis,
        peak: f64,
        last_reminder: Millis,
        clear_run: Option<ClearRun>,
        /// When progress was last stored (confirm, reminder or checkpoint)
        /// and the peak then. Defaults for states stored before these
        /// fields existed: the next obstructed reading stores again.
        #[serde(default)]
        saved_at: Millis,
        #[serde(default)]
        saved_peak: f64,
    },
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Clear => "clear",
            Phase::Obstructed { .. } => "obstructed",
            Phase::Violation { .. } => "violation",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// First obstructed reading after clear.
    Started { start: Millis, score: f64 },
    /// Obstructed for the grace period: a violation.
    Confirmed {
        start: Millis,
        confirmed_at: Millis,
        peak: f64,
    },
    /// The first clear reading of a run that may end the violation.
    ClearingStarted { at: Millis },
    /// Still obstructed; a periodic update of an open violation.
    Reminder {
        start: Millis,
        at: Millis,
        last_obstructed: Millis,
        peak: f64,
    },
    /// Still obstructed, no reminder due: progress worth storing silently.
    Checkpoint { last_obstructed: Millis, peak: f64 },
    /// Violation over; `cleared_at` is the first clear reading.
    Ended {
        start: Millis,
        confirmed_at: Millis,
        cleared_at: Millis,
        decided_at: Millis,
        last_obstructed: Millis,
        peak: f64,
    },
    /// Obstruction cleared before the grace period: no violation.
    Dropped { start: Millis, cleared_at: Millis },
}

/// The state of one zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneTracker {
    pub phase: Phase,
    /// Latest reading time seen; readings are never applied before it.
    pub last_at: Option<Millis>,
}

impl Default for ZoneTracker {
    fn default() -> Self {
        ZoneTracker {
            phase: Phase::Clear,
            last_at: None,
        }
    }
}

impl ZoneTracker {
    pub fn resume(phase: Phase, last_at: Option<Millis>) -> Self {
        ZoneTracker { phase, last_at }
    }

    /// Applies one reading. A reading older than the last one is applied at
    /// the last one's time, so time never runs backwards inside a zone.
    pub fn step(&mut self, p: &ZoneParams, r: Reading) -> Vec<Transition> {
        let at = self.last_at.map_or(r.at, |last| last.max(r.at));
        self.last_at = Some(at);
        let mut out = Vec::new();
        match &mut self.phase {
            Phase::Clear => {
                if r.obstructed {
                    out.push(Transition::Started {
                        start: at,
                        score: r.score,
                    });
                    self.phase = Phase::Obstructed {
                        start: at,
                        last_obstructed: at,
                        peak: r.score,
                        clear_run: None,
                    };
                    self.try_confirm(p, at, &mut out);
                }
            }
            Phase::Obstructed {
                start,
                last_obstructed,
                peak,
                clear_run,
            } => {
                if r.obstructed {
                    *clear_run = None;
                    *last_obstructed = at;
                    *peak = peak.max(r.score);
                    self.try_confirm(p, at, &mut out);
                } else if let Some(cleared_at) = note_clear(clear_run, at, p.clear_ms) {
                    out.push(Transition::Dropped {
                        start: *start,
                        cleared_at,
                    });
                    self.phase = Phase::Clear;
                }
            }
            Phase::Violation {
                start,
                confirmed_at,
                last_obstructed,
                peak,
                last_reminder,
                clear_run,
                saved_at,
                saved_peak,
            } => {
                if r.obstructed {
                    *clear_run = None;
                    *last_obstructed = at;
                    *peak = peak.max(r.score);
                    let reminder =
                        p.update_every_ms > 0 && at - *last_reminder >= p.update_every_ms;
                    let checkpoint =
                        *peak >= *saved_peak + PEAK_STEP || at - *saved_at >= p.checkpoint_ms;
                    if reminder || checkpoint {
                        *saved_at = at;
                        *saved_peak = *peak;
                    }
                    if reminder {
                        *last_reminder = at;
                        out.push(Transition::Reminder {
                            start: *start,
                            at,
                            last_obstructed: at,
                            peak: *peak,
                        });
                    } else if checkpoint {
                        out.push(Transition::Checkpoint {
                            last_obstructed: at,
                            peak: *peak,
                        });
                    }
                } else {
                    let first = clear_run.is_none();
                    let needed = p.clear_ms.max(p.reattach_ms);
                    if let Some(cleared_at) = note_clear(clear_run, at, needed) {
                        out.push(Transition::Ended {
                            start: *start,
                            confirmed_at: *confirmed_at,
                            cleared_at,
                            decided_at: at,
                            last_obstructed: *last_obstructed,
                            peak: *peak,
                        });
                        self.phase = Phase::Clear;
                    } else if first {
                        out.push(Transition::ClearingStarted { at });
                    }
                }
            }
        }
        out
    }

    fn try_confirm(&mut self, p: &ZoneParams, at: Millis, out: &mut Vec<Transition>) {
        if let Phase::Obstructed {
            start,
            last_obstructed,
            peak,
            ..
        } = self.phase
            && at - start >= p.grace_ms
        {
            out.push(Transition::Confirmed {
                start,
                confirmed_at: at,
                peak,
            });
            self.phase = Phase::Violation {
                start,
                confirmed_at: at,
                last_obstructed,
                peak,
                last_reminder: at,
                clear_run: None,
                saved_at: at,
                saved_peak: peak,
            };
        }
    }
}

/// Counts a clear reading; returns the first clear time once the run is
/// long enough (both `needed_ms` and two readings) to end an obstruction.
fn note_clear(run: &mut Option<ClearRun>, at: Millis, needed_ms: Millis) -> Option<Millis> {
    let r = run.get_or_insert(ClearRun {
        since: at,
        readings: 0,
    });
    r.readings += 1;
    (r.readings >= 2 && at - r.since >= needed_ms).then_some(r.since)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;

    fn params() -> ZoneParams {
        ZoneParams {
            grace_ms: 10 * MIN,
            clear_ms: 30_000,
            update_every_ms: 0,
            reattach_ms: 0,
            ..ZoneParams::default()
        }
    }

    /// Confirmed and ended transitions of one reading per minute.
    fn run_minutes(p: &ZoneParams, seq: &str) -> Vec<Transition> {
        let mut t = ZoneTracker::default();
        let mut out = Vec::new();
        for (k, c) in seq.chars().enumerate() {
            let obstructed = c == '1';
            let reading = Reading {
                at: k as Millis * MIN,
                obstructed,
                score: if obstructed { 0.9 } else { 0.1 },
            };
            out.extend(
                t.step(p, reading).into_iter().filter(|t| {
                    matches!(t, Transition::Confirmed { .. } | Transition::Ended { .. })
                }),
            );
        }
        out
    }

    #[test]
    fn a_vehicle_back_within_the_reattach_window_is_the_same_violation() {
        // Blocked 0-3 min, clear 4-5, blocked again 6-8, then clear.
        let seq = "1111001110000000000";
        let p = ZoneParams {
            grace_ms: 2 * MIN,
            reattach_ms: 5 * MIN,
            ..params()
        };
        let got = run_minutes(&p, seq);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            matches!(got[0], Transition::Confirmed { start: 0, confirmed_at, .. } if confirmed_at == 2 * MIN)
        );
        // Ends once clear for the whole window, cleared at the first clear reading.
        assert!(
            matches!(got[1], Transition::Ended { start: 0, cleared_at, decided_at, .. }
            if cleared_at == 9 * MIN && decided_at == 14 * MIN)
        );

        // Without the window the same car is two violations.
        let p0 = ZoneParams {
            reattach_ms: 0,
            ..p
        };
        let got = run_minutes(&p0, seq);
        let confirmed = got
            .iter()
            .filter(|t| matches!(t, Transition::Confirmed { .. }))
            .count();
        assert_eq!(confirmed, 2, "{got:?}");
    }

    /// Runs a sequence of readings (1 obstructed / 0 clear, one every
    /// `every` minutes) and returns the violations as (start, confirmed,
    /// cleared) in minutes.
    fn violations(seq: &str, every: i64) -> Vec<(i64, i64, Option<i64>)> {
        let p = params();
        let mut t = ZoneTracker::default();
        let mut out = Vec::new();
        for (i, c) in seq.chars().filter(|c| !c.is_whitespace()).enumerate() {
            let obstructed = c == '1';
            let r = Reading {
                at: i as i64 * every * MIN,
                obstructed,
                score: if obstructed { 0.9 } else { 0.1 },
            };
            for tr in t.step(&p, r) {
                match tr {
                    Transition::Confirmed {
                        start,
                        confirmed_at,
                        ..
                    } => out.push((start / MIN, confirmed_at / MIN, None)),
                    Transition::Ended {
                        start, cleared_at, ..
                    } => {
                        let v = out
                            .iter_mut()
                            .rev()
                            .find(|v| v.0 == start / MIN)
                            .expect("ended a confirmed violation");
                        v.2 = Some(cleared_at / MIN);
                    }
                    _ => {}
                }
            }
        }
        out
    }

    #[test]
    fn table_of_sequences() {
        // (readings every 5 min, expected violations (start, confirmed, cleared) in minutes)
        type Expected<'a> = &'a [(i64, i64, Option<i64>)];
        let cases: &[(&str, Expected)] = &[
            ("000000", &[]),
            // shorter than grace (5 min of 10): no violation
            ("0110000", &[]),
            // exactly grace (10 min = 3 frames at 5 min): violation at +10
            ("01110000", &[(5, 15, Some(20))]),
            // one misread obstructed frame starts nothing
            ("0001000100", &[]),
            // one misread clear frame inside a violation ends nothing
            ("01111101111100", &[(5, 15, Some(60))]),
            // still open at the end
            ("0011111", &[(10, 20, None)]),
            // two separate violations with a real gap
            ("111100111100", &[(0, 10, Some(20)), (30, 40, Some(50))]),
            // a lone clear reading at the very end does not end it
            ("11110", &[(0, 10, None)]),
        ];
        for (seq, want) in cases {
            assert_eq!(violations(seq, 5), want.to_vec(), "sequence {seq}");
        }
    }

    #[test]
    fn wall_clock_dwell_not_frame_count() {
        // One frame a minute: grace 10 min needs 11 frames, not 3.
        assert_eq!(violations("0111111111100", 1), vec![]);
        assert_eq!(violations("01111111111100", 1), vec![(1, 11, Some(12))]);
    }

    #[test]
    fn clear_needs_clear_seconds_not_just_two_frames() {
        let p = ZoneParams {
            clear_ms: 5 * MIN,
            ..params()
        };
        let mut t = ZoneTracker::resume(
            Phase::Violation {
                start: 0,
                confirmed_at: 0,
                last_obstructed: 0,
                peak: 0.9,
                last_reminder: 0,
                clear_run: None,
                saved_at: 0,
                saved_peak: 0.9,
            },
            Some(0),
        );
        let clear = |at| Reading {
            at,
            obstructed: false,
            score: 0.1,
        };
        assert_eq!(
            t.step(&p, clear(MIN)),
            vec![Transition::ClearingStarted { at: MIN }]
        );
        assert_eq!(t.step(&p, clear(2 * MIN)), vec![]);
        let end = t.step(&p, clear(6 * MIN));
        assert!(
            matches!(end[..], [Transition::Ended { cleared_at, decided_at, .. }] if cleared_at == MIN && decided_at == 6 * MIN),
            "{end:?}"
        );
    }

    #[test]
    fn reminders_follow_event_time() {
        let p = ZoneParams {
            grace_ms: 0,
            update_every_ms: 5 * MIN,
            ..params()
        };
        let mut t = ZoneTracker::default();
        let mut reminders = 0;
        for m in 0..=20 {
            for tr in t.step(
                &p,
                Reading {
                    at: m * MIN,
                    obstructed: true,
                    score: 0.8,
                },
            ) {
                if matches!(tr, Transition::Reminder { .. }) {
                    reminders += 1;
                }
            }
        }
        assert_eq!(reminders, 4); // at 5, 10, 15, 20
    }

    #[test]
    fn checkpoints_store_progress_between_reminders() {
        let p = ZoneParams {
            grace_ms: 0,
            update_every_ms: 5 * MIN,
            ..params()
        };
        let name = |t: &Transition| match t {
            Transition::Started { .. } => "started".to_string(),
            Transition::Confirmed { .. } => "confirmed".into(),
            Transition::Reminder { peak, .. } => format!("reminder {peak}"),
            Transition::Checkpoint {
                last_obstructed,
                peak,
            } => format!("checkpoint {} {peak}", last_obstructed / 1000),
            other => format!("{other:?}"),
        };
        // (seconds, score, transitions): every reading obstructed
        let table: &[(i64, f64, &[&str])] = &[
            (0, 0.80, &["started", "confirmed"]),
            (10, 0.805, &[]),                    // peak up by less than a step
            (20, 0.82, &["checkpoint 20 0.82"]), // peak up a step
            (30, 0.50, &[]),                     // peak kept, 10 s since stored
            (80, 0.50, &["checkpoint 80 0.82"]), // a minute since stored
            (300, 0.95, &["reminder 0.95"]),     // a reminder stores too
            (310, 0.955, &[]),                   // so the step counts from it
            (330, 0.97, &["checkpoint 330 0.97"]),
        ];
        let mut t = ZoneTracker::default();
        for &(sec, score, want) in table {
            let got: Vec<String> = t
                .step(
                    &p,
                    Reading {
                        at: sec * 1000,
                        obstructed: true,
                        score,
                    },
                )
                .iter()
                .map(name)
                .collect();
            assert_eq!(got, want, "at {sec} s");
        }
    }

    #[test]
    fn late_readings_do_not_run_time_backwards() {
        let p = params();
        let mut t = ZoneTracker::default();
        t.step(
            &p,
            Reading {
                at: 20 * MIN,
                obstructed: true,
                score: 0.9,
            },
        );
        // a reading stamped earlier is applied at 20 min, so no instant grace
        let out = t.step(
            &p,
            Reading {
                at: 0,
                obstructed: true,
                score: 0.9,
            },
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(t.last_at, Some(20 * MIN));
    }

    #[test]
    fn peak_score_is_kept() {
        let p = ZoneParams {
            grace_ms: 0,
            ..params()
        };
        let mut t = ZoneTracker::default();
        t.step(
            &p,
            Reading {
                at: 0,
                obstructed: true,
                score: 0.7,
            },
        );
        t.step(
            &p,
            Reading {
                at: MIN,
                obstructed: true,
                score: 0.95,
            },
        );
        t.step(
            &p,
            Reading {
                at: 2 * MIN,
                obstructed: true,
                score: 0.8,
            },
        );
        assert!(matches!(t.phase, Phase::Violation { peak, .. } if peak == 0.95));
    }
}
