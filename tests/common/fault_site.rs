//! The fault suite's site as a whole ([`Site`]), a disk that fills up
//! ([`SmallDisk`]) and the bad inputs a stranger can send.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Mosquitto;
use super::faults::*;
use firelane::api::auth::{Role, create_token};

/// A site under test: its broker, receiver, listener, daemon and camera.
pub struct Site {
    pub data: tempfile::TempDir,
    pub mqtt: Mqtt,
    pub broker: Option<Mosquitto>,
    pub hooks: Hooks,
    /// Emails received (DATA of each).
    pub mails: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub heard: Heard,
    pub daemon: Daemon,
    pub camera: Camera,
    pub http: u16,
    pub token: String,
}

impl Site {
    pub async fn start(embedded: bool, ingest: &str, extra: &str) -> Site {
        Self::start_in(tempfile::tempdir().unwrap(), embedded, ingest, extra).await
    }

    pub async fn start_in(
        data: tempfile::TempDir,
        embedded: bool,
        ingest: &str,
        extra: &str,
    ) -> Site {
        Self::start_with(data, embedded, ingest, extra, |t| t).await
    }

    /// `tweak` edits the configuration's text before the daemon starts.
    pub async fn start_with(
        data: tempfile::TempDir,
        embedded: bool,
        ingest: &str,
        extra: &str,
        tweak: impl Fn(String) -> String,
    ) -> Site {
        let (hook_port, http) = (super::free_port(), super::free_port());
        let hooks = Hooks::start(hook_port).await;
        let (smtp_port, mails) = smtp_receiver().await;
        let (mqtt, broker) = if embedded {
            (Mqtt::Embedded(super::free_port(), super::free_port()), None)
        } else {
            let b = Mosquitto::start();
            (Mqtt::Mosquitto(b.port), Some(b))
        };
        let config = data.path().join("site.toml");
        std::fs::write(
            &config,
            tweak(site_toml(
                data.path(),
                &mqtt,
                http,
                hook_port,
                smtp_port,
                ingest,
                extra,
            )),
        )
        .unwrap();
        let store = firelane::store::Store::open(&format!(
            "sqlite://{}?mode=rwc",
            data.path().join("firelane.db").display()
        ))
        .await
        .unwrap();
        let token = create_token(&store, "suite", Role::Admin, 0)
            .await
            .unwrap()
            .token;
        drop(store);
        let mut daemon = Daemon::new(config, data.path());
        daemon.spawn();
        wait_port(mqtt.port()).await;
        let heard = Heard::listen(mqtt.port(), "suite-listener").await;
        // Asked again every 5 s: a retained message is sent on each
        // subscription, so a first one that crossed it does not stall the
        // suite (the daemon never publishing it still does).
        let mut polls = 0u32;
        wait_for(
            "online",
            30,
            || {
                polls += 1;
                if polls.is_multiple_of(50) {
                    heard.resubscribe();
                }
                heard.online.load(Ordering::SeqCst) > 0
            },
            || {
                let times = heard.connected.load(Ordering::SeqCst);
                format!("the listener connected {times} times\n{}", daemon.log())
            },
        )
        .await;
        let camera = Camera::connect(mqtt.port(), "suite-camera").await;
        Site {
            data,
            mqtt,
            broker,
            hooks,
            mails,
            heard,
            daemon,
            camera,
            http,
            token,
        }
    }

    pub async fn feed(&self, steps: &[Step]) {
        for step in steps {
            match *step {
                Step::Frame(at) => self.camera.frame("cam1", at, (at / S) as u32).await,
                Step::Sensor(at, occupied) => self.camera.sensor(at, occupied).await,
            }
        }
    }

    /// Starts the daemon again and waits until it says it is online.
    pub async fn restart(&mut self) {
        self.restart_with_env(None).await
    }

    /// As [`Self::restart`], with `env` set from now on when given.
    pub async fn restart_with_env(&mut self, env: Option<&[(&str, &str)]>) {
        let before = self.heard.online.load(Ordering::SeqCst);
        match env {
            Some(env) => self.daemon.spawn_with_env(env),
            None => self.daemon.spawn(),
        }
        wait_port(self.mqtt.port()).await;
        let (heard, daemon) = (&self.heard, &self.daemon);
        wait_for(
            "online after the restart",
            30,
            || heard.online.load(Ordering::SeqCst) > before,
            || daemon.log(),
        )
        .await;
    }

    /// Waits for `n` ends on MQTT and at the webhook, stops the daemon and
    /// returns lane-1's violations relative to `bases`.
    /// (event, violation) pairs of lane-1 in the mails, each once.
    pub fn mailed(&self) -> std::collections::BTreeSet<(String, String)> {
        mail_events(&self.mails.lock().unwrap(), "lane-1")
    }

