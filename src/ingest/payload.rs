//! Frame and sensor payloads.
//!
//! Frames: raw JPEG bytes, or a JSON envelope
//! `{"captured_at": "<RFC 3339>", "jpeg_base64": "..."}`. The capture time
//! comes from the envelope, else from an MQTT v5 user property
//! `captured_at` (RFC 3339), else it is the arrival time.
//! Sensors: `{"sensor": "<id>", "measured_at": "<RFC 3339>", "occupied": true}`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;

use super::clocks::{ClockBook, ClockRule, SourceKind};
use crate::base::input::{Frame, SensorReading};
use crate::base::time::{Millis, parse_rfc3339};
use crate::base::topics;
use crate::config::Config;
use crate::vision::decode::looks_like_jpeg;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload of {size} bytes is over the {max}-byte limit ([mqtt] max_payload_bytes)")]
    TooLarge { size: usize, max: usize },
    #[error("empty payload")]
    Empty,
    #[error("neither a JPEG nor a JSON envelope (first bytes {0})")]
    Unrecognised(String),
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("jpeg_base64 is not valid base64: {0}")]
    Base64(String),
    #[error("jpeg_base64 does not hold a JPEG")]
    EnvelopeNotJpeg,
    #[error("{field} `{value}` is not an RFC 3339 time")]
    BadTime { field: &'static str, value: String },
    #[error(transparent)]
    Clock(#[from] super::clocks::Skewed),
    #[error("payload names sensor \"{payload}\" but arrived on the topic of sensor \"{topic}\"")]
    SensorMismatch { payload: String, topic: String },
    #[error("no camera or sensor is configured for topic `{0}`")]
    UnknownTopic(String),
    #[error("camera \"{0}\" is pulled from its snapshot_url; frames published for it are refused")]
    PulledCamera(String),
    #[error("{what} \"{id}\" is not configured; refused")]
    UnknownId { what: &'static str, id: String },
}

/// What a message became.
#[derive(Debug, Clone)]
pub enum Inbound {
    Frame(Frame),
    Sensor(SensorReading),
}

/// Limits applied to every payload.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    /// The window around arrival a capture time must fall in.
    pub clock: ClockRule,
}

#[derive(Deserialize)]
struct Envelope {
    captured_at: Option<String>,
    jpeg_base64: String,
}

#[derive(Deserialize)]
struct SensorPayload {
    sensor: Option<String>,
    measured_at: Option<String>,
    occupied: bool,
}

fn time(field: &'static str, s: &str) -> Result<Millis, PayloadError> {
    parse_rfc3339(s.trim()).map_err(|_| PayloadError::BadTime {
        field,
        value: s.chars().take(64).collect(),
    })
}

pub fn parse_frame(
    camera: &str,
    payload: &[u8],
    user_properties: &[(String, String)],
    arrival: Millis,
    limits: &Limits,
) -> Result<Frame, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    if payload.len() > limits.max_bytes {
        return Err(PayloadError::TooLarge {
            size: payload.len(),
            max: limits.max_bytes,
        });
    }
    let property_time = user_properties
        .iter()
        .find(|(k, _)| k == "captured_at")
        .map(|(_, v)| time("captured_at", v))
        .transpose()?;
    let (jpeg, envelope_time) = if looks_like_jpeg(payload) {
        (payload.to_vec(), None)
    } else if payload.first() == Some(&b'{') {
        let env: Envelope =
            serde_json::from_slice(payload).map_err(|e| PayloadError::Json(e.to_string()))?;
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode(env.jpeg_base64.trim())
            .map_err(|e| PayloadError::Base64(e.to_string()))?;
        if !looks_like_jpeg(&jpeg) {
            return Err(PayloadError::EnvelopeNotJpeg);
        }
        (
            jpeg,
            env.captured_at
                .as_deref()
                .map(|s| time("captured_at", s))
                .transpose()?,
        )
    } else {
        let head: Vec<String> = payload.iter().take(4).map(|b| format!("{b:02X}")).collect();
        return Err(PayloadError::Unrecognised(head.join(" ")));
    };
    let captured_at = envelope_time.or(property_time).unwrap_or(arrival);
    Ok(Frame {
        camera: camera.to_string(),
        captured_at,
        jpeg: Arc::new(jpeg),
        arrived: Some(std::time::Instant::now()),
    })
}

