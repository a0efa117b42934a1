//! The pipeline: one frame or sensor reading through decode → classify →
//! decide → commit.
//!
//! - [`scorer`]: decode, crop and classify (any thread);
//! - [`crate::tracking::zone::decide`]: what an observation does to a zone
//!   (pure);
//! - [`commit`]: the one place that writes a decision, in one transaction;
//!   the zone adopts its new state only once that committed;
//! - [`sensors`]: presence-sensor readings, and time passing for zones
//!   whose camera is silent;
//! - [`lifecycle`]: resuming from the database and switching configs;
//! - [`live`], [`metrics`]: what the API and logs read.
//!
//! The daemon, the replay, what-if and the benchmark all feed this same
//! code (assembled by `runtime::assemble`). All decisions use capture time.

mod calibrate;
pub mod commit;
mod lifecycle;
pub mod live;
pub mod metrics;
mod ownership;
pub mod scorer;
mod sensors;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::base::input::{Frame, SensorReading};
use crate::base::time::{Millis, format_rfc3339};
use crate::config::Zone;
use crate::evidence::EvidenceError;
use crate::store::StoreError;
use crate::tracking::zone::{HeldFrame, Observation, ZoneState, decide};
use crate::tracking::{Phase, SensorVote};
use crate::vision::{Classifier, DecodeError, ModelError};

pub use calibrate::CameraCalibration;
pub use commit::{Committer, RecordContext};
pub use live::{LatestFrame, LiveView, ZoneLive};
pub use metrics::{Metrics, MetricsSnapshot};
pub use ownership::Updates as OwnershipUpdates;
pub use scorer::{FrameTimes, ScoredFrame, Scorer};

/// Why an input was skipped. The pipeline keeps running after any of them.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("unknown camera \"{0}\"")]
    UnknownCamera(String),
    #[error("unknown sensor \"{0}\"")]
    UnknownSensor(String),
    #[error("{what} captured at {at} is older than the previous one ({previous}); skipped")]
    Backwards {
        what: String,
        at: String,
        previous: String,
    },
    #[error("camera \"{camera}\" frame at {at}: {source}")]
    Decode {
        camera: String,
        at: String,
        source: DecodeError,
    },
    #[error("camera \"{camera}\": {source}")]
    Model { camera: String, source: ModelError },
    #[error("camera \"{0}\" is judged by another instance now; frame skipped")]
    NotOwned(String),
}

/// A decision that could not be recorded (database, evidence disk). The
/// zone keeps its previous state and decides the same step again on its
/// next input.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("not recorded yet, retried on the zone's next input: {0}")]
    Record(#[from] RecordError),
}

/// What became of a sensor reading that was not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorOutcome {
    /// Recorded, and its zone stepped.
    Applied,
    /// The sensor's latest reading again (a redelivery): nothing to do.
    Repeated,
}

/// One zone: its configuration, its decided state, its camera's score.
#[derive(Debug)]
struct ZoneRuntime {
    zone: Zone,
    state: ZoneState,
    camera_score: Option<(f64, Millis)>,
    /// The latest frame's tile scores (a long zone's).
    tiles: Vec<f32>,
}

impl ZoneRuntime {
    fn new(zone: Zone) -> ZoneRuntime {
        ZoneRuntime {
            zone,
            state: ZoneState::default(),
            camera_score: None,
            tiles: Vec::new(),
        }
    }
}

/// What one frame did, for callers that want to see it (replay, tests).
#[derive(Debug, Default, Clone)]
pub struct FrameOutcome {
    pub scores: Vec<(String, f32)>,
}

pub struct Pipeline {
    classifier: Arc<Classifier>,
    committer: Committer,
    zones: Vec<ZoneRuntime>,
    zone_index: HashMap<String, usize>,
    camera_zones: scorer::SharedCameraZones,
    scaled_decode: bool,
    max_pixels: u64,
    reuse: Arc<scorer::Reuse>,
    live: Arc<RwLock<LiveView>>,
    keep_latest_frames: bool,
    /// Cameras with a sensor-watched zone keep their last JPEG: a sensor
    /// can confirm a violation between frames and it needs a picture.
    keep_last_jpeg: HashSet<String>,
    last_jpeg: HashMap<String, HeldFrame>,
    sensors: HashMap<String, (usize, Option<SensorVote>)>,
    last_frame_at: HashMap<String, Millis>,
    /// What `save_camera_times` last stored.
    camera_times_saved: HashMap<String, Millis>,
    calibration: calibrate::Calibration,
    /// Cluster mode: the cameras this instance holds (`None`: all).
    owned: Option<HashSet<String>>,
    /// Where the held cameras come from, until the engine takes it.
    ownership: Option<ownership::Updates>,
    pub metrics: Arc<Metrics>,
}

