//! Rolling recording of recent inputs, and its export as a replay scenario
//! (`../shared/scenarios/FORMAT.md`), so an operator can try a config
//! change on what the cameras really saw (`firelane whatif`).
//!
//! The daemon keeps the last `[recording] frames_per_camera` frames of each
//! camera as files and appends sensor readings to a log. Ingest hands them
//! over without waiting ([`Recorder::frame`] drops when the writer is
//! behind, counted); the writer alone touches the disk.

pub mod export;

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::base::input::{Frame, SensorReading};
use crate::base::time::{Millis, format_rfc3339};

pub use export::{ExportError, ExportSummary, export_scenario};

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording folder {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

enum Item {
    Frame {
        camera: String,
        captured_at: Millis,
        jpeg: Arc<Vec<u8>>,
    },
    Reading(SensorReading),
}

/// Hands inputs to the recording writer.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Item>,
    pub dropped: Arc<AtomicU64>,
    min_interval_ms: Millis,
    /// Capture time of each camera's last recorded frame.
    last: Arc<std::sync::Mutex<HashMap<String, Millis>>>,
}

/// A camera id as one safe path component, reversibly: `[A-Za-z0-9_-]`
/// stay, anything else becomes `%XX` per UTF-8 byte (ids may hold `/`).
pub fn camera_dir_name(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`camera_dir_name`]; `None` for a name it cannot make.
pub fn camera_id_of_dir(name: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut it = name.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// The frames of one camera kept on disk, oldest first, from file names
/// `<capture ms>.jpg`.
pub fn list_frames(camera_dir: &Path) -> std::io::Result<Vec<(Millis, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(camera_dir)? {
        let path = entry?.path();
        let ms = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".jpg"))
            .and_then(|n| n.parse::<Millis>().ok());
        if let Some(ms) = ms {
            out.push((ms, path));
        }
    }
    out.sort();
    Ok(out)
}

impl Recorder {
    /// Starts the writer for `dir`, keeping `frames_per_camera` per camera
    /// (what is already there counts, so a restart continues the window).
    pub fn start(
        dir: PathBuf,
        frames_per_camera: usize,
        min_interval_s: f64,
    ) -> Result<Recorder, RecordingError> {
        let io = |source, path: &Path| RecordingError::Io {
            path: path.display().to_string(),
            source,
        };
        let frames_dir = dir.join("frames");
        std::fs::create_dir_all(&frames_dir).map_err(|e| io(e, &frames_dir))?;
        let mut kept: HashMap<String, VecDeque<PathBuf>> = HashMap::new();
        for entry in std::fs::read_dir(&frames_dir).map_err(|e| io(e, &frames_dir))? {
            let entry = entry.map_err(|e| io(e, &frames_dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if let Ok(frames) = list_frames(&entry.path()) {
                kept.insert(name, frames.into_iter().map(|(_, p)| p).collect());
            }
        }
        let (tx, rx) = mpsc::channel(64);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            dir,
            frames_per_camera: frames_per_camera.max(1),
            kept,
            appended: 0,
        };
        tokio::task::spawn_blocking(move || writer.run(rx));
        Ok(Recorder {
            tx,
            dropped,
            min_interval_ms: crate::base::time::secs_to_ms(min_interval_s.max(0.0)),
            last: Default::default(),
        })
    }

    pub fn frame(&self, frame: &Frame) {
        if self.min_interval_ms > 0 {
            let mut last = self.last.lock().expect("recorder lock");
            match last.get_mut(&frame.camera) {
                Some(t) if frame.captured_at - *t < self.min_interval_ms => return,
                Some(t) => *t = frame.captured_at,
                None => {
                    last.insert(frame.camera.clone(), frame.captured_at);
                }
            }
        }
        self.send(Item::Frame {
            camera: frame.camera.clone(),
            captured_at: frame.captured_at,
            jpeg: frame.jpeg.clone(),
        });
    }

    pub fn reading(&self, reading: &SensorReading) {
        self.send(Item::Reading(reading.clone()));
    }

    fn send(&self, item: Item) {
        if self.tx.try_send(item).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Writer {
    dir: PathBuf,
    frames_per_camera: usize,
    kept: HashMap<String, VecDeque<PathBuf>>,
    /// Readings appended since the log was last trimmed.
    appended: usize,
}

/// Readings appended between two trims of the sensor log.
const TRIM_EVERY: usize = 5_000;

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Item>) {
        while let Some(item) = rx.blocking_recv() {
            if let Err(e) = self.write(item) {
                tracing::warn!(error = %e, "recording: write failed");
            }
        }
    }

    fn write(&mut self, item: Item) -> std::io::Result<()> {
        match item {
            Item::Frame {
                camera,
                captured_at,
                jpeg,
            } => {
                let name = camera_dir_name(&camera);
                let dir = self.dir.join("frames").join(&name);
                std::fs::create_dir_all(&dir)?;
                let path = dir.join(format!("{captured_at}.jpg"));
                // Written aside and renamed: an export never copies half a frame.
                let tmp = dir.join(format!(".{captured_at}.tmp"));
                std::fs::write(&tmp, jpeg.as_slice())?;
                std::fs::rename(&tmp, &path)?;
                let kept = self.kept.entry(name).or_default();
                if kept.back() != Some(&path) {
                    kept.push_back(path);
                }
                while kept.len() > self.frames_per_camera {
                    if let Some(old) = kept.pop_front() {
                        let _ = std::fs::remove_file(old);
                    }
                }
            }
            Item::Reading(r) => {
                let line = serde_json::json!({
                    "sensor": r.sensor,
                    "measured_at": format_rfc3339(r.measured_at),
                    "occupied": r.occupied,
                });
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("sensors.jsonl"))?;
                writeln!(f, "{line}")?;
                self.appended += 1;
                if self.appended >= TRIM_EVERY {
                    self.appended = 0;
                    self.trim_readings()?;
                }
            }
        }
        Ok(())
    }

