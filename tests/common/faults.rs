//! The fault suite's site: `firelane run` as a child process (so it can be
//! killed with SIGKILL), its own broker or the embedded one, a webhook
//! receiver that can be down or slow, a listener on MQTT that subscribes
//! again after every reconnect, and a feed of violations driven by a
//! presence sensor (the synthetic frames show no car; they still go through
//! decode, the real model and evidence).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{jpeg_frame, repo_root};

pub const S: i64 = 1000;
/// Event time between the starts of two violations in the feed.
pub const SPACING: i64 = 200 * S;

/// One webhook request as received.
#[derive(Debug, Clone)]
pub struct Hook {
    pub delivery: String,
    pub event: String,
    pub violation: String,
    pub zone: String,
}

/// A webhook receiver: answers 503 while `down`, holds each request
/// `delay_ms` before answering, and keeps every request it saw (repeats
/// included) as it arrived.
#[derive(Clone, Default)]
pub struct Hooks {
    pub seen: Arc<Mutex<Vec<Hook>>>,
    pub down: Arc<AtomicBool>,
    pub delay_ms: Arc<AtomicU64>,
    /// Requests received and not yet answered.
    pub in_flight: Arc<AtomicU64>,
    pub refused: Arc<AtomicU64>,
}

impl Hooks {
    pub async fn start(port: u16) -> Hooks {
        let hooks = Hooks::default();
        let h = hooks.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let h = h.clone();
                async move {
                    if h.down.load(Ordering::SeqCst) {
                        h.refused.fetch_add(1, Ordering::SeqCst);
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let header = |k: &str| {
                        headers
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    h.seen.lock().unwrap().push(Hook {
                        delivery: header("x-firelane-delivery"),
                        event: header("x-firelane-event"),
                        violation: v["violation"]["id"].as_str().unwrap_or("").into(),
                        zone: v["violation"]["zone"].as_str().unwrap_or("").into(),
                    });
                    h.in_flight.fetch_add(1, Ordering::SeqCst);
                    let delay = h.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    h.in_flight.fetch_sub(1, Ordering::SeqCst);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        hooks
    }

    /// (event, violation) pairs, each once however often it was delivered.
    pub fn unique(&self, zone: &str) -> BTreeSet<(String, String)> {
        let seen = self.seen.lock().unwrap();
        let mut by_delivery = BTreeMap::new();
        for h in seen.iter().filter(|h| h.zone == zone) {
            by_delivery.insert(h.delivery.clone(), (h.event.clone(), h.violation.clone()));
        }
        by_delivery.into_values().collect()
    }

    pub fn count(&self, zone: &str, event: &str) -> usize {
        self.unique(zone).iter().filter(|(e, _)| e == event).count()
    }
}

/// A minimal SMTP receiver: accepts every message and keeps its DATA.
pub async fn smtp_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = mails.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 test.local ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250-test.local\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        w.write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                            .await
                            .unwrap();
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        store.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 OK\r\n"
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

/// (event, violation) pairs of `zone` in the mails received, each once:
/// the subject says which alert, the body names the violation.
pub fn mail_events(mails: &[String], zone: &str) -> BTreeSet<(String, String)> {
    mails
        .iter()
        .filter_map(|m| {
            let event = if m.contains(&format!("Subject: Fire lane blocked: {zone} ")) {
                "new"
            } else if m.contains(&format!("Subject: Fire lane clear: {zone} ")) {
                "end"
            } else {
                return None;
            };
            let id = m.lines().find_map(|l| l.strip_prefix("Violation: "))?;
            Some((event.to_string(), id.trim().to_string()))
        })
        .collect()
}

/// Every `site/violations` event heard, subscribing again after each
/// reconnect (a broker restart forgets a clean session's subscriptions).
#[derive(Clone)]
pub struct Heard {
    pub events: Arc<Mutex<Vec<serde_json::Value>>>,
    pub online: Arc<AtomicU64>,
    /// Connections the broker acknowledged, for a timeout's message.
    pub connected: Arc<AtomicU64>,
    client: AsyncClient,
}

impl Heard {
    pub async fn listen(port: u16, id: &str) -> Heard {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let heard = Heard {
            events: Default::default(),
            online: Default::default(),
            connected: Default::default(),
            client: client.clone(),
        };
        let h = heard.clone();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        h.connected.fetch_add(1, Ordering::SeqCst);
                        let c = client.clone();
                        tokio::spawn(async move {
                            let _ = c.subscribe("site/violations", QoS::AtLeastOnce).await;
                            let _ = c.subscribe("site/available", QoS::AtLeastOnce).await;
                        });
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if p.topic == "site/available" {
                            if &p.payload[..] == b"online" {
                                h.online.fetch_add(1, Ordering::SeqCst);
                            }
                        } else if let Ok(v) = serde_json::from_slice(&p.payload) {
                            h.events.lock().unwrap().push(v);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        heard
    }

    /// Subscribes to `site/available` again, so the broker sends its
    /// retained message anew: once, in a loaded CI run, the listener's
    /// first subscription and the daemon's first `online` crossed on the
    /// embedded broker and the listener never heard it.
    pub fn resubscribe(&self) {
        let c = self.client.clone();
        tokio::spawn(async move {
            let _ = c.subscribe("site/available", QoS::AtLeastOnce).await;
        });
    }

    /// (event, violation) pairs of `zone`, each once.
    pub fn unique(&self, zone: &str) -> BTreeSet<(String, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["violation"]["zone"] == zone)
            .map(|e| {
                (
                    e["event"].as_str().unwrap_or("").to_string(),
                    e["violation"]["id"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    pub fn count(&self, zone: &str, event: &str) -> usize {
        self.unique(zone).iter().filter(|(e, _)| e == event).count()
    }

    /// Every event of `zone` heard, repeats included.
    pub fn raw_count(&self, zone: &str) -> usize {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e["violation"]["zone"] == zone)
            .count()
    }
}

/// A camera and sensor client; QoS 1, so what it publishes while the
/// broker is away is sent when it is back.
pub struct Camera {
    publisher: super::mqtt::Publisher,
}

impl Camera {
    pub async fn connect(port: u16, id: &str) -> Camera {
        Camera {
            publisher: super::mqtt::publisher_on(port, id, 1000),
        }
    }

    pub async fn raw(&self, topic: &str, payload: Vec<u8>) {
        self.publisher.raw(topic, payload).await;
    }

    pub async fn frame(&self, camera: &str, at: i64, seed: u32) {
        let body = serde_json::json!({
            "captured_at": firelane::base::time::format_rfc3339(at),
            "jpeg_base64": base64::engine::general_purpose::STANDARD.encode(jpeg_frame(640, 480, seed)),
        });
        self.raw(
            &format!("site/cameras/{camera}/frame"),
            body.to_string().into_bytes(),
        )
        .await;
        // Paced so a frame is scored before the next arrives: a newer
        // frame replaces a waiting one (the overload policy), which would
        // make a run depend on the machine's load.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    pub async fn sensor(&self, at: i64, occupied: bool) {
        let body = serde_json::json!({
            "measured_at": firelane::base::time::format_rfc3339(at),
            "occupied": occupied,
        });
        self.raw("site/sensors/loop-1", body.to_string().into_bytes())
            .await;
    }
}

/// One input of the feed, in event time.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Frame(i64),
    Sensor(i64, bool),
}

/// Violation `v` of the feed on lane-1, starting `base`: clear frames, the
/// sensor occupied for 90 s (grace 60 s), then clear again.
pub fn violation_steps(base: i64) -> Vec<Step> {
    let mut steps = vec![Step::Sensor(base, false)];
    steps.extend((0..5).map(|k| Step::Frame(base + k * 10 * S)));
    steps.push(Step::Sensor(base + 50 * S, true));
    steps.extend((5..=13).map(|k| Step::Frame(base + k * 10 * S)));
    steps.push(Step::Sensor(base + 140 * S, false));
    steps.extend((14..=19).map(|k| Step::Frame(base + k * 10 * S)));
    steps
}

/// What a run left behind on lane-1, each violation relative to the base
/// time of its part of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub start: i64,
    pub confirmed: i64,
    pub cleared: Option<i64>,
    pub evidence: usize,
}

/// The site's configuration; `extra` is appended (more sections).
pub fn site_toml(
    data: &Path,
    mqtt: &Mqtt,
    http: u16,
    hook: u16,
    smtp: u16,
    ingest: &str,
    extra: &str,
) -> String {
    let (url, embedded) = match mqtt {
        Mqtt::Mosquitto(port) => (format!("mqtt://127.0.0.1:{port}"), String::new()),
        Mqtt::Embedded(v4, v5) => (
            format!("mqtt://127.0.0.1:{v5}"),
            format!(
                "[mqtt.embedded_broker]\nlisten = \"127.0.0.1:{v4}\"\nlisten_v5 = \"127.0.0.1:{v5}\"\n"
            ),
        ),
    };
    format!(
        r#"
[storage]
data_dir = "{data}"
[model]
path = "{model}"
[mqtt]
url = "{url}"
client_id = "firelane-faults"
topic_prefix = "site"
{embedded}
[http]
listen = "127.0.0.1:{http}"
[tracking]
grace_s = 60
clear_s = 10
sensor_weight = 10
update_every_s = 0
reattach_s = 0
checkpoint_s = 0
[ingest]
{ingest}
[alerts]
retry_base_s = 0.2
retry_max_s = 1
smtp_url = "smtp://127.0.0.1:{smtp}"
email_from = "firelane <firelane@test.local>"
[[sites]]
id = "north"
name = "North"
email_to = ["manager@example.com"]
[[sites.webhooks]]
url = "http://127.0.0.1:{hook}/hook"
secret = "s3cret"
[[cameras]]
id = "cam1"
[[zones]]
id = "lane-1"
camera = "cam1"
polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 0.9], [0.1, 0.9]]
[[sensors]]
id = "loop-1"
zone = "lane-1"
{extra}
"#,
        data = data.display(),
        model = firelane::config::DEFAULT_MODEL,
    )
}

/// Which broker the site uses.
#[derive(Debug, Clone, Copy)]
pub enum Mqtt {
    Mosquitto(u16),
    /// firelane's own: (MQTT 3.1.1 port, MQTT 5 port).
    Embedded(u16, u16),
}

impl Mqtt {
    /// The port cameras and listeners connect to.
    pub fn port(&self) -> u16 {
        match self {
            Mqtt::Mosquitto(p) => *p,
            Mqtt::Embedded(v4, _) => *v4,
        }
    }
}

/// `firelane run` as a child process, its logs kept.
pub struct Daemon {
    pub config: PathBuf,
    pub logs: Vec<PathBuf>,
    child: Option<Child>,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Daemon {
    pub fn new(config: PathBuf, dir: &Path) -> Daemon {
        Daemon {
            config,
            logs: Vec::new(),
            child: None,
            dir: dir.to_path_buf(),
            env: Vec::new(),
        }
    }

    /// As [`Self::spawn`], with `env` set now and at every respawn.
    pub fn spawn_with_env(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.spawn();
    }

    pub fn spawn(&mut self) {
        let name = self
            .config
            .file_stem()
            .map_or("daemon".into(), |s| s.to_string_lossy().to_string());
        let log = self.dir.join(format!("{name}-{}.log", self.logs.len()));
        let child = Command::new(env!("CARGO_BIN_EXE_firelane"))
            .args(["run", "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(repo_root())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.logs.push(log);
        self.child = Some(child);
    }

    /// SIGKILL: no goodbye, nothing flushed.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, and the daemon must be gone within 10 s.
    pub fn term(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                if c.try_wait().unwrap().is_some() {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    let _ = c.kill();
                    panic!("firelane still running 10 s after SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn log(&self) -> String {
        self.logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits (up to `secs`) for `cond`, panicking with `what` and `context()`.
pub async fn wait_for(
    what: &str,
    secs: u64,
    mut cond: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for a TCP port to accept connections.
pub async fn wait_port(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "port {port} never opened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lane-1's violations in `data`'s database, each relative to the base of
/// its part of the feed (`bases`, ascending).
pub async fn recorded(data: &Path, bases: &[i64]) -> Vec<Violation> {
    recorded_progress(data, bases)
        .await
        .into_iter()
        .map(|(v, _)| v)
        .collect()
}

/// As [`recorded`], each with its last obstructed time (relative to its
/// base). Not part of [`Violation`]: which of the last frames before the
/// sensor's "free" is applied as obstructed varies between runs.
pub async fn recorded_progress(data: &Path, bases: &[i64]) -> Vec<(Violation, i64)> {
    let store = firelane::store::Store::open(&format!(
        "sqlite://{}?mode=rwc",
        data.join("firelane.db").display()
    ))
    .await
    .unwrap();
    let mut out = Vec::new();
    for v in store.violations().await.unwrap() {
        if v.zone != "lane-1" {
            continue;
        }
        let base = *bases
            .iter()
            .rev()
            .find(|b| **b <= v.start_ms)
            .expect("a violation within the feed");
        let row = Violation {
            start: v.start_ms - base,
            confirmed: v.confirmed_ms - base,
            cleared: v.cleared_ms.map(|c| c - base),
            evidence: store.evidence(&v.id).await.unwrap().len(),
        };
        out.push((row, v.last_obstructed_ms - base));
    }
    out
}
