//! Scenario folders as `shared/scenarios/FORMAT.md` describes them, read as
//! they stand.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::base::time::{Millis, rfc3339};
use crate::config::{CameraConfig, RawConfig, SensorConfig, ZoneConfig};

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScenarioFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub grace_s: f64,
    pub cameras: Vec<ScenarioCamera>,
    #[serde(default)]
    pub sensors: Vec<ScenarioSensor>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScenarioCamera {
    pub id: String,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    pub zones: Vec<ScenarioZone>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScenarioZone {
    pub id: String,
    pub polygon: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScenarioSensor {
    pub id: String,
    pub zone: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FrameLine {
    pub camera: String,
    #[serde(with = "rfc3339")]
    pub captured_at: Millis,
    pub file: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SensorLine {
    pub sensor: String,
    #[serde(with = "rfc3339")]
    pub measured_at: Millis,
    pub occupied: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Truth {
    #[serde(default)]
    pub grace_s: Option<f64>,
    pub zones: std::collections::BTreeMap<String, TruthZone>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthZone {
    #[serde(default)]
    pub obstructions: Vec<TruthSpan>,
    #[serde(default)]
    pub violations: Vec<TruthSpan>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthSpan {
    #[serde(with = "rfc3339")]
    pub start: Millis,
    #[serde(with = "rfc3339")]
    pub last_obstructed: Millis,
    #[serde(with = "rfc3339::option")]
    pub cleared: Option<Millis>,
}

/// A loaded scenario. Frames are read from disk lazily, one at a time.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub dir: PathBuf,
    pub file: ScenarioFile,
    pub frames: Vec<FrameLine>,
    pub sensors: Vec<SensorLine>,
    pub truth: Option<Truth>,
    /// `labels.csv`, when the scenario has it.
    pub labels: Option<Vec<super::truth::Label>>,
}

fn read(path: &Path) -> Result<String, ScenarioError> {
    std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, ScenarioError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|e| ScenarioError::Line {
            path: path.display().to_string(),
            line: n + 1,
            message: e.to_string(),
        })?);
    }
    Ok(out)
}

impl Scenario {
    pub fn load(dir: &Path) -> Result<Scenario, ScenarioError> {
        let sc_path = dir.join("scenario.json");
        let file: ScenarioFile =
            serde_json::from_str(&read(&sc_path)?).map_err(|e| ScenarioError::Invalid {
                path: sc_path.display().to_string(),
                message: e.to_string(),
            })?;
        let mut frames: Vec<FrameLine> = jsonl(&dir.join("frames.jsonl"))?;
        // Capture order is what FORMAT.md promises; a stable sort keeps it
        // for equal times and repairs a file that was concatenated.
        frames.sort_by_key(|f| f.captured_at);
        let sensors_path = dir.join("sensors.jsonl");
        let mut sensors: Vec<SensorLine> = if sensors_path.exists() {
            jsonl(&sensors_path)?
        } else {
            Vec::new()
        };
        sensors.sort_by_key(|s| s.measured_at);
        let truth_path = dir.join("truth.json");
        let truth = if truth_path.exists() {
            Some(
                serde_json::from_str(&read(&truth_path)?).map_err(|e| ScenarioError::Invalid {
                    path: truth_path.display().to_string(),
                    message: e.to_string(),
                })?,
            )
        } else {
            None
        };
        for (n, f) in frames.iter().enumerate() {
            if Path::new(&f.file).is_absolute() || f.file.split(['/', '\\']).any(|c| c == "..") {
                return Err(ScenarioError::Line {
                    path: dir.join("frames.jsonl").display().to_string(),
                    line: n + 1,
                    message: format!(
                        "frame file `{}` must be a relative path inside the scenario",
                        f.file
                    ),
                });
            }
        }
        let labels_path = dir.join("labels.csv");
        let labels = if labels_path.exists() {
            Some(super::truth::read_labels(&labels_path)?)
        } else {
            None
        };
        Ok(Scenario {
            dir: dir.to_path_buf(),
            file,
            frames,
            sensors,
            truth,
            labels,
        })
    }

    pub fn frame_path(&self, f: &FrameLine) -> PathBuf {
        self.dir.join(&f.file)
    }

    /// The scenario as a firelane configuration: its cameras, zones and
    /// sensors, with `grace_s` as every zone's grace.
    pub fn to_raw_config(&self, grace_s: f64) -> RawConfig {
        let mut raw = RawConfig::default();
        raw.tracking.grace_s = grace_s;
        for c in &self.file.cameras {
            raw.cameras.push(CameraConfig {
                id: c.id.clone(),
                ..Default::default()
            });
            for z in &c.zones {
                raw.zones.push(ZoneConfig {
                    id: z.id.clone(),
                    camera: c.id.clone(),
                    polygon: z.polygon.clone(),
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
        for s in &self.file.sensors {
            raw.sensors.push(SensorConfig {
                id: s.id.clone(),
                zone: s.zone.clone(),
                topic: None,
            });
        }
        raw
    }
}
