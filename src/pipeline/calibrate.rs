//! Calibration in the pipeline: each frame's scores of zones whose sensors
//! are confident feed that camera's [`Calibrator`]; what it suggests
//! becomes the threshold of the camera's zones that set none of their own,
//! logged, persisted and shown on `GET /api/cameras`. `[tracking]
//! calibrate = false` turns it off and goes back to the configured
//! thresholds; `firelane calibration reset` forgets what was learned.

use std::collections::HashMap;

use super::Pipeline;
use crate::base::time::{Millis, wall_clock_ms};
use crate::config::Config;
use crate::tracking::calibration::Calibrator;

/// A sensor that has held its state this long is trusted as a label.
const CONFIDENT_AGE_MS: Millis = 60_000;
/// New samples between two suggestions.
const EVERY: usize = 25;

/// A camera's calibrated threshold, for the API.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CameraCalibration {
    pub threshold: f64,
    pub configured: f64,
    pub samples: usize,
}

#[derive(Debug, Default)]
pub(super) struct Calibration {
    enabled: bool,
    learners: HashMap<String, Calibrator>,
    /// Per camera: the threshold its zones without their own would have.
    configured: HashMap<String, f64>,
    applied: HashMap<String, CameraCalibration>,
}

impl Calibration {
    pub(super) fn configure(&mut self, config: &Config) {
        self.enabled = config.tracking.calibrate;
        self.configured = config
            .zones
            .iter()
            .filter(|z| !z.own_threshold)
            .map(|z| (z.camera.clone(), z.params.threshold))
            .collect();
        self.learners.retain(|c, _| self.configured.contains_key(c));
        self.applied.retain(|c, _| self.configured.contains_key(c));
    }
}

impl Pipeline {
    /// Learns from zone `i`'s camera score at `at` if its sensors are
    /// confident: all agree and have held their state a while.
    pub(super) fn learn(&mut self, i: usize, score: f64, at: Millis) {
        let z = &self.zones[i];
        if !self.calibration.enabled || z.zone.sensors.is_empty() || z.zone.own_threshold {
            return;
        }
        let votes: Vec<_> = z
            .zone
            .sensors
            .iter()
            .filter_map(|s| self.sensors.get(s).and_then(|(_, v)| *v))
            .collect();
        let Some(first) = votes.first() else { return };
        let confident = votes.len() == z.zone.sensors.len()
            && votes
                .iter()
                .all(|v| v.occupied == first.occupied && at - v.measured_at >= CONFIDENT_AGE_MS);
        if confident {
            let camera = z.zone.camera.clone();
            self.calibration
                .learners
                .entry(camera)
                .or_default()
                .observe(score, first.occupied);
        }
    }

    /// Applies what `camera`'s learner suggests, once enough is new.
    pub(super) async fn recalibrate(&mut self, camera: &str) {
        let Some(&configured) = self.calibration.configured.get(camera) else {
            return;
        };
        let Some(learner) = self.calibration.learners.get_mut(camera) else {
            return;
        };
        if learner.fresh < EVERY {
            return;
        }
        learner.fresh = 0;
        let samples = learner.len();
        let current = self
            .calibration
            .applied
            .get(camera)
            .map_or(configured, |c| c.threshold);
        let Some(threshold) = learner.suggest(configured, current) else {
            return;
        };
        if (threshold - current).abs() < 0.005 {
            return;
        }
        tracing::info!(
            camera,
            from = current,
            to = threshold,
            samples,
            "camera threshold calibrated from its presence sensors"
        );
        let entry = CameraCalibration {
            threshold,
            configured,
            samples,
        };
        self.calibration.applied.insert(camera.to_string(), entry);
        self.apply_calibration();
        let store = &self.committer.store;
        if let Err(e) = store
            .save_calibration(camera, threshold, samples, wall_clock_ms())
            .await
        {
            // Applied in memory; learned again after a restart if lost.
            tracing::warn!(camera, error = %e, "calibration not saved");
        }
    }

    /// Sets the calibrated thresholds on the zones without their own, and
    /// shows them in the live view.
    pub(super) fn apply_calibration(&mut self) {
        let cal = &self.calibration;
        for z in &mut self.zones {
            if z.zone.own_threshold {
                continue;
            }
            let applied = cal.applied.get(&z.zone.camera).filter(|_| cal.enabled);
            if let Some(c) = applied {
                z.zone.params.threshold = c.threshold;
            } else if let Some(&t) = cal.configured.get(&z.zone.camera) {
                z.zone.params.threshold = t;
            }
        }
        let mut live = self.live.write().expect("live lock");
        live.calibration = if cal.enabled {
            cal.applied.clone()
        } else {
            HashMap::new()
        };
    }

    /// Picks up the calibrations stored by an earlier run.
    pub(super) async fn load_calibration(&mut self) -> Result<(), crate::store::StoreError> {
        for (camera, threshold, samples) in self.committer.store.calibrations().await? {
            if let Some(&configured) = self.calibration.configured.get(&camera) {
                let c = CameraCalibration {
                    threshold: threshold.clamp(
                        configured - crate::tracking::calibration::MAX_SHIFT,
                        configured + crate::tracking::calibration::MAX_SHIFT,
                    ),
                    configured,
                    samples,
                };
                self.calibration.applied.insert(camera, c);
            }
        }
        self.apply_calibration();
        Ok(())
    }
}
