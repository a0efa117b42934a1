//! Validation, one function per part of the file; each problem names the
//! item (`zone "lane-1" (zones[0])`, `[mqtt]`) and the field, and where it
//! can, says how to fix it.

use std::collections::{BTreeMap, HashSet};

use super::raw::RawConfig;
use super::sites::Site;
use super::{Camera, Sensor, Zone, ZoneParams, ZonePolygon};
use crate::base::time::secs_to_ms;

/// The settings sections: MQTT, tracking, alerts, ingest, HTTP, recording.
pub(super) fn sections(raw: &RawConfig, push: &mut impl FnMut(String, &str, String)) {
    let prefix = raw.mqtt.topic_prefix.trim_end_matches('/');
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
    super::broker::check(raw, push);
    let t = &raw.tracking;
    check_seconds(push, "[tracking]", "grace_s", Some(t.grace_s));
    check_seconds(push, "[tracking]", "clear_s", Some(t.clear_s));
    check_seconds(push, "[tracking]", "camera_stale_s", Some(t.camera_stale_s));
    check_seconds(push, "[tracking]", "update_every_s", Some(t.update_every_s));
    check_seconds(push, "[tracking]", "reattach_s", Some(t.reattach_s));
    check_seconds(push, "[tracking]", "checkpoint_s", Some(t.checkpoint_s));
    check_seconds(
        push,
        "[recording]",
        "min_interval_s",
        Some(raw.recording.min_interval_s),
    );
    let a = &raw.alerts;
    check_seconds(push, "[alerts]", "retry_base_s", Some(a.retry_base_s));
    check_seconds(push, "[alerts]", "retry_max_s", Some(a.retry_max_s));
    check_seconds(push, "[alerts]", "give_up_after_s", Some(a.give_up_after_s));
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
    check_threshold(push, "[tracking]", t.threshold);
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
    if raw.ingest.max_frame_pixels < 64 * 64 {
        push(
            "[ingest]".into(),
            "max_frame_pixels",
            format!(
                "{} is below one 64x64 crop; the default is 33177600 (7680x4320)",
                raw.ingest.max_frame_pixels
            ),
        );
    }
    for (field, v) in [
        ("max_future_skew_s", raw.ingest.max_future_skew_s),
        ("max_past_skew_s", raw.ingest.max_past_skew_s),
        ("reuse_max_diff", raw.ingest.reuse_max_diff),
        ("reuse_max_age_s", raw.ingest.reuse_max_age_s),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            push(
                "[ingest]".into(),
                field,
                format!("{v} must be a number of seconds, 0 or more"),
            );
        }
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
}

pub(super) fn cameras(
    raw: &RawConfig,
    prefix: &str,
    push: &mut impl FnMut(String, &str, String),
) -> Vec<Camera> {
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
        let snapshot = super::snapshot::check(c, &item, push);
        cameras.push(Camera {
            id: c.id.clone(),
            snapshot,
            topic: c
                .topic
                .clone()
                .unwrap_or_else(|| crate::base::topics::camera_frame(prefix, &c.id)),
        });
    }
    cameras
}

/// Zones with their settings resolved against `[tracking]`, their site's
/// and, for the threshold, the model card's (`card_threshold`).
pub(super) fn zones(
    raw: &RawConfig,
    sites: &[Site],
    card_threshold: Option<f64>,
    push: &mut impl FnMut(String, &str, String),
) -> Vec<Zone> {
    let t = &raw.tracking;
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
        check_threshold(push, &item, z.threshold);
        check_seconds(push, &item, "grace_s", z.grace_s);
        check_seconds(push, &item, "clear_s", z.clear_s);
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
                own_threshold: z.threshold.is_some(),
                params: ZoneParams {
                    threshold: z
                        .threshold
                        .or(t.threshold)
                        .or(card_threshold)
                        .unwrap_or(0.5),
                    grace_ms: secs_to_ms(z.grace_s.unwrap_or(t.grace_s)),
                    clear_ms: secs_to_ms(z.clear_s.unwrap_or(t.clear_s)),
                    camera_stale_ms: secs_to_ms(t.camera_stale_s),
                    sensor_weight: t.sensor_weight,
                    update_every_ms: secs_to_ms(site.reminder_every_s.unwrap_or(t.update_every_s)),
                    reattach_ms: secs_to_ms(site.reattach_s.unwrap_or(t.reattach_s)),
                    checkpoint_ms: secs_to_ms(t.checkpoint_s),
                },
                sensors: Vec::new(),
                schedule,
            });
        }
    }
    zones
}

/// Sensors, checked against `zones`, whose sensor lists they fill in.
pub(super) fn sensors(
    raw: &RawConfig,
    prefix: &str,
    zones: &mut [Zone],
    push: &mut impl FnMut(String, &str, String),
) -> Vec<Sensor> {
    let zone_ids: HashSet<&str> = raw.zones.iter().map(|z| z.id.as_str()).collect();
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
        if !zone_ids.contains(s.zone.as_str()) {
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
                .unwrap_or_else(|| crate::base::topics::sensor(prefix, &s.id)),
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
    for zone in zones.iter_mut() {
        zone.sensors = sensors
            .iter()
            .filter(|s| s.zone == zone.id)
            .map(|s| s.id.clone())
            .collect();
    }
    sensors
}

/// No two cameras or sensors on one topic.
pub(super) fn topics(
    cameras: &[Camera],
    sensors: &[Sensor],
    push: &mut impl FnMut(String, &str, String),
) {
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
