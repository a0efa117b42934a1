//! Pulled cameras: an HTTP(S) snapshot URL fetched every `interval_s`, as
//! IP cameras offer (Hikvision `ISAPI/Streaming/channels/101/picture`, Axis
//! `axis-cgi/jpg/image.cgi`, Dahua `cgi-bin/snapshot.cgi`). A frame goes into
//! the same slots as a published one, after the same checks: size, JPEG,
//! clock.
//!
//! One task per camera, supervised by [`run`] so a config change starts,
//! stops or restarts exactly the cameras it touched. A failing camera backs
//! off (doubling, up to [`MAX_BACKOFF`]) and is reported on
//! `GET /api/cameras` and in `/metrics`; the others are not slowed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::clocks::{ClockRule, SourceKind};
use super::login::{Challenge, LoginState};
use super::mqtt::IngestMetrics;
use crate::base::input::Frame;
use crate::base::time::{Millis, format_rfc3339, parse_rfc3339, wall_clock_ms};
use crate::config::{Config, Snapshot};
use crate::vision::decode::looks_like_jpeg;

/// The longest wait between two attempts on a failing camera.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("no answer within {0:?} ([[cameras]] timeout_s)")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Request(String),
    #[error("the camera asks for a login (HTTP 401); set username and password")]
    LoginNeeded,
    #[error("the camera refused the login (HTTP 401 to {0} authentication)")]
    LoginRefused(&'static str),
    #[error("the camera's login challenge is not understood: {0}")]
    BadChallenge(String),
    #[error("HTTP {status} {reason}")]
    Status { status: u16, reason: String },
    #[error("redirected (HTTP {status}) to {to}; put that URL in snapshot_url")]
    Redirect { status: u16, to: String },
    #[error("the answer is not a JPEG (Content-Type {content_type}, first bytes {head})")]
    NotJpeg { content_type: String, head: String },
    #[error("the answer is over the {max}-byte limit ([mqtt] max_payload_bytes)")]
    TooLarge { max: usize },
    #[error(
        "time header {header} `{value}` is not an RFC 3339 time, HTTP date or Unix milliseconds"
    )]
    BadTime { header: String, value: String },
    #[error(transparent)]
    Clock(#[from] super::clocks::Skewed),
    #[error("{file}: cannot read the CA certificates: {message}")]
    Ca { file: String, message: String },
}

/// What `GET /api/cameras` shows of a pulled camera.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullReport {
    /// The URL with any login removed.
    pub url: String,
    pub pulls: u64,
    pub failures: u64,
    /// Failures since the last frame that came through; 0 while healthy.
    pub failing_for: u64,
    pub last_frame: Option<String>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<u64>,
    /// The wait before the next attempt (longer while failing).
    pub next_in_s: f64,
}

/// Every pulled camera's report.
#[derive(Debug, Default)]
pub struct PullBook {
    cameras: Mutex<HashMap<String, PullReport>>,
}

impl PullBook {
    pub fn report(&self, camera: &str) -> Option<PullReport> {
        self.cameras.lock().expect("pull book").get(camera).cloned()
    }

