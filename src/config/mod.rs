//! Configuration: TOML file → typed, validated [`Config`].
//!
//! Every validation message names the file, the item (zone, camera, sensor)
//! and the field, and where it can, says how to fix it.

pub mod edit;
pub mod live;
pub mod polygon;
pub mod schedule;
pub mod sites;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use polygon::{PixelRect, PolygonError, ZonePolygon};
pub use schedule::{Schedule, ScheduleConfig, WindowConfig};
pub use sites::{QuietHours, Site, SiteConfig, WebhookConfig};

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
    PathBuf::from("models/obstruction-v1.onnx")
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
pub struct EmbeddedBrokerConfig {
    /// MQTT 3.1.1 listener (what most cameras speak).
    pub listen: String,
    /// MQTT 5 listener; firelane's own client connects here.
    pub listen_v5: String,
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
}

fn default_reattach() -> f64 {
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
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Capture times further than this ahead of the wall clock are refused.
    #[serde(default = "default_future_skew")]
    pub max_future_skew_s: f64,
    /// Sensor readings waiting for the pipeline; beyond it they are dropped
    /// and counted. (Frames do not queue: each camera's latest frame waits,
    /// a newer one replaces it and the replaced one is counted as dropped.)
    #[serde(default = "default_queue", alias = "queue_frames")]
    pub queue_readings: usize,
    /// Decode each frame at the smallest DCT scale its zones allow.
    #[serde(default = "default_true")]
    pub scaled_decode: bool,
    /// Threads scoring frames (decode, crop, inference); default: the
    /// machine's cores.
    pub workers: Option<usize>,
}

