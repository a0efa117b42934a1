//! Replay: a scenario folder through the daemon's own pipeline.
//!
//! Sensor readings and frames are merged in capture-time order (readings
//! first at equal times, so a frame is fused with the sensor state of its
//! moment); after each moment, zones that only their sensors speak for are
//! ticked. The result is the report of FORMAT.md's scoring and, with
//! `truth.json`, the score.

pub mod scenario;
pub mod score;
pub mod truth;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::alerts::{AlertEvent, ViolationEventKind};
use crate::base::input::{Frame, SensorReading};
use crate::base::time::{Millis, rfc3339};
use crate::config::{Config, ConfigError, RawConfig};
use crate::runtime::assemble::{AssembleError, Assembled, Options, assemble};
use crate::store::StoreError;
use crate::vision::{Classifier, ModelError};

pub use scenario::{Scenario, ScenarioError};
pub use score::{Score, Span};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Assemble(#[from] AssembleError),
}

/// How to run a replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub data_dir: PathBuf,
    pub grace_s: Option<f64>,
    pub model: PathBuf,
    /// Tracking and zone settings to replay under instead of the scenario's
    /// own zones (e.g. a what-if config); `None` uses the scenario's.
    pub base_config: Option<RawConfig>,
    /// Advanced by one per frame (what-if runs draw it on the terminal).
    pub progress: Option<indicatif::ProgressBar>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportEvidence {
    pub kind: crate::base::kinds::EvidenceKind,
    pub variant: crate::base::kinds::EvidenceVariant,
    pub sha256: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportViolation {
    pub id: String,
    pub camera: String,
    pub zone: String,
    #[serde(with = "rfc3339")]
    pub start: Millis,
    #[serde(with = "rfc3339")]
    pub confirmed_at: Millis,
    #[serde(with = "rfc3339::option")]
    pub cleared: Option<Millis>,
    pub peak_score: f64,
    pub evidence: Vec<ReportEvidence>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayStats {
    pub frames: u64,
    pub crops: u64,
    /// Crops whose kept score was reused ([ingest] reuse_max_diff).
    pub crops_reused: u64,
    pub sensor_readings: u64,
    pub rejected: u64,
    pub record_errors: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub grace_s: f64,
    pub model: String,
    pub model_sha256: String,
    pub violations: Vec<ReportViolation>,
    /// Which truth `score` is against: `truth.json`, or `labels.csv` at the
    /// replay's grace when it differs from truth.json's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    pub stats: ReplayStats,
}

enum Event<'a> {
    Sensor(&'a scenario::SensorLine),
    Frame(&'a scenario::FrameLine),
}

impl Event<'_> {
    fn at(&self) -> Millis {
        match self {
            Event::Sensor(s) => s.measured_at,
            Event::Frame(f) => f.captured_at,
        }
    }
}

/// Runs `scenario` and returns its report. Bad frames are logged, counted
/// and skipped like the daemon does.
pub async fn run(scenario: &Scenario, opts: &ReplayOptions) -> Result<Report, ReplayError> {
    let started = std::time::Instant::now();
    let grace_s = opts.grace_s.unwrap_or(scenario.file.grace_s);
    let classifier = Arc::new(Classifier::load(&opts.model)?);
    let mut raw = scenario.to_raw_config(grace_s);
    if let Some(base) = &opts.base_config {
        let mut b = base.clone();
        if opts.grace_s.is_some() {
            b.tracking.grace_s = grace_s;
        }
        raw = b;
    }
    raw.storage.database_url = None;
    raw.storage.evidence_dir = None;
    let config = Config::from_raw(
        raw,
        &format!("{}/scenario.json", scenario.dir.display()),
        None,
    )?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let Assembled {
        classifier,
        store,
        evidence,
        mut pipeline,
        ..
    } = assemble(
        &config,
        Options {
            data_dir: Some(opts.data_dir.clone()),
            classifier: Some(classifier),
            events: Some(tx),
            ..Options::default()
        },
    )
    .await?;
    // A replay judges the scenario from clear zones, whatever ran before.
    store.clear_zone_states().await?;

    let mut events: Vec<Event> = scenario
        .sensors
        .iter()
        .map(Event::Sensor)
        .chain(scenario.frames.iter().map(Event::Frame))
        .collect();
    // Stable: readings before frames at the same instant.
    events.sort_by_key(|e| (e.at(), matches!(e, Event::Frame(_))));
    let mut ids = Vec::new();
    let mut idx = 0;
    while idx < events.len() {
        let at = events[idx].at();
        while idx < events.len() && events[idx].at() == at {
            match &events[idx] {
                Event::Sensor(s) => {
                    let r = SensorReading {
                        sensor: s.sensor.clone(),
                        measured_at: s.measured_at,
                        occupied: s.occupied,
                    };
                    if let Err(e) = pipeline.on_sensor(&r).await {
                        tracing::warn!(error = %e, "sensor reading skipped");
                    }
                }
                Event::Frame(f) => {
                    if let Some(p) = &opts.progress {
                        p.inc(1);
                    }
                    let path = scenario.frame_path(f);
                    match tokio::fs::read(&path).await {
                        Ok(bytes) => {
                            let frame = Frame {
                                arrived: None,
                                camera: f.camera.clone(),
                                captured_at: f.captured_at,
                                jpeg: Arc::new(bytes),
                            };
                            if let Err(e) = pipeline.on_frame(frame).await {
                                tracing::warn!(file = %path.display(), error = %e, "frame skipped");
                            }
                        }
                        Err(e) => {
                            pipeline
                                .metrics
                                .rejected
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::warn!(file = %path.display(), error = %e, "frame file unreadable; skipped");
                        }
                    }
                }
            }
            idx += 1;
        }
        if let Err(e) = pipeline.tick(at).await {
            tracing::warn!(error = %e, "tick failed");
        }
        while let Ok(ev) = rx.try_recv() {
            if let AlertEvent::Violation(m) = ev
                && m.event == ViolationEventKind::New
            {
                ids.push(m.violation.id);
            }
        }
    }

    let mut violations = Vec::new();
    let mut reported: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    for id in &ids {
        let Some(v) = store.violation(id).await? else {
            continue;
        };
        let evidence_rows = store.evidence(id).await?;
        reported.entry(v.zone.clone()).or_default().push(Span {
            start: v.start_ms,
            end: v.cleared_ms,
        });
        violations.push(ReportViolation {
            id: v.id.clone(),
            camera: v.camera.clone(),
            zone: v.zone.clone(),
            start: v.start_ms,
            confirmed_at: v.confirmed_ms,
            cleared: v.cleared_ms,
            peak_score: v.peak_score,
            evidence: evidence_rows
                .into_iter()
                .map(|e| ReportEvidence {
                    kind: e.kind,
                    variant: e.variant,
                    sha256: e.sha256,
                    path: evidence.path_of(&e.path).display().to_string(),
                })
                .collect(),
        });
    }
    violations.sort_by(|a, b| (a.start, &a.zone).cmp(&(b.start, &b.zone)));
    let truth = truth::for_grace(scenario.truth.as_ref(), scenario.labels.as_deref(), grace_s);
    let score = truth.as_ref().map(|(t, _)| score::score(&reported, t));
    let m = pipeline.metrics.snapshot();
    Ok(Report {
        scenario: scenario.file.name.clone(),
        grace_s,
        model: classifier.name().to_string(),
        model_sha256: classifier.sha256.clone(),
        violations,
        score,
        truth: truth.map(|(_, which)| which),
        stats: ReplayStats {
            frames: m.frames,
            crops: m.crops,
            crops_reused: m.crops_reused,
            sensor_readings: m.sensor_readings,
            rejected: m.rejected,
            record_errors: m.record_errors,
            seconds: started.elapsed().as_secs_f64(),
        },
    })
}

/// The default data folder of a replay: apart from the daemon's.
pub fn default_data_dir(scenario: &Scenario) -> PathBuf {
    // The name comes from the scenario file: keep it one safe path component.
    let name: String = scenario
        .file
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Path::new("data").join("replay").join(if name.is_empty() {
        "scenario".into()
    } else {
        name
    })
}
