//! The pipeline: one frame or sensor reading through decode → classify →
//! track → store/evidence/alerts.
//!
//! The daemon (MQTT) and the replay (scenario folder) both feed this same
//! code; only the transport differs. All decisions use capture time.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use image::RgbImage;
use tokio::sync::mpsc;

use crate::alerts::outbox::Outbox;
use crate::alerts::{
    AlertEvent, SiteRef, ViolationEventKind, ViolationMessage, ViolationView, ZoneStateView,
};
use crate::config::{Config, Zone};
use crate::evidence::annotate::{Caption, annotate};
use crate::evidence::{EvidenceError, EvidenceStore};
use crate::store::{EvidenceRow, Store, StoreError, ViolationRow, ZoneStateRow, violation_id};
use crate::time::{Millis, format_rfc3339, rfc3339};
use crate::tracking::{Phase, Reading, SensorVote, Transition, ZoneTracker, fuse};
use crate::vision::decode::{
    decode_jpeg_for_zones, decode_jpeg_into, jpeg_dimensions, scaled_decode_worth_it,
};
use crate::vision::{Classifier, DecodeError, ModelError, decode_jpeg};

/// A camera frame as received: the JPEG bytes, untouched.
#[derive(Debug, Clone)]
pub struct Frame {
    pub camera: String,
    pub captured_at: Millis,
    pub jpeg: Arc<Vec<u8>>,
    /// When it reached firelane (for the latency metric only).
    pub arrived: Option<Instant>,
}

/// A frame after the CPU-heavy half: its zones' scores.
#[derive(Debug)]
pub struct ScoredFrame {
    pub frame: Frame,
    /// The zones as they were when scored (a config change may come between).
    zones: Arc<CameraZones>,
    /// Full width and height, read from the header once while scoring.
    size: (u32, u32),
    scores: Vec<f32>,
    pub times: FrameTimes,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FrameTimes {
    pub decode: Duration,
    pub crop: Duration,
    pub inference: Duration,
}

/// Decode, crop and classify: the CPU-heavy half of a frame. Cheap to
/// clone and safe on any thread, so frames of different cameras are scored
/// in parallel; the pipeline then applies results one at a time.
#[derive(Clone)]
pub struct Scorer {
    classifier: Arc<Classifier>,
    cameras: SharedCameraZones,
    scaled_decode: bool,
}

/// Each camera's zones, swapped whole when the configuration changes.
type SharedCameraZones = Arc<RwLock<Arc<HashMap<String, Arc<CameraZones>>>>>;

impl Scorer {
    pub fn score(&self, frame: Frame) -> Result<ScoredFrame, InputError> {
        let zones = self
            .cameras
            .read()
            .expect("camera zones lock")
            .get(&frame.camera)
            .cloned();
        let Some(zones) = zones else {
            return Err(InputError::UnknownCamera(frame.camera));
        };
        let started = Instant::now();
        let decode_error = |source| InputError::Decode {
            camera: frame.camera.clone(),
            at: format_rfc3339(frame.captured_at),
            source,
        };
        let header = if self.scaled_decode {
            jpeg_dimensions(&frame.jpeg)
        } else {
            None
        };
        let scaled = header.is_some_and(|(w, h)| {
            scaled_decode_worth_it(w, h, &zones.bounds, self.classifier.input_px())
        });
        let (image, size) = if let (true, Some(size)) = (scaled, header) {
            let image =
                decode_jpeg_for_zones(&frame.jpeg, &zones.bounds, self.classifier.input_px())
                    .map_err(decode_error)?
                    .0;
            (image, size)
        } else {
            // Full size into this thread's reused buffer, given back below.
            let mut buf = FRAME_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
            let (w, h) = decode_jpeg_into(&frame.jpeg, &mut buf).map_err(decode_error)?;
            (
                RgbImage::from_raw(w, h, buf).expect("decoded size matches"),
                (w, h),
            )
        };
        let decode = started.elapsed();
        let scored = self
            .classifier
            .score_zones_timed(&image, zones.polygons.iter(), INFERENCE_CHUNK)
            .map_err(|source| InputError::Model {
                camera: frame.camera.clone(),
                source,
            });
        if !scaled {
            FRAME_BUFFER.with(|b| *b.borrow_mut() = image.into_raw());
        }
        let (scores, stage) = scored?;
        Ok(ScoredFrame {
            frame,
            zones,
            size,
            scores,
            times: FrameTimes {
                decode,
                crop: stage.crop,
                inference: stage.inference,
            },
        })
    }
}

thread_local! {
    /// Each scoring thread's frame buffer, reused frame after frame.
    static FRAME_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Crops per inference call: tract runs this small network fastest per
/// crop one at a time (`cargo bench --bench vision`).
const INFERENCE_CHUNK: usize = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct SensorReading {
    pub sensor: String,
    pub measured_at: Millis,
    pub occupied: bool,
}

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
}

/// Failures of the record keeping (database, evidence disk).
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
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Counters, exported in logs and (later) metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub frames: AtomicU64,
    pub crops: AtomicU64,
    pub sensor_readings: AtomicU64,
    pub rejected: AtomicU64,
    pub record_errors: AtomicU64,
    pub violations_opened: AtomicU64,
    pub violations_ended: AtomicU64,
    /// Nanoseconds spent per stage, summed over frames.
    pub decode_ns: AtomicU64,
    pub crop_ns: AtomicU64,
    pub inference_ns: AtomicU64,
    pub tracking_ns: AtomicU64,
    pub store_ns: AtomicU64,
    /// Arrival-to-decision latency of frames that carry `arrived`, in µs
    /// (the first million; for benchmarks).
    pub latencies_us: Mutex<Vec<u32>>,
}

