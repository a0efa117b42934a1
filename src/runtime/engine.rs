//! Runs a [`Pipeline`] on live input: scoring workers in parallel, one
//! tracker applying their results and sensor readings in order.
//!
//! ```text
//! frames ─▶ FrameSlots (latest per camera) ─▶ N workers: decode, crop, classify
//!                                                  │ (one frame per camera at a time)
//! readings ─▶ bounded queue ──────────────┐         ▼
//!                                         └─▶ tracker: zone state, store, evidence, alerts
//! ```
//! Neither the MQTT event loop nor the workers wait on the database; the
//! workers run on blocking threads so inference never stalls the runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::base::input::Source;
use crate::base::time::Millis;
use crate::config::Config;
use crate::ingest::FrameSlots;
use crate::ingest::receipt::Queued;
use crate::pipeline::{Metrics, Pipeline, PipelineError, SensorOutcome};

use super::held::Held;

pub struct Engine {
    pub frames: Arc<FrameSlots>,
    pub readings: mpsc::Sender<Queued>,
    pub metrics: Arc<Metrics>,
    tracker: JoinHandle<()>,
}

/// Scoring threads to use: `configured`, else the machine's cores.
pub fn worker_count(configured: Option<usize>) -> usize {
    configured
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// The next configuration sent; never, without a sender.
async fn next_config(updates: &mut Option<watch::Receiver<Arc<Config>>>) -> Arc<Config> {
    if let Some(rx) = updates {
        if rx.changed().await.is_ok() {
            return rx.borrow_and_update().clone();
        }
        *updates = None;
    }
    std::future::pending().await
}

/// The next set of held cameras; never, outside cluster mode.
async fn next_owned(
    updates: &mut Option<crate::pipeline::OwnershipUpdates>,
) -> Arc<std::collections::HashSet<String>> {
    if let Some(rx) = updates {
        if rx.changed().await.is_ok() {
            return rx.borrow_and_update().clone();
        }
        *updates = None;
    }
    std::future::pending().await
}

/// The tracker task's state: the pipeline, each source's clock and the
/// readings applied but not recorded yet.
struct Tracker {
    pipeline: Pipeline,
    clocks: SourceClocks,
    held: Held,
}

impl Tracker {
    async fn frame(
        &mut self,
        scored: Result<crate::pipeline::ScoredFrame, crate::pipeline::InputError>,
    ) {
        let seen = scored
            .as_ref()
            .map(|s| (s.frame.camera.clone(), s.frame.captured_at))
            .ok();
        match self.pipeline.on_scored(scored).await {
            Ok(_) => {}
            Err(PipelineError::Input(e)) => {
                tracing::warn!(reason = %e, "input skipped");
                return;
            }
            Err(e @ PipelineError::Record(_)) => {
                tracing::error!(error = %e, "frame applied in part")
            }
        }
        if let Some((camera, at)) = seen {
            self.clocks.seen(true, &camera, at);
        }
    }

    /// Applies a reading, then acknowledges it to the broker once recorded
    /// (with any held for its sensor); a reading not recorded is held.
    async fn reading(&mut self, q: Queued) {
        let Queued {
            reading: r,
            receipt,
        } = q;
        match self.pipeline.on_sensor(&r).await {
            Ok(SensorOutcome::Applied) => {
                self.clocks.seen(false, &r.sensor, r.measured_at);
                for owed in self.held.recorded(&r.sensor) {
                    owed.ack();
                }
                receipt.ack();
            }
            Err(e @ PipelineError::Record(_)) => {
                self.clocks.seen(false, &r.sensor, r.measured_at);
                tracing::error!(error = %e, "sensor reading kept, its step not recorded yet");
                self.held.hold(r, receipt);
            }
            // Not applied (a copy, or older than the sensor's last): it
            // waits with a reading of its sensor not stored yet, else done.
            other => {
                if let Err(e) = other {
                    tracing::warn!(reason = %e, "input skipped");
                }
                if self.held.holds(&r.sensor) {
                    self.held.hold(r, receipt);
                } else {
                    receipt.ack();
                }
            }
        }
    }

    /// Stores each held sensor's latest reading again; what is stored is
    /// acknowledged.
    async fn record_held(&mut self) {
        for r in self.held.pending() {
            match self.pipeline.record_sensor_state(&r).await {
                Ok(()) => {
                    tracing::info!(sensor = %r.sensor, "held sensor reading recorded");
                    for owed in self.held.recorded(&r.sensor) {
                        owed.ack();
                    }
                }
                // The database is still away: the rest would fail alike.
                Err(e) => {
                    tracing::debug!(sensor = %r.sensor, error = %e, "held sensor reading not recorded yet");
                    break;
                }
            }
        }
    }
}

/// Scores `frame` on a blocking thread with `score`, then frees its
/// camera's slot. A panic (a bug in decoding or inference) must not wedge
/// the camera: it is counted and logged, the frame skipped (`None`).
async fn score_guarded<T: Send + 'static>(
    frames: &FrameSlots,
    metrics: &Metrics,
    frame: crate::base::input::Frame,
    score: impl FnOnce(crate::base::input::Frame) -> T + Send + 'static,
) -> Option<T> {
    let camera = frame.camera.clone();
    let result = tokio::task::spawn_blocking(move || score(frame)).await;
    frames.done(&camera);
    match result {
        Ok(scored) => Some(scored),
        Err(e) => {
            Metrics::inc(&metrics.scoring_panics, 1);
            tracing::error!(camera = %camera, error = %e, "scoring a frame panicked; frame skipped");
            None
        }
    }
}

