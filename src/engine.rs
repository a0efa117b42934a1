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

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ingest::FrameSlots;
use crate::pipeline::{Metrics, Pipeline, SensorReading};
use crate::time::Millis;

pub struct Engine {
    pub frames: Arc<FrameSlots>,
    pub readings: mpsc::Sender<SensorReading>,
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

impl Engine {
    /// Starts `workers` scoring tasks and the tracker. Configurations sent
    /// on `updates` are applied between two inputs. On `shutdown`, what is
    /// already waiting is still processed, then the tasks end.
    pub fn start(
        mut pipeline: Pipeline,
        workers: usize,
        queue_readings: usize,
        mut updates: Option<watch::Receiver<Arc<Config>>>,
        shutdown: CancellationToken,
    ) -> Engine {
        let frames = Arc::new(FrameSlots::default());
        let (readings_tx, mut readings_rx) = mpsc::channel::<SensorReading>(queue_readings.max(1));
        let (scored_tx, mut scored_rx) = mpsc::channel(workers * 2);
        let metrics = pipeline.metrics.clone();
        for _ in 0..workers {
            let frames = frames.clone();
            let scorer = pipeline.scorer();
            let scored_tx = scored_tx.clone();
            tokio::spawn(async move {
                while let Some(frame) = frames.next().await {
                    let camera = frame.camera.clone();
                    let scorer = scorer.clone();
                    let scored = tokio::task::spawn_blocking(move || scorer.score(frame))
                        .await
                        .expect("scoring task panicked");
                    let sent = scored_tx.send(scored).await;
                    frames.done(&camera);
                    if sent.is_err() {
                        break;
                    }
                }
            });
        }
        drop(scored_tx);
        let slots = frames.clone();
        let tracker = tokio::spawn(async move {
            // The event clock for sensor-only zones: the latest capture time
            // accepted, advanced by the wall time since it arrived.
            let mut latest: Option<(Millis, Instant)> = None;
            let seen = |at: Millis, latest: &mut Option<(Millis, Instant)>| {
                if latest.is_none_or(|(l, _)| at >= l) {
                    *latest = Some((at, Instant::now()));
                }
            };
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            let mut closing = false;
            let mut readings_open = true;
            loop {
                tokio::select! {
                    biased;
                    // First: a busy camera must not hold a new config back.
                    config = next_config(&mut updates) => {
                        if let Err(e) = pipeline.reconfigure(config).await {
                            tracing::error!(error = %e, "applying the new configuration");
                        }
                    }
                    scored = scored_rx.recv() => {
                        let Some(scored) = scored else { break };
                        let at = scored.as_ref().map(|s| s.frame.captured_at).ok();
                        match pipeline.on_scored(scored).await {
                            Ok(_) => { if let Some(at) = at { seen(at, &mut latest) } }
                            Err(e) => tracing::warn!(reason = %e, "input skipped"),
                        }
                    }
                    // A closed queue would be ready forever: stop polling it.
                    reading = readings_rx.recv(), if readings_open && !closing => {
                        match reading {
                            Some(r) => {
                                let at = r.measured_at;
                                match pipeline.on_sensor(r).await {
                                    Ok(()) => seen(at, &mut latest),
                                    Err(e) => tracing::warn!(reason = %e, "input skipped"),
                                }
                            }
                            None => readings_open = false,
                        }
                    }
                    _ = ticker.tick() => {
                        if let Some((at, since)) = latest {
                            let now = at + since.elapsed().as_millis() as Millis;
                            if let Err(e) = pipeline.tick(now).await {
                                tracing::error!(error = %e, "tick failed");
                            }
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
                if let Err(e) = pipeline.on_sensor(r).await {
                    tracing::warn!(reason = %e, "input skipped");
                }
            }
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