impl Metrics {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    fn inc(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    fn add_time(c: &AtomicU64, d: Duration) {
        c.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// A frame a zone holds on to until it becomes evidence.
#[derive(Debug, Clone)]
struct HeldFrame {
    jpeg: Arc<Vec<u8>>,
    captured_at: Millis,
    score: Option<f64>,
}

/// The first obstructed frame, stored as soon as an obstruction starts.
#[derive(Debug, Clone)]
struct FirstFrame {
    sha256: String,
    captured_at: Millis,
    score: Option<f64>,
}

#[derive(Debug)]
struct ZoneRuntime {
    zone: Zone,
    tracker: ZoneTracker,
    camera_score: Option<(f64, Millis)>,
    violation_id: Option<String>,
    first: Option<FirstFrame>,
    clearing: Option<HeldFrame>,
    /// Evidence of the open violation still waiting for a frame (it was
    /// confirmed on a sensor reading before the camera sent one).
    pending_evidence: Vec<&'static str>,
}

/// A camera's zones (indices into `Pipeline::zones`) and their polygons,
/// built once so a frame's classify task borrows them instead of copying.
#[derive(Debug)]
struct CameraZones {
    zone_ids: Vec<String>,
    polygons: Vec<crate::config::ZonePolygon>,
    /// Bounding boxes as fractions, for the decode scale.
    bounds: Vec<[f64; 4]>,
}

/// What one frame did, for callers that want to see it (replay, tests).
#[derive(Debug, Default, Clone)]
pub struct FrameOutcome {
    pub scores: Vec<(String, f32)>,
}

/// What each zone is doing now, for the zone editor's live overlay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ZoneLive {
    /// `clear`, `obstructed`, `violation`, or `inactive` (outside its schedule).
    pub state: &'static str,
    pub score: Option<f64>,
    #[serde(with = "rfc3339::option")]
    pub at: Option<Millis>,
    pub violation_id: Option<String>,
}

/// A camera's latest frame, as received.
#[derive(Debug, Clone)]
pub struct LatestFrame {
    pub captured_at: Millis,
    pub jpeg: Arc<Vec<u8>>,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Default)]
pub struct LiveView {
    pub zones: HashMap<String, ZoneLive>,
    /// Only kept when asked for ([`Pipeline::keep_latest_frames`]): a JPEG
    /// per camera is memory a site of hundreds of cameras may not spare.
    pub frames: HashMap<String, LatestFrame>,
}

impl ZoneRuntime {
    fn new(zone: Zone) -> ZoneRuntime {
        ZoneRuntime {
            zone,
            tracker: ZoneTracker::default(),
            camera_score: None,
            violation_id: None,
            first: None,
            clearing: None,
            pending_evidence: Vec::new(),
        }
    }
}

fn site_refs(config: &Config) -> HashMap<String, SiteRef> {
    config
        .sites
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                SiteRef {
                    id: s.id.clone(),
                    name: s.name.clone(),
                },
            )
        })
        .collect()
}

fn camera_zones(config: &Config, zones: &[ZoneRuntime]) -> HashMap<String, Arc<CameraZones>> {
    config
        .cameras
        .iter()
        .map(|c| {
            let of_camera: Vec<&Zone> = zones
                .iter()
                .map(|z| &z.zone)
                .filter(|z| z.camera == c.id)
                .collect();
            let polygons: Vec<_> = of_camera.iter().map(|z| z.polygon.clone()).collect();
            let bounds = polygons.iter().map(|p| p.fraction_bounds()).collect();
            (
                c.id.clone(),
                Arc::new(CameraZones {
                    zone_ids: of_camera.iter().map(|z| z.id.clone()).collect(),
                    polygons,
                    bounds,
                }),
            )
        })
        .collect()
}

pub struct Pipeline {
    classifier: Arc<Classifier>,
    store: Store,
    evidence: EvidenceStore,
    zones: Vec<ZoneRuntime>,
    zone_index: HashMap<String, usize>,
    camera_zones: SharedCameraZones,
    live: Arc<RwLock<LiveView>>,
    keep_latest_frames: bool,
    /// Cameras with a sensor-watched zone keep their last JPEG: a sensor
    /// can confirm a violation between frames and it needs a picture.
    keep_last_jpeg: HashSet<String>,
    scaled_decode: bool,
    sensors: HashMap<String, (usize, Option<SensorVote>)>,
    last_frame_at: HashMap<String, Millis>,
    last_jpeg: HashMap<String, (Millis, Arc<Vec<u8>>)>,
    alerts: Option<mpsc::UnboundedSender<AlertEvent>>,
    /// Events of the step in progress; sent only after its state is saved,
    /// so a crash never announces what a restart would announce again.
    outgoing: Vec<AlertEvent>,
    config_sha256: String,
    sites: HashMap<String, SiteRef>,
    /// Where violation alerts are written before the state that caused
    /// them (the daemon's; a replay has none).
    outbox: Option<Arc<Outbox>>,
    pub metrics: Arc<Metrics>,
}