impl Pipeline {
    /// A pipeline writing through `committer` (see `runtime::assemble`).
    pub fn new(
        config: &crate::config::Config,
        classifier: Arc<Classifier>,
        committer: Committer,
    ) -> Pipeline {
        let metrics = committer.metrics.clone();
        let mut p = Pipeline {
            classifier,
            committer,
            zones: Vec::new(),
            zone_index: HashMap::new(),
            camera_zones: Arc::default(),
            scaled_decode: true,
            max_pixels: u64::MAX,
            reuse: Arc::default(),
            live: Arc::default(),
            keep_latest_frames: false,
            keep_last_jpeg: HashSet::new(),
            last_jpeg: HashMap::new(),
            sensors: HashMap::new(),
            last_frame_at: HashMap::new(),
            camera_times_saved: HashMap::new(),
            calibration: Default::default(),
            owned: None,
            ownership: None,
            metrics,
        };
        p.zones = config
            .zones
            .iter()
            .map(|z| ZoneRuntime::new(z.clone()))
            .collect();
        p.index(config);
        p
    }

    /// Keeps each camera's latest frame in [`LiveView`] (for the editor).
    pub fn keep_latest_frames(&mut self, keep: bool) {
        self.keep_latest_frames = keep;
    }

    /// Writes violation alerts to `outbox` with the state that caused them.
    pub fn set_outbox(&mut self, outbox: Arc<crate::alerts::outbox::Outbox>) {
        self.committer.outbox = Some(outbox);
    }

    /// Zone states and latest frames, updated as inputs are applied.
    pub fn live(&self) -> Arc<RwLock<LiveView>> {
        self.live.clone()
    }

    /// The scoring half, to run on a worker thread ([`Scorer::score`]).
    pub fn scorer(&self) -> Scorer {
        Scorer {
            classifier: self.classifier.clone(),
            cameras: self.camera_zones.clone(),
            scaled_decode: self.scaled_decode,
            max_pixels: self.max_pixels,
            reuse: self.reuse.clone(),
        }
    }