    pub fn all(&self) -> Vec<(String, PullReport)> {
        let mut v: Vec<_> = self
            .cameras
            .lock()
            .expect("pull book")
            .iter()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn update(&self, camera: &str, f: impl FnOnce(&mut PullReport)) {
        f(self
            .cameras
            .lock()
            .expect("pull book")
            .entry(camera.to_string())
            .or_default())
    }

    fn forget(&self, camera: &str) {
        self.cameras.lock().expect("pull book").remove(camera);
    }
}

/// Where pulled frames go: the pipeline's slots, and the recording.
#[derive(Clone)]
pub struct Sinks {
    pub frames: Arc<super::FrameSlots>,
    pub recorder: Option<crate::recording::Recorder>,
}

/// Pulls every camera with a `snapshot_url` until `shutdown`, following
/// the configuration sent on `updates`.
pub async fn run(
    config: Arc<Config>,
    mut updates: Option<watch::Receiver<Arc<Config>>>,
    sinks: Sinks,
    metrics: Arc<IngestMetrics>,
    shutdown: CancellationToken,
) {
    let mut running: HashMap<String, (Snapshot, ClockRule, usize, CancellationToken)> =
        HashMap::new();
    let mut config = config;
    loop {
        let wanted: HashMap<&str, &Snapshot> = config
            .cameras
            .iter()
            .filter_map(|c| Some((c.id.as_str(), c.snapshot.as_ref()?)))
            .collect();
        let rule = ClockRule::of(&config);
        let max_bytes = config.mqtt.max_payload_bytes;
        running.retain(|id, (s, r, m, stop)| {
            let keep = wanted.get(id.as_str()) == Some(&&*s) && *r == rule && *m == max_bytes;
            if !keep {
                stop.cancel();
                metrics.pulls.forget(id);
            }
            keep
        });
        for (id, snapshot) in wanted {
            if running.contains_key(id) {
                continue;
            }
            let stop = shutdown.child_token();
            let puller = Puller {
                camera: id.to_string(),
                snapshot: snapshot.clone(),
                rule,
                max_bytes,
                sinks: sinks.clone(),
                metrics: metrics.clone(),
            };
            tracing::info!(camera = %id, url = %crate::base::redact::url(snapshot.url.as_str()), every_s = snapshot.interval.as_secs_f64(), "pulling snapshots");
            tokio::spawn(puller.run(stop.clone()));
            running.insert(id.to_string(), (snapshot.clone(), rule, max_bytes, stop));
        }
        let changed = async {
            match updates.as_mut() {
                Some(rx) => rx.changed().await.map(|_| rx.borrow_and_update().clone()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            next = changed => match next {
                Ok(next) => config = next,
                Err(_) => updates = None,
            },
        }
    }
}

struct Puller {
    camera: String,
    snapshot: Snapshot,
    rule: ClockRule,
    max_bytes: usize,
    sinks: Sinks,
    metrics: Arc<IngestMetrics>,
}

impl Puller {
    async fn run(self, stop: CancellationToken) {
        let url = crate::base::redact::url(self.snapshot.url.as_str());
        self.metrics
            .pulls
            .update(&self.camera, |r| r.url = url.clone());
        let client = match client(&self.snapshot) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(camera = %self.camera, error = %e, "camera not pulled");
                self.metrics
                    .pulls
                    .update(&self.camera, |r| r.last_error = Some(e.to_string()));
                return;
            }
        };
        let mut login = LoginState::default();
        let mut failing_for = 0u32;
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
            let started = Instant::now();
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.pull(&client, &mut login) => r,
            };
            let latency_ms = started.elapsed().as_millis() as u64;
            let wait = match result {
                Ok(frame) => {
                    if failing_for > 0 {
                        tracing::info!(camera = %self.camera, after_failures = failing_for, "snapshots come through again");
                    }
                    failing_for = 0;
                    let at = format_rfc3339(frame.captured_at);
                    if let Some(r) = &self.sinks.recorder {
                        r.frame(&frame);
                    }
                    self.sinks.frames.push(frame);
                    self.metrics.pulls.update(&self.camera, |r| {
                        r.pulls += 1;
                        r.failing_for = 0;
                        r.last_frame = Some(at);
                        r.last_error = None;
                        r.last_latency_ms = Some(latency_ms);
                    });
                    self.snapshot.interval
                }
                Err(e) => {
                    failing_for += 1;
                    let wait = backoff(self.snapshot.interval, failing_for);
                    // Logged when it starts failing and then sparingly, not
                    // once per attempt for a camera that is down for a day.
                    if failing_for == 1 || failing_for.is_power_of_two() {
                        tracing::warn!(camera = %self.camera, error = %e, failures = failing_for, retry_in_s = wait.as_secs_f64(), "snapshot pull failed");
                    }
                    self.metrics.pulls.update(&self.camera, |r| {
                        r.failures += 1;
                        r.failing_for = u64::from(failing_for);
                        r.last_error = Some(e.to_string());
                        r.last_latency_ms = Some(latency_ms);
                    });
                    wait
                }
            };
            self.metrics
                .pulls
                .update(&self.camera, |r| r.next_in_s = wait.as_secs_f64());
            // The cadence is kept from the start of a pull, so a slow camera
            // is not also pulled less often than asked.
            next =
                (tokio::time::Instant::from_std(started) + wait).max(tokio::time::Instant::now());
        }
    }

    /// One snapshot: request (with the login the camera asks for), body
    /// within the size limit, capture time admitted by the clock rule.
    async fn pull(
        &self,
        client: &reqwest::Client,
        login: &mut LoginState,
    ) -> Result<Frame, PullError> {
        let s = &self.snapshot;
        let mut resp = self.send(client, login).await?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            let Some(l) = &s.login else {
                return Err(PullError::LoginNeeded);
            };
            // A stale nonce or a first request: answer the challenge once.
            let challenge =
                Challenge::from_headers(resp.headers()).map_err(PullError::BadChallenge)?;
            let scheme = challenge.scheme();
            login.accept(challenge, l);
            resp = self.send(client, login).await?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
                *login = LoginState::default();
                return Err(PullError::LoginRefused(scheme));
            }
        }
        let arrival = wall_clock_ms();
        let status = resp.status();
        if status.is_redirection() {
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            return Err(PullError::Redirect {
                status: status.as_u16(),
                to: crate::base::redact::url(to),
            });
        }
        if !status.is_success() {
            return Err(PullError::Status {
                status: status.as_u16(),
                reason: status.canonical_reason().unwrap_or("").to_string(),
            });
        }
        let header_time = match &s.time_header {
            Some(h) => match resp.headers().get(h.as_str()) {
                Some(v) => Some(header_time(h, v.to_str().unwrap_or(""))?),
                None => None,
            },
            None => None,
        };
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.error(e))? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(PullError::TooLarge {
                    max: self.max_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !looks_like_jpeg(&body) {
            let head: Vec<String> = body.iter().take(4).map(|b| format!("{b:02X}")).collect();
            return Err(PullError::NotJpeg {
                content_type,
                head: head.join(" "),
            });
        }
        let captured_at = self.metrics.clocks.admit(
            &self.rule,
            SourceKind::Camera,
            &self.camera,
            header_time.unwrap_or(arrival),
            arrival,
        )?;
        Ok(Frame {
            camera: self.camera.clone(),
            captured_at,
            jpeg: Arc::new(body),
            arrived: Some(Instant::now()),
        })
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        login: &mut LoginState,
    ) -> Result<reqwest::Response, PullError> {
        let s = &self.snapshot;
        let mut req = client.get(s.url.clone());
        if let Some(value) = login.authorization(&s.url) {
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        req.send().await.map_err(|e| self.error(e))
    }

    fn error(&self, e: reqwest::Error) -> PullError {
        if e.is_timeout() {
            PullError::Timeout(self.snapshot.timeout)
        } else if e.is_connect() {
            PullError::Connect(crate::base::errors::chain(&e.without_url()))
        } else {
            PullError::Request(crate::base::errors::chain(&e.without_url()))
        }
    }
}

/// The wait after `failures` failures in a row: the interval doubled per
/// failure, at most [`MAX_BACKOFF`] (or the interval, when longer).
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let doubled = interval.saturating_mul(1u32 << failures.min(16));
    doubled.min(MAX_BACKOFF.max(interval))
}