    /// Drops readings older than every kept frame, except each sensor's
    /// last one before them: sensors report on change, so that one still
    /// says what the sensor reads when the recording begins.
    fn trim_readings(&self) -> std::io::Result<()> {
        let ms = |p: &PathBuf| p.file_stem()?.to_str()?.parse::<Millis>().ok();
        let spans: Vec<(Millis, Millis)> = self
            .kept
            .values()
            .filter_map(|k| Some((ms(k.front()?)?, ms(k.back()?)?)))
            .collect();
        let newest = spans.iter().map(|s| s.1).max();
        // A camera silent for a day no longer holds the log's start back.
        let oldest = newest.and_then(|n| {
            spans
                .iter()
                .filter(|s| s.1 >= n - 24 * 3_600_000)
                .map(|s| s.0)
                .min()
        });
        let Some(oldest) = oldest else {
            return Ok(());
        };
        let path = self.dir.join("sensors.jsonl");
        let text = std::fs::read_to_string(&path)?;
        let lines = export::read_readings(&text);
        let kept = export::readings_from(&lines, oldest);
        let mut out = String::new();
        for (line, _) in kept {
            out.push_str(line);
            out.push('\n');
        }
        let tmp = self.dir.join(".sensors.jsonl.tmp");
        std::fs::write(&tmp, out)?;
        std::fs::rename(&tmp, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_newest_frames_at_most_one_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::start(dir.path().to_path_buf(), 2, 10.0).unwrap();
        for s in 0..=25 {
            rec.frame(&Frame {
                camera: "a/b".into(),
                captured_at: s * 1000,
                jpeg: Arc::new(vec![0xFF, 0xD8, s as u8, 0xFF, 0xD9]),
                arrived: None,
            });
        }
        let cam = dir.path().join("frames").join(camera_dir_name("a/b"));
        let mut kept = Vec::new();
        for _ in 0..100 {
            kept = list_frames(&cam).unwrap_or_default();
            if kept.first().map(|k| k.0) == Some(10_000) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // 0, 10 and 20 s recorded; the window keeps the newest two.
        let times: Vec<Millis> = kept.iter().map(|k| k.0).collect();
        assert_eq!(times, [10_000, 20_000]);
        assert_eq!(
            std::fs::read(&kept[1].1).unwrap(),
            [0xFF, 0xD8, 20, 0xFF, 0xD9]
        );
    }

    #[test]
    fn camera_ids_round_trip_through_folder_names() {
        for id in ["gate-north", "a/b", "..", "caméra 1", "x%y"] {
            let name = camera_dir_name(id);
            assert!(!name.contains(['/', '.']), "{name}");
            assert_eq!(camera_id_of_dir(&name).as_deref(), Some(id));
        }
    }
}
