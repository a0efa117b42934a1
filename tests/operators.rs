//! The operators' side against a running daemon over a real mosquitto:
//! zone edits through the API (validated like `check-config`, written to
//! the TOML file with its comments, applied on the next frame without a
//! restart), hot reload of the file (a bad file refused, the running config
//! kept), the version history and restore, the zone editor in headless
//! Chromium, and the rolling recording exported and compared with
//! `firelane whatif`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::mqtt::*;
use common::{Mosquitto, free_port, jpeg_frame, repo_root};
use firelane::api::auth::{Role, create_token};
use firelane::store::Store;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const HEADER: &str = "# Site north — the operators' notes stay in this file.\n";

struct Site {
    broker: Mosquitto,
    data: tempfile::TempDir,
    config: PathBuf,
    base: String,
    store: Store,
    http: reqwest::Client,
    shutdown: CancellationToken,
    daemon: tokio::task::JoinHandle<Result<(), firelane::runtime::daemon::DaemonError>>,
}

impl Site {
    async fn start(extra: &str) -> Site {
        let broker = Mosquitto::start();
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = data.path().join("site.toml");
        let text = format!(
            "{HEADER}{}{extra}",
            config_toml_http(&broker, data.path(), port)
        );
        std::fs::write(&config, text).unwrap();
        let cfg = firelane::config::Config::load(&config).unwrap();
        let (_client, mut rx) = listener(&broker, "ops-listener").await;
        let mut seen = Vec::new();
        let shutdown = CancellationToken::new();
        let daemon = tokio::spawn(firelane::runtime::daemon::run(cfg, shutdown.clone()));
        wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;
        let url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("firelane.db").display()
        );
        Site {
            broker,
            store: Store::open(&url).await.unwrap(),
            data,
            config,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            shutdown,
            daemon,
        }
    }

    async fn token(&self, role: Role) -> String {
        create_token(&self.store, &format!("{role}-user"), role, 0)
            .await
            .unwrap()
            .token
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Polls `GET path` until `ok` holds (the daemon applies changes
    /// asynchronously: on its next poll of the file, or the next frame).
    async fn wait_for(
        &self,
        path: &str,
        token: &str,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        for _ in 0..150 {
            let (status, body) = self.send(reqwest::Method::GET, path, token, None).await;
            if status == 200 && ok(&body) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what} on {path}");
    }

    fn file(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap()
    }

    /// An edit on disk as an editor saves it: a new file renamed over.
    fn write_file(&self, text: &str) {
        let tmp = self.config.with_extension("toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    async fn stop(&mut self) {
        self.shutdown.cancel();
        (&mut self.daemon).await.unwrap().unwrap();
    }
}

fn zone_ids(cameras: &Value) -> Vec<String> {
    cameras["cameras"][0]["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["id"].as_str().unwrap().to_string())
        .collect()
}

fn new_zone(threshold: f64) -> Value {
    json!({
        "camera": "cam1",
        "name": "Loading bay",
        "polygon": [[0.6, 0.1], [0.9, 0.1], [0.9, 0.4], [0.6, 0.4]],
        "threshold": threshold,
        "sensors": [],
        "schedule": {"timezone": "Europe/Rome",
                     "inactive": [{"days": ["mon-fri"], "from": "07:00", "to": "10:00"}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_edits_apply_live_keep_the_file_and_can_be_restored() {
    let mut site =
        Site::start("\n[alerts]\nsmtp_url = \"smtp://mail:s3cret@127.0.0.1:2525\"\n").await;
    let operator = site.token(Role::Operator).await;
    let viewer = site.token(Role::Viewer).await;
    let admin = site.token(Role::Admin).await;
    let camera = publisher(&site.broker, "ops-camera").await;
    let t0 = firelane::base::time::wall_clock_ms() - 600_000;
    camera.frame(t0, &jpeg_frame(640, 480, 1)).await;

    // The camera's latest frame, for the editor; operators only.
    let cams = site
        .wait_for("/api/cameras", &operator, "the first frame", |b| {
            b["cameras"][0]["latest"].is_object()
        })
        .await;
    assert_eq!(cams["cameras"][0]["latest"]["width"], 640);
    assert_eq!(zone_ids(&cams), ["lane-1"]);
    // lane-1 is 320 x 192 px here, longer than 1.5:1: scored as three
    // overlapping tiles, each with its live score for the editor.
    let cams = site
        .wait_for("/api/cameras", &operator, "the tile scores", |b| {
            b["cameras"][0]["zones"][0]["live"]["tiles"].is_array()
        })
        .await;
    let lane = &cams["cameras"][0]["zones"][0];
    assert_eq!(lane["tiles"].as_array().unwrap().len(), 3, "{lane}");
    assert_eq!(lane["live"]["tiles"].as_array().unwrap().len(), 3, "{lane}");
    let (status, _) = site
        .send(reqwest::Method::GET, "/api/cameras", &viewer, None)
        .await;
    assert_eq!(status, 403);
    let jpeg = site
        .http
        .get(format!("{}/api/cameras/cam1/latest.jpg", site.base))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(jpeg.status(), 200);
    assert_eq!(
        jpeg.bytes().await.unwrap().as_ref(),
        jpeg_frame(640, 480, 1)
    );

    // Counters for monitoring, in the Prometheus text format.
    let metrics = site
        .http
        .get(format!("{}/metrics", site.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .parse()
            .unwrap()
    };
    assert!(value("firelane_frames_total") >= 1.0, "{text}");
    assert_eq!(value("firelane_mqtt_connected"), 1.0);
    assert!(text.contains("firelane_frames_superseded_total"));
    assert!(text.contains("firelane_stage_seconds_total{stage=\"inference\"}"));
    let anonymous = site
        .http
        .get(format!("{}/metrics", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Refused with the problems check-config names for the same file.
    let (status, body) = site
        .send(
            reqwest::Method::PUT,
            "/api/zones/bay-2",
            &operator,
            Some(new_zone(1.5)),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_config");
    let problem = &body["problems"][0];
    assert_eq!(problem["field"], "threshold");
    let bad = firelane::config::edit::upsert_zone(
        &site.file(),
        "x.toml",
        &serde_json::from_value::<firelane::config::ZoneConfig>({
            let mut z = new_zone(1.5);
            z["id"] = json!("bay-2");
            z
        })
        .unwrap(),
    )
    .unwrap();
    let bad_file = site.data.path().join("bad.toml");
    std::fs::write(&bad_file, bad).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_firelane"))
        .arg("check-config")
        .arg(&bad_file)
        .current_dir(repo_root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    let expected = format!(
        "{}: {}: {}",
        problem["item"].as_str().unwrap(),
        problem["field"].as_str().unwrap(),
        problem["message"].as_str().unwrap()
    );
    assert!(stderr.contains(&expected), "{stderr:?} lacks {expected:?}");
    assert!(!site.file().contains("bay-2"), "nothing saved");

    // Saved: written into the file with its comments, applied on the next
    // frame without a restart.
    let (status, body) = site
        .send(
            reqwest::Method::PUT,
            "/api/zones/bay-2",
            &operator,
            Some(new_zone(0.55)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["zone"]["effective"]["threshold"], 0.55);
    let saved_version = body["config"]["version"].as_i64().unwrap();
    let file = site.file();
    assert!(file.starts_with(HEADER), "{file}");
    assert!(file.contains("# The presence sensor decides"), "{file}");
    assert!(file.contains("id = \"bay-2\""), "{file}");
    assert!(
        file.contains("inactive = [{ days = [\"mon-fri\"]"),
        "{file}"
    );
    // Frames keep coming, as from a live camera, until the zone has a score.
    let mut zone = Value::Null;
    for k in 1..=100 {
        camera
            .frame(t0 + k * 1000, &jpeg_frame(640, 480, k as u32))
            .await;
        zone = site.get("/api/zones/bay-2", &operator).await;
        if zone["live"]["score"].is_number() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(zone["live"]["score"].is_number(), "{zone}");
    assert_eq!(zone["name"], "Loading bay");
    assert_eq!(zone["schedule"]["inactive"][0]["from"], "07:00");

    // A bad edit of the file on disk is refused; the running config stays.
    site.write_file(&file.replace("threshold = 0.55", "threshold = 7"));
    let cams = site
        .wait_for("/api/cameras", &operator, "the reload error", |b| {
            b["config"]["reload_error"].is_string()
        })
        .await;
    let error = cams["config"]["reload_error"].as_str().unwrap();
    assert!(
        error.contains("zone \"bay-2\"") && error.contains("threshold"),
        "{error}"
    );
    assert_eq!(zone_ids(&cams), ["lane-1", "bay-2"]);
    // Nor does an edit through the API overwrite the file meanwhile.
    let (status, body) = site
        .send(
            reqwest::Method::PUT,
            "/api/zones/bay-3",
            &operator,
            Some(new_zone(0.5)),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("changed on disk"),
        "{body}"
    );

    // A good edit on disk is picked up (an admin's, changing a credential too).
    let without = firelane::config::edit::delete_zone(&file, "site.toml", "bay-2")
        .unwrap()
        .replace("s3cret", "n3wpass");
    site.write_file(&without);
    let cams = site
        .wait_for("/api/cameras", &operator, "the file's change", |b| {
            b["cameras"][0]["zones"].as_array().unwrap().len() == 1
        })
        .await;
    assert!(cams["config"]["reload_error"].is_null());

    // Every version is kept with who and where from; an earlier one restores.
    let history = site.get("/api/config/history", &operator).await;
    let versions = history["versions"].as_array().unwrap();
    let sources: Vec<&str> = versions
        .iter()
        .map(|v| v["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["file", "api", "start"]);
    assert_eq!(versions[1]["actor"], "operator-user");
    assert_eq!(versions[1]["id"], saved_version);
    // Operators see versions without credentials; admins see them whole.
    let shown = site
        .get(&format!("/api/config/history/{saved_version}"), &operator)
        .await;
    let shown = shown["toml"].as_str().unwrap();
    assert!(
        !shown.contains("s3cret") && shown.contains("(redacted)"),
        "{shown}"
    );
    assert!(shown.contains("id = \"bay-2\""));
    let old = site
        .get(&format!("/api/config/history/{saved_version}"), &admin)
        .await;
    assert!(old["toml"].as_str().unwrap().contains("s3cret"));
    let (status, body) = site
        .send(
            reqwest::Method::POST,
            &format!("/api/config/history/{saved_version}/restore"),
            &operator,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cams = site.get("/api/cameras", &operator).await;
    assert_eq!(zone_ids(&cams), ["lane-1", "bay-2"]);
    // An operator brings back zones, sensors and [tracking] only: the
    // admin's newer credential stays.
    let file = site.file();
    assert!(
        file.contains("n3wpass") && !file.contains("s3cret"),
        "{file}"
    );
    assert!(file.contains("id = \"bay-2\""), "{file}");
    // An admin restores the whole version.
    let (status, body) = site
        .send(
            reqwest::Method::POST,
            &format!("/api/config/history/{saved_version}/restore"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(site.file(), old["toml"].as_str().unwrap());
    let audit = site.get("/api/audit", &admin).await;
    let scopes: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "config_restore")
        .map(|e| e["detail"]["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes.len(), 2, "{audit}");
    assert!(scopes.contains(&"all") && scopes.contains(&"zones, sensors, [tracking]"));

    // Deleted through the API: gone from the file and the daemon.
    let (status, body) = site
        .send(reqwest::Method::DELETE, "/api/zones/bay-2", &operator, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!site.file().contains("bay-2"));
    let (status, _) = site
        .send(reqwest::Method::GET, "/api/zones/bay-2", &operator, None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = site
        .send(reqwest::Method::DELETE, "/api/zones/bay-2", &operator, None)
        .await;
    assert_eq!(status, 404);
    site.stop().await;
}

#[test]
fn chromium_is_installed() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "the page test needs Debian's chromium (apt-get install chromium)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_editor_in_headless_chromium_draws_saves_and_sees_it_applied() {
    let mut site = Site::start("").await;
    let operator = site.token(Role::Operator).await;
    let camera = publisher(&site.broker, "ops-camera").await;
    let t0 = firelane::base::time::wall_clock_ms() - 600_000;
    camera.frame(t0, &jpeg_frame(640, 480, 1)).await;
    site.wait_for("/api/cameras", &operator, "the first frame", |b| {
        b["cameras"][0]["latest"].is_object()
    })
    .await;

    // Frames keep coming while the browser works, as from a live camera.
    let stop_camera = CancellationToken::new();
    let feeding = {
        let stop = stop_camera.clone();
        tokio::spawn(async move {
            let mut k = 1;
            while !stop.is_cancelled() {
                camera
                    .frame(t0 + k * 1000, &jpeg_frame(640, 480, k as u32))
                    .await;
                k += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let dir = repo_root().join("tests/browser");
    let base = site.base.clone();
    let token = operator.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut node = Command::new("node");
        node.arg(dir.join("operator.mjs"))
            .env("BASE_URL", base)
            .env("TOKEN", token)
            .env("CAMERA", "cam1")
            .env("ZONE", "browser-zone");
        // To look at the page the test ended on.
        if let Ok(path) = std::env::var("OPERATOR_SCREENSHOT") {
            node.env("SCREENSHOT_PATH", path);
        }
        node.output().unwrap()
    })
    .await
    .unwrap();
    stop_camera.cancel();
    feeding.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "operator.mjs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["ok"], true);
    assert_eq!(result["points"], 4);
    assert_eq!(
        result["problem_seen"], true,
        "the 1.5 threshold was refused"
    );
    let score: f64 = result["score"].as_str().unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&score));

    // The drawn zone is in the file (comments kept) and in the daemon.
    let file = site.file();
    assert!(file.starts_with(HEADER));
    let raw: firelane::config::RawConfig = toml::from_str(&file).unwrap();
    let zone = raw.zones.iter().find(|z| z.id == "browser-zone").unwrap();
    assert_eq!(zone.polygon.len(), 4);
    assert_eq!(zone.threshold, Some(0.5));
    assert_eq!(zone.name.as_deref(), Some("Browser zone"));
    let z = site.get("/api/zones/browser-zone", &operator).await;
    assert!(z["live"]["score"].is_number(), "{z}");
    // The slanted strip's tiles, as the page drew them: squares turned
    // with it, each given by its four corners.
    let tiles = z["tiles"].as_array().unwrap();
    assert_eq!(result["tiles"].as_u64(), Some(tiles.len() as u64), "{z}");
    for t in tiles {
        let c: [[f64; 2]; 4] = serde_json::from_value(t.clone()).unwrap();
        let (dx, dy) = ((c[1][0] - c[0][0]) * 640.0, (c[1][1] - c[0][1]) * 480.0);
        let turn = dy.atan2(dx).to_degrees();
        assert!(
            (10.0..25.0).contains(&turn),
            "tile turned {turn:.1} degrees: {t}"
        );
    }
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_exports_a_scenario_that_whatif_compares() {
    let mut site = Site::start("\n[recording]\nframes_per_camera = 5\n").await;
    let camera = publisher(&site.broker, "ops-camera").await;
    let t0 = firelane::base::time::wall_clock_ms() - 600_000;
    let s = 1000;
    camera.sensor(t0 - 5 * s, false).await;
    camera.frame(t0 - 20 * s, &jpeg_frame(640, 480, 0)).await;
    camera.sensor(t0 + 10 * s, true).await;
    for k in 0..=5 {
        camera
            .frame(t0 + k * 20 * s, &jpeg_frame(640, 480, k as u32))
            .await;
    }
    // The writer works behind ingest: wait for the last frame on disk and
    // the oldest ones gone.
    let dir = site.data.path().join("recording/frames/cam1");
    let last = dir.join(format!("{}.jpg", t0 + 100 * s));
    let jpgs = || {
        std::fs::read_dir(&dir).map_or(0, |d| {
            d.filter(|e| e.as_ref().unwrap().path().extension() == Some("jpg".as_ref()))
                .count()
        })
    };
    for _ in 0..100 {
        if last.exists() && jpgs() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last.exists(), "{} not recorded", last.display());
    assert_eq!(jpgs(), 5);

    let scenario = site.data.path().join("exported");
    let out = Command::new(env!("CARGO_BIN_EXE_firelane"))
        .args(["record", "--out"])
        .arg(&scenario)
        .arg("--config")
        .arg(&site.config)
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sc = firelane::replay::Scenario::load(&scenario).unwrap();
    assert_eq!(sc.frames.len(), 5, "the rolling window keeps five");
    assert_eq!(sc.frames[0].captured_at, t0 + 20 * s);
    assert_eq!(sc.file.cameras[0].zones[0].id, "lane-1");
    assert_eq!(sc.file.cameras[0].width, Some(640));
    // Sensor state at the window's start (the reading before it) is kept.
    let readings: Vec<(i64, bool)> = sc
        .sensors
        .iter()
        .map(|r| (r.measured_at, r.occupied))
        .collect();
    assert_eq!(readings, [(t0 + 10 * s, true)]);
    site.stop().await;

    // Grace 60 s (current) gives one violation; grace 120 s (new) none.
    let new = site.data.path().join("new.toml");
    std::fs::write(&new, site.file().replace("grace_s = 60", "grace_s = 120")).unwrap();
    let json_out = site.data.path().join("whatif.json");
    let out = Command::new(env!("CARGO_BIN_EXE_firelane"))
        .args(["whatif", "--config"])
        .arg(&new)
        .arg(&scenario)
        .arg("--work-dir")
        .arg(site.data.path().join("whatif"))
        .arg("--json")
        .arg(&json_out)
        .current_dir(repo_root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("lane-1"), "{stdout}");
    assert!(stdout.contains("removed"), "{stdout}");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&json_out).unwrap()).unwrap();
    let lane = &result["zones"]["lane-1"];
    assert_eq!(lane["current"], 1, "{result}");
    assert_eq!(lane["new"], 0, "{result}");
    assert_eq!(lane["removed"].as_array().unwrap().len(), 1);
    assert!(result["current"].as_str().unwrap().ends_with("config.toml"));

    // A config naming no camera of the scenario is refused, by name.
    let other = site.data.path().join("other.toml");
    std::fs::write(
        &other,
        site.file()
            .replace("id = \"cam1\"", "id = \"cam9\"")
            .replace("camera = \"cam1\"", "camera = \"cam9\""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_firelane"))
        .args(["whatif", "--config"])
        .arg(&other)
        .arg(&scenario)
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("other.toml") && stderr.contains("cam9"),
        "{stderr}"
    );
}