    pub async fn finish(&mut self, n: usize, bases: &[i64]) -> Vec<Violation> {
        let (heard, hooks, daemon) = (&self.heard, &self.hooks, &self.daemon);
        let ends = |set: std::collections::BTreeSet<(String, String)>| {
            set.iter().filter(|(e, _)| e == "end").count()
        };
        wait_for(
            "every end on MQTT, at the webhook and by email",
            60,
            || {
                heard.count("lane-1", "end") >= n
                    && hooks.count("lane-1", "end") >= n
                    && ends(self.mailed()) >= n
            },
            || {
                format!(
                    "mqtt {:?}, webhook {:?}, email {:?}\n{}",
                    heard.unique("lane-1"),
                    hooks.unique("lane-1"),
                    self.mailed(),
                    daemon.log()
                )
            },
        )
        .await;
        // Anything sent twice would have arrived by now.
        tokio::time::sleep(Duration::from_millis(800)).await;
        self.daemon.term();
        assert_eq!(self.heard.count("lane-1", "new"), n, "MQTT new");
        assert_eq!(self.heard.count("lane-1", "end"), n, "MQTT end");
        assert_eq!(self.hooks.count("lane-1", "new"), n, "webhook new");
        assert_eq!(self.hooks.count("lane-1", "end"), n, "webhook end");
        // The same alerts by email, each violation's new and end once.
        let mailed = self.mailed();
        assert_eq!(mailed.len(), 2 * n, "email: {mailed:?}");
        let by_mqtt: std::collections::BTreeSet<_> = self
            .heard
            .unique("lane-1")
            .into_iter()
            .filter(|(e, _)| e != "update")
            .collect();
        assert_eq!(mailed, by_mqtt, "email and MQTT name the same alerts");
        recorded(self.data.path(), bases).await
    }

    pub async fn get(&self, path: &str) -> String {
        // The daemon is another process: this one chooses its own TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.http))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A counter or gauge from `/metrics` (the first sample of `name`).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
    }
}

/// A 4 MB tmpfs over a folder, filled and freed on demand (needs root, as
/// CI runs).
pub struct SmallDisk {
    at: std::path::PathBuf,
}

impl SmallDisk {
    pub fn mount(at: &std::path::Path) -> SmallDisk {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "firelane-test"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mounting a 4 MB tmpfs on {} failed (the test needs root)",
            at.display()
        );
        SmallDisk {
            at: at.to_path_buf(),
        }
    }

    pub fn filler(&self) -> std::path::PathBuf {
        self.at.join("filler")
    }

    /// Writes until the disk says it is full.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.filler()).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            if let Err(e) = f.write_all(&block).and_then(|_| f.sync_all()) {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                break;
            }
        }
    }

    pub fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .status();
    }
}

/// A small real JPEG whose header declares `w`x`h` pixels.
fn pixel_bomb(w: u16, h: u16) -> Vec<u8> {
    let mut bomb = super::jpeg_frame(64, 48, 3);
    let sof = bomb
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a baseline JPEG has SOF0");
    // SOF0: marker, length (2), precision (1), height (2), width (2).
    bomb[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bomb[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bomb
}

/// A real progressive JPEG (libjpeg's) with 150 more copies of its last
/// scan: small, and each scan a pass over the whole frame.
fn scan_bomb() -> Vec<u8> {
    let (w, h) = (640, 480);
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i % 3 * 40 + 60) as u8).collect();
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    c.set_size(w, h);
    c.set_progressive_mode();
    let mut started = c.start_compress(Vec::new()).unwrap();
    started.write_scanlines(&pixels).unwrap();
    let good = started.finish().unwrap();
    let last = good.windows(2).rposition(|m| m == [0xFF, 0xDA]).unwrap();
    let end = good.len() - 2; // before EOI
    let mut bomb = good[..end].to_vec();
    for _ in 0..150 {
        bomb.extend_from_slice(&good[last..end]);
    }
    bomb.extend_from_slice(&[0xFF, 0xD9]);
    bomb
}

