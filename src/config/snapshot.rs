//! A pulled camera's `[[cameras]]` fields: `snapshot_url` and how to fetch
//! it. A camera is either pulled (this) or publishes over MQTT (`topic`),
//! never both, so no frame can reach a zone twice.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::CameraConfig;

/// Default time between two pulls of one camera.
pub const DEFAULT_INTERVAL_S: f64 = 5.0;
/// Default limit on one whole request, headers and body.
pub const DEFAULT_TIMEOUT_S: f64 = 10.0;
/// Pulls faster than this would only load the camera: frames are judged on
/// capture time and a zone's grace is minutes.
const MIN_INTERVAL_S: f64 = 0.2;

/// How to pull one camera's snapshots, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub url: url::Url,
    pub interval: Duration,
    pub timeout: Duration,
    /// Basic or Digest, whichever the camera asks for.
    pub login: Option<Login>,
    pub ca_file: Option<PathBuf>,
    pub time_header: Option<String>,
}

#[derive(Clone, PartialEq)]
pub struct Login {
    pub username: String,
    pub password: String,
}

// The password never reaches a log line or an error.
impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Checks camera `c`'s pull settings; `None` for a published camera.
pub(super) fn check(
    c: &CameraConfig,
    item: &str,
    push: &mut impl FnMut(String, &str, String),
) -> Option<Snapshot> {
    let mut bad = |field: &str, message: String| push(item.to_string(), field, message);
    let Some(raw_url) = &c.snapshot_url else {
        for (field, set) in [
            ("interval_s", c.interval_s.is_some()),
            ("timeout_s", c.timeout_s.is_some()),
            ("username", c.username.is_some()),
            ("password", c.password.is_some()),
            ("ca_file", c.ca_file.is_some()),
            ("time_header", c.time_header.is_some()),
        ] {
            if set {
                bad(
                    field,
                    "applies only to a pulled camera; set snapshot_url too".into(),
                );
            }
        }
        return None;
    };
    let mut ok = true;
    if c.topic.is_some() {
        bad(
            "topic",
            "a camera is either pulled (snapshot_url) or publishes over MQTT (topic), not both; remove one"
                .into(),
        );
        ok = false;
    }
    let url = match url::Url::parse(raw_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Ok(u) => {
            bad(
                "snapshot_url",
                format!(
                    "`{}` must be an http:// or https:// URL with a host",
                    crate::base::redact::url(u.as_str())
                ),
            );
            None
        }
        Err(e) => {
            bad("snapshot_url", format!("not a URL: {e}"));
            None
        }
    };
    if let Some(u) = &url
        && (!u.username().is_empty() || u.password().is_some())
    {
        bad(
            "snapshot_url",
            "put the login in username and password, not in the URL (it would be logged with it)"
                .into(),
        );
        ok = false;
    }
    let interval_s = c.interval_s.unwrap_or(DEFAULT_INTERVAL_S);
    if !(interval_s.is_finite() && interval_s >= MIN_INTERVAL_S) {
        bad(
            "interval_s",
            format!("{interval_s} must be at least {MIN_INTERVAL_S} seconds"),
        );
        ok = false;
    }
    let timeout_s = c.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
    if !(timeout_s.is_finite() && timeout_s > 0.0 && timeout_s <= 300.0) {
        bad(
            "timeout_s",
            format!("{timeout_s} must lie in (0, 300] seconds"),
        );
        ok = false;
    }
    let login = match (&c.username, &c.password) {
        (Some(u), Some(p)) if !u.is_empty() => Some(Login {
            username: u.clone(),
            password: p.clone(),
        }),
        (None, None) => None,
        (Some(_), None) => {
            bad("password", "username is set, so password is needed".into());
            ok = false;
            None
        }
        (None, Some(_)) | (Some(_), Some(_)) => {
            bad(
                "username",
                "password is set, so a non-empty username is needed".into(),
            );
            ok = false;
            None
        }
    };
    if let Some(ca) = &c.ca_file {
        if url.as_ref().is_some_and(|u| u.scheme() != "https") {
            bad("ca_file", "applies only to an https:// snapshot_url".into());
            ok = false;
        } else if !ca.is_file() {
            bad(
                "ca_file",
                format!("{} is not a readable file", ca.display()),
            );
            ok = false;
        }
    }
    if let Some(h) = &c.time_header
        && reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err()
    {
        bad("time_header", format!("`{h}` is not an HTTP header name"));
        ok = false;
    }
    Some(Snapshot {
        url: url.filter(|_| ok)?,
        interval: Duration::from_secs_f64(interval_s),
        timeout: Duration::from_secs_f64(timeout_s),
        login,
        ca_file: c.ca_file.clone(),
        time_header: c.time_header.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(c: CameraConfig) -> Vec<(String, String)> {
        let mut out = Vec::new();
        check(&c, "camera", &mut |_, f: &str, m| {
            out.push((f.to_string(), m))
        });
        out
    }

    fn pulled(url: &str) -> CameraConfig {
        CameraConfig {
            id: "c".into(),
            snapshot_url: Some(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn each_mistake_names_its_field() {
        let cases: Vec<(CameraConfig, &str, &str)> = vec![
            (
                CameraConfig {
                    topic: Some("t".into()),
                    ..pulled("http://cam/snap.jpg")
                },
                "topic",
                "either pulled",
            ),
            (pulled("ftp://cam/x"), "snapshot_url", "http:// or https://"),
            (pulled("not a url"), "snapshot_url", "not a URL"),
            (pulled("http://u:p@cam/x"), "snapshot_url", "not in the URL"),
            (
                CameraConfig {
                    interval_s: Some(0.0),
                    ..pulled("http://cam/x")
                },
                "interval_s",
                "at least 0.2",
            ),
            (
                CameraConfig {
                    timeout_s: Some(-1.0),
                    ..pulled("http://cam/x")
                },
                "timeout_s",
                "(0, 300]",
            ),
            (
                CameraConfig {
                    username: Some("admin".into()),
                    ..pulled("http://cam/x")
                },
                "password",
                "password is needed",
            ),
            (
                CameraConfig {
                    ca_file: Some("/nonexistent.pem".into()),
                    ..pulled("http://cam/x")
                },
                "ca_file",
                "only to an https://",
            ),
            (
                CameraConfig {
                    ca_file: Some("/nonexistent.pem".into()),
                    ..pulled("https://cam/x")
                },
                "ca_file",
                "not a readable file",
            ),
            (
                CameraConfig {
                    time_header: Some("bad header".into()),
                    ..pulled("http://cam/x")
                },
                "time_header",
                "not an HTTP header",
            ),
            (
                CameraConfig {
                    id: "c".into(),
                    interval_s: Some(5.0),
                    ..Default::default()
                },
                "interval_s",
                "set snapshot_url too",
            ),
        ];
        for (c, field, text) in cases {
            let p = problems(c.clone());
            assert!(
                p.iter().any(|(f, m)| f == field && m.contains(text)),
                "{c:?}: expected {field}: …{text}…, got {p:?}"
            );
        }
    }

    #[test]
    fn defaults_and_login() {
        let mut out = Vec::new();
        let s = check(
            &CameraConfig {
                username: Some("admin".into()),
                password: Some("secret".into()),
                ..pulled("https://cam.local/ISAPI/Streaming/channels/101/picture")
            },
            "camera",
            &mut |_, f: &str, m| out.push((f.to_string(), m)),
        )
        .unwrap();
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.login.as_ref().unwrap().username, "admin");
        assert!(!format!("{s:?}").contains("secret"));
    }
}
