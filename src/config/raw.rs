//! The configuration as written: serde structs that mirror the TOML file,
//! with its defaults. Nothing here is validated; [`super::validate`] turns a
//! [`RawConfig`] into a [`super::Config`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use super::broker::EmbeddedBrokerConfig;

use super::schedule::ScheduleConfig;
use super::sites::SiteConfig;

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub tracking: TrackingDefaults,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
    #[serde(default)]
    pub recording: RecordingConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<super::cluster::ClusterConfig>,
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub sensors: Vec<SensorConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Folder for the database and evidence unless they are set apart.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// sqlx URL; default `sqlite://<data_dir>/firelane.db`.
    pub database_url: Option<String>,
    /// Default `<data_dir>/evidence`.
    pub evidence_dir: Option<PathBuf>,
    /// The Ed25519 key that signs evidence bundles, created on first use;
    /// default `<data_dir>/site.key` (public half in `site.key.pub`).
    pub site_key: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: default_data_dir(),
            database_url: None,
            evidence_dir: None,
            site_key: None,
        }
    }
}

impl StorageConfig {
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("firelane.db").display()
            )
        })
    }
    pub fn evidence_dir(&self) -> PathBuf {
        self.evidence_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("evidence"))
    }
    pub fn site_key(&self) -> PathBuf {
        self.site_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("site.key"))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The ONNX file; its card is the `.json` beside it.
    #[serde(default = "default_model_path")]
    pub path: PathBuf,
}

pub fn default_model_path() -> PathBuf {
    PathBuf::from(super::DEFAULT_MODEL)
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: default_model_path(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS with rustls).
    #[serde(default = "default_mqtt_url")]
    pub url: String,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file of the CA that signs the broker's certificate (mqtts only);
    /// without it the system's roots are not used, so set it for TLS.
    pub ca_file: Option<PathBuf>,
    /// Largest payload accepted (frames are JPEGs): bigger ones are skipped.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
    /// Start an MQTT broker inside firelane (rumqttd) so a small site needs
    /// nothing else installed.
    #[serde(default)]
    pub embedded_broker: Option<EmbeddedBrokerConfig>,
}

fn default_mqtt_url() -> String {
    "mqtt://127.0.0.1:1883".into()
}
fn default_client_id() -> String {
    "firelane".into()
}
fn default_prefix() -> String {
    "firelane".into()
}
fn default_max_payload() -> usize {
    8 * 1024 * 1024
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: default_mqtt_url(),
            client_id: default_client_id(),
            topic_prefix: default_prefix(),
            username: None,
            password: None,
            ca_file: None,
            max_payload_bytes: default_max_payload(),
            embedded_broker: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve the API and the web page.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `host:port`; keep it on loopback unless a TLS proxy is in front.
    #[serde(default = "default_http_listen")]
    pub listen: String,
}

