//! Configuration: TOML file → typed, validated [`Config`].
//!
//! Every validation message names the file, the item (zone, camera, sensor)
//! and the field, and where it can, says how to fix it.

pub mod broker;
pub mod cluster;
pub mod edit;
mod raw;
pub mod schedule;
pub mod sites;
pub mod snapshot;
mod validate;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use crate::base::geometry::{PixelRect, PolygonError, ZonePolygon};
pub use broker::{BrokerUser, EmbeddedBrokerConfig};
pub use raw::{
    AlertsConfig, CameraConfig, ClockSkewPolicy, HttpConfig, IngestConfig, ModelConfig, MqttConfig,
    RawConfig, RecordingConfig, SensorConfig, StorageConfig, TrackingDefaults, ZoneConfig,
    default_model_path,
};
pub use schedule::{Schedule, ScheduleConfig, WindowConfig};
pub use sites::{QuietHours, Site, SiteConfig, WebhookConfig};
pub use snapshot::{Login, Snapshot};
pub(crate) use validate::valid_id;

/// The shipped configuration, built into the binary ([`Config::builtin`]).
pub const BUILTIN_CONFIG: &str = include_str!("../../config/firelane.toml");
/// How the built-in configuration is named in messages; not a file, so the
/// running daemon serves it read-only.
pub const BUILTIN_CONFIG_NAME: &str = "(built-in config/firelane.toml)";

/// The shipped model, built into the binary (`models/obstruction-v2.*`).
pub const DEFAULT_MODEL: &str = "builtin:obstruction-v2";

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// e.g. `zone "lane-1"` or `[mqtt]`.
    pub item: String,
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{}", format_problems(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

fn format_problems(file: &str, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| format!("{file}: {}: {}: {}", p.item, p.field, p.message))
        .collect();
    lines.join("\n")
}

/// A validated zone with its settings resolved against the defaults.
#[derive(Debug, Clone)]
pub struct Zone {
    pub id: String,
    pub name: Option<String>,
    pub camera: String,
    pub site: String,
    pub polygon: ZonePolygon,
    pub params: ZoneParams,
    /// Whether the zone sets its own threshold (calibration leaves it be).
    pub own_threshold: bool,
    pub sensors: Vec<String>,
    pub schedule: Option<Schedule>,
}

#[derive(Debug, Clone)]
pub struct Camera {
    pub id: String,
    /// Where it publishes; unused for a pulled camera.
    pub topic: String,
    /// Set when firelane pulls its snapshots instead.
    pub snapshot: Option<Snapshot>,
}

#[derive(Debug, Clone)]
pub struct Sensor {
    pub id: String,
    pub zone: String,
    pub topic: String,
}

/// Where a run keeps its data, every default resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub evidence_dir: PathBuf,
    pub site_key: PathBuf,
}

/// The rolling recording, its folder resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub frames_per_camera: usize,
    pub min_interval_s: f64,
    pub dir: PathBuf,
}

/// A configuration that passed validation, every default resolved. The
/// file's own structs stay inside: only editing code reads them
/// ([`Config::raw`]).
#[derive(Debug, Clone)]
pub struct Config {
    pub source: String,
    pub sites: Vec<Site>,
    /// SHA-256 of the validated settings (canonical JSON), recorded with
    /// each violation so a bundle names the config it was judged under.
    pub sha256: String,
    raw: RawConfig,
    pub storage: Storage,
    pub model: ModelConfig,
    pub mqtt: MqttConfig,
    pub tracking: TrackingDefaults,
    pub ingest: IngestConfig,
    pub http: HttpConfig,
    pub alerts: AlertsConfig,
    pub recording: Recording,
    /// Cluster mode, when `[cluster] enabled`.
    pub cluster: Option<cluster::Cluster>,
    pub cameras: Vec<Camera>,
    pub zones: Vec<Zone>,
    pub sensors: Vec<Sensor>,
}

