//! `firelane bench`: the real pipeline under load, measured, beside a
//! plain Python peer on the same frames and zones.
//!
//! It prepares frames from a scenario (resized to the asked resolution,
//! JPEG q90) and a zone list, then drives them through the engine
//! in-process and through a real mosquitto on loopback, and prints one
//! table: frames/s, zone crops/s, frames per CPU-second (per core),
//! arrival-to-decision latency p50/p99, time per stage, peak RSS and frames
//! dropped. Nothing here is used by the daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::base::input::Frame;
use crate::config::{CameraConfig, Config, RawConfig, ZoneConfig};
use crate::pipeline::{Metrics, Pipeline};
use crate::replay::Scenario;
use crate::runtime::engine::Engine;
use crate::vision::Classifier;

pub mod broker;
mod cluster;
mod limit;
mod mqtt;
mod peer;

pub use cluster::run_cluster;
pub use limit::{Limit, print_limit, run_limit};
pub use mqtt::run_mqtt;
pub use peer::{print_table, run_peer};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub scenario: PathBuf,
    pub cameras: usize,

    /// Offered frames per second over all cameras; 0: as fast as it goes.
    pub fps: f64,
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    pub zones: usize,
    pub workers: usize,
    pub mqtt: bool,
    pub peer: bool,
    pub python: String,
    pub model: PathBuf,
    pub work_dir: PathBuf,
    /// A live-like feed: each scenario frame sent this many times, a
    /// second apart, re-encoded at slightly different JPEG qualities (the
    /// noise of a camera watching a still scene); 0: each frame once.
    pub live: usize,
    /// Keep the score of an unchanged crop (`[ingest] reuse_max_diff`).
    pub reuse: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub run: String,
    pub frames: u64,
    pub crops: u64,
    /// Zone tiles (a long zone is cut into several), scored or reused.
    pub tiles: u64,
    /// Tiles whose kept score was reused.
    pub crops_reused: u64,
    pub seconds: f64,
    pub frames_per_s: f64,
    pub crops_per_s: f64,
    /// Frames per second of CPU time used: the per-core rate.
    pub frames_per_cpu_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub decode_ms: f64,
    pub crop_ms: f64,
    pub inference_ms: f64,
    pub tracking_ms: f64,
    pub store_ms: f64,
    pub peak_rss_mb: f64,
    pub dropped: u64,
}

/// (user + system) CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// (user + system) CPU seconds so far of process `pid` ("self": this one).
fn cpu_seconds_of(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are 14, 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set (VmHWM) in MB.
pub fn peak_rss_mb() -> f64 {
    peak_rss_mb_of("self")
}

fn peak_rss_mb_of(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i] as f64 / 1000.0)
}

/// The number of zones of the scenario's first camera (`--zones 0`).
pub fn zone_count(scenario: &Path) -> anyhow::Result<usize> {
    let sc = Scenario::load(scenario)?;
    Ok(sc.file.cameras.first().map_or(0, |c| c.zones.len()))
}

/// The size of the scenario's first frame (`--resolution native`).
pub fn native_size(scenario: &Path) -> anyhow::Result<Option<(u32, u32)>> {
    let sc = Scenario::load(scenario)?;
    let Some(first) = sc.frames.first() else {
        return Ok(None);
    };
    let path = sc.frame_path(first);
    Ok(Some(
        image::image_dimensions(&path).with_context(|| format!("reading {}", path.display()))?,
    ))
}

/// Zone polygons as image fractions.
pub type Polygons = Vec<Vec<[f64; 2]>>;