fn default_future_skew() -> f64 {
    300.0
}
fn default_queue() -> usize {
    64
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_future_skew_s: default_future_skew(),
            queue_readings: default_queue(),
            scaled_decode: true,
            workers: None,
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    /// Default `<prefix>/cameras/<id>/frame`.
    pub topic: Option<String>,
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

/// A validated zone with its settings resolved against the defaults.
#[derive(Debug, Clone)]
pub struct Zone {
    pub id: String,
    pub name: Option<String>,
    pub camera: String,
    pub site: String,
    pub polygon: ZonePolygon,
    pub params: crate::tracking::ZoneParams,
    pub sensors: Vec<String>,
    pub schedule: Option<Schedule>,
}

#[derive(Debug, Clone)]
pub struct Camera {
    pub id: String,
    pub topic: String,
}

#[derive(Debug, Clone)]
pub struct Sensor {
    pub id: String,
    pub zone: String,
    pub topic: String,
}

/// A configuration that passed validation.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: String,
    pub sites: Vec<Site>,
    /// SHA-256 of the validated settings (canonical JSON), recorded with
    /// each violation so a bundle names the config it was judged under.
    pub sha256: String,
    pub raw: RawConfig,
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

    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Self::from_raw(raw, file, None)
    }

    /// Validates `raw`. `card_threshold` fills zones without a threshold;
    /// without it the default is 0.5 until the model is loaded.
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
        if prefix.is_empty() || prefix.contains(['+', '#']) {
            push(
                "[mqtt]".into(),
                "topic_prefix",
                "must be non-empty and contain no MQTT wildcards (+ #)".into(),
            );
        }
        if !(raw.mqtt.url.starts_with("mqtt://") || raw.mqtt.url.starts_with("mqtts://")) {
            push(
                "[mqtt]".into(),
                "url",
                format!("`{}` must start with mqtt:// or mqtts://", raw.mqtt.url),
            );
        } else if url::Url::parse(&raw.mqtt.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .is_none()
        {
            push(
                "[mqtt]".into(),
                "url",
                format!("`{}` has no host", raw.mqtt.url),
            );
        }
        if raw.mqtt.max_payload_bytes < 1024 {
            push(
                "[mqtt]".into(),
                "max_payload_bytes",
                "must be at least 1024".into(),
            );
        }
        if let Some(b) = &raw.mqtt.embedded_broker {
            for (field, v) in [("listen", &b.listen), ("listen_v5", &b.listen_v5)] {
                if v.parse::<std::net::SocketAddr>().is_err() {
                    push(
                        "[mqtt.embedded_broker]".into(),
                        field,
                        format!("`{v}` is not an address like 127.0.0.1:1883"),
                    );
                }
            }
        }
        let t = &raw.tracking;
        check_seconds(&mut push, "[tracking]", "grace_s", Some(t.grace_s));
        check_seconds(&mut push, "[tracking]", "clear_s", Some(t.clear_s));
        check_seconds(
            &mut push,
            "[tracking]",
            "camera_stale_s",
            Some(t.camera_stale_s),
        );
        check_seconds(
            &mut push,
            "[tracking]",
            "update_every_s",
            Some(t.update_every_s),
        );
        check_seconds(&mut push, "[tracking]", "reattach_s", Some(t.reattach_s));
        check_seconds(
            &mut push,
            "[recording]",
            "min_interval_s",
            Some(raw.recording.min_interval_s),
        );
        let a = &raw.alerts;
        check_seconds(&mut push, "[alerts]", "retry_base_s", Some(a.retry_base_s));
        check_seconds(&mut push, "[alerts]", "retry_max_s", Some(a.retry_max_s));
        check_seconds(
            &mut push,
            "[alerts]",
            "give_up_after_s",
            Some(a.give_up_after_s),
        );
        if let Some(u) = &a.smtp_url
            && !(u.starts_with("smtp://") || u.starts_with("smtps://"))
        {
            push(
                "[alerts]".into(),
                "smtp_url",
                format!("{u:?} is not smtp://host:port or smtps://host:port"),
            );
        }
        if a.email_from.parse::<lettre::message::Mailbox>().is_err() {
            push(
                "[alerts]".into(),
                "email_from",
                format!(
                    "{:?} is not a mailbox like \"firelane <firelane@example.com>\"",
                    a.email_from
                ),
            );
        }
        let sites = sites::resolve(&raw.sites, a.smtp_url.is_some(), &mut push);
        check_threshold(&mut push, "[tracking]", t.threshold);
        if !(0.0..=10.0).contains(&t.sensor_weight) {
            push(
                "[tracking]".into(),
                "sensor_weight",
                format!(
                    "{} is out of range 0..10 (0 ignores sensors when a frame is fresh)",
                    t.sensor_weight
                ),
            );
        }
        if raw.ingest.queue_readings == 0 {
            push(
                "[ingest]".into(),
                "queue_readings",
                "must be at least 1".into(),
            );
        }
        if raw.http.enabled && raw.http.listen.parse::<std::net::SocketAddr>().is_err() {
            push(
                "[http]".into(),
                "listen",
                format!(
                    "{:?} is not host:port with a numeric IP, e.g. \"127.0.0.1:8080\"",
                    raw.http.listen
                ),
            );
        }

        let mut cameras = Vec::new();
        let mut seen = HashSet::new();
        for (i, c) in raw.cameras.iter().enumerate() {
            let item = format!("camera \"{}\" (cameras[{i}])", c.id);
            if !valid_id(&c.id) {
                push(
                    item.clone(),
                    "id",
                    "must be non-empty, without MQTT wildcards (+ #) or control characters".into(),
                );
            }
            if !seen.insert(c.id.clone()) {
                push(item.clone(), "id", "duplicate camera id".into());
            }
            cameras.push(Camera {
                id: c.id.clone(),
                topic: c
                    .topic
                    .clone()
                    .unwrap_or_else(|| format!("{prefix}/cameras/{}/frame", c.id)),
            });
        }
        let camera_ids: Vec<&str> = raw.cameras.iter().map(|c| c.id.as_str()).collect();

        let mut zones = Vec::new();
        let mut zone_ids = HashSet::new();
        for (i, z) in raw.zones.iter().enumerate() {
            let item = format!("zone \"{}\" (zones[{i}])", z.id);
            if !valid_id(&z.id) {
                push(
                    item.clone(),
                    "id",
                    "must be non-empty, without MQTT wildcards (+ #) or control characters".into(),
                );
            }
            if !zone_ids.insert(z.id.clone()) {
                push(item.clone(), "id", "duplicate zone id".into());
            }
            if !camera_ids.contains(&z.camera.as_str()) {
                push(
                    item.clone(),
                    "camera",
                    format!(
                        "unknown camera \"{}\"; known: {}",
                        z.camera,
                        list(&camera_ids)
                    ),
                );
            }
            if let Some(name) = &z.name
                && (name.trim().is_empty()
                    || name.chars().count() > 80
                    || name.chars().any(char::is_control))
            {
                push(
                    item.clone(),
                    "name",
                    "must be 1 to 80 characters without control characters".into(),
                );
            }
            check_threshold(&mut push, &item, z.threshold);
            check_seconds(&mut push, &item, "grace_s", z.grace_s);
            check_seconds(&mut push, &item, "clear_s", z.clear_s);
            let polygon = match ZonePolygon::new(z.polygon.clone()) {
                Ok(p) => Some(p),
                Err(e) => {
                    push(item.clone(), "polygon", e.to_string());
                    None
                }
            };
            if let Some(polygon) = polygon {
                let site = match &z.site {
                    Some(id) => sites
                        .iter()
                        .find(|s| &s.id == id)
                        .cloned()
                        .unwrap_or_else(|| {
                            let known: Vec<&str> = sites.iter().map(|s| s.id.as_str()).collect();
                            push(
                                item.clone(),
                                "site",
                                format!("unknown site \"{id}\"; known: {}", list(&known)),
                            );
                            Site::implicit()
                        }),
                    None if sites.len() == 1 => sites[0].clone(),
                    None => {
                        push(
                            item.clone(),
                            "site",
                            "required: more than one [[sites]] is configured".into(),
                        );
                        Site::implicit()
                    }
                };
                let schedule = z.schedule.as_ref().and_then(|sc| {
                    sc.resolve(site.timezone)
                        .map_err(|problems| {
                            for (field, message) in problems {
                                push(item.clone(), &field, message);
                            }
                        })
                        .ok()
                });
                zones.push(Zone {
                    id: z.id.clone(),
                    name: z.name.clone(),
                    camera: z.camera.clone(),
                    site: site.id.clone(),
                    polygon,
                    params: crate::tracking::ZoneParams {
                        threshold: z
                            .threshold
                            .or(t.threshold)
                            .or(card_threshold)
                            .unwrap_or(0.5),
                        grace_ms: crate::time::secs_to_ms(z.grace_s.unwrap_or(t.grace_s)),
                        clear_ms: crate::time::secs_to_ms(z.clear_s.unwrap_or(t.clear_s)),
                        camera_stale_ms: crate::time::secs_to_ms(t.camera_stale_s),
                        sensor_weight: t.sensor_weight,
                        update_every_ms: crate::time::secs_to_ms(
                            site.reminder_every_s.unwrap_or(t.update_every_s),
                        ),
                        reattach_ms: crate::time::secs_to_ms(
                            site.reattach_s.unwrap_or(t.reattach_s),
                        ),
                    },
                    sensors: Vec::new(),
                    schedule,
                });
            }
        }

        let mut sensors = Vec::new();
        let mut sensor_ids = HashSet::new();
        for (i, s) in raw.sensors.iter().enumerate() {
            let item = format!("sensor \"{}\" (sensors[{i}])", s.id);
            if !valid_id(&s.id) {
                push(
                    item.clone(),
                    "id",
                    "must be non-empty, without MQTT wildcards (+ #) or control characters".into(),
                );
            }
            if !sensor_ids.insert(s.id.clone()) {
                push(item.clone(), "id", "duplicate sensor id".into());
            }
            if !zone_ids.contains(&s.zone) {
                let known: Vec<&str> = raw.zones.iter().map(|z| z.id.as_str()).collect();
                push(
                    item.clone(),
                    "zone",
                    format!("unknown zone \"{}\"; known: {}", s.zone, list(&known)),
                );
            }
            sensors.push(Sensor {
                id: s.id.clone(),
                zone: s.zone.clone(),
                topic: s
                    .topic
                    .clone()
                    .unwrap_or_else(|| format!("{prefix}/sensors/{}", s.id)),
            });
        }
        for (i, z) in raw.zones.iter().enumerate() {
            for s in &z.sensors {
                match raw.sensors.iter().find(|c| &c.id == s) {
                    None => push(
                        format!("zone \"{}\" (zones[{i}])", z.id),
                        "sensors",
                        format!("unknown sensor \"{s}\"; add it under [[sensors]]"),
                    ),
                    Some(c) if c.zone != z.id => push(
                        format!("zone \"{}\" (zones[{i}])", z.id),
                        "sensors",
                        format!("sensor \"{s}\" is configured for zone \"{}\"", c.zone),
                    ),
                    Some(_) => {}
                }
            }
        }
        for zone in &mut zones {
            zone.sensors = sensors
                .iter()
                .filter(|s| s.zone == zone.id)
                .map(|s| s.id.clone())
                .collect();
        }
        let mut topics: BTreeMap<&str, &str> = BTreeMap::new();
        for (id, topic) in cameras
            .iter()
            .map(|c| (&c.id, &c.topic))
            .chain(sensors.iter().map(|s| (&s.id, &s.topic)))
        {
            if let Some(other) = topics.insert(topic, id) {
                push(
                    format!("\"{id}\""),
                    "topic",
                    format!("topic `{topic}` is also used by \"{other}\""),
                );
            }
        }

        if problems.is_empty() {
            let canonical = serde_json::to_vec(&raw).expect("config serialises");
            Ok(Config {
                source: file.to_string(),
                sites,
                sha256: crate::vision::model::sha256_hex(&canonical),
                raw,
                cameras,
                zones,
                sensors,
            })
        } else {
            Err(ConfigError::Invalid {
                file: file.to_string(),
                problems,
            })
        }
    }

    pub fn prefix(&self) -> &str {
        self.raw.mqtt.topic_prefix.trim_end_matches('/')
    }

    pub fn zones_of<'a>(&'a self, camera: &'a str) -> impl Iterator<Item = &'a Zone> + 'a {
        self.zones.iter().filter(move |z| z.camera == camera)
    }
}

/// Ids become MQTT topic levels: no wildcards, no control characters.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && !id.contains(['+', '#']) && !id.chars().any(char::is_control)
}

fn list(ids: &[&str]) -> String {
    if ids.is_empty() {
        "none".into()
    } else {
        ids.join(", ")
    }
}

fn check_threshold(push: &mut impl FnMut(String, &str, String), item: &str, v: Option<f64>) {
    if let Some(v) = v
        && !(v > 0.0 && v < 1.0)
    {
        push(
            item.to_string(),
            "threshold",
            format!("{v} is out of range; a score threshold lies strictly between 0 and 1"),
        );
    }
}

fn check_seconds(
    push: &mut impl FnMut(String, &str, String),
    item: &str,
    field: &str,
    v: Option<f64>,
) {
    if let Some(v) = v
        && !(v.is_finite() && (0.0..=7.0 * 86400.0).contains(&v))
    {
        push(
            item.to_string(),
            field,
            format!("{v} is out of range 0..604800 seconds"),
        );
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