impl Config {
    /// Reads, parses and validates a TOML file. Relative paths inside it are
    /// taken relative to the working directory, as a shell user expects.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::from_toml(&text, &file)
    }

    /// The shipped `config/firelane.toml`, built into the binary: the daemon
    /// on its own broker and SQLite under `./data`, from any folder.
    pub fn builtin() -> Config {
        Self::from_toml(BUILTIN_CONFIG, BUILTIN_CONFIG_NAME)
            .expect("the shipped config/firelane.toml is valid (tested)")
    }

    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Self::from_raw(raw, file, None)
    }

    /// Validates `raw`. `card_threshold` fills zones without a threshold;
    /// without it the default is 0.5 until the model is loaded
    /// ([`Config::with_threshold`]).
    pub fn from_raw(
        raw: RawConfig,
        file: &str,
        card_threshold: Option<f64>,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut push = |item: String, field: &str, message: String| {
            problems.push(Problem {
                item,
                field: field.to_string(),
                message,
            })
        };
        let prefix = raw.mqtt.topic_prefix.trim_end_matches('/').to_string();
        validate::sections(&raw, &mut push);
        let sites = sites::resolve(&raw.sites, raw.alerts.smtp_url.is_some(), &mut push);
        let cameras = validate::cameras(&raw, &prefix, &mut push);
        let mut zones = validate::zones(&raw, &sites, card_threshold, &mut push);
        let sensors = validate::sensors(&raw, &prefix, &mut zones, &mut push);
        validate::topics(&cameras, &sensors, &mut push);
        let cluster = cluster::check(&raw, &storage_of(&raw.storage).database_url, &mut push);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                problems,
            });
        }
        let canonical = serde_json::to_vec(&raw).expect("config serialises");
        Ok(Config {
            source: file.to_string(),
            sites,
            sha256: crate::base::digest::sha256_hex(&canonical),
            storage: storage_of(&raw.storage),
            model: raw.model.clone(),
            mqtt: raw.mqtt.clone(),
            tracking: raw.tracking.clone(),
            ingest: raw.ingest.clone(),
            http: raw.http.clone(),
            alerts: raw.alerts.clone(),
            recording: recording_of(&raw.recording, &raw.storage),
            cluster,
            cameras,
            zones,
            sensors,
            raw,
        })
    }

    /// The file's own structs, for code that edits and rewrites it.
    pub fn raw(&self) -> &RawConfig {
        &self.raw
    }

    /// The model file ([`[model] path`]).
    pub fn model_path(&self) -> &Path {
        &self.model.path
    }

    /// This config with the model card's threshold for zones that set
    /// none: resolved again, not validated again.
    pub fn with_threshold(&self, card_threshold: f64) -> Config {
        let mut c = self.clone();
        let global = self.raw.tracking.threshold;
        for z in &mut c.zones {
            let own = self
                .raw
                .zones
                .iter()
                .find(|r| r.id == z.id)
                .and_then(|r| r.threshold);
            if own.is_none() && global.is_none() {
                z.params.threshold = card_threshold;
            }
        }
        c
    }

    /// This config with its data under `dir` (`--data-dir`): the database,
    /// evidence and key follow unless the file set them apart.
    pub fn with_data_dir(&self, dir: &Path) -> Config {
        let mut c = self.clone();
        c.raw.storage.data_dir = dir.to_path_buf();
        c.storage = storage_of(&c.raw.storage);
        c.recording = recording_of(&c.raw.recording, &c.raw.storage);
        c
    }

    pub fn prefix(&self) -> &str {
        self.mqtt.topic_prefix.trim_end_matches('/')
    }

    pub fn zones_of<'a>(&'a self, camera: &'a str) -> impl Iterator<Item = &'a Zone> + 'a {
        self.zones.iter().filter(move |z| z.camera == camera)
    }
}

/// Per-zone settings, resolved from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneParams {
    pub threshold: f64,
    pub grace_ms: crate::base::time::Millis,
    pub clear_ms: crate::base::time::Millis,
    pub camera_stale_ms: crate::base::time::Millis,
    pub sensor_weight: f64,
    pub update_every_ms: crate::base::time::Millis,
    /// Re-attach window: a violation ends only once its lane stayed clear
    /// this long (and `clear_ms`), so a vehicle that leaves and comes back,
    /// or a flicker, continues the same violation.
    pub reattach_ms: crate::base::time::Millis,
    /// Event time after which an open violation's progress is stored
    /// without an `update` (see tracking's `Checkpoint`).
    pub checkpoint_ms: crate::base::time::Millis,
}

