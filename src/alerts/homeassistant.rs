//! Home Assistant MQTT discovery: per zone a `binary_sensor` (problem)
//! "Fire lane <zone> obstructed" and an `image` with the latest evidence
//! frame, per site a `sensor` counting open violations. All follow
//! firelane's availability topic, so they go unavailable with it.

use serde_json::{Value, json};

use crate::config::Config;

/// HA object ids allow `[a-zA-Z0-9_-]` only.
fn object_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// (topic, retained JSON payload) of every discovery message.
pub fn discovery(config: &Config) -> Vec<(String, Value)> {
    let prefix = config.prefix();
    let dp = config.alerts.discovery_prefix.trim_end_matches('/');
    let availability = crate::base::topics::availability(prefix);
    let device = |site_id: &str| {
        let site = config.sites.iter().find(|s| s.id == site_id);
        json!({
            "identifiers": [format!("firelane_{}", object_id(site_id))],
            "name": format!("firelane {}", site.map_or(site_id, |s| s.name.as_str())),
            "manufacturer": "firelane",
            "model": "fire lane monitor",
            "sw_version": env!("CARGO_PKG_VERSION"),
        })
    };
    let common = |unique_id: String, name: String, site: &str| {
        json!({
            "unique_id": unique_id,
            "name": name,
            "availability_topic": availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device(site),
        })
    };
    let merge = |mut base: Value, extra: Value| {
        let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) else {
            unreachable!("objects")
        };
        b.extend(e);
        base
    };
    let mut out = Vec::new();
    for z in &config.zones {
        let id = object_id(&z.id);
        let state_topic = crate::base::topics::zone_state(prefix, &z.id);
        out.push((
            crate::base::topics::discovery(dp, "binary_sensor", &format!("{id}_obstructed")),
            merge(
                common(
                    format!("firelane_{id}_obstructed"),
                    format!("Fire lane {} obstructed", z.id),
                    &z.site,
                ),
                json!({
                    "device_class": "problem",
                    "state_topic": state_topic,
                    "value_template": "{{ 'ON' if value_json.state == 'violation' else 'OFF' }}",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "json_attributes_topic": state_topic,
                }),
            ),
        ));
        out.push((
            crate::base::topics::discovery(dp, "image", &format!("{id}_evidence")),
            merge(
                common(
                    format!("firelane_{id}_evidence"),
                    format!("Fire lane {} evidence", z.id),
                    &z.site,
                ),
                json!({
                    "image_topic": crate::base::topics::zone_evidence(prefix, &z.id),
                    "content_type": "image/jpeg",
                }),
            ),
        ));
    }
    for s in &config.sites {
        let id = object_id(&s.id);
        out.push((
            crate::base::topics::discovery(dp, "sensor", &format!("{id}_open_violations")),
            merge(
                common(
                    format!("firelane_{id}_open_violations"),
                    format!("{} open fire lane violations", s.name),
                    &s.id,
                ),
                json!({
                    "state_topic": crate::base::topics::site_open_violations(prefix, &s.id),
                    "state_class": "measurement",
                    "icon": "mdi:fire-truck",
                }),
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Configuration variables from Home Assistant's MQTT documentation
    /// (home-assistant.io/integrations/binary_sensor.mqtt, sensor.mqtt,
    /// image.mqtt, and the shared availability/device block), as of 2025.
    fn documented(component: &str) -> (HashSet<&'static str>, Vec<&'static str>) {
        let common = [
            "availability",
            "availability_mode",
            "availability_template",
            "availability_topic",
            "device",
            "enabled_by_default",
            "encoding",
            "entity_category",
            "entity_picture",
            "icon",
            "json_attributes_template",
            "json_attributes_topic",
            "name",
            "default_entity_id",
            "object_id",
            "payload_available",
            "payload_not_available",
            "platform",
            "qos",
            "unique_id",
        ];
        let (extra, required): (&[&str], Vec<&str>) = match component {
            "binary_sensor" => (
                &[
                    "device_class",
                    "expire_after",
                    "force_update",
                    "off_delay",
                    "payload_off",
                    "payload_on",
                    "state_topic",
                    "value_template",
                ],
                vec!["state_topic"],
            ),
            "sensor" => (
                &[
                    "device_class",
                    "expire_after",
                    "force_update",
                    "last_reset_value_template",
                    "options",
                    "state_class",
                    "state_topic",
                    "suggested_display_precision",
                    "unit_of_measurement",
                    "value_template",
                ],
                vec!["state_topic"],
            ),
            "image" => (
                &[
                    "content_type",
                    "image_encoding",
                    "image_topic",
                    "url_template",
                    "url_topic",
                ],
                vec!["image_topic"],
            ),
            _ => unreachable!(),
        };
        (common.iter().chain(extra).copied().collect(), required)
    }

    #[test]
    fn discovery_uses_only_documented_fields() {
        let toml = r#"
[[sites]]
id = "north"
name = "North campus"
[[cameras]]
id = "cam1"
[[zones]]
id = "lane 1"
camera = "cam1"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]
"#;
        let config = crate::config::Config::from_toml(toml, "t.toml").unwrap();
        let msgs = discovery(&config);
        assert_eq!(msgs.len(), 3);
        let device_keys: HashSet<&str> = [
            "configuration_url",
            "connections",
            "hw_version",
            "identifiers",
            "manufacturer",
            "model",
            "model_id",
            "name",
            "serial_number",
            "suggested_area",
            "sw_version",
            "via_device",
        ]
        .into();
        for (topic, payload) in &msgs {
            // <discovery_prefix>/<component>/<node_id>/<object_id>/config
            let parts: Vec<&str> = topic.split('/').collect();
            assert_eq!(parts.len(), 5, "{topic}");
            assert_eq!(parts[0], "homeassistant");
            assert_eq!(parts[4], "config");
            for p in &parts[2..4] {
                assert!(
                    p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                    "{topic}"
                );
            }
            let (allowed, required) = documented(parts[1]);
            let obj = payload.as_object().unwrap();
            for k in obj.keys() {
                assert!(
                    allowed.contains(k.as_str()),
                    "{topic}: {k} is not a documented option"
                );
            }
            for k in required {
                assert!(obj.contains_key(k), "{topic}: lacks {k}");
            }
            for k in obj["device"].as_object().unwrap().keys() {
                assert!(device_keys.contains(k.as_str()), "{topic}: device.{k}");
            }
            assert_eq!(obj["availability_topic"], "firelane/available");
        }
        let bs = &msgs[0].1;
        assert_eq!(
            msgs[0].0,
            "homeassistant/binary_sensor/firelane/lane_1_obstructed/config"
        );
        assert_eq!(bs["device_class"], "problem");
        assert_eq!(bs["name"], "Fire lane lane 1 obstructed");
        assert_eq!(bs["state_topic"], "firelane/zones/lane 1/state");
        assert_eq!(msgs[1].1["image_topic"], "firelane/zones/lane 1/evidence");
        assert_eq!(
            msgs[2].1["state_topic"],
            "firelane/sites/north/open_violations"
        );
    }
}