/// A camera's own capture time from a response header.
fn header_time(header: &str, value: &str) -> Result<Millis, PullError> {
    let v = value.trim();
    parse_rfc3339(v)
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc2822(v)
                .ok()
                .map(|t| t.timestamp_millis())
        })
        .or_else(|| v.parse::<i64>().ok().filter(|ms| *ms > 0))
        .ok_or_else(|| PullError::BadTime {
            header: header.to_string(),
            value: v.chars().take(64).collect(),
        })
}

/// One client per camera: its own timeout and trusted certificates.
fn client(s: &Snapshot) -> Result<reqwest::Client, PullError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .timeout(s.timeout)
        .connect_timeout(s.timeout)
        // A redirect would carry the login elsewhere; it is reported instead.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("firelane/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &s.ca_file {
        let file = ca.display().to_string();
        let bad = |message: String| PullError::Ca {
            file: file.clone(),
            message,
        };
        let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| PullError::Request(crate::base::errors::chain(&e.without_url())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let s = Duration::from_secs;
        let table = [
            (s(5), 1, s(10)),
            (s(5), 2, s(20)),
            (s(5), 3, s(40)),
            (s(5), 4, s(60)),
            (s(5), 40, s(60)),
            (s(120), 1, s(120)),
            (Duration::from_millis(500), 1, s(1)),
        ];
        for (interval, failures, want) in table {
            assert_eq!(
                backoff(interval, failures),
                want,
                "{interval:?} x{failures}"
            );
        }
    }

    #[test]
    fn header_times() {
        let ok = [
            ("2026-12-02T10:00:00Z", 1_796_205_600_000),
            ("Wed, 02 Dec 2026 10:00:00 GMT", 1_796_205_600_000),
            ("1796205600000", 1_796_205_600_000),
        ];
        for (v, want) in ok {
            assert_eq!(header_time("X-Time", v).unwrap(), want, "{v}");
        }
        let e = header_time("X-Time", "yesterday").unwrap_err();
        assert!(e.to_string().contains("X-Time `yesterday`"), "{e}");
    }
}
