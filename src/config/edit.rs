//! Edits of the TOML file that keep the operator's comments and layout
//! (`toml_edit`): the file stays the source of truth when zones are changed
//! from the web page.

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::{ScheduleConfig, WindowConfig, ZoneConfig};
use crate::base::redact::REDACTED;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{file}: not valid TOML: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: `{key}` is not written as [[{key}]] tables; change it by hand")]
    Layout { file: String, key: &'static str },
    #[error("no zone \"{0}\" in the configuration")]
    UnknownZone(String),
}

fn parse(text: &str, file: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>().map_err(|e| EditError::Parse {
        file: file.to_string(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// The `[[key]]` array, created at the end of the file when absent.
fn tables<'a>(
    doc: &'a mut DocumentMut,
    key: &'static str,
    file: &str,
) -> Result<&'a mut ArrayOfTables, EditError> {
    let item = doc
        .as_table_mut()
        .entry(key)
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut().ok_or(EditError::Layout {
        file: file.to_string(),
        key,
    })
}

fn id_of(t: &Table) -> Option<&str> {
    t.get("id").and_then(Item::as_str)
}

/// Sets `key` to `v`, or removes it for `None`; a value's trailing comment
/// survives the change.
fn set(table: &mut Table, key: &str, v: Option<Value>) {
    match v {
        None => {
            table.remove(key);
        }
        Some(mut v) => {
            if let Some(old) = table.get(key).and_then(Item::as_value) {
                *v.decor_mut() = old.decor().clone();
            }
            table.insert(key, Item::Value(v));
        }
    }
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(String::as_str).collect::<Array>())
}

fn window(w: &WindowConfig) -> Value {
    let mut t = InlineTable::new();
    t.insert("days", strings(&w.days));
    t.insert("from", w.from.as_str().into());
    t.insert("to", w.to.as_str().into());
    Value::InlineTable(t)
}

fn schedule(s: &ScheduleConfig) -> Value {
    let mut t = InlineTable::new();
    if let Some(tz) = &s.timezone {
        t.insert("timezone", tz.as_str().into());
    }
    for (key, list) in [("active", &s.active), ("inactive", &s.inactive)] {
        if !list.is_empty() {
            t.insert(key, Value::Array(list.iter().map(window).collect()));
        }
    }
    Value::InlineTable(t)
}

fn polygon(points: &[[f64; 2]]) -> Value {
    Value::Array(
        points
            .iter()
            .map(|[x, y]| Value::Array([*x, *y].into_iter().collect::<Array>()))
            .collect(),
    )
}

/// Writes `zone` into the file's `[[zones]]` (in place when the id exists,
/// else appended) and links exactly `zone.sensors` to it: listed sensors
/// point at the zone (new ids get a `[[sensors]]` entry), sensors that
/// pointed at it and are no longer listed are removed.
pub fn upsert_zone(text: &str, file: &str, zone: &ZoneConfig) -> Result<String, EditError> {
    let mut doc = parse(text, file)?;
    let zones = tables(&mut doc, "zones", file)?;
    let position = zones.iter().position(|t| id_of(t) == Some(&zone.id));
    let table = match position {
        Some(i) => zones.get_mut(i).expect("position is in range"),
        None => {
            let mut t = Table::new();
            t.insert("id", toml_edit::value(zone.id.as_str()));
            zones.push(t);
            zones.get_mut(zones.len() - 1).expect("just pushed")
        }
    };
    set(table, "name", zone.name.as_deref().map(Value::from));
    set(table, "camera", Some(zone.camera.as_str().into()));
    set(table, "polygon", Some(polygon(&zone.polygon)));
    set(table, "threshold", zone.threshold.map(Value::from));
    set(table, "grace_s", zone.grace_s.map(Value::from));
    set(table, "clear_s", zone.clear_s.map(Value::from));
    set(table, "site", zone.site.as_deref().map(Value::from));
    let had_sensors = table.contains_key("sensors");
    set(
        table,
        "sensors",
        (had_sensors || !zone.sensors.is_empty()).then(|| strings(&zone.sensors)),
    );
    set(table, "schedule", zone.schedule.as_ref().map(schedule));

    // A sensor speaks for one zone: take the listed ones off other zones.
    for t in zones.iter_mut() {
        if id_of(t) == Some(&zone.id) {
            continue;
        }
        if let Some(list) = t.get_mut("sensors").and_then(Item::as_array_mut) {
            list.retain(|v| {
                v.as_str()
                    .is_none_or(|s| !zone.sensors.iter().any(|z| z == s))
            });
        }
    }
    let has_sensors_table = doc.as_table().contains_key("sensors");
    if has_sensors_table || !zone.sensors.is_empty() {
        let sensors = tables(&mut doc, "sensors", file)?;
        sensors.retain(|t| {
            let linked_here = t.get("zone").and_then(Item::as_str) == Some(&zone.id);
            let listed = id_of(t).is_some_and(|id| zone.sensors.iter().any(|s| s == id));
            !linked_here || listed
        });
        for id in &zone.sensors {
            let found = sensors.iter().position(|t| id_of(t) == Some(id));
            match found {
                Some(i) => set(
                    sensors.get_mut(i).expect("position is in range"),
                    "zone",
                    Some(zone.id.as_str().into()),
                ),
                None => {
                    let mut t = Table::new();
                    t.insert("id", toml_edit::value(id.as_str()));
                    t.insert("zone", toml_edit::value(zone.id.as_str()));
                    sensors.push(t);
                }
            }
        }
    }
    Ok(doc.to_string())
}

/// Removes zone `id` and the sensors that watch it.
pub fn delete_zone(text: &str, file: &str, id: &str) -> Result<String, EditError> {
    let mut doc = parse(text, file)?;
    let zones = tables(&mut doc, "zones", file)?;
    let Some(i) = zones.iter().position(|t| id_of(t) == Some(id)) else {
        return Err(EditError::UnknownZone(id.to_string()));
    };
    zones.remove(i);
    if doc.as_table().contains_key("sensors") {
        let sensors = tables(&mut doc, "sensors", file)?;
        sensors.retain(|t| t.get("zone").and_then(Item::as_str) != Some(id));
        if sensors.is_empty() {
            doc.as_table_mut().remove("sensors");
        }
    }
    Ok(doc.to_string())
}

/// The sections an operator tunes: zones, their sensors and `[tracking]`.
pub const TUNING: [&str; 3] = ["tracking", "zones", "sensors"];

/// What every instance of a cluster runs alike: the tuning, and the sites
/// and cameras it spreads. `[storage]`, `[http]`, `[mqtt]`, `[model]` and
/// `[cluster]` may differ per machine.
pub const CLUSTER_SHARED: [&str; 5] = ["tracking", "zones", "sensors", "cameras", "sites"];

/// `current` with its tuning sections ([`TUNING`]) taken from `old` (an
/// earlier version), everything else — MQTT, storage, HTTP, sites and their
/// webhooks, cameras — as it is now. What an operator's restore writes.
pub fn restore_tuning(current: &str, old: &str, file: &str) -> Result<String, EditError> {
    restore_sections(current, old, file, &TUNING)
}

/// `current` with `sections` taken from `old`: present there, replaced;
/// absent there, removed. Everything else stays as it is now.
pub fn restore_sections(
    current: &str,
    old: &str,
    file: &str,
    sections: &[&str],
) -> Result<String, EditError> {
    let mut doc = parse(current, file)?;
    let old = parse(old, "the restored version")?;
    for key in sections {
        match old.get(key) {
            Some(item) => {
                doc.insert(key, item.clone());
            }
            None => {
                doc.remove(key);
            }
        }
    }
    Ok(doc.to_string())
}

/// The text with secrets replaced by `(redacted)`: `password`, `secret`
/// and `token` values anywhere, and in every URL what `base::redact::url`
/// removes (userinfo password, query values, key-like path segments). For
/// showing a config to a role that may tune zones but not read
/// credentials, and for scenario exports.
pub fn redact_secrets(text: &str) -> String {
    let Ok(mut doc) = text.parse::<DocumentMut>() else {
        return "# (not valid TOML; not shown)\n".into();
    };
    redact_table(doc.as_table_mut());
    doc.to_string()
}

fn redact_value(key: &str, v: &mut Value) {
    match v {
        Value::String(s) => {
            let text = s.value().to_string();
            let new = if matches!(key, "password" | "secret" | "token") {
                Some(REDACTED.to_string())
            } else {
                Some(crate::base::redact::url(&text)).filter(|r| *r != text)
            };
            if let Some(new) = new {
                let decor = v.decor().clone();
                *v = Value::from(new);
                *v.decor_mut() = decor;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(key, x)),
        Value::InlineTable(t) => t.iter_mut().for_each(|(k, x)| redact_value(&k, x)),
        _ => {}
    }
}

fn redact_table(t: &mut Table) {
    for (k, item) in t.iter_mut() {
        match item {
            Item::Value(v) => redact_value(&k, v),
            Item::Table(t) => redact_table(t),
            Item::ArrayOfTables(a) => a.iter_mut().for_each(redact_table),
            Item::None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# Site config — keep this header.
[tracking]
grace_s = 600   # ten minutes

[[cameras]]
id = "cam-1"

# The north lane, by the gate.
[[zones]]
id = "north"
camera = "cam-1"
polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]
threshold = 0.6   # tuned after the van incident

[[zones]]
id = "south"
camera = "cam-1"
polygon = [[0.5, 0.5], [0.9, 0.5], [0.9, 0.9]]

[[sensors]]
id = "loop-1"
zone = "north"
"#;

    fn zone(id: &str) -> ZoneConfig {
        ZoneConfig {
            id: id.into(),
            name: Some("North lane".into()),
            camera: "cam-1".into(),
            polygon: vec![[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]],
            threshold: Some(0.7),
            grace_s: None,
            clear_s: Some(45.0),
            site: None,
            sensors: vec!["loop-2".into()],
            schedule: Some(ScheduleConfig {
                timezone: Some("Europe/Rome".into()),
                active: vec![],
                inactive: vec![WindowConfig {
                    days: vec!["mon-fri".into()],
                    from: "07:00".into(),
                    to: "10:00".into(),
                }],
            }),
        }
    }

    #[test]
    fn editing_a_zone_keeps_comments_and_the_other_zones() {
        let out = upsert_zone(FILE, "site.toml", &zone("north")).unwrap();
        for kept in [
            "# Site config — keep this header.",
            "grace_s = 600   # ten minutes",
            "# The north lane, by the gate.",
            "# tuned after the van incident",
            "id = \"south\"",
        ] {
            assert!(out.contains(kept), "lost {kept:?}:\n{out}");
        }
        let raw: crate::config::RawConfig = toml::from_str(&out).unwrap();
        let north = raw.zones.iter().find(|z| z.id == "north").unwrap();
        assert_eq!(north, &zone("north"));
        // loop-1 no longer listed for north: removed; loop-2 added for it.
        let sensors: Vec<(&str, &str)> = raw
            .sensors
            .iter()
            .map(|s| (s.id.as_str(), s.zone.as_str()))
            .collect();
        assert_eq!(sensors, [("loop-2", "north")]);
        // The result validates like a hand-written file.
        crate::config::Config::from_toml(&out, "site.toml").unwrap();
    }

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let text = r#"# keep me
[mqtt]
url = "mqtts://fire:hunter2@broker:8883"
password = "hunter2"   # the broker's
[storage]
database_url = "postgres://db.internal/firelane?password=pgpass9"
[alerts]
smtp_url = "smtp://mail:s3cret@mx.example.com:587"
[[sites]]
id = "north"
webhooks = [
  { url = "https://hooks.example.com/x", secret = "abc" },
  { url = "https://hooks.slack.com/services/T01/B02/abcdEFGHijklMNOPqrstUVWX" },
  { url = "https://alerts.example.com/in?token=tok42" },
]
"#;
        let out = redact_secrets(text);
        for gone in [
            "hunter2",
            "s3cret",
            "\"abc\"",
            "pgpass9",
            "abcdEFGHijklMNOPqrstUVWX",
            "tok42",
        ] {
            assert!(!out.contains(gone), "{gone} left in:\n{out}");
        }
        for kept in [
            "# keep me",
            "# the broker's",
            "https://hooks.example.com/x",
            "mx.example.com",
            "hooks.slack.com/services/T01/B02/",
            "alerts.example.com/in?token=",
        ] {
            assert!(out.contains(kept), "{kept} lost:\n{out}");
        }
        assert_eq!(out.matches(REDACTED).count(), 7, "{out}");
    }

    #[test]
    fn new_zone_is_appended_and_delete_removes_it_with_its_sensors() {
        let mut z = zone("east");
        z.schedule = None;
        z.sensors = vec!["loop-1".into()];
        let out = upsert_zone(FILE, "site.toml", &z).unwrap();
        let raw: crate::config::RawConfig = toml::from_str(&out).unwrap();
        let ids: Vec<&str> = raw.zones.iter().map(|z| z.id.as_str()).collect();
        assert_eq!(ids, ["north", "south", "east"]);
        // loop-1 moved from north to east.
        assert_eq!(raw.sensors[0].zone, "east");
        crate::config::Config::from_toml(&out, "site.toml").unwrap();

        let out = delete_zone(&out, "site.toml", "east").unwrap();
        let raw: crate::config::RawConfig = toml::from_str(&out).unwrap();
        assert_eq!(raw.zones.len(), 2);
        assert!(raw.sensors.is_empty());
        assert!(out.contains("# tuned after the van incident"));
        assert!(matches!(
            delete_zone(&out, "site.toml", "east"),
            Err(EditError::UnknownZone(_))
        ));
    }

    #[test]
    fn restore_takes_only_the_named_sections() {
        let other = r#"[http]
listen = "0.0.0.0:9000"

[tracking]
grace_s = 60

[[sites]]
id = "depot"

[[cameras]]
id = "cam-2"
"#;
        // (sections, what the result keeps from FILE, what it takes from `other`)
        let cases: [(&[&str], &[&str], &[&str]); 2] = [
            (&TUNING, &["cam-1"], &["grace_s = 60"]),
            (&CLUSTER_SHARED, &[], &["grace_s = 60", "cam-2", "depot"]),
        ];
        for (sections, kept, taken) in cases {
            let out = restore_sections(FILE, other, "f.toml", sections).unwrap();
            for k in kept {
                assert!(out.contains(k), "{sections:?} lost {k}: {out}");
            }
            for t in taken {
                assert!(out.contains(t), "{sections:?} did not take {t}: {out}");
            }
            // Sections named but absent in `other` go; others stay as they are.
            assert!(!out.contains("north"), "{sections:?} kept zones: {out}");
            assert!(!out.contains("9000"), "{sections:?} took [http]: {out}");
        }
    }
}
