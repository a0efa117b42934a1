//! `firelane record`: the rolling recording as a scenario folder in the
//! format `firelane replay` and `firelane whatif` read.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{camera_dir_name, camera_id_of_dir, list_frames};
use crate::base::time::{Millis, format_rfc3339, parse_rfc3339};
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} exists and is not empty; choose a new folder")]
    NotEmpty(String),
    #[error(
        "nothing recorded in {0}: set [recording] frames_per_camera and let the daemon run first"
    )]
    Empty(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub dir: PathBuf,
    pub cameras: usize,
    pub frames: usize,
    pub sensor_readings: usize,
    pub from: String,
    pub to: String,
}

/// Sensor log lines with their sensor and time; unreadable lines are left out.
pub(crate) fn read_readings(text: &str) -> Vec<(&str, (String, Millis))> {
    text.lines()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let sensor = v.get("sensor")?.as_str()?.to_string();
            let at = parse_rfc3339(v.get("measured_at")?.as_str()?).ok()?;
            Some((line, (sensor, at)))
        })
        .collect()
}

/// Readings from `from` on, and each sensor's last one before it (sensors
/// report on change: that one is the state at `from`). In log order.
pub(crate) fn readings_from<'a>(
    lines: &[(&'a str, (String, Millis))],
    from: Millis,
) -> Vec<(&'a str, Millis)> {
    let mut last_before: HashMap<&str, usize> = HashMap::new();
    for (i, (_, (sensor, at))) in lines.iter().enumerate() {
        if *at < from {
            last_before.insert(sensor, i);
        }
    }
    lines
        .iter()
        .enumerate()
        .filter(|(i, (_, (sensor, at)))| *at >= from || last_before.get(sensor.as_str()) == Some(i))
        .map(|(_, (line, (_, at)))| (*line, *at))
        .collect()
}

#[derive(Serialize)]
struct ScenarioOut<'a> {
    name: &'a str,
    description: String,
    grace_s: f64,
    cameras: Vec<CameraOut>,
    sensors: Vec<SensorOut<'a>>,
}

#[derive(Serialize)]
struct CameraOut {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    zones: Vec<ZoneOut>,
}

#[derive(Serialize)]
struct ZoneOut {
    id: String,
    polygon: Vec<[f64; 2]>,
}

#[derive(Serialize)]
struct SensorOut<'a> {
    id: &'a str,
    zone: &'a str,
}

/// Writes the recording in `recording_dir` as a scenario in `out` (new or
/// empty): frames and sensor readings, the zones of `config`, and the
/// config's own text as `config.toml` (what `whatif` compares against).
pub fn export_scenario(
    config: &Config,
    config_text: &str,
    recording_dir: &Path,
    out: &Path,
    name: &str,
) -> Result<ExportSummary, ExportError> {
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(ExportError::NotEmpty(out.display().to_string()));
    }
    let frames_dir = recording_dir.join("frames");
    let mut frames: Vec<(Millis, String, PathBuf)> = Vec::new();
    if frames_dir.is_dir() {
        for entry in std::fs::read_dir(&frames_dir).map_err(io(&frames_dir))? {
            let entry = entry.map_err(io(&frames_dir))?;
            let Some(camera) = camera_id_of_dir(&entry.file_name().to_string_lossy()) else {
                continue;
            };
            for (ms, path) in list_frames(&entry.path()).map_err(io(&entry.path()))? {
                frames.push((ms, camera.clone(), path));
            }
        }
    }
    if frames.is_empty() {
        return Err(ExportError::Empty(recording_dir.display().to_string()));
    }
    frames.sort();
    let (from, to) = (frames[0].0, frames[frames.len() - 1].0);

    std::fs::create_dir_all(out).map_err(io(out))?;
    let index_path = out.join("frames.jsonl");
    let mut index = std::fs::File::create(&index_path).map_err(io(&index_path))?;
    let mut sizes: HashMap<String, (u32, u32)> = HashMap::new();
    let mut copied = 0;
    for (ms, camera, src) in &frames {
        let rel = format!("frames/{}/{ms}.jpg", camera_dir_name(camera));
        let dest = out.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        // The window rolls on while we copy: a frame gone meanwhile is skipped.
        let Ok(bytes) = std::fs::read(src) else {
            continue;
        };
        if !sizes.contains_key(camera)
            && let Some(size) = crate::vision::decode::jpeg_dimensions(&bytes)
        {
            sizes.insert(camera.clone(), size);
        }
        std::fs::write(&dest, &bytes).map_err(io(&dest))?;
        let line = serde_json::json!({
            "camera": camera,
            "captured_at": format_rfc3339(*ms),
            "file": rel,
        });
        writeln!(index, "{line}").map_err(io(&index_path))?;
        copied += 1;
    }

    let log = recording_dir.join("sensors.jsonl");
    let mut readings = 0;
    if log.exists() {
        let text = std::fs::read_to_string(&log).map_err(io(&log))?;
        let lines = read_readings(&text);
        let mut kept: Vec<(&str, Millis)> = readings_from(&lines, from)
            .into_iter()
            .filter(|(_, at)| *at <= to)
            .collect();
        kept.sort_by_key(|(_, at)| *at);
        let path = out.join("sensors.jsonl");
        let mut f = std::fs::File::create(&path).map_err(io(&path))?;
        for (line, _) in &kept {
            writeln!(f, "{line}").map_err(io(&path))?;
        }
        readings = kept.len();
    }

    let recorded: Vec<&str> = {
        let mut c: Vec<&str> = frames.iter().map(|(_, c, _)| c.as_str()).collect();
        c.sort();
        c.dedup();
        c
    };
    let scenario = ScenarioOut {
        name,
        description: format!(
            "Recorded by firelane {} from {} to {} under config {}",
            env!("CARGO_PKG_VERSION"),
            format_rfc3339(from),
            format_rfc3339(to),
            config.sha256
        ),
        grace_s: config.tracking.grace_s,
        cameras: recorded
            .iter()
            .map(|id| CameraOut {
                id: id.to_string(),
                width: sizes.get(*id).map(|s| s.0),
                height: sizes.get(*id).map(|s| s.1),
                zones: config
                    .zones_of(id)
                    .map(|z| ZoneOut {
                        id: z.id.clone(),
                        polygon: z.polygon.points().to_vec(),
                    })
                    .collect(),
            })
            .collect(),
        sensors: config
            .sensors
            .iter()
            .filter(|s| {
                config
                    .zones
                    .iter()
                    .any(|z| z.id == s.zone && recorded.contains(&z.camera.as_str()))
            })
            .map(|s| SensorOut {
                id: &s.id,
                zone: &s.zone,
            })
            .collect(),
    };
    let path = out.join("scenario.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&scenario).expect("scenario serialises"),
    )
    .map_err(io(&path))?;
    let path = out.join("config.toml");
    // Shared with whoever runs the what-if: no credentials.
    std::fs::write(&path, crate::config::edit::redact_secrets(config_text)).map_err(io(&path))?;
    Ok(ExportSummary {
        dir: out.to_path_buf(),
        cameras: recorded.len(),
        frames: copied,
        sensor_readings: readings,
        from: format_rfc3339(from),
        to: format_rfc3339(to),
    })
}
