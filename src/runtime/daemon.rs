//! `firelane run`: the daemon. Wires MQTT ingest to the pipeline and the
//! pipeline's events to MQTT alerts, until told to stop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alerts;
use crate::api::{self, ApiState};
use crate::audit::AuditLog;
use crate::config::Config;
use crate::evidence::signing::SiteKey;
use crate::ingest;
use crate::pipeline::Metrics;
use crate::recording::Recorder;
use crate::reload::LiveConfig;
use crate::runtime::assemble::{AssembleError, Assembled, Options, assemble};
use crate::runtime::engine::Engine;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mqtt(#[from] ingest::mqtt::MqttError),
    #[error(transparent)]
    Broker(#[from] ingest::broker::BrokerError),
    #[error(transparent)]
    SiteKey(#[from] crate::evidence::signing::KeyError),
    #[error(transparent)]
    Http(#[from] crate::api::ServeError),
    #[error(transparent)]
    Live(#[from] crate::reload::ApplyError),
    #[error(transparent)]
    Recording(#[from] crate::recording::RecordingError),
    #[error(transparent)]
    Record(#[from] crate::pipeline::RecordError),
}

/// How long the engine may take to apply what is waiting at shutdown.
const SHUTDOWN_ENGINE: Duration = Duration::from_secs(4);
/// How long the other tasks may take to stop after that.
const SHUTDOWN_TASKS: Duration = Duration::from_secs(3);

/// Runs until `shutdown` is cancelled. Returns after the MQTT client said
/// `offline` and the pipeline finished its queue.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), DaemonError> {
    let (alert_tx, alert_rx) = mpsc::unbounded_channel();
    let fence = config
        .cluster
        .as_ref()
        .map(|c| Arc::new(crate::store::Fence::new(&c.instance)));
    let Assembled {
        config,
        classifier,
        store,
        evidence,
        mut pipeline,
    } = assemble(
        &config,
        Options {
            events: Some(alert_tx),
            fence: fence.clone(),
            ..Options::default()
        },
    )
    .await?;
    let site_key = Arc::new(SiteKey::load_or_create(&config.storage.site_key)?);
    let live_config =
        LiveConfig::start(config.clone(), Some(classifier.threshold()), store.clone()).await?;
    // Subscribed before the API serves, so no edit can slip between.
    let engine_updates = live_config.subscribe();
    if config.cluster.is_some() {
        // The cluster's tuning, before anything is judged here (the engine
        // subscribed above, so it starts on it).
        if let Some(Err(e)) = live_config.adopt_latest().await {
            tracing::error!(error = %e, "starting on this file's tuning");
        }
    }
    let stop_cluster = CancellationToken::new();
    let membership = match (&config.cluster, fence) {
        (Some(c), Some(fence)) => Some(crate::cluster::start(
            c,
            store.clone(),
            live_config.subscribe(),
            fence,
            stop_cluster.clone(),
        )),
        _ => None,
    };
    // Ingest follows the config, reduced in cluster mode to the cameras
    // held here (their frames and pulls, their zones' sensors).
    let stop_ingest = CancellationToken::new();
    let ingest_updates = match &membership {
        Some((m, _)) => crate::cluster::follow_held(
            live_config.subscribe(),
            m.owned.clone(),
            stop_ingest.clone(),
        ),
        None => live_config.subscribe(),
    };
    let ingest_config = ingest_updates.borrow().clone();
    if let Some((m, _)) = &membership {
        pipeline.follow_ownership(m.owned.clone());
    }
    let store_for_alerts = store.clone();
    let metrics_sources = Arc::new(std::sync::OnceLock::new());
    // The zone editor shows each camera's latest frame.
    pipeline.keep_latest_frames(config.http.enabled);
    let http = if config.http.enabled {
        let state = ApiState {
            store,
            evidence: Arc::new(evidence.clone()),
            site_key,
            audit: Arc::new(AuditLog::default()),
            config: live_config.clone(),
            live: pipeline.live(),
            metrics: metrics_sources.clone(),
        };
        let (_, task) = api::serve(&config.http.listen, state, shutdown.clone()).await?;
        Some(task)
    } else {
        None
    };
    let ingest_metrics = Arc::new(ingest::mqtt::IngestMetrics::default());
    ingest::broker::start(&config, ingest_metrics.clone()).await?;
    let recorder = match config.recording.frames_per_camera {
        0 => None,
        n => Some(Recorder::start(
            config.recording.dir.clone(),
            n,
            config.recording.min_interval_s,
        )?),
    };
    let outbox = Arc::new(alerts::outbox::Outbox::new(&config));
    pipeline.set_outbox(outbox.clone());
    let resumed = pipeline.resume().await?;
    tracing::info!(
        zones = config.zones.len(),
        cameras = config.cameras.len(),
        sensors = config.sensors.len(),
        model = %classifier.name(),
        resumed,
        jpeg_simd = crate::vision::decode::scaled_decode_simd(),
        direct_conv = crate::vision::direct::available(),
        "firelane started"
    );

    let (client, eventloop) = ingest::mqtt::connect(&config)?;
    let workers = crate::runtime::engine::worker_count(config.ingest.workers);
    let engine = Engine::start(
        pipeline,
        workers,
        config.ingest.queue_readings,
        Some(engine_updates),
        shutdown.clone(),
    );
    let frames = engine.frames.clone();
    let _ = metrics_sources.set(crate::api::metrics::MetricsSources {
        pipeline: engine.metrics.clone(),
        ingest: ingest_metrics.clone(),
        frames: engine.frames.clone(),
        recording_dropped: recorder.as_ref().map(|r| r.dropped.clone()),
        cluster: membership.as_ref().map(|(m, _)| m.counters.clone()),
    });
    let tasks = TaskTracker::new();
    tasks.spawn(ingest::snapshot::run(
        ingest_config.clone(),
        Some(ingest_updates.clone()),
        ingest::snapshot::Sinks {
            frames: engine.frames.clone(),
            recorder: recorder.clone(),
        },
        ingest_metrics.clone(),
        stop_ingest.clone(),
    ));
    tasks.spawn(ingest::mqtt::run_event_loop(
        ingest_config,
        client.clone(),
        eventloop,
        ingest::mqtt::Sinks {
            frames: engine.frames.clone(),
            readings: engine.readings.clone(),
            recorder,
        },
        Some(ingest_updates),
        ingest_metrics.clone(),
        stop_ingest.clone(),
    ));
    tasks.spawn(
        live_config
            .clone()
            .watch_file(Duration::from_secs(1), stop_ingest.clone()),
    );
    tasks.spawn(alerts::mqtt::publish_alerts(
        client.clone(),
        config.prefix().to_string(),
        alert_rx,
    ));
    let dispatcher = alerts::dispatch::Dispatcher {
        store: store_for_alerts,
        config: config.clone(),
        outbox,
        client: client.clone(),
        mqtt: ingest_metrics.clone(),
        evidence,
    };
    let stop_dispatch = CancellationToken::new();
    tasks.spawn(dispatcher.run(stop_dispatch.clone()));
    if config.cluster.is_some() {
        tasks.spawn(
            live_config
                .clone()
                .follow_cluster(config.storage.database_url.clone(), stop_ingest.clone()),
        );
    }
    tasks.spawn(super::systemd::watchdog(stop_ingest.clone()));
    tasks.spawn(super::systemd::reload_on_hangup(
        live_config.clone(),
        stop_ingest.clone(),
    ));
    let metrics = engine.metrics.clone();
    tasks.close();
    super::systemd::ready("running");

    let mut report = tokio::time::interval(Duration::from_secs(60));
    report.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = report.tick() => log_metrics(&metrics, &ingest_metrics, &frames),
        }
    }
    tracing::info!("shutting down");
    super::systemd::stopping();
    // Bounded whatever the database, broker or webhooks are doing: what
    // could not be written stays undone in memory only, and a restart
    // decides it again from the stored state (nothing recorded is lost).
    // The engine finishes what is waiting, then drops its alert sender.
    if tokio::time::timeout(SHUTDOWN_ENGINE, engine.finished())
        .await
        .is_err()
    {
        tracing::warn!(
            "inputs still waiting at shutdown were left; a restart resumes from the stored state"
        );
    }
    // One more outbox round for what the last inputs caused, then stop;
    // anything undelivered stays in the outbox for the next start.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop_dispatch.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await; // let the last alerts reach the client
    stop_ingest.cancel();
    // The last commits are done: hand every camera over now.
    stop_cluster.cancel();
    if let Some((_, task)) = membership {
        let _ = tokio::time::timeout(SHUTDOWN_TASKS, task).await;
    }
    if tokio::time::timeout(SHUTDOWN_TASKS, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not stop in time; leaving them");
    }
    if let Some(task) = http {
        let _ = tokio::time::timeout(SHUTDOWN_TASKS, task).await;
    }
    log_metrics(&metrics, &ingest_metrics, &frames);
    Ok(())
}

fn log_metrics(m: &Metrics, i: &ingest::mqtt::IngestMetrics, frames: &ingest::FrameSlots) {
    let m = m.snapshot();
    tracing::info!(
        frames = m.frames,
        crops = m.crops,
        sensor_readings = m.sensor_readings,
        rejected = m.rejected + i.rejected.load(Ordering::Relaxed),
        frames_superseded = frames.dropped(),
        readings_dropped = i.dropped_queue_full.load(Ordering::Relaxed),
        reconnects = i.reconnects.load(Ordering::Relaxed),
        violations_opened = m.violations_opened,
        violations_ended = m.violations_ended,
        record_errors = m.record_errors,
        "metrics"
    );
}