    /// Decodes a frame, scores its zones and steps each zone.
    pub async fn on_frame(&mut self, frame: Frame) -> Result<FrameOutcome, PipelineError> {
        let scorer = self.scorer();
        let scored = match tokio::task::spawn_blocking(move || scorer.score(frame)).await {
            Ok(s) => s,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        self.on_scored(scored).await
    }

    /// Applies a scored frame. Frames of one camera must come in capture order.
    pub async fn on_scored(
        &mut self,
        scored: Result<ScoredFrame, InputError>,
    ) -> Result<FrameOutcome, PipelineError> {
        let result = match scored {
            Ok(s) => self.scored_inner(s).await,
            Err(e) => Err(e.into()),
        };
        self.count_error(&result);
        result
    }

    /// Applies a presence-sensor reading to its zone.
    pub async fn on_sensor(
        &mut self,
        reading: &SensorReading,
    ) -> Result<SensorOutcome, PipelineError> {
        let result = self.sensor_inner(reading).await;
        self.count_error(&result);
        result
    }

    fn count_error<T>(&self, result: &Result<T, PipelineError>) {
        match result {
            Err(PipelineError::Input(_)) => Metrics::inc(&self.metrics.rejected, 1),
            Err(PipelineError::Record(_)) => Metrics::inc(&self.metrics.record_errors, 1),
            Ok(_) => {}
        }
    }

    async fn scored_inner(&mut self, scored: ScoredFrame) -> Result<FrameOutcome, PipelineError> {
        let started = Instant::now();
        let ScoredFrame {
            frame,
            zones: camera_zones,
            size: (width, height),
            scores,
            tiles,
            reused,
            times,
        } = scored;
        let known = self
            .camera_zones
            .read()
            .expect("camera zones lock")
            .contains_key(&frame.camera);
        if !known {
            return Err(InputError::UnknownCamera(frame.camera).into());
        }
        if !self.owns(&frame.camera) {
            return Err(InputError::NotOwned(frame.camera).into());
        }
        if let Some(prev) = self.last_frame_at.get(&frame.camera)
            && frame.captured_at < *prev
        {
            return Err(InputError::Backwards {
                what: format!("camera \"{}\" frame", frame.camera),
                at: format_rfc3339(frame.captured_at),
                previous: format_rfc3339(*prev),
            }
            .into());
        }
        Metrics::inc(&self.metrics.frames, 1);
        Metrics::inc(&self.metrics.crops, scores.len() as u64);
        let tile_count: usize = tiles.iter().map(Vec::len).sum();
        Metrics::inc(&self.metrics.tiles, tile_count as u64);
        Metrics::inc(&self.metrics.crops_reused, reused as u64);
        Metrics::add_time(&self.metrics.decode_ns, times.decode);
        Metrics::add_time(&self.metrics.crop_ns, times.crop);
        Metrics::add_time(&self.metrics.inference_ns, times.inference);
        self.last_frame_at
            .insert(frame.camera.clone(), frame.captured_at);
        if self.keep_latest_frames {
            let latest = LatestFrame {
                captured_at: frame.captured_at,
                jpeg: frame.jpeg.clone(),
                width,
                height,
            };
            let mut live = self.live.write().expect("live lock");
            live.frames.insert(frame.camera.clone(), latest);
        }
        let held = |score: Option<f64>, tiles: &[f32]| HeldFrame {
            jpeg: frame.jpeg.clone(),
            captured_at: frame.captured_at,
            score,
            tiles: tiles.to_vec(),
        };
        if self.keep_last_jpeg.contains(&frame.camera) {
            self.last_jpeg.insert(frame.camera.clone(), held(None, &[]));
        }

        let store_before = Metrics::get(&self.metrics.store_ns);
        let mut outcome = FrameOutcome::default();
        let mut first_error = None;
        for (((id, polygon), &score), tiles) in camera_zones
            .zone_ids
            .iter()
            .zip(&camera_zones.polygons)
            .zip(&scores)
            .zip(&tiles)
        {
            // Scored under an earlier config: only a zone still drawn the
            // same takes the score; a new or redrawn one waits for the next.
            let Some(&i) = self.zone_index.get(id) else {
                continue;
            };
            if self.zones[i].zone.camera != frame.camera || &self.zones[i].zone.polygon != polygon {
                continue;
            }
            outcome.scores.push((id.clone(), score));
            self.zones[i].camera_score = Some((score as f64, frame.captured_at));
            self.zones[i].tiles.clone_from(tiles);
            let held = held(Some(score as f64), tiles);
            if let Err(e) = self
                .step_zone(i, frame.captured_at, Some(&held), None)
                .await
            {
                first_error.get_or_insert(e);
            }
            self.learn(i, score as f64, frame.captured_at);
            self.update_live(i, frame.captured_at);
        }
        self.recalibrate(&frame.camera).await;
        let store_ns = Metrics::get(&self.metrics.store_ns) - store_before;
        let total = started.elapsed().as_nanos() as u64;
        Metrics::inc(&self.metrics.tracking_ns, total.saturating_sub(store_ns));
        if let Some(arrived) = frame.arrived {
            self.metrics.record_latency(arrived.elapsed());
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(outcome),
        }
    }

    /// Decides zone `i`'s step and commits it; the zone moves on only if
    /// the commit held.
    async fn step_zone(
        &mut self,
        i: usize,
        at: Millis,
        frame: Option<&HeldFrame>,
        sensor: Option<&SensorReading>,
    ) -> Result<(), RecordError> {
        let z = &self.zones[i];
        // Another instance judges this camera's zones (cluster mode).
        if !self.owns(&z.zone.camera) {
            return Ok(());
        }
        let votes: Vec<SensorVote> = z
            .zone
            .sensors
            .iter()
            .filter_map(|s| self.sensors.get(s).and_then(|(_, v)| *v))
            .collect();
        let obs = Observation {
            at,
            camera_score: z.camera_score,
            votes: &votes,
            frame,
            latest: self.last_jpeg.get(&z.zone.camera),
        };
        let decision = decide(&z.zone, &z.state, &obs);
        if decision.needs_commit() || sensor.is_some() {
            let started = Instant::now();
            let committed = self
                .committer
                .commit((&z.zone).into(), &decision, sensor)
                .await;
            Metrics::add_time(&self.metrics.store_ns, started.elapsed());
            committed?;
        }
        self.zones[i].state = decision.next;
        Ok(())
    }

    /// Publishes zone `i`'s state to the live view.
    fn update_live(&self, i: usize, at: Millis) {
        let z = &self.zones[i];
        let state = if crate::tracking::zone::is_active(&z.zone, at) {
            z.state.tracker.phase.name()
        } else {
            "inactive"
        };
        let entry = ZoneLive {
            state,
            score: z.camera_score.map(|(s, _)| s),
            tiles: if z.tiles.len() > 1 {
                z.tiles.clone()
            } else {
                Vec::new()
            },
            at: Some(at),
            violation_id: z.state.violation_id.clone(),
        };
        let mut live = self.live.write().expect("live lock");
        live.zones.insert(z.zone.id.clone(), entry);
    }

    /// Current phase of every zone (for status output and tests).
    pub fn zone_phases(&self) -> Vec<(String, Phase)> {
        self.zones
            .iter()
            .map(|z| (z.zone.id.clone(), z.state.tracker.phase.clone()))
            .collect()
    }
}