/// How often (in one-second ticks) cameras' latest capture times are
/// stored: a restart may accept frames up to this much older than the last
/// one judged, never older than what was stored.
const CAMERA_TIMES_EVERY_TICKS: u64 = 10;

impl Tracker {
    async fn save_camera_times(&mut self) {
        if let Err(e) = self.pipeline.save_camera_times().await {
            tracing::warn!(error = %e, "cameras' latest capture times not stored yet");
        }
    }
}

/// Each source's latest event time and when it arrived.
#[derive(Default)]
struct SourceClocks {
    cameras: HashMap<String, (Millis, Instant)>,
    sensors: HashMap<String, (Millis, Instant)>,
}

impl SourceClocks {
    fn seen(&mut self, camera: bool, id: &str, at: Millis) {
        let map = if camera {
            &mut self.cameras
        } else {
            &mut self.sensors
        };
        match map.get_mut(id) {
            Some(c) if at < c.0 => {}
            Some(c) => *c = (at, Instant::now()),
            None => {
                map.insert(id.to_string(), (at, Instant::now()));
            }
        }
    }

    /// A source's time now: its latest event time plus the wall time since.
    fn now(&self, source: Source<'_>) -> Option<Millis> {
        let (at, since) = match source {
            Source::Camera(id) => self.cameras.get(id)?,
            Source::Sensor(id) => self.sensors.get(id)?,
        };
        Some(at + since.elapsed().as_millis() as Millis)
    }
}

