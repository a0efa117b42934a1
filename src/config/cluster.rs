//! `[cluster]`: several instances over one PostgreSQL database, cameras
//! spread over them (see `src/cluster`). Every instance runs the same
//! file; what differs per instance comes from its environment
//! (`FIRELANE_INSTANCE_ID`, `FIRELANE_ADVERTISE_URL`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::raw::RawConfig;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    #[serde(default)]
    pub enabled: bool,
    /// A camera whose owner has not renewed its lease for this long is
    /// taken over; a live owner renews every `heartbeat_s`.
    #[serde(default = "default_lease_s")]
    pub lease_s: f64,
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: f64,
}

fn default_lease_s() -> f64 {
    6.0
}
fn default_heartbeat_s() -> f64 {
    2.0
}

/// `[cluster]` resolved, with this instance's own name and address.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub instance: String,
    /// Where the other instances' pages reach this one's API.
    pub api_url: Option<String>,
    pub lease: Duration,
    pub heartbeat: Duration,
}

/// This instance's name: `FIRELANE_INSTANCE_ID`, else `<hostname>-<pid>`.
pub fn instance_id() -> String {
    std::env::var("FIRELANE_INSTANCE_ID")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "firelane".into());
            format!("{host}-{}", std::process::id())
        })
}

/// Checks `[cluster]`; `None` when it is off.
pub(super) fn check(
    raw: &RawConfig,
    database_url: &str,
    push: &mut impl FnMut(String, &str, String),
) -> Option<Cluster> {
    let c = raw.cluster.as_ref().filter(|c| c.enabled)?;
    let mut bad = |field: &str, message: String| push("[cluster]".into(), field, message);
    let mut ok = true;
    if !(database_url.starts_with("postgres:") || database_url.starts_with("postgresql:")) {
        bad(
            "enabled",
            "cluster mode needs PostgreSQL ([storage] database_url = \"postgres://…\"): SQLite is one machine's file".into(),
        );
        ok = false;
    }
    if !(c.heartbeat_s.is_finite() && c.heartbeat_s >= 0.2) {
        bad(
            "heartbeat_s",
            format!("{} must be at least 0.2", c.heartbeat_s),
        );
        ok = false;
    }
    if !(c.lease_s.is_finite() && c.lease_s >= 2.0 * c.heartbeat_s) {
        bad(
            "lease_s",
            format!(
                "{} must be at least twice heartbeat_s ({}), so one late heartbeat loses nothing",
                c.lease_s, c.heartbeat_s
            ),
        );
        ok = false;
    }
    let api_url = std::env::var("FIRELANE_ADVERTISE_URL").ok().or_else(|| {
        raw.http
            .enabled
            .then(|| format!("http://{}", raw.http.listen))
    });
    ok.then(|| Cluster {
        instance: instance_id(),
        api_url,
        lease: Duration::from_secs_f64(c.lease_s),
        heartbeat: Duration::from_secs_f64(c.heartbeat_s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_toml(text: &str, url: &str) -> (Option<Cluster>, Vec<(String, String)>) {
        let raw: RawConfig = toml::from_str(text).unwrap();
        let mut problems = Vec::new();
        let c = check(&raw, url, &mut |_, f: &str, m| {
            problems.push((f.to_string(), m))
        });
        (c, problems)
    }

    #[test]
    fn needs_postgres_and_sane_timing() {
        let table = [
            (
                "[cluster]\nenabled = true\n",
                "sqlite://x.db",
                "enabled",
                "needs PostgreSQL",
            ),
            (
                "[cluster]\nenabled = true\nlease_s = 3\nheartbeat_s = 2\n",
                "postgres://h/db",
                "lease_s",
                "twice heartbeat_s",
            ),
            (
                "[cluster]\nenabled = true\nheartbeat_s = 0\n",
                "postgres://h/db",
                "heartbeat_s",
                "at least 0.2",
            ),
        ];
        for (text, url, field, msg) in table {
            let (c, p) = check_toml(text, url);
            assert!(c.is_none(), "{text}");
            assert!(
                p.iter().any(|(f, m)| f == field && m.contains(msg)),
                "{text}: {p:?}"
            );
        }
        let (c, p) = check_toml("[cluster]\nenabled = true\n", "postgres://h/db");
        assert!(p.is_empty(), "{p:?}");
        let c = c.unwrap();
        assert_eq!(c.lease, Duration::from_secs(6));
        assert_eq!(c.api_url.as_deref(), Some("http://127.0.0.1:8080"));
        let (c, _) = check_toml("[cluster]\nenabled = false\n", "sqlite://x.db");
        assert!(c.is_none());
    }
}