fn default_true() -> bool {
    true
}
fn default_http_listen() -> String {
    "127.0.0.1:8080".into()
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: default_http_listen(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// First retry delay of a failed delivery; doubles per attempt, with
    /// jitter, up to `retry_max_s`.
    #[serde(default = "default_retry_base")]
    pub retry_base_s: f64,
    #[serde(default = "default_retry_max")]
    pub retry_max_s: f64,
    /// A delivery still failing after this long is given up (and logged).
    #[serde(default = "default_give_up")]
    pub give_up_after_s: f64,
    /// `smtp://host:port` (plain or STARTTLS with `?tls=required`) or
    /// `smtps://user:pass@host:465`.
    pub smtp_url: Option<String>,
    #[serde(default = "default_email_from")]
    pub email_from: String,
    /// Publish Home Assistant MQTT discovery for every zone and site.
    #[serde(default)]
    pub home_assistant: bool,
    #[serde(default = "default_discovery_prefix")]
    pub discovery_prefix: String,
}

fn default_retry_base() -> f64 {
    2.0
}
fn default_retry_max() -> f64 {
    300.0
}
fn default_give_up() -> f64 {
    7.0 * 86_400.0
}
fn default_email_from() -> String {
    "firelane <firelane@localhost>".into()
}
fn default_discovery_prefix() -> String {
    "homeassistant".into()
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            retry_base_s: default_retry_base(),
            retry_max_s: default_retry_max(),
            give_up_after_s: default_give_up(),
            smtp_url: None,
            email_from: default_email_from(),
            home_assistant: false,
            discovery_prefix: default_discovery_prefix(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingDefaults {
    /// Seconds a zone must stay obstructed before it is a violation.
    #[serde(default = "default_grace")]
    pub grace_s: f64,
    /// Seconds of clear readings (and at least two readings) that end an
    /// obstruction or violation.
    #[serde(default = "default_clear")]
    pub clear_s: f64,
    /// Obstruction score threshold; default: the model card's.
    pub threshold: Option<f64>,
    /// A frame older than this no longer speaks for a zone when a sensor
    /// reading arrives.
    #[serde(default = "default_camera_stale")]
    pub camera_stale_s: f64,
    /// Weight of a presence sensor against the camera score (see tracking).
    #[serde(default = "default_sensor_weight")]
    pub sensor_weight: f64,
    /// Event time between `update` events of an open violation.
    #[serde(default = "default_update_every")]
    pub update_every_s: f64,
    /// A violation whose lane is blocked again within this many seconds
    /// of clearing continues (one parked vehicle, one violation); its end
    /// is announced once the lane stayed clear this long.
    #[serde(default = "default_reattach")]
    pub reattach_s: f64,
    /// Event time after which an open violation's latest obstructed time
    /// is stored even with no `update` due: what a crash can lose.
    #[serde(default = "default_checkpoint")]
    pub checkpoint_s: f64,
    /// Learn each camera's threshold from its confident presence sensors
    /// (bounded around the configured one; see README *Calibration*).
    #[serde(default = "default_true")]
    pub calibrate: bool,
}

fn default_reattach() -> f64 {
    60.0
}
fn default_checkpoint() -> f64 {
    60.0
}

fn default_grace() -> f64 {
    600.0
}
fn default_clear() -> f64 {
    30.0
}
fn default_camera_stale() -> f64 {
    900.0
}
fn default_sensor_weight() -> f64 {
    0.5
}
fn default_update_every() -> f64 {
    300.0
}

impl Default for TrackingDefaults {
    fn default() -> Self {
        TrackingDefaults {
            grace_s: default_grace(),
            clear_s: default_clear(),
            threshold: None,
            camera_stale_s: default_camera_stale(),
            sensor_weight: default_sensor_weight(),
            update_every_s: default_update_every(),
            reattach_s: default_reattach(),
            checkpoint_s: default_checkpoint(),
            calibrate: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// A capture time further than this ahead of its arrival means the
    /// source's clock is wrong (see `on_clock_skew`).
    #[serde(default = "default_future_skew")]
    pub max_future_skew_s: f64,
    /// A capture time further than this behind its arrival means the
    /// source's clock is wrong (a clock reset to 2000, a time-zone slip);
    /// 0 turns the check off, for feeds that deliver old inputs on purpose.
    #[serde(default = "default_past_skew")]
    pub max_past_skew_s: f64,
    /// What happens to an input from a source whose clock is wrong:
    /// `refuse` it (default: evidence keeps only times the camera gave) or
    /// `restamp` it with its arrival time (the lane stays watched).
    #[serde(default)]
    pub on_clock_skew: ClockSkewPolicy,
    /// Sensor readings waiting for the pipeline; beyond it they are dropped
    /// and counted. (Frames do not queue: each camera's latest frame waits,
    /// a newer one replaces it and the replaced one is counted as dropped.)
    #[serde(default = "default_queue", alias = "queue_frames")]
    pub queue_readings: usize,
    /// Decode each frame at the smallest DCT scale its zones allow.
    #[serde(default = "default_true")]
    pub scaled_decode: bool,
    /// Frames whose header declares more pixels are refused before any
    /// decoding (a 1 KB JPEG can declare 8192x8192 and cost 200 MB);
    /// default 8K UHD, 7680x4320.
    #[serde(default = "default_max_frame_pixels")]
    pub max_frame_pixels: u64,
    /// Threads scoring frames (decode, crop, inference); default: the
    /// machine's cores.
    pub workers: Option<usize>,
    /// A zone tile whose preprocessed crop differs from the one last
    /// scored by less than this (mean absolute difference of normalised
    /// values) keeps that score; 0 scores every tile of every frame.
    #[serde(default = "default_reuse_diff")]
    pub reuse_max_diff: f64,
    /// ... for at most this many seconds of capture time after it was
    /// really scored.
    #[serde(default = "default_reuse_age")]
    pub reuse_max_age_s: f64,
}

fn default_reuse_diff() -> f64 {
    0.02
}
fn default_reuse_age() -> f64 {
    60.0
}

fn default_future_skew() -> f64 {
    300.0
}
fn default_past_skew() -> f64 {
    900.0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSkewPolicy {
    #[default]
    Refuse,
    Restamp,
}
fn default_max_frame_pixels() -> u64 {
    7680 * 4320
}

fn default_queue() -> usize {
    64
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_future_skew_s: default_future_skew(),
            max_past_skew_s: default_past_skew(),
            on_clock_skew: ClockSkewPolicy::Refuse,
            queue_readings: default_queue(),
            scaled_decode: true,
            max_frame_pixels: default_max_frame_pixels(),
            workers: None,
            reuse_max_diff: default_reuse_diff(),
            reuse_max_age_s: default_reuse_age(),
        }
    }
}

/// `[recording]`: a rolling window of recent frames and readings on disk,
/// exported as a replay scenario by `firelane record` (for what-if runs).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Frames kept per camera, oldest deleted first; 0 records nothing.
    #[serde(default)]
    pub frames_per_camera: usize,
    /// At most one frame per camera per this many seconds of capture
    /// time (0: every frame); spares the disk at high frame rates.
    #[serde(default)]
    pub min_interval_s: f64,
    /// Default `<data_dir>/recording`.
    pub dir: Option<PathBuf>,
}

impl RecordingConfig {
    pub fn dir(&self, storage: &StorageConfig) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| storage.data_dir.join("recording"))
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    /// Default `<prefix>/cameras/<id>/frame`.
    pub topic: Option<String>,
    /// Pulled instead of published: a JPEG snapshot URL fetched every
    /// `interval_s` (see [`crate::config::snapshot`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// PEM certificates trusted for an https snapshot_url (a site CA or
    /// the camera's own self-signed certificate), besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A response header holding the camera's capture time (RFC 3339, HTTP
    /// date or Unix milliseconds); default the time the response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_header: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub id: String,
    /// Shown on the web pages; default the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub camera: String,
    pub polygon: Vec<[f64; 2]>,
    pub threshold: Option<f64>,
    pub grace_s: Option<f64>,
    pub clear_s: Option<f64>,
    /// The `[[sites]]` id; may be left out when there is one site or none.
    pub site: Option<String>,
    /// Sensors watching this zone (each sensor also names its zone).
    #[serde(default)]
    pub sensors: Vec<String>,
    /// When the zone is enforced; default always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    pub id: String,
    pub zone: String,
    /// Default `<prefix>/sensors/<id>`.
    pub topic: Option<String>,
}