/// Bad inputs of every kind a camera, a sensor or a stranger can send:
/// (what it is, topic, payload).
pub fn bad_inputs(cam1_last: i64) -> Vec<(&'static str, String, Vec<u8>)> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let rfc = firelane::base::time::format_rfc3339;
    let now = firelane::base::time::wall_clock_ms();
    let good = super::jpeg_frame(640, 480, 7);
    let frame = "site/cameras/cam1/frame".to_string();
    let sensor = "site/sensors/loop-1".to_string();
    let envelope = |v: serde_json::Value| v.to_string().into_bytes();
    let mut deep = "[".repeat(10_000).into_bytes();
    deep.splice(0..0, br#"{"captured_at": "#.iter().copied());
    let mut garbage = vec![0xFF, 0xD8, 0xFF, 0xDB];
    garbage.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let mut oversized = vec![0xFF, 0xD8, 0xFF, 0xE0];
    oversized.resize(8 * 1024 * 1024 + 1024, 0);
    vec![
        ("empty frame", frame.clone(), vec![]),
        ("truncated JPEG", frame.clone(), good[..200].to_vec()),
        ("corrupt JPEG", frame.clone(), garbage),
        ("progressive JPEG of 150 scans", frame.clone(), scan_bomb()),
        (
            "PNG",
            frame.clone(),
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
        ),
        ("GIF", frame.clone(), b"GIF89a\x01\0\x01\0".to_vec()),
        ("JSON array", frame.clone(), b"[1, 2, 3]".to_vec()),
        ("broken JSON envelope", frame.clone(), b"{not json".to_vec()),
        (
            "envelope without jpeg_base64",
            frame.clone(),
            envelope(serde_json::json!({"captured_at": rfc(now)})),
        ),
        (
            "envelope with bad base64",
            frame.clone(),
            envelope(serde_json::json!({"jpeg_base64": "%%%not base64%%%"})),
        ),
        (
            "envelope holding no JPEG",
            frame.clone(),
            envelope(serde_json::json!({"jpeg_base64": b64(b"hello")})),
        ),
        (
            "envelope with a truncated JPEG",
            frame.clone(),
            envelope(serde_json::json!({"jpeg_base64": b64(&good[..300])})),
        ),
        (
            "captured_at not a time",
            frame.clone(),
            envelope(serde_json::json!({"captured_at": "yesterday", "jpeg_base64": b64(&good)})),
        ),
        (
            "captured_at a number",
            frame.clone(),
            envelope(serde_json::json!({"captured_at": 12, "jpeg_base64": b64(&good)})),
        ),
        (
            "captured_at a day ahead",
            frame.clone(),
            envelope(
                serde_json::json!({"captured_at": rfc(now + 86_400 * S), "jpeg_base64": b64(&good)}),
            ),
        ),
        (
            "captured_at in 2000",
            frame.clone(),
            envelope(
                serde_json::json!({"captured_at": "2000-01-01T00:00:00Z", "jpeg_base64": b64(&good)}),
            ),
        ),
        (
            "frame going backwards",
            frame.clone(),
            envelope(
                serde_json::json!({"captured_at": rfc(cam1_last - 30 * S), "jpeg_base64": b64(&good)}),
            ),
        ),
        ("JSON nested 10,000 deep", frame.clone(), deep),
        ("payload over max_payload_bytes", frame.clone(), oversized),
        (
            "pixel bomb 60000x60000",
            frame.clone(),
            pixel_bomb(60_000, 60_000),
        ),
        (
            "unknown camera",
            "site/cameras/ghost/frame".into(),
            good.clone(),
        ),
        (
            "unknown sensor",
            "site/sensors/ghost".into(),
            br#"{"occupied": true}"#.to_vec(),
        ),
        ("sensor not JSON", sensor.clone(), b"occupied".to_vec()),
        (
            "sensor occupied a string",
            sensor.clone(),
            br#"{"occupied": "yes"}"#.to_vec(),
        ),
        (
            "sensor occupied null",
            sensor.clone(),
            br#"{"occupied": null}"#.to_vec(),
        ),
        ("sensor without occupied", sensor.clone(), br#"{}"#.to_vec()),
        (
            "sensor naming another sensor",
            sensor.clone(),
            br#"{"sensor": "loop-9", "occupied": true}"#.to_vec(),
        ),
        (
            "sensor time not a time",
            sensor.clone(),
            br#"{"occupied": true, "measured_at": "soon"}"#.to_vec(),
        ),
        (
            "sensor a day ahead",
            sensor.clone(),
            envelope(serde_json::json!({"occupied": true, "measured_at": rfc(now + 86_400 * S)})),
        ),
        (
            "sensor in 2000",
            sensor.clone(),
            br#"{"occupied": true, "measured_at": "2000-01-01T00:00:00Z"}"#.to_vec(),
        ),
        ("sensor over 64 KB", sensor.clone(), {
            let mut v = br#"{"occupied": true, "pad": ""#.to_vec();
            v.resize(70_000, b'x');
            v.extend(br#""}"#);
            v
        }),
        (
            "sensor not UTF-8",
            sensor.clone(),
            vec![0xC3, 0x28, 0xFF, 0xFE],
        ),
        ("empty sensor payload", sensor, vec![]),
    ]
}
