//! Sensor fusion: the camera score and presence sensors → one reading.
//!
//! The rule, documented in the README:
//! - The camera's score `s` becomes a vote in -1..1 around the zone's
//!   threshold `t`: `(s - t) / (1 - t)` above it, `(s - t) / t` below it.
//! - Each presence sensor votes +1 (occupied) or -1 (free); a zone's
//!   sensors are averaged.
//! - With both, the zone is obstructed when
//!   `(camera_vote + w * sensor_vote) / (1 + w) >= 0`, `w` being
//!   `sensor_weight` (default 0.5): a sensor overturns only a camera that is
//!   unsure (|vote| < w), and a confident camera overturns a wrong sensor.
//! - A camera frame older than `camera_stale_s` does not vote: then the
//!   sensors decide alone, so a zone with a sensor and no fresh frame still
//!   works. With neither there is no reading.

use crate::base::time::Millis;

use super::{Reading, ZoneParams};

/// A presence sensor's latest state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorVote {
    pub occupied: bool,
    pub measured_at: Millis,
}

/// Fuses the latest camera score (with its capture time) and the zone's
/// sensors into a reading at `at`, or `None` when nothing speaks.
pub fn fuse(
    p: &ZoneParams,
    at: Millis,
    camera: Option<(f64, Millis)>,
    sensors: &[SensorVote],
) -> Option<Reading> {
    let camera = camera.filter(|(_, t)| at - t <= p.camera_stale_ms);
    let sensor_vote = if sensors.is_empty() {
        None
    } else {
        Some(
            sensors
                .iter()
                .map(|s| if s.occupied { 1.0 } else { -1.0 })
                .sum::<f64>()
                / sensors.len() as f64,
        )
    };
    match (camera, sensor_vote) {
        (Some((score, _)), None) => Some(Reading {
            at,
            obstructed: score >= p.threshold,
            score,
        }),
        (Some((score, _)), Some(sv)) => {
            let t = p.threshold;
            let cam_vote = if score >= t {
                (score - t) / (1.0 - t)
            } else {
                (score - t) / t
            };
            let fused = (cam_vote + p.sensor_weight * sv) / (1.0 + p.sensor_weight);
            Some(Reading {
                at,
                obstructed: fused >= 0.0,
                score,
            })
        }
        (None, Some(sv)) => Some(Reading {
            at,
            obstructed: sv > 0.0,
            score: if sv > 0.0 { 1.0 } else { 0.0 },
        }),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(occupied: bool) -> [SensorVote; 1] {
        [SensorVote {
            occupied,
            measured_at: 0,
        }]
    }

    #[test]
    fn camera_alone_uses_the_threshold() {
        let p = ZoneParams::default();
        assert!(fuse(&p, 0, Some((0.6, 0)), &[]).unwrap().obstructed);
        assert!(!fuse(&p, 0, Some((0.4, 0)), &[]).unwrap().obstructed);
    }

    #[test]
    fn sensor_overturns_an_unsure_camera_only() {
        let p = ZoneParams::default();
        // unsure camera (0.45), sensor says occupied → obstructed
        assert!(
            fuse(&p, 0, Some((0.45, 0)), &vote(true))
                .unwrap()
                .obstructed
        );
        // confident camera (0.02), wrong sensor says occupied → clear
        assert!(
            !fuse(&p, 0, Some((0.02, 0)), &vote(true))
                .unwrap()
                .obstructed
        );
        // confident camera (0.98), wrong sensor says free → obstructed
        assert!(
            fuse(&p, 0, Some((0.98, 0)), &vote(false))
                .unwrap()
                .obstructed
        );
    }

    #[test]
    fn stale_camera_leaves_the_sensor_to_decide() {
        let p = ZoneParams::default();
        let r = fuse(&p, p.camera_stale_ms + 1, Some((0.01, 0)), &vote(true)).unwrap();
        assert!(r.obstructed);
        assert!(fuse(&p, p.camera_stale_ms + 1, Some((0.99, 0)), &[]).is_none());
    }

    #[test]
    fn asymmetric_threshold_keeps_votes_balanced() {
        let p = ZoneParams {
            threshold: 0.2,
            ..ZoneParams::default()
        };
        // 0.15 is just below 0.2: unsure, the sensor decides
        assert!(
            fuse(&p, 0, Some((0.15, 0)), &vote(true))
                .unwrap()
                .obstructed
        );
        // 0.9 is well above: the wrong sensor does not overturn it
        assert!(
            fuse(&p, 0, Some((0.9, 0)), &vote(false))
                .unwrap()
                .obstructed
        );
    }
}
