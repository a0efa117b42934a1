//! The pipeline's counters: frames, crops, readings, violations, errors and
//! time per stage. Exported in the `metrics` log line, on `GET /metrics`
//! and by `firelane bench`, all through [`Metrics::snapshot`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Metrics {
    pub frames: AtomicU64,
    pub crops: AtomicU64,
    /// Zone tiles, scored or reused: a long zone is cut into several.
    pub tiles: AtomicU64,
    /// Zone tiles whose kept score was reused (crop unchanged).
    pub crops_reused: AtomicU64,
    pub sensor_readings: AtomicU64,
    pub rejected: AtomicU64,
    pub record_errors: AtomicU64,
    /// Frames whose scoring panicked (a bug; the camera goes on).
    pub scoring_panics: AtomicU64,
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

/// The counters at one instant, as plain numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    pub frames: u64,
    pub crops: u64,
    pub tiles: u64,
    pub crops_reused: u64,
    pub sensor_readings: u64,
    pub rejected: u64,
    pub record_errors: u64,
    pub scoring_panics: u64,
    pub violations_opened: u64,
    pub violations_ended: u64,
    pub decode_ns: u64,
    pub crop_ns: u64,
    pub inference_ns: u64,
    pub tracking_ns: u64,
    pub store_ns: u64,
}

impl Metrics {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub(crate) fn inc(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_time(c: &AtomicU64, d: Duration) {
        c.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = Self::get;
        MetricsSnapshot {
            frames: g(&self.frames),
            crops: g(&self.crops),
            tiles: g(&self.tiles),
            crops_reused: g(&self.crops_reused),
            sensor_readings: g(&self.sensor_readings),
            rejected: g(&self.rejected),
            record_errors: g(&self.record_errors),
            scoring_panics: g(&self.scoring_panics),
            violations_opened: g(&self.violations_opened),
            violations_ended: g(&self.violations_ended),
            decode_ns: g(&self.decode_ns),
            crop_ns: g(&self.crop_ns),
            inference_ns: g(&self.inference_ns),
            tracking_ns: g(&self.tracking_ns),
            store_ns: g(&self.store_ns),
        }
    }

    /// Records one frame's arrival-to-decision latency.
    pub(crate) fn record_latency(&self, d: Duration) {
        let mut l = self.latencies_us.lock().expect("metrics lock");
        if l.len() < 1_000_000 {
            l.push(d.as_micros().min(u32::MAX as u128) as u32);
        }
    }
}