pub fn parse_sensor(
    sensor: &str,
    payload: &[u8],
    arrival: Millis,
    limits: &Limits,
) -> Result<SensorReading, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    if payload.len() > limits.max_bytes.min(64 * 1024) {
        return Err(PayloadError::TooLarge {
            size: payload.len(),
            max: limits.max_bytes.min(64 * 1024),
        });
    }
    let p: SensorPayload =
        serde_json::from_slice(payload).map_err(|e| PayloadError::Json(e.to_string()))?;
    if let Some(named) = &p.sensor
        && named != sensor
    {
        return Err(PayloadError::SensorMismatch {
            payload: named.clone(),
            topic: sensor.to_string(),
        });
    }
    let measured_at = p
        .measured_at
        .as_deref()
        .map(|s| time("measured_at", s))
        .transpose()?
        .unwrap_or(arrival);
    Ok(SensorReading {
        sensor: sensor.to_string(),
        measured_at,
        occupied: p.occupied,
    })
}

/// Where a topic leads.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Camera(String),
    Sensor(String),
}

/// Maps topics to configured cameras and sensors; also recognises the
/// default topic shapes of ids that are not configured, so they can be
/// reported by name.
#[derive(Debug, Clone)]
pub struct TopicRouter {
    prefix: String,
    routes: HashMap<String, Route>,
    /// Configured ids: anything else is refused here, before it can take
    /// a frame slot, a queue place or recording space.
    cameras: std::collections::HashSet<String>,
    sensors: std::collections::HashSet<String>,
    /// Cameras firelane pulls: one source of frames per camera.
    pulled: std::collections::HashSet<String>,
    /// The default wildcards too (off in cluster mode: an instance takes
    /// only its own cameras' frames).
    wildcards: bool,
}

/// A topic to subscribe to. Sensors report on change only, so their
/// readings must not be lost: QoS 1 (`reliable`). Frames are QoS 0: a
/// newer one replaces a lost one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topic: String,
    pub reliable: bool,
}

impl TopicRouter {
    pub fn new(config: &Config) -> TopicRouter {
        let mut routes = HashMap::new();
        for c in config.cameras.iter().filter(|c| c.snapshot.is_none()) {
            routes.insert(c.topic.clone(), Route::Camera(c.id.clone()));
        }
        for s in &config.sensors {
            routes.insert(s.topic.clone(), Route::Sensor(s.id.clone()));
        }
        TopicRouter {
            prefix: config.prefix().to_string(),
            routes,
            cameras: config.cameras.iter().map(|c| c.id.clone()).collect(),
            sensors: config.sensors.iter().map(|s| s.id.clone()).collect(),
            pulled: config
                .cameras
                .iter()
                .filter(|c| c.snapshot.is_some())
                .map(|c| c.id.clone())
                .collect(),
            wildcards: config.cluster.is_none(),
        }
    }