impl Default for ZoneParams {
    fn default() -> Self {
        ZoneParams {
            threshold: 0.5,
            grace_ms: 600_000,
            clear_ms: 30_000,
            camera_stale_ms: 900_000,
            sensor_weight: 0.5,
            update_every_ms: 300_000,
            reattach_ms: 60_000,
            checkpoint_ms: 60_000,
        }
    }
}

fn storage_of(s: &StorageConfig) -> Storage {
    Storage {
        data_dir: s.data_dir.clone(),
        database_url: s.database_url(),
        evidence_dir: s.evidence_dir(),
        site_key: s.site_key(),
    }
}

fn recording_of(r: &RecordingConfig, s: &StorageConfig) -> Recording {
    Recording {
        frames_per_camera: r.frames_per_camera,
        min_interval_s: r.min_interval_s,
        dir: r.dir(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[cameras]]
id = "north"

[[zones]]
id = "lane-1"
camera = "north"
polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]
grace_s = 120

[[sensors]]
id = "loop-1"
zone = "lane-1"
"#;

    #[test]
    fn builtin_config_is_the_shipped_file_and_valid() {
        let file =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/firelane.toml"))
                .unwrap();
        assert_eq!(file, BUILTIN_CONFIG);
        let c = Config::builtin();
        assert_eq!(c.model_path(), Path::new(DEFAULT_MODEL));
        assert!(c.mqtt.embedded_broker.is_some());
    }

    fn problems(text: &str) -> Vec<Problem> {
        match Config::from_toml(text, "site.toml") {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn loads_a_good_config_with_defaults() {
        let c = Config::from_toml(GOOD, "site.toml").unwrap();
        assert_eq!(c.zones[0].params.grace_ms, 120_000);
        assert_eq!(c.zones[0].params.clear_ms, 30_000);
        assert_eq!(c.zones[0].sensors, vec!["loop-1".to_string()]);
        assert_eq!(c.cameras[0].topic, "firelane/cameras/north/frame");
        assert_eq!(c.sensors[0].topic, "firelane/sensors/loop-1");
    }

    #[test]
    fn names_unknown_camera() {
        let p = problems(&GOOD.replace("camera = \"north\"", "camera = \"south\""));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].item, "zone \"lane-1\" (zones[0])");
        assert_eq!(p[0].field, "camera");
        assert!(
            p[0].message.contains("unknown camera \"south\""),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn names_bad_polygons_and_thresholds() {
        let text = GOOD
            .replace("[0.5, 0.5], [0.1, 0.5]", "[0.1, 0.5], [0.5, 0.5]")
            .replace("grace_s = 120", "threshold = 1.5");
        let p = problems(&text);
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"polygon"), "{p:?}");
        assert!(fields.contains(&"threshold"), "{p:?}");
        let msg = Config::from_toml(&text, "site.toml")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("site.toml: zone \"lane-1\" (zones[0]): polygon: is self-intersecting"),
            "{msg}"
        );
    }

    #[test]
    fn names_duplicates_and_dangling_sensors() {
        let text = format!(
            "{GOOD}\n[[zones]]\nid = \"lane-1\"\ncamera = \"north\"\npolygon = [[0,0],[1,0],[1,1]]\n\n[[sensors]]\nid = \"loop-2\"\nzone = \"nowhere\"\n"
        );
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|p| p.field == "id" && p.message == "duplicate zone id"),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.item.starts_with("sensor \"loop-2\"") && p.field == "zone"),
            "{p:?}"
        );
    }

    #[test]
    fn refuses_unknown_fields_with_their_line() {
        let err =
            Config::from_toml(&GOOD.replace("grace_s", "grace_seconds"), "site.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("site.toml: "), "{msg}");
        assert!(msg.contains("grace_seconds"), "{msg}");
    }

    #[test]
    fn refuses_points_outside_the_frame() {
        let p = problems(&GOOD.replace("[0.5, 0.5]", "[1.5, 0.5]"));
        assert_eq!(p[0].field, "polygon");
        assert!(
            p[0].message.contains("point 3 (1.5, 0.5) is outside 0..1"),
            "{}",
            p[0].message
        );
    }
}
