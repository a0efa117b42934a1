//! `[mqtt.embedded_broker]`: firelane's own broker, its listeners and the
//! users allowed on it with their topic rights. A listener reachable from
//! beyond this machine needs users: anyone who can publish can feed frames,
//! "free" readings or fake alerts.

use std::net::SocketAddr;
use std::path::PathBuf;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString, rand_core::OsRng};
use serde::{Deserialize, Serialize};

use super::raw::RawConfig;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedBrokerConfig {
    /// Plain listener (MQTT 3.1.1 and 5), what most cameras use.
    pub listen: String,
    /// A second plain listener (MQTT 3.1.1 and 5); kept for configurations
    /// that point MQTT 5 clients at it.
    pub listen_v5: String,
    /// TLS listener (MQTT 3.1.1 and 5, rustls) with `cert_file` and
    /// `key_file` (PEM).
    pub listen_tls: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Who may connect; none: anyone, which only loopback listeners allow.
    #[serde(default)]
    pub users: Vec<BrokerUser>,
}

/// One login on the embedded broker and what it may do.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerUser {
    pub name: String,
    /// Argon2id PHC string, from `firelane broker hash-password`.
    pub password_hash: String,
    /// Cameras whose frame topic this user may publish.
    #[serde(default)]
    pub cameras: Vec<String>,
    /// Sensors whose topic this user may publish.
    #[serde(default)]
    pub sensors: Vec<String>,
    /// Topic filters this user may subscribe to (e.g. `firelane/#` for
    /// Home Assistant).
    #[serde(default)]
    pub subscribe: Vec<String>,
}

/// An Argon2id hash of `password` for `password_hash`.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

fn loopback(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

/// Checks `[mqtt.embedded_broker]`.
pub(super) fn check(raw: &RawConfig, push: &mut impl FnMut(String, &str, String)) {
    let Some(b) = &raw.mqtt.embedded_broker else {
        return;
    };
    let section = "[mqtt.embedded_broker]";
    let mut listeners = vec![
        ("listen", b.listen.as_str()),
        ("listen_v5", b.listen_v5.as_str()),
    ];
    if let Some(tls) = &b.listen_tls {
        listeners.push(("listen_tls", tls.as_str()));
        for (field, v) in [("cert_file", &b.cert_file), ("key_file", &b.key_file)] {
            match v {
                None => push(section.into(), field, "listen_tls needs it (PEM)".into()),
                Some(p) if !p.is_file() => push(
                    section.into(),
                    field,
                    format!("{} is not a readable file", p.display()),
                ),
                Some(_) => {}
            }
        }
    }
    for (field, v) in &listeners {
        if v.parse::<SocketAddr>().is_err() {
            push(
                section.into(),
                field,
                format!("`{v}` is not an address like 127.0.0.1:1883"),
            );
        } else if b.users.is_empty() && !loopback(v) {
            push(
                section.into(),
                field,
                format!(
                    "`{v}` is reachable from other machines, and without [[mqtt.embedded_broker.users]] anyone there could publish frames, sensor readings and alerts; add users or listen on 127.0.0.1"
                ),
            );
        }
    }
    let cameras: Vec<&str> = raw.cameras.iter().map(|c| c.id.as_str()).collect();
    let sensors: Vec<&str> = raw.sensors.iter().map(|s| s.id.as_str()).collect();
    let mut names = std::collections::HashSet::new();
    for (i, u) in b.users.iter().enumerate() {
        let item = format!("user \"{}\" (mqtt.embedded_broker.users[{i}])", u.name);
        if u.name.trim().is_empty() {
            push(item.clone(), "name", "must not be empty".into());
        } else if !names.insert(u.name.as_str()) {
            push(item.clone(), "name", "is used by an earlier user".into());
        }
        if let Err(e) = PasswordHash::new(&u.password_hash) {
            push(
                item.clone(),
                "password_hash",
                format!(
                    "is not a PHC hash string ({e}); make one with `firelane broker hash-password`"
                ),
            );
        }
        for c in &u.cameras {
            if !cameras.contains(&c.as_str()) {
                push(
                    item.clone(),
                    "cameras",
                    format!("no camera \"{c}\" is configured"),
                );
            }
        }
        for s in &u.sensors {
            if !sensors.contains(&s.as_str()) {
                push(
                    item.clone(),
                    "sensors",
                    format!("no sensor \"{s}\" is configured"),
                );
            }
        }
        for f in &u.subscribe {
            if !rumqttc::valid_filter(f) {
                push(
                    item.clone(),
                    "subscribe",
                    format!("`{f}` is not an MQTT topic filter"),
                );
            }
        }
    }
}