impl Pipeline {
    pub fn new(
        config: Arc<Config>,
        classifier: Arc<Classifier>,
        store: Store,
        evidence: EvidenceStore,
        alerts: Option<mpsc::UnboundedSender<AlertEvent>>,
    ) -> Pipeline {
        let zones: Vec<ZoneRuntime> = config
            .zones
            .iter()
            .map(|z| ZoneRuntime::new(z.clone()))
            .collect();
        let zone_index: HashMap<String, usize> = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.zone.id.clone(), i))
            .collect();
        let camera_zones = camera_zones(&config, &zones);
        let sensors = config
            .sensors
            .iter()
            .map(|s| (s.id.clone(), (zone_index[&s.zone], None)))
            .collect();
        Pipeline {
            config_sha256: config.sha256.clone(),
            sites: site_refs(&config),
            outbox: None,
            classifier,
            store,
            evidence,
            zones,
            zone_index,
            camera_zones: Arc::new(RwLock::new(Arc::new(camera_zones))),
            live: Arc::new(RwLock::new(LiveView::default())),
            keep_latest_frames: false,
            sensors,
            last_frame_at: HashMap::new(),
            last_jpeg: HashMap::new(),
            keep_last_jpeg: config
                .zones
                .iter()
                .filter(|z| !z.sensors.is_empty())
                .map(|z| z.camera.clone())
                .collect(),
            scaled_decode: config.raw.ingest.scaled_decode,
            alerts,
            outgoing: Vec::new(),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Keeps each camera's latest frame in [`LiveView`] (for the editor).
    pub fn keep_latest_frames(&mut self, keep: bool) {
        self.keep_latest_frames = keep;
    }

    /// Zone states and latest frames, updated as inputs are applied.
    pub fn live(&self) -> Arc<RwLock<LiveView>> {
        self.live.clone()
    }

    /// Switches to `config` between two inputs. Zones whose camera and
    /// polygon are unchanged keep their state and open violation; a moved
    /// or removed zone's open violation ends (`zone_changed`,
    /// `zone_removed`): it was judged on a picture that no longer applies.
    pub async fn reconfigure(&mut self, config: Arc<Config>) -> Result<(), PipelineError> {
        let mut old: HashMap<String, ZoneRuntime> = self
            .zones
            .drain(..)
            .map(|z| (z.zone.id.clone(), z))
            .collect();
        let mut ended = Vec::new();
        for z in &config.zones {
            match old.remove(&z.id) {
                Some(mut rt) if rt.zone.camera == z.camera && rt.zone.polygon == z.polygon => {
                    rt.zone = z.clone();
                    self.zones.push(rt);
                }
                Some(rt) => {
                    ended.push((rt, "zone_changed"));
                    self.zones.push(ZoneRuntime::new(z.clone()));
                }
                None => self.zones.push(ZoneRuntime::new(z.clone())),
            }
        }
        ended.extend(old.into_values().map(|rt| (rt, "zone_removed")));
        self.zone_index = self
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.zone.id.clone(), i))
            .collect();
        *self.camera_zones.write().expect("camera zones lock") =
            Arc::new(camera_zones(&config, &self.zones));
        let mut votes: HashMap<String, Option<SensorVote>> = self
            .sensors
            .drain()
            .map(|(id, (_, vote))| (id, vote))
            .collect();
        self.sensors = config
            .sensors
            .iter()
            .map(|s| {
                let vote = votes.remove(&s.id).flatten();
                (s.id.clone(), (self.zone_index[&s.zone], vote))
            })
            .collect();
        self.keep_last_jpeg = config
            .zones
            .iter()
            .filter(|z| !z.sensors.is_empty())
            .map(|z| z.camera.clone())
            .collect();
        self.config_sha256 = config.sha256.clone();
        self.scaled_decode = config.raw.ingest.scaled_decode;
        self.sites = site_refs(&config);
        {
            let mut live = self.live.write().expect("live lock");
            live.zones.retain(|id, _| self.zone_index.contains_key(id));
            live.frames
                .retain(|camera, _| config.cameras.iter().any(|c| &c.id == camera));
        }
        let mut first_error = None;
        for (rt, reason) in ended {
            if let Err(e) = self.end_detached(rt, reason).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Ends the open violation of a zone that left the configuration (or
    /// was redrawn) and resets its stored state.
    async fn end_detached(&mut self, rt: ZoneRuntime, reason: &str) -> Result<(), RecordError> {
        self.outgoing.clear();
        let at = rt.tracker.last_at.unwrap_or_default();
        if let Some(id) = &rt.violation_id {
            self.end_with_reason(&rt.zone, &rt.tracker.phase, id, at, reason)
                .await?;
        }
        self.enqueue_alerts().await?;
        self.store
            .save_zone_state(&ZoneStateRow {
                zone: rt.zone.id.clone(),
                camera: rt.zone.camera.clone(),
                phase: Phase::Clear,
                last_at_ms: rt.tracker.last_at,
                violation_id: None,
                first_sha256: None,
                first_captured_ms: None,
                first_score: None,
            })
            .await?;
        self.flush_events();
        Ok(())
    }

    /// Closes violation `id` of `zone` at `at` for `reason` (not a clear
    /// lane: a schedule window's end, a zone removed) and announces it.
    async fn end_with_reason(
        &mut self,
        zone: &Zone,
        phase: &Phase,
        id: &str,
        at: Millis,
        reason: &str,
    ) -> Result<(), RecordError> {
        let before = self.store.violation(id).await?;
        let (last_obstructed, peak) = match *phase {
            Phase::Violation {
                last_obstructed,
                peak,
                ..
            } => (last_obstructed.min(at), peak),
            _ => (at, 0.0),
        };
        self.store
            .end_violation(id, at, last_obstructed, peak, reason)
            .await?;
        Metrics::inc(&self.metrics.violations_ended, 1);
        tracing::info!(violation = %id, zone = %zone.id, ended = %format_rfc3339(at), reason, "violation ended");
        if let Some(row) = self.store.violation(id).await? {
            self.emit_violation(
                ViolationEventKind::End,
                before.as_ref(),
                &row,
                at,
                &zone.site,
            );
        }
        Ok(())
    }

    /// Whether zone `i` is enforced at `at` (its schedule).
    fn is_active(&self, i: usize, at: Millis) -> bool {
        self.zones[i]
            .zone
            .schedule
            .as_ref()
            .is_none_or(|s| s.is_active(at))
    }

    /// When zone `i` was judged last inside an enforced window that has
    /// closed since (before `at`): the instant it closed.
    fn window_closed_since_last(&self, i: usize, at: Millis) -> Option<Millis> {
        let z = &self.zones[i];
        let schedule = z.zone.schedule.as_ref()?;
        let last = z.tracker.last_at?;
        let open = !matches!(z.tracker.phase, Phase::Clear) || z.violation_id.is_some();
        if !open || last >= at || !schedule.is_active(last) {
            return None;
        }
        schedule.first_inactive_after(last, at)
    }

    /// A zone outside its schedule since `ended_at`: an open obstruction is
    /// forgotten and an open violation ends at that instant.
    async fn deactivate(&mut self, i: usize, ended_at: Millis) -> Result<(), RecordError> {
        let z = &self.zones[i];
        if matches!(z.tracker.phase, Phase::Clear) && z.violation_id.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        self.outgoing.clear();
        let zone = z.zone.clone();
        let phase = z.tracker.phase.clone();
        if let Some(id) = self.zones[i].violation_id.clone() {
            self.end_with_reason(&zone, &phase, &id, ended_at, "schedule_ended")
                .await?;
        }
        let z = &mut self.zones[i];
        z.violation_id = None;
        z.tracker = ZoneTracker::resume(Phase::Clear, Some(ended_at));
        z.first = None;
        z.clearing = None;
        z.pending_evidence.clear();
        self.outgoing.push(AlertEvent::ZoneState(ZoneStateView {
            zone: zone.id.clone(),
            camera: zone.camera.clone(),
            state: "inactive".into(),
            since: ended_at,
            score: None,
            violation_id: None,
        }));
        self.enqueue_alerts().await?;
        self.save_state(i).await?;
        self.flush_events();
        Metrics::add_time(&self.metrics.store_ns, started.elapsed());
        Ok(())
    }

    /// Publishes zone `i`'s state to the live view.
    fn update_live(&self, i: usize, at: Millis) {
        let z = &self.zones[i];
        let state = if self.is_active(i, at) {
            z.tracker.phase.name()
        } else {
            "inactive"
        };
        let entry = ZoneLive {
            state,
            score: z.camera_score.map(|(s, _)| s),
            at: Some(at),
            violation_id: z.violation_id.clone(),
        };
        let mut live = self.live.write().expect("live lock");
        match live.zones.get_mut(&z.zone.id) {
            Some(e) => *e = entry,
            None => {
                live.zones.insert(z.zone.id.clone(), entry);
            }
        }
    }

    /// Sends violation alerts through `outbox` from now on.
    pub fn set_outbox(&mut self, outbox: Arc<Outbox>) {
        self.outbox = Some(outbox);
    }

    /// Picks up where the database left off: open obstructions and
    /// violations continue, so a restart neither duplicates nor loses one.
    pub async fn resume(&mut self) -> Result<usize, RecordError> {
        let mut resumed = 0;
        for row in self.store.zone_states().await? {
            let tracker = ZoneTracker::resume(row.phase.clone(), row.last_at_ms);
            let known = self.zone_index.get(&row.zone).copied();
            // A violation judged on a picture that changed while the daemon
            // was down (zone redrawn, moved or removed) ends, as it would
            // have with the daemon running; the zone starts afresh.
            let changed = match known {
                None => Some("zone_removed"),
                Some(i) => {
                    let z = &self.zones[i].zone;
                    let polygon =
                        serde_json::to_string(z.polygon.points()).expect("points serialise");
                    let drawn = match &row.violation_id {
                        Some(id) => self.store.violation(id).await?.map(|v| v.zone_polygon),
                        None => None,
                    };
                    (z.camera != row.camera || drawn.is_some_and(|d| d != polygon))
                        .then_some("zone_changed")
                }
            };
            if let Some(reason) = changed {
                if row.violation_id.is_some() {
                    let zone = match known {
                        Some(i) => self.zones[i].zone.clone(),
                        None => Zone {
                            id: row.zone.clone(),
                            name: None,
                            camera: row.camera.clone(),
                            site: self
                                .sites
                                .keys()
                                .next()
                                .cloned()
                                .unwrap_or_else(|| "default".into()),
                            polygon: crate::config::ZonePolygon::new(vec![
                                [0.0, 0.0],
                                [1.0, 0.0],
                                [1.0, 1.0],
                            ])
                            .expect("a triangle is a polygon"),
                            params: Default::default(),
                            sensors: Vec::new(),
                            schedule: None,
                        },
                    };
                    let rt = ZoneRuntime {
                        tracker,
                        violation_id: row.violation_id.clone(),
                        ..ZoneRuntime::new(zone)
                    };
                    self.end_detached(rt, reason).await?;
                }
                continue;
            }
            let Some(i) = known else { continue };
            let z = &mut self.zones[i];
            if !matches!(row.phase, Phase::Clear) {
                resumed += 1;
            }
            z.tracker = tracker;
            z.violation_id = row.violation_id;
            z.first = row.first_sha256.map(|sha256| FirstFrame {
                sha256,
                captured_at: row.first_captured_ms.unwrap_or_default(),
                score: row.first_score,
            });
        }
        for (sensor, occupied, measured_at) in self.store.sensor_states().await? {
            if let Some((_, vote)) = self.sensors.get_mut(&sensor) {
                *vote = Some(SensorVote {
                    occupied,
                    measured_at,
                });
            }
        }
        Ok(resumed)
    }

    /// Decodes a frame, scores its zones in one batch and steps each zone.
    pub async fn on_frame(&mut self, frame: Frame) -> Result<FrameOutcome, PipelineError> {
        let result = self.frame_inner(frame).await;
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

    /// The scoring half, to run on a worker thread ([`Scorer::score`]).
    pub fn scorer(&self) -> Scorer {
        Scorer {
            classifier: self.classifier.clone(),
            cameras: self.camera_zones.clone(),
            scaled_decode: self.scaled_decode,
        }
    }

    async fn frame_inner(&mut self, frame: Frame) -> Result<FrameOutcome, PipelineError> {
        let scorer = self.scorer();
        let scored = tokio::task::spawn_blocking(move || scorer.score(frame))
            .await
            .expect("classifier task panicked");
        self.scored_inner(scored?).await
    }

    /// Applies a scored frame: tracking, records, alerts. Frames of one
    /// camera must come in capture order.
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

    async fn scored_inner(&mut self, scored: ScoredFrame) -> Result<FrameOutcome, PipelineError> {
        let started = Instant::now();
        let ScoredFrame {
            frame,
            zones: camera_zones,
            size: (width, height),
            scores,
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
        Metrics::add_time(&self.metrics.decode_ns, times.decode);
        Metrics::add_time(&self.metrics.crop_ns, times.crop);
        Metrics::add_time(&self.metrics.inference_ns, times.inference);
        self.last_frame_at
            .insert(frame.camera.clone(), frame.captured_at);
        if self.keep_latest_frames {
            self.live.write().expect("live lock").frames.insert(
                frame.camera.clone(),
                LatestFrame {
                    captured_at: frame.captured_at,
                    jpeg: frame.jpeg.clone(),
                    width,
                    height,
                },
            );
        }
        if self.keep_last_jpeg.contains(&frame.camera) {
            self.last_jpeg.insert(
                frame.camera.clone(),
                (frame.captured_at, frame.jpeg.clone()),
            );
        }

        let store_before = Metrics::get(&self.metrics.store_ns);
        let mut outcome = FrameOutcome::default();
        let mut first_error = None;
        for ((id, polygon), &score) in camera_zones
            .zone_ids
            .iter()
            .zip(&camera_zones.polygons)
            .zip(&scores)
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
            let held = HeldFrame {
                jpeg: frame.jpeg.clone(),
                captured_at: frame.captured_at,
                score: Some(score as f64),
            };
            if let Err(e) = self.step_zone(i, frame.captured_at, Some(&held)).await {
                first_error.get_or_insert(e);
            }
            if let Err(e) = self.fill_missing_evidence(i, &held).await {
                first_error.get_or_insert(e);
            }
            self.update_live(i, frame.captured_at);
        }
        let store_ns = Metrics::get(&self.metrics.store_ns) - store_before;
        let total = started.elapsed().as_nanos() as u64;
        Metrics::inc(&self.metrics.tracking_ns, total.saturating_sub(store_ns));
        if let Some(arrived) = frame.arrived {
            let mut l = self.metrics.latencies_us.lock().expect("metrics lock");
            if l.len() < 1_000_000 {
                l.push(arrived.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(outcome),
        }
    }

    /// Applies a presence-sensor reading to its zone.
    pub async fn on_sensor(&mut self, reading: SensorReading) -> Result<(), PipelineError> {
        let result = self.sensor_inner(reading).await;
        self.count_error(&result);
        result
    }

    async fn sensor_inner(&mut self, reading: SensorReading) -> Result<(), PipelineError> {
        let Some((zone, last)) = self.sensors.get_mut(&reading.sensor) else {
            return Err(InputError::UnknownSensor(reading.sensor).into());
        };
        if let Some(prev) = last
            && reading.measured_at < prev.measured_at
        {
            return Err(InputError::Backwards {
                what: format!("sensor \"{}\" reading", reading.sensor),
                at: format_rfc3339(reading.measured_at),
                previous: format_rfc3339(prev.measured_at),
            }
            .into());
        }
        *last = Some(SensorVote {
            occupied: reading.occupied,
            measured_at: reading.measured_at,
        });
        let zone = *zone;
        Metrics::inc(&self.metrics.sensor_readings, 1);
        self.store
            .save_sensor_state(&reading.sensor, reading.occupied, reading.measured_at)
            .await
            .map_err(RecordError::from)?;
        self.step_zone(zone, reading.measured_at, None).await?;
        self.update_live(zone, reading.measured_at);
        Ok(())
    }

    /// Advances zones that sensors speak for while their camera is silent,
    /// so time passing alone can confirm or end a violation. `at` is event
    /// time (the replay's clock, or the daemon's latest capture time).
    pub async fn tick(&mut self, at: Millis) -> Result<(), PipelineError> {
        let mut first_error = None;
        for i in 0..self.zones.len() {
            let z = &self.zones[i];
            if z.zone.sensors.is_empty() {
                continue;
            }
            let camera_fresh = z
                .camera_score
                .is_some_and(|(_, t)| at - t <= z.zone.params.camera_stale_ms);
            if camera_fresh || z.tracker.last_at.is_some_and(|l| l >= at) {
                continue;
            }
            if let Err(e) = self.step_zone(i, at, None).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    fn sensor_votes(&self, zone: usize) -> Vec<SensorVote> {
        self.zones[zone]
            .zone
            .sensors
            .iter()
            .filter_map(|s| self.sensors.get(s).and_then(|(_, v)| *v))
            .collect()
    }

    async fn step_zone(
        &mut self,
        i: usize,
        at: Millis,
        frame: Option<&HeldFrame>,
    ) -> Result<(), RecordError> {
        if let Some(closed) = self.window_closed_since_last(i, at) {
            self.deactivate(i, closed).await?;
        }
        if !self.is_active(i, at) {
            return self.deactivate(i, at).await;
        }
        let votes = self.sensor_votes(i);
        let z = &mut self.zones[i];
        let Some(reading) = fuse(&z.zone.params, at, z.camera_score, &votes) else {
            return Ok(());
        };
        let transitions = z.tracker.step(&z.zone.params, reading);
        if transitions.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.outgoing.clear();
        for t in &transitions {
            self.apply(i, t, &reading, frame).await?;
        }
        // Alerts are in the outbox before the state that caused them is
        // saved: a crash in between repeats the step, and the outbox's
        // keys make the repeat add nothing.
        self.enqueue_alerts().await?;
        self.save_state(i).await?;
        self.flush_events();
        Metrics::add_time(&self.metrics.store_ns, started.elapsed());
        Ok(())
    }

    /// The frame that stands for a zone at a reading: the one being
    /// processed, else the camera's latest.
    fn frame_for(&self, i: usize, frame: Option<&HeldFrame>) -> Option<HeldFrame> {
        if let Some(h) = frame {
            return Some(h.clone());
        }
        let camera = &self.zones[i].zone.camera;
        self.last_jpeg.get(camera).map(|(t, jpeg)| HeldFrame {
            jpeg: jpeg.clone(),
            captured_at: *t,
            score: None,
        })
    }

    async fn apply(
        &mut self,
        i: usize,
        t: &Transition,
        reading: &Reading,
        frame: Option<&HeldFrame>,
    ) -> Result<(), RecordError> {
        let zone = self.zones[i].zone.clone();
        match *t {
            Transition::Started { .. } => {
                // Started by a sensor: the camera's last frame predates the
                // start, so the next frame becomes the first evidence.
                self.zones[i].first = None;
                if let Some(held) = frame {
                    self.hold_first(i, held)?;
                }
                self.publish_state(i, reading, None);
            }
            Transition::Confirmed {
                start,
                confirmed_at,
                peak,
            } => {
                let id = violation_id(&zone.camera, &zone.id, start);
                let row = ViolationRow {
                    id: id.clone(),
                    camera: zone.camera.clone(),
                    zone: zone.id.clone(),
                    start_ms: start,
                    confirmed_ms: confirmed_at,
                    cleared_ms: None,
                    last_obstructed_ms: confirmed_at,
                    peak_score: peak,
                    model_name: self.classifier.name().to_string(),
                    model_sha256: self.classifier.sha256.clone(),
                    status: "open".into(),
                    end_reason: None,
                    zone_polygon: serde_json::to_string(zone.polygon.points())
                        .expect("points serialise"),
                    config_sha256: self.config_sha256.clone(),
                    review_status: "pending".into(),
                };
                self.store.upsert_violation(&row).await?;
                self.zones[i].violation_id = Some(id.clone());
                self.zones[i].pending_evidence.clear();
                match self.zones[i].first.clone() {
                    Some(first) => {
                        let jpeg = self.evidence.get(&first.sha256)?;
                        let held = HeldFrame {
                            jpeg: Arc::new(jpeg),
                            captured_at: first.captured_at,
                            score: first.score,
                        };
                        self.record_evidence(&id, &zone, "first", &held).await?;
                    }
                    None => self.zones[i].pending_evidence.push("first"),
                }
                match self.frame_for(i, frame) {
                    Some(held) => self.record_evidence(&id, &zone, "confirm", &held).await?,
                    None => self.zones[i].pending_evidence.push("confirm"),
                }
                Metrics::inc(&self.metrics.violations_opened, 1);
                tracing::info!(violation = %id, zone = %zone.id, start = %format_rfc3339(start), "violation confirmed");
                self.emit_violation(
                    ViolationEventKind::New,
                    None,
                    &row,
                    confirmed_at,
                    &zone.site,
                );
                self.publish_state(i, reading, Some(id));
            }
            Transition::ClearingStarted { .. } => {
                self.zones[i].clearing = frame.cloned();
            }
            Transition::Reminder {
                at,
                last_obstructed,
                peak,
                ..
            } => {
                if let Some(id) = self.zones[i].violation_id.clone() {
                    let before = self.store.violation(&id).await?;
                    self.store
                        .update_progress(&id, last_obstructed, peak)
                        .await?;
                    if let Some(before) = before {
                        let after = ViolationRow {
                            last_obstructed_ms: last_obstructed,
                            peak_score: peak,
                            ..before.clone()
                        };
                        self.emit_violation(
                            ViolationEventKind::Update,
                            Some(&before),
                            &after,
                            at,
                            &zone.site,
                        );
                    }
                }
            }
            Transition::Ended {
                cleared_at,
                decided_at,
                last_obstructed,
                peak,
                ..
            } => {
                if let Some(id) = self.zones[i].violation_id.take() {
                    let before = self.store.violation(&id).await?;
                    self.store
                        .end_violation(&id, cleared_at, last_obstructed, peak, "cleared")
                        .await?;
                    let clearing = self.zones[i].clearing.take();
                    let held = clearing.or_else(|| self.frame_for(i, frame));
                    if let Some(held) = held {
                        self.record_evidence(&id, &zone, "clear", &held).await?;
                    }
                    Metrics::inc(&self.metrics.violations_ended, 1);
                    tracing::info!(violation = %id, zone = %zone.id, cleared = %format_rfc3339(cleared_at), "violation ended");
                    if let Some(row) = self.store.violation(&id).await? {
                        self.emit_violation(
                            ViolationEventKind::End,
                            before.as_ref(),
                            &row,
                            decided_at,
                            &zone.site,
                        );
                    }
                }
                self.zones[i].first = None;
                self.zones[i].pending_evidence.clear();
                self.publish_state(i, reading, None);
            }
            Transition::Dropped { .. } => {
                self.zones[i].first = None;
                self.zones[i].clearing = None;
                self.publish_state(i, reading, None);
            }
        }
        Ok(())
    }

    fn hold_first(&mut self, i: usize, held: &HeldFrame) -> Result<(), RecordError> {
        let stored = self.evidence.put(&held.jpeg)?;
        self.zones[i].first = Some(FirstFrame {
            sha256: stored.sha256,
            captured_at: held.captured_at,
            score: held.score,
        });
        Ok(())
    }

    /// After a frame: a zone whose obstruction or clearing began with a
    /// sensor reading takes this frame as the evidence it still lacks.
    async fn fill_missing_evidence(
        &mut self,
        i: usize,
        held: &HeldFrame,
    ) -> Result<(), RecordError> {
        if let Some(id) = self.zones[i].violation_id.clone() {
            let zone = self.zones[i].zone.clone();
            for kind in std::mem::take(&mut self.zones[i].pending_evidence) {
                self.record_evidence(&id, &zone, kind, held).await?;
            }
        }
        let z = &self.zones[i];
        let (obstructed, clearing) = match &z.tracker.phase {
            Phase::Clear => (false, false),
            Phase::Obstructed { .. } => (true, false),
            Phase::Violation { clear_run, .. } => (true, clear_run.is_some()),
        };
        if obstructed && z.first.is_none() {
            self.hold_first(i, held)?;
        }
        if clearing && self.zones[i].clearing.is_none() {
            self.zones[i].clearing = Some(held.clone());
        }
        Ok(())
    }

    /// Stores the original bytes and an annotated copy, and records both.
    async fn record_evidence(
        &self,
        id: &str,
        zone: &Zone,
        kind: &str,
        held: &HeldFrame,
    ) -> Result<(), RecordError> {
        let original = self.evidence.put(&held.jpeg)?;
        self.store
            .add_evidence(&EvidenceRow {
                violation_id: id.to_string(),
                kind: kind.to_string(),
                variant: "original".into(),
                sha256: original.sha256.clone(),
                path: original.rel_path.clone(),
                bytes: original.bytes as i64,
                captured_ms: held.captured_at,
                score: held.score,
            })
            .await?;
        // Decoded again here: scoring threads keep no frames (transitions
        // are rare, frames are not).
        let image = match decode_jpeg(&held.jpeg) {
            Ok(img) => Some(img),
            Err(e) => {
                tracing::warn!(violation = %id, kind, error = %e, "evidence frame cannot be annotated");
                None
            }
        };
        if let Some(image) = &image {
            let caption = Caption {
                zone: &zone.id,
                camera: &zone.camera,
                kind,
                score: held.score,
                captured_at: held.captured_at,
            };
            let annotated = annotate(image, &zone.polygon, &caption)?;
            let stored = self.evidence.put(&annotated)?;
            self.store
                .add_evidence(&EvidenceRow {
                    violation_id: id.to_string(),
                    kind: kind.to_string(),
                    variant: "annotated".into(),
                    sha256: stored.sha256,
                    path: stored.rel_path,
                    bytes: stored.bytes as i64,
                    captured_ms: held.captured_at,
                    score: held.score,
                })
                .await?;
        }
        Ok(())
    }

    async fn save_state(&self, i: usize) -> Result<(), RecordError> {
        let z = &self.zones[i];
        self.store
            .save_zone_state(&ZoneStateRow {
                zone: z.zone.id.clone(),
                camera: z.zone.camera.clone(),
                phase: z.tracker.phase.clone(),
                last_at_ms: z.tracker.last_at,
                violation_id: z.violation_id.clone(),
                first_sha256: z.first.as_ref().map(|f| f.sha256.clone()),
                first_captured_ms: z.first.as_ref().map(|f| f.captured_at),
                first_score: z.first.as_ref().and_then(|f| f.score),
            })
            .await?;
        Ok(())
    }

    fn emit_violation(
        &mut self,
        kind: ViolationEventKind,
        before: Option<&ViolationRow>,
        after: &ViolationRow,
        at: Millis,
        site: &str,
    ) {
        let site = self.sites.get(site).cloned().unwrap_or_else(|| SiteRef {
            id: "default".into(),
            name: "default".into(),
        });
        self.outgoing
            .push(AlertEvent::Violation(Box::new(ViolationMessage {
                event: kind,
                at,
                site,
                violation: ViolationView::from(after),
                before: before.map(ViolationView::from),
            })));
    }

    async fn enqueue_alerts(&self) -> Result<(), StoreError> {
        let Some(outbox) = &self.outbox else {
            return Ok(());
        };
        let rows: Vec<_> = self
            .outgoing
            .iter()
            .filter_map(|e| match e {
                AlertEvent::Violation(m) => Some(outbox.rows_for(m)),
                AlertEvent::ZoneState(_) => None,
            })
            .flatten()
            .collect();
        if !rows.is_empty() {
            self.store.enqueue_outbox(&rows).await?;
        }
        Ok(())
    }

    fn flush_events(&mut self) {
        let events = std::mem::take(&mut self.outgoing);
        if let Some(outbox) = &self.outbox
            && events.iter().any(|e| matches!(e, AlertEvent::Violation(_)))
        {
            outbox.wake.notify_one();
        }
        if let Some(tx) = &self.alerts {
            for e in events {
                let _ = tx.send(e);
            }
        }
    }

    fn publish_state(&mut self, i: usize, reading: &Reading, violation_id: Option<String>) {
        let z = &self.zones[i];
        let since = match z.tracker.phase {
            Phase::Clear => reading.at,
            Phase::Obstructed { start, .. } => start,
            Phase::Violation { confirmed_at, .. } => confirmed_at,
        };
        let event = AlertEvent::ZoneState(ZoneStateView {
            zone: z.zone.id.clone(),
            camera: z.zone.camera.clone(),
            state: z.tracker.phase.name().to_string(),
            since,
            score: Some(reading.score),
            violation_id: violation_id.or_else(|| z.violation_id.clone()),
        });
        self.outgoing.push(event);
    }

    /// Current phase of every zone (for status output and tests).
    pub fn zone_phases(&self) -> Vec<(String, Phase)> {
        self.zones
            .iter()
            .map(|z| (z.zone.id.clone(), z.tracker.phase.clone()))
            .collect()
    }
}