    /// Every topic to subscribe to: the configured ones and the default
    /// wildcards (so unknown cameras and sensors are seen and reported).
    /// Topics the wildcards already cover are left out: overlapping
    /// subscriptions would make the broker deliver a frame twice.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        let sub = |topic: String, reliable| Subscription { topic, reliable };
        if !self.wildcards {
            let mut topics: Vec<Subscription> = self
                .routes
                .iter()
                .map(|(t, r)| sub(t.clone(), matches!(r, Route::Sensor(_))))
                .collect();
            topics.sort_by(|a, b| a.topic.cmp(&b.topic));
            return topics;
        }
        let mut topics = vec![
            sub(topics::all_camera_frames(&self.prefix), false),
            sub(topics::all_sensors(&self.prefix), true),
        ];
        let covered = |t: &str| {
            let Some(rest) = t
                .strip_prefix(&self.prefix)
                .and_then(|r| r.strip_prefix('/'))
            else {
                return false;
            };
            matches!(
                rest.split('/').collect::<Vec<_>>()[..],
                ["cameras", _, "frame"] | ["sensors", _]
            )
        };
        let mut extra: Vec<Subscription> = self
            .routes
            .iter()
            .filter(|(t, _)| !covered(t))
            .map(|(t, r)| sub(t.clone(), matches!(r, Route::Sensor(_))))
            .collect();
        extra.sort_by(|a, b| a.topic.cmp(&b.topic));
        topics.extend(extra);
        topics
    }

    pub fn route(&self, topic: &str) -> Option<Route> {
        if let Some(r) = self.routes.get(topic) {
            return Some(r.clone());
        }
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts[..] {
            ["cameras", id, "frame"] => Some(Route::Camera(id.to_string())),
            ["sensors", id] => Some(Route::Sensor(id.to_string())),
            _ => None,
        }
    }

    /// Parses a message into pipeline input, its time admitted by `clocks`.
    pub fn parse(
        &self,
        topic: &str,
        payload: &[u8],
        user_properties: &[(String, String)],
        arrival: Millis,
        limits: &Limits,
        clocks: &ClockBook,
    ) -> Result<Inbound, PayloadError> {
        match self.route(topic) {
            Some(Route::Camera(id)) if self.pulled.contains(&id) => {
                Err(PayloadError::PulledCamera(id))
            }
            Some(Route::Camera(id)) if !self.cameras.contains(&id) => {
                Err(PayloadError::UnknownId { what: "camera", id })
            }
            Some(Route::Sensor(id)) if !self.sensors.contains(&id) => {
                Err(PayloadError::UnknownId { what: "sensor", id })
            }
            Some(Route::Camera(id)) => {
                let mut f = parse_frame(&id, payload, user_properties, arrival, limits)?;
                f.captured_at = clocks.admit(
                    &limits.clock,
                    SourceKind::Camera,
                    &id,
                    f.captured_at,
                    arrival,
                )?;
                Ok(Inbound::Frame(f))
            }
            Some(Route::Sensor(id)) => {
                let mut r = parse_sensor(&id, payload, arrival, limits)?;
                r.measured_at = clocks.admit(
                    &limits.clock,
                    SourceKind::Sensor,
                    &id,
                    r.measured_at,
                    arrival,
                )?;
                Ok(Inbound::Sensor(r))
            }
            None => Err(PayloadError::UnknownTopic(topic.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bytes: 1024,
        clock: ClockRule {
            max_ahead_ms: 60_000,
            max_behind_ms: Some(900_000),
            policy: crate::config::ClockSkewPolicy::Refuse,
        },
    };
    const NOW: Millis = 1_435_903_500_000; // 2015-07-03T06:05:00Z
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9];

    #[test]
    fn raw_jpeg_takes_the_user_property_time_else_arrival() {
        let f = parse_frame("cam", JPEG, &[], NOW, &LIMITS).unwrap();
        assert_eq!(f.captured_at, NOW);
        assert_eq!(*f.jpeg, JPEG);
        let props = vec![(
            "captured_at".to_string(),
            "2015-07-03T06:04:00Z".to_string(),
        )];
        assert_eq!(
            parse_frame("cam", JPEG, &props, NOW, &LIMITS)
                .unwrap()
                .captured_at,
            NOW - 60_000
        );
    }

    #[test]
    fn envelope_carries_its_time_and_bytes() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(JPEG);
        let body = format!(r#"{{"captured_at": "2015-07-03T06:00:00Z", "jpeg_base64": "{b64}"}}"#);
        let f = parse_frame("cam", body.as_bytes(), &[], NOW, &LIMITS).unwrap();
        assert_eq!(f.captured_at, NOW - 300_000);
        assert_eq!(*f.jpeg, JPEG);
    }

    #[test]
    fn refusals_say_why() {
        let big = vec![0xFF; 2000];
        assert_eq!(
            parse_frame("cam", &big, &[], NOW, &LIMITS).unwrap_err(),
            PayloadError::TooLarge {
                size: 2000,
                max: 1024
            }
        );
        assert!(matches!(
            parse_frame("cam", b"{not json", &[], NOW, &LIMITS),
            Err(PayloadError::Json(_))
        ));
        assert!(
            matches!(parse_frame("cam", b"GIF89a", &[], NOW, &LIMITS), Err(PayloadError::Unrecognised(h)) if h == "47 49 46 38")
        );
        let bad64 = br#"{"jpeg_base64": "!!!"}"#;
        assert!(matches!(
            parse_frame("cam", bad64, &[], NOW, &LIMITS),
            Err(PayloadError::Base64(_))
        ));
        let future = vec![(
            "captured_at".to_string(),
            "2015-07-03T07:05:00Z".to_string(),
        )];
        // Parsing keeps the camera's time; the router's clock check judges it.
        assert_eq!(
            parse_frame("cam", JPEG, &future, NOW, &LIMITS)
                .unwrap()
                .captured_at,
            NOW + 3_600_000
        );
        let bad_time = vec![("captured_at".to_string(), "yesterday".to_string())];
        assert!(matches!(
            parse_frame("cam", JPEG, &bad_time, NOW, &LIMITS),
            Err(PayloadError::BadTime { .. })
        ));
    }

    #[test]
    fn sensor_payloads() {
        let ok = br#"{"sensor": "s1", "measured_at": "2015-07-03T06:05:00Z", "occupied": true}"#;
        let r = parse_sensor("s1", ok, NOW, &LIMITS).unwrap();
        assert_eq!(
            r,
            SensorReading {
                sensor: "s1".into(),
                measured_at: NOW,
                occupied: true
            }
        );
        assert!(matches!(
            parse_sensor("s2", ok, NOW, &LIMITS),
            Err(PayloadError::SensorMismatch { .. })
        ));
        assert!(matches!(
            parse_sensor("s1", br#"{"occupied": "yes"}"#, NOW, &LIMITS),
            Err(PayloadError::Json(_))
        ));
        let no_time = parse_sensor("s1", br#"{"occupied": false}"#, NOW, &LIMITS).unwrap();
        assert_eq!(no_time.measured_at, NOW);
    }

    /// A pulled camera has one source of frames: published ones are refused.
    #[test]
    fn frames_published_for_a_pulled_camera_are_refused() {
        let cfg = Config::from_toml(
            "[[cameras]]\nid = \"p\"\nsnapshot_url = \"http://cam/snap.jpg\"\n",
            "t.toml",
        )
        .unwrap();
        let router = TopicRouter::new(&cfg);
        let e = router
            .parse(
                "firelane/cameras/p/frame",
                &[0xFF, 0xD8, 0xFF, 0xE0],
                &[],
                0,
                &LIMITS,
                &ClockBook::default(),
            )
            .unwrap_err();
        assert_eq!(e, PayloadError::PulledCamera("p".into()));
        assert!(e.to_string().contains("pulled from its snapshot_url"));
    }

    #[test]
    fn routes_configured_and_default_topics() {
        let cfg = Config::from_toml(
            "[[cameras]]\nid = \"a\"\ntopic = \"site/cam-a/jpeg\"\n[[zones]]\nid = \"z\"\ncamera = \"a\"\npolygon = [[0,0],[1,0],[1,1]]\n[[sensors]]\nid = \"s\"\nzone = \"z\"\n",
            "t.toml",
        )
        .unwrap();
        let router = TopicRouter::new(&cfg);
        assert_eq!(
            router.route("site/cam-a/jpeg"),
            Some(Route::Camera("a".into()))
        );
        assert_eq!(
            router.route("firelane/cameras/zz/frame"),
            Some(Route::Camera("zz".into()))
        );
        assert_eq!(
            router.route("firelane/sensors/s"),
            Some(Route::Sensor("s".into()))
        );
        assert_eq!(router.route("elsewhere/x"), None);
        let subs = router.subscriptions();
        let find = |t: &str| subs.iter().find(|s| s.topic == t).cloned();
        assert_eq!(
            find("firelane/cameras/+/frame").map(|s| s.reliable),
            Some(false)
        );
        assert_eq!(find("firelane/sensors/+").map(|s| s.reliable), Some(true));
        // An id that is not configured is refused here, before any slot.
        let book = ClockBook::default();
        let err = router
            .parse("firelane/cameras/zz/frame", JPEG, &[], NOW, &LIMITS, &book)
            .unwrap_err();
        assert_eq!(err.to_string(), "camera \"zz\" is not configured; refused");
        let err = router
            .parse(
                "firelane/sensors/ghost",
                b"{\"occupied\": true}",
                &[],
                NOW,
                &LIMITS,
                &book,
            )
            .unwrap_err();
        assert!(matches!(
            err,
            PayloadError::UnknownId { what: "sensor", .. }
        ));
        assert!(
            book.all().is_empty(),
            "unknown ids take no place in the book"
        );
        // A configured camera's wrong clock is refused and booked; its sensor
        // is judged on its own clock.
        let ahead = vec![(
            "captured_at".to_string(),
            crate::base::time::format_rfc3339(NOW + 8 * 3_600_000),
        )];
        let err = router
            .parse("site/cam-a/jpeg", JPEG, &ahead, NOW, &LIMITS, &book)
            .unwrap_err();
        assert!(matches!(err, PayloadError::Clock(_)), "{err}");
        let reading = router
            .parse(
                "firelane/sensors/s",
                b"{\"occupied\": true}",
                &[],
                NOW,
                &LIMITS,
                &book,
            )
            .unwrap();
        assert!(matches!(reading, Inbound::Sensor(r) if r.measured_at == NOW));
        let booked: Vec<(&str, String, u64)> = book
            .all()
            .into_iter()
            .map(|(k, id, r)| (k.as_str(), id, r.refused))
            .collect();
        assert_eq!(
            booked,
            [("camera", "a".into(), 1), ("sensor", "s".into(), 0)]
        );
    }
}