/// Writes the frames (resized, JPEG q90) and `zones.json` the runs and the
/// peer share; returns the JPEG bytes and the zone polygons.
pub fn prepare(opts: &BenchOptions) -> anyhow::Result<(Vec<Arc<Vec<u8>>>, Polygons)> {
    let sc = Scenario::load(&opts.scenario)?;
    let camera = sc.file.cameras.first().context("scenario has no camera")?;
    let zones: Polygons = camera
        .zones
        .iter()
        .take(opts.zones)
        .map(|z| z.polygon.clone())
        .collect();
    if zones.is_empty() {
        bail!("scenario camera {} has no zones", camera.id);
    }
    let dir = opts.work_dir.join("frames");
    std::fs::create_dir_all(&dir)?;
    let mut jpegs = Vec::new();
    let distinct = sc
        .frames
        .iter()
        .filter(|f| f.camera == camera.id)
        .take(opts.frames.clamp(1, 24));
    for (k, line) in distinct.enumerate() {
        let path = sc.frame_path(line);
        let img = image::open(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .into_rgb8();
        let resized = image::imageops::resize(
            &img,
            opts.width,
            opts.height,
            image::imageops::FilterType::Triangle,
        );
        // Live-like: the same scene again and again, each time encoded a
        // little differently, as a camera's sensor noise and encoder do.
        for r in 0..opts.live.max(1) {
            let quality = [90, 87, 84][r % 3];
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
                .encode_image(&resized)?;
            std::fs::write(dir.join(format!("{k:04}-{r}.jpg")), &out)?;
            jpegs.push(Arc::new(out));
        }
    }
    let zones_json = serde_json::json!({
        "zones": zones.iter().enumerate().map(|(i, p)| serde_json::json!({"id": format!("z{i}"), "polygon": p})).collect::<Vec<_>>()
    });
    std::fs::write(opts.work_dir.join("zones.json"), zones_json.to_string())?;
    Ok((jpegs, zones))
}

/// The config of `cameras` cameras, each with the same zones; alerts and
/// HTTP off, a long grace so the run measures scoring, not violations.
fn bench_config(
    opts: &BenchOptions,
    zones: &[Vec<[f64; 2]>],
    mqtt_url: Option<String>,
) -> anyhow::Result<Config> {
    Ok(Config::from_raw(
        bench_raw(opts, zones, mqtt_url),
        "bench",
        None,
    )?)
}

fn bench_raw(opts: &BenchOptions, zones: &[Vec<[f64; 2]>], mqtt_url: Option<String>) -> RawConfig {
    let mut raw = RawConfig::default();
    raw.storage.data_dir = opts.work_dir.join(if mqtt_url.is_some() {
        "data-mqtt"
    } else {
        "data"
    });
    raw.model.path = opts.model.clone();
    raw.http.enabled = false;
    raw.tracking.grace_s = 600.0;
    raw.mqtt.topic_prefix = "bench".into();
    raw.mqtt.client_id = format!("firelane-bench-{}", std::process::id());
    raw.mqtt.max_payload_bytes = 32 * 1024 * 1024;
    if let Some(url) = mqtt_url {
        raw.mqtt.url = url;
    }
    // The bench publishes the scenario's own (old) capture times.
    raw.ingest.max_future_skew_s = 86_400.0;
    raw.ingest.max_past_skew_s = 0.0;
    if !opts.reuse {
        raw.ingest.reuse_max_diff = 0.0;
    }
    for c in 0..opts.cameras {
        raw.cameras.push(CameraConfig {
            id: format!("cam{c}"),
            ..Default::default()
        });
        for (j, p) in zones.iter().enumerate() {
            raw.zones.push(ZoneConfig {
                id: format!("cam{c}-z{j}"),
                camera: format!("cam{c}"),
                polygon: p.clone(),
                threshold: None,
                grace_s: None,
                clear_s: None,
                site: None,
                sensors: Vec::new(),
                name: None,
                schedule: None,
            });
        }
    }
    raw
}

async fn pipeline_for(config: &Config) -> anyhow::Result<Pipeline> {
    crate::runtime::assemble::clear_data_dir(&config.storage.data_dir);
    let parts = crate::runtime::assemble::assemble(config, Default::default()).await?;
    Ok(parts.pipeline)
}

/// Unfinished frames allowed when offering as fast as it goes: enough to
/// keep every worker busy, no more than one per camera (a second would
/// only replace the first in its slot).
fn in_flight(opts: &BenchOptions) -> u64 {
    (opts.workers * 2).min(opts.cameras).max(1) as u64
}

/// Sends `opts.frames` frames round-robin over the cameras, each round's
/// capture times a second after the last one's: at `opts.fps`, or (0) as
/// fast as they finish, at most `in_flight` unfinished. `finished` counts
/// scored, refused and dropped frames; it is polled every `poll`.
async fn drive(
    opts: &BenchOptions,
    jpegs: &[Arc<Vec<u8>>],
    in_flight: u64,
    poll: Duration,
    mut finished: impl AsyncFnMut() -> anyhow::Result<u64>,
    mut send: impl AsyncFnMut(Frame) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let base = crate::base::time::wall_clock_ms() - 86_400_000;
    let period = if opts.fps > 0.0 {
        Some(Duration::from_secs_f64(1.0 / opts.fps))
    } else {
        None
    };
    let start = Instant::now();
    for k in 0..opts.frames {
        let camera = k % opts.cameras;
        let round = (k / opts.cameras) as i64;
        match period {
            Some(p) => {
                let due = start + p * k as u32;
                tokio::time::sleep_until(due.into()).await;
            }
            None => {
                while k as u64 >= finished().await? + in_flight {
                    tokio::time::sleep(poll).await;
                }
            }
        }
        send(Frame {
            camera: format!("cam{camera}"),
            captured_at: base + round * 1000,
            jpeg: jpegs[k % jpegs.len()].clone(),
            arrived: Some(Instant::now()),
        })
        .await?;
    }
    Ok(())
}

/// Frames the engine has finished with: scored, refused or dropped.
fn finished_in(metrics: &Metrics, dropped: u64) -> u64 {
    Metrics::get(&metrics.frames) + Metrics::get(&metrics.rejected) + dropped
}

async fn wait_done(metrics: &Metrics, dropped: impl Fn() -> u64, total: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Metrics::get(&metrics.frames) + Metrics::get(&metrics.rejected) + dropped() < total
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn row(run: &str, m: &Metrics, dropped: u64, seconds: f64, cpu: f64) -> BenchRow {
    let snap = m.snapshot();
    let frames = snap.frames;
    let per = |ns: u64| {
        if frames == 0 {
            0.0
        } else {
            ns as f64 / frames as f64 / 1e6
        }
    };
    let mut lat = m.latencies_us.lock().expect("metrics lock").clone();
    lat.sort_unstable();
    BenchRow {
        run: run.to_string(),
        frames,
        crops: snap.crops,
        tiles: snap.tiles,
        crops_reused: snap.crops_reused,
        seconds,
        frames_per_s: frames as f64 / seconds,
        crops_per_s: snap.crops as f64 / seconds,
        frames_per_cpu_s: if cpu > 0.0 { frames as f64 / cpu } else { 0.0 },
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        decode_ms: per(snap.decode_ns),
        crop_ms: per(snap.crop_ns),
        inference_ms: per(snap.inference_ns),
        tracking_ms: per(snap.tracking_ns),
        store_ms: per(snap.store_ns),
        peak_rss_mb: peak_rss_mb(),
        dropped,
    }
}

/// The engine fed directly, no broker.
pub async fn run_in_process(
    opts: &BenchOptions,
    jpegs: &[Arc<Vec<u8>>],
    zones: &[Vec<[f64; 2]>],
) -> anyhow::Result<BenchRow> {
    let config = bench_config(opts, zones, None)?;
    let pipeline = pipeline_for(&config).await?;
    let shutdown = CancellationToken::new();
    let engine = Engine::start(pipeline, opts.workers, 64, None, shutdown.clone());
    let metrics = engine.metrics.clone();
    let slots = engine.frames.clone();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let s2 = slots.clone();
    drive(
        opts,
        jpegs,
        in_flight(opts),
        Duration::from_micros(200),
        async || Ok(finished_in(&metrics, s2.dropped())),
        async |f| {
            slots.push(f);
            Ok(())
        },
    )
    .await?;
    wait_done(&metrics, || slots.dropped(), opts.frames as u64).await;
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    shutdown.cancel();
    engine.finished().await;
    Ok(row(
        &format!(
            "firelane in-process, {} workers{}",
            opts.workers,
            match (opts.live, opts.reuse) {
                (0, _) => "",
                (_, true) => ", unchanged crops reused",
                (_, false) => ", every crop scored",
            }
        ),
        &metrics,
        slots.dropped(),
        seconds,
        cpu,
    ))
}

pub async fn run(opts: &BenchOptions) -> anyhow::Result<Vec<BenchRow>> {
    // Load the model once up front so a bad path fails before preparing.
    Classifier::load(&opts.model)?;
    let (jpegs, zones) = prepare(opts)?;
    let mut rows = Vec::new();
    if opts.live > 0 {
        // The same feed scored whole, then with unchanged crops reused.
        let every = BenchOptions {
            reuse: false,
            ..opts.clone()
        };
        rows.push(run_in_process(&every, &jpegs, &zones).await?);
    }
    rows.push(run_in_process(opts, &jpegs, &zones).await?);
    if opts.mqtt {
        rows.push(run_mqtt(opts, &jpegs, &zones).await?);
    }
    if opts.peer {
        rows.push(run_peer(opts, false)?);
        rows.push(run_peer(opts, true)?);
    }
    Ok(rows)
}

/// Default work folder for prepared frames and the runs' databases.
pub fn default_work_dir() -> PathBuf {
    Path::new("data").join("bench")
}