impl Engine {
    /// Starts `workers` scoring tasks and the tracker. Configurations sent
    /// on `updates` are applied between two inputs. On `shutdown`, what is
    /// already waiting is still processed, then the tasks end.
    pub fn start(
        pipeline: Pipeline,
        workers: usize,
        queue_readings: usize,
        mut updates: Option<watch::Receiver<Arc<Config>>>,
        shutdown: CancellationToken,
    ) -> Engine {
        let frames = Arc::new(FrameSlots::default());
        let (readings_tx, mut readings_rx) = mpsc::channel::<Queued>(queue_readings.max(1));
        let (scored_tx, mut scored_rx) = mpsc::channel(workers * 2);
        let metrics = pipeline.metrics.clone();
        for _ in 0..workers {
            let frames = frames.clone();
            let scorer = pipeline.scorer();
            let scored_tx = scored_tx.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                while let Some(frame) = frames.next().await {
                    let scorer = scorer.clone();
                    let scored = score_guarded(&frames, &metrics, frame, move |f| scorer.score(f));
                    let Some(scored) = scored.await else { continue };
                    if scored_tx.send(scored).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(scored_tx);
        let slots = frames.clone();
        let tracker = tokio::spawn(async move {
            let mut pipeline = pipeline;
            let mut owned_updates = pipeline.take_ownership_updates();
            let mut retry_owned: Option<Arc<std::collections::HashSet<String>>> = None;
            let mut t = Tracker {
                pipeline,
                clocks: SourceClocks::default(),
                held: Held::default(),
            };
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            let mut ticks: u64 = 0;
            let mut closing = false;
            let mut readings_open = true;
            loop {
                tokio::select! {
                    biased;
                    // First: a busy camera must not hold a new config back.
                    config = next_config(&mut updates) => {
                        if let Err(e) = t.pipeline.reconfigure(config).await {
                            tracing::error!(error = %e, "applying the new configuration");
                        }
                    }
                    owned = next_owned(&mut owned_updates) => {
                        retry_owned = None;
                        if let Err(e) = t.pipeline.set_owned(Some((*owned).clone())).await {
                            tracing::error!(error = %e, "cameras taken over wait until their state loads; retried every second");
                            retry_owned = Some(owned);
                        }
                    }
                    scored = scored_rx.recv() => {
                        let Some(scored) = scored else { break };
                        // Readings waiting that were measured before this
                        // frame was captured go first: a sensor and a camera
                        // are applied in event-time order, even when the
                        // frame took a while to score.
                        let frame_at = scored.as_ref().map_or(Millis::MAX, |s| s.frame.captured_at);
                        let mut later = None;
                        if readings_open {
                            while let Ok(r) = readings_rx.try_recv() {
                                if r.reading.measured_at <= frame_at {
                                    t.reading(r).await;
                                } else {
                                    later = Some(r);
                                    break;
                                }
                            }
                        }
                        t.frame(scored).await;
                        if let Some(r) = later {
                            t.reading(r).await;
                        }
                    }
                    // A closed queue would be ready forever: stop polling it.
                    reading = readings_rx.recv(), if readings_open && !closing => {
                        match reading {
                            Some(r) => t.reading(r).await,
                            None => readings_open = false,
                        }
                    }
                    _ = ticker.tick() => {
                        if let Some(owned) = retry_owned.take()
                            && t.pipeline.set_owned(Some((*owned).clone())).await.is_err()
                        {
                            retry_owned = Some(owned);
                        }
                        let Tracker { pipeline, clocks, .. } = &mut t;
                        if let Err(e) = pipeline.tick_by(|s| clocks.now(s)).await {
                            tracing::error!(error = %e, "tick");
                        }
                        if !t.held.is_empty() {
                            t.record_held().await;
                        }
                        ticks += 1;
                        if ticks.is_multiple_of(CAMERA_TIMES_EVERY_TICKS) {
                            t.save_camera_times().await;
                        }
                    }
                    _ = shutdown.cancelled(), if !closing => {
                        closing = true;
                        slots.close();
                    }
                }
            }
            // Readings that arrived before the end are applied, not lost.
            while let Ok(r) = readings_rx.try_recv() {
                t.reading(r).await;
            }
            t.save_camera_times().await;
        });
        Engine {
            frames,
            readings: readings_tx,
            metrics,
            tracker,
        }
    }

    /// Waits until the tracker has applied everything (after shutdown).
    pub async fn finished(self) {
        drop(self.readings);
        let _ = self.tracker.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::input::Frame;

    fn frame(camera: &str, at: Millis) -> Frame {
        Frame {
            camera: camera.into(),
            captured_at: at,
            jpeg: Arc::new(vec![0xFF, 0xD8]),
            arrived: None,
        }
    }

    #[tokio::test]
    async fn a_panic_while_scoring_is_counted_and_the_camera_goes_on() {
        let frames = FrameSlots::default();
        let metrics = Metrics::default();
        frames.push(frame("cam", 1));
        let f = frames.next().await.unwrap();
        let out: Option<()> =
            score_guarded(&frames, &metrics, f, |_| panic!("a bug in a decoder")).await;
        assert!(out.is_none());
        assert_eq!(metrics.snapshot().scoring_panics, 1);
        // The camera's slot is free: its next frame is scored.
        frames.push(frame("cam", 2));
        let f = tokio::time::timeout(Duration::from_secs(1), frames.next())
            .await
            .expect("the camera is not wedged")
            .unwrap();
        let at = score_guarded(&frames, &metrics, f, |f| f.captured_at).await;
        assert_eq!(at, Some(2));
    }
}
