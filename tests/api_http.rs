//! The enforcement side against a daemon that recorded a violation over a
//! real mosquitto: the HTTP API by role, JSON errors, reviews, the audit
//! chain, signed bundles (and tampered ones) from the API and the command
//! line, and the officers' page in headless Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::mqtt::*;
use common::{Mosquitto, free_port, jpeg_frame, repo_root};
use firelane::api::auth::{Role, create_token};
use firelane::store::Store;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// A daemon with one recorded (and cleared) violation, its HTTP API on a
/// free port.
struct Site {
    _broker: Mosquitto,
    data: tempfile::TempDir,
    config: PathBuf,
    base: String,
    violation: String,
    store: Store,
    shutdown: CancellationToken,
    daemon: tokio::task::JoinHandle<Result<(), firelane::runtime::daemon::DaemonError>>,
}

impl Site {
    async fn start() -> Site {
        let broker = Mosquitto::start();
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = data.path().join("site.toml");
        std::fs::write(&config, config_toml_http(&broker, data.path(), port)).unwrap();
        let cfg = firelane::config::Config::load(&config).unwrap();
        let (_client, mut rx) = listener(&broker, "api-listener").await;
        let mut seen = Vec::new();
        let shutdown = CancellationToken::new();
        let daemon = tokio::spawn(firelane::runtime::daemon::run(cfg, shutdown.clone()));
        wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;

        let camera = publisher(&broker, "api-camera").await;
        let t0 = firelane::base::time::wall_clock_ms() - 600_000;
        let s = 1000;
        camera.sensor(t0, false).await;
        camera.frame(t0, &jpeg_frame(640, 480, 0)).await;
        camera.sensor(t0 + 10 * s, true).await;
        for k in 1..=8 {
            camera
                .frame(t0 + k * 10 * s, &jpeg_frame(640, 480, k as u32))
                .await;
        }
        wait_event(&mut rx, &mut seen, "site/violations", event_is("new")).await;
        camera.sensor(t0 + 90 * s, false).await;
        for k in 9..=11 {
            camera
                .frame(t0 + k * 10 * s, &jpeg_frame(640, 480, k as u32))
                .await;
        }
        wait_event(&mut rx, &mut seen, "site/violations", event_is("end")).await;

        let url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("firelane.db").display()
        );
        let store = Store::open(&url).await.unwrap();
        let violation = store.violations().await.unwrap()[0].id.clone();
        Site {
            _broker: broker,
            data,
            config,
            base: format!("http://127.0.0.1:{port}"),
            violation,
            store,
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

    async fn stop(self) {
        self.shutdown.cancel();
        self.daemon.await.unwrap().unwrap();
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_firelane"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .current_dir(repo_root())
            .output()
            .unwrap()
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(site: &Site) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: site.base.clone(),
        }
    }
    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }
    async fn status(&self, path: &str, token: Option<&str>) -> StatusCode {
        self.get(path, token).await.status()
    }
    async fn json(&self, path: &str, token: &str) -> serde_json::Value {
        let res = self.get(path, Some(token)).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }
    async fn review(&self, id: &str, token: &str, body: String) -> reqwest::Response {
        self.http
            .post(format!("{}/api/violations/{id}/review", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts a JSON error with `code` whose message mentions `needle`.
async fn assert_error(res: reqwest::Response, status: u16, code: &str, needle: &str) {
    assert_eq!(res.status(), status);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_each_role_what_it_may_and_audits_every_access() {
    let site = Site::start().await;
    let c = Client::new(&site);
    let id = site.violation.clone();
    let viewer = site.token(Role::Viewer).await;
    let officer = site.token(Role::Officer).await;
    let operator = site.token(Role::Operator).await;
    let admin = site.token(Role::Admin).await;

    // Public: health, the OpenAPI document, the page. Everything else: 401.
    assert_eq!(c.status("/healthz", None).await, 200);
    let doc: serde_json::Value = c.get("/api/openapi.json", None).await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/violations/{id}/bundle.zip"].is_object());
    let page = c.get("/", None).await.text().await.unwrap();
    assert!(page.contains("app.js"));
    assert_error(
        c.get("/api/violations", None).await,
        401,
        "unauthorized",
        "Bearer",
    )
    .await;
    assert_error(
        c.get("/api/violations", Some("flt_00000000_nope")).await,
        401,
        "unauthorized",
        "unknown or revoked",
    )
    .await;
    let tampered = format!("{}x", &officer);
    assert_eq!(c.status("/api/me", Some(&tampered)).await, 401);

    for (token, role) in [
        (&viewer, "viewer"),
        (&officer, "officer"),
        (&operator, "operator"),
        (&admin, "admin"),
    ] {
        let me = c.json("/api/me", token).await;
        assert_eq!(me["role"], role);
        assert_eq!(me["name"], format!("{role}-user"));
    }

    // Listing with filters and pagination.
    let list = c.json("/api/violations", &viewer).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(list["items"][0]["zone"], "lane-1");
    assert_eq!(list["items"][0]["status"], "cleared");
    assert_eq!(list["items"][0]["review_status"], "pending");
    let v = &list["items"][0];
    let start = v["start"].as_str().unwrap().to_string();
    for (query, expect) in [
        ("zone=lane-1&camera=cam1&status=cleared&review=pending", 1),
        ("zone=lane-2", 0),
        ("status=open", 0),
        (&format!("from={start}") as &str, 1),
        (&format!("to={start}"), 0),
        ("limit=1&offset=1", 0),
    ] {
        let page = c.json(&format!("/api/violations?{query}"), &operator).await;
        assert_eq!(page["items"].as_array().unwrap().len(), expect, "{query}");
        assert_eq!(
            page["total"],
            if query.starts_with("limit") {
                1
            } else {
                expect
            },
            "{query}"
        );
    }
    for (query, needle) in [
        ("status=parked", "status"),
        ("from=yesterday", "from"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("offset=-1", "offset"),
        ("colour=red", "colour"),
    ] {
        assert_error(
            c.get(&format!("/api/violations?{query}"), Some(&viewer))
                .await,
            400,
            "bad_request",
            needle,
        )
        .await;
    }

    // Detail with its evidence; every file's hash holds.
    let detail = c.json(&format!("/api/violations/{id}"), &viewer).await;
    let evidence = detail["evidence"].as_array().unwrap();
    let mut kinds: Vec<String> = evidence
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["kind"].as_str().unwrap(),
                e["variant"].as_str().unwrap()
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "clear/annotated",
            "clear/closeup",
            "clear/original",
            "confirm/annotated",
            "confirm/closeup",
            "confirm/original",
            "first/annotated",
            "first/closeup",
            "first/original"
        ]
    );
    for e in evidence {
        let res = c.get(e["url"].as_str().unwrap(), Some(&viewer)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "image/jpeg");
        let header = res.headers()["x-content-sha256"]
            .to_str()
            .unwrap()
            .to_string();
        let bytes = res.bytes().await.unwrap();
        assert_eq!(sha256(&bytes), e["sha256"].as_str().unwrap());
        assert_eq!(header, e["sha256"].as_str().unwrap());
    }
    let thumb = c
        .get(&format!("/api/violations/{id}/thumb.jpg"), Some(&viewer))
        .await;
    assert_eq!(thumb.status(), 200);
    let thumb = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!(thumb.width(), 320);

    // Unknown ids and files are 404; nothing in a path reaches the disk.
    assert_error(
        c.get("/api/violations/v-0000", Some(&viewer)).await,
        404,
        "not_found",
        "v-0000",
    )
    .await;
    assert_error(
        c.get(
            &format!("/api/violations/{id}/evidence/first/raw.jpg"),
            Some(&viewer),
        )
        .await,
        404,
        "not_found",
        "raw.jpg",
    )
    .await;
    let key_hex = std::fs::read_to_string(site.data.path().join("site.key")).unwrap();
    for path in [
        format!("/api/violations/{id}/evidence/..%2F..%2Fsite.key/original.jpg"),
        format!("/api/violations/{id}/evidence/first/..%2F..%2F..%2Fsite.key"),
        "/api/violations/..%2Fsite.key".to_string(),
        "/api/violations/%2E%2E/%2E%2E/site.key".to_string(),
        "/site.key".to_string(),
        "/evidence".to_string(),
    ] {
        let res = c.get(&path, Some(&admin)).await;
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert!(!body.contains(key_hex.trim()), "{path} leaked the key");
    }

    // Bundles: officers and admins only.
    for token in [&viewer, &operator] {
        assert_error(
            c.get(&format!("/api/violations/{id}/bundle.zip"), Some(token))
                .await,
            403,
            "forbidden",
            "officer or admin",
        )
        .await;
    }
    let res = c
        .get(&format!("/api/violations/{id}/bundle.zip"), Some(&officer))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let zip = res.bytes().await.unwrap();
    let public_key = std::fs::read_to_string(site.data.path().join("site.key.pub")).unwrap();
    let report = firelane::evidence::bundle::verify(&zip, Some(&public_key));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.files_checked, 9);
    assert_eq!(report.violation.as_deref(), Some(id.as_str()));

    // Reviews: officers only, validated, kept as a history.
    assert_eq!(
        c.review(&id, &viewer, r#"{"status":"confirmed"}"#.into())
            .await
            .status(),
        403
    );
    assert_eq!(
        c.review(&id, &operator, r#"{"status":"confirmed"}"#.into())
            .await
            .status(),
        403
    );
    assert_error(
        c.review(&id, &officer, r#"{"status":"towed"}"#.into())
            .await,
        400,
        "bad_request",
        "towed",
    )
    .await;
    assert_error(
        c.review(&id, &officer, "{not json".into()).await,
        400,
        "bad_request",
        "review body",
    )
    .await;
    let long_note = serde_json::json!({"status": "cited", "note": "x".repeat(2001)}).to_string();
    assert_error(
        c.review(&id, &officer, long_note).await,
        400,
        "bad_request",
        "2001 characters",
    )
    .await;
    let huge = serde_json::json!({"status": "cited", "note": "x".repeat(40_000)}).to_string();
    assert_error(
        c.review(&id, &officer, huge).await,
        413,
        "payload_too_large",
        "",
    )
    .await;
    assert_error(
        c.review(
            "v-00000000000000000000",
            &officer,
            r#"{"status":"cited"}"#.into(),
        )
        .await,
        404,
        "not_found",
        "v-00000000000000000000",
    )
    .await;
    let res = c
        .http
        .post(format!("{}/api/violations/{id}/review", c.base))
        .bearer_auth(&officer)
        .header("content-type", "text/plain")
        .body(r#"{"status":"cited"}"#)
        .send()
        .await
        .unwrap();
    assert_error(res, 415, "unsupported_media_type", "").await;

    let res = c
        .review(
            &id,
            &officer,
            r#"{"status":"confirmed","note":"blue van, plate seen"}"#.into(),
        )
        .await;
    assert_eq!(res.status(), 200);
    let reviewed: serde_json::Value = res.json().await.unwrap();
    assert_eq!(reviewed["review_status"], "confirmed");
    let res = c
        .review(
            &id,
            &admin,
            r#"{"status":"cited","note":"ticket 4411"}"#.into(),
        )
        .await;
    let reviewed: serde_json::Value = res.json().await.unwrap();
    assert_eq!(reviewed["review_status"], "cited");
    let history = reviewed["reviews"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["status"], "confirmed");
    assert_eq!(history[0]["actor"], "officer-user");
    assert_eq!(history[0]["note"], "blue van, plate seen");
    assert_eq!(history[1]["actor"], "admin-user");
    assert_eq!(
        c.json("/api/violations?review=cited", &viewer).await["total"],
        1
    );

    // The audit log: admins only; every access above is in it, chained.
    assert_eq!(c.status("/api/audit", Some(&officer)).await, 403);
    let log = c.json("/api/audit?limit=1000", &admin).await;
    let items = log["items"].as_array().unwrap();
    let count = |action: &str| items.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("evidence.view"), 9);
    assert_eq!(count("evidence.thumbnail"), 1);
    assert_eq!(count("bundle.export"), 1);
    assert_eq!(count("review"), 2);
    assert!(items.iter().any(|e| e["action"] == "review"
        && e["actor"] == "officer-user"
        && e["detail"]["status"] == "confirmed"));
    for pair in items.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let chain = firelane::audit::verify(&site.store).await.unwrap();
    assert!(chain.problems.is_empty(), "{:?}", chain.problems);
    assert_eq!(chain.entries as usize, items.len());
    assert_error(
        c.get("/api/audit?after=x", Some(&admin)).await,
        400,
        "bad_request",
        "after",
    )
    .await;

    // A revoked token stops working at once.
    let officer_id = officer.split('_').nth(1).unwrap().to_string();
    let out = site.cli(&["token", "revoke", &officer_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.status("/api/me", Some(&officer)).await, 401);

    site.stop().await;
}

/// Rewrites a ZIP, passing each entry through `edit`.
fn rewrite_zip(bytes: &[u8], edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let name = f.name().unwrap().into_owned();
        let mut content = Vec::new();
        f.read_to_end(&mut content).unwrap();
        out.start_file(name.as_str(), opts).unwrap();
        out.write_all(&edit(&name, content)).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn verify_cli(bundle: &Path, public_key: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_firelane"));
    cmd.args(["evidence", "verify"]).arg(bundle);
    if let Some(k) = public_key {
        cmd.arg("--public-key").arg(k);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exports_signed_bundles_and_names_every_tampering() {
    let site = Site::start().await;
    let dir = site.data.path();
    let id = site.violation.clone();
    let bundle = dir.join("bundle.zip");

    let out = site.cli(&["evidence", "export", &id, "-o", bundle.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = site.cli(&["evidence", "public-key"]);
    assert!(out.status.success());
    let key_file = dir.join("site.pub.txt");
    std::fs::write(&key_file, &out.stdout).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        std::fs::read_to_string(dir.join("site.key.pub"))
            .unwrap()
            .trim()
    );

    let (ok, text) = verify_cli(&bundle, Some(&key_file));
    assert!(ok, "{text}");
    assert!(text.contains("OK") && text.contains(&id), "{text}");
    let original = std::fs::read(&bundle).unwrap();
    // Without the site's key, only the key inside the bundle can be used:
    // anyone could have signed with their own, so it is no verification.
    let out = Command::new(env!("CARGO_BIN_EXE_firelane"))
        .args(["evidence", "verify"])
        .arg(&bundle)
        .arg("--config")
        .arg(dir.join("no-such-site.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT VERIFIED"));
    // With the site's config, its own key is the default.
    let out = site.cli(&["evidence", "verify", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // The manifest states the facts an officer needs.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&original[..])).unwrap();
    let manifest: serde_json::Value = {
        use std::io::Read;
        let mut s = String::new();
        archive
            .by_name("manifest.json")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        serde_json::from_str(&s).unwrap()
    };
    assert_eq!(manifest["violation"]["id"], id.as_str());
    assert_eq!(
        manifest["zone"]["polygon"],
        serde_json::json!([[0.1, 0.5], [0.6, 0.5], [0.6, 0.9], [0.1, 0.9]])
    );
    assert_eq!(manifest["model"]["name"], "obstruction-v2");
    assert_eq!(manifest["model"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["config_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["files"].as_array().unwrap().len(), 9);

    let cases: Vec<(&str, Vec<u8>, Option<&Path>, &str)> = vec![
        (
            "one pixel byte of an original frame",
            rewrite_zip(&original, |name, mut c| {
                if name == "evidence/first-original.jpg" {
                    let n = c.len() / 2;
                    c[n] ^= 0x01;
                }
                c
            }),
            Some(&key_file),
            "evidence/first-original.jpg: SHA-256",
        ),
        (
            "the manifest's peak score",
            rewrite_zip(&original, |name, c| {
                if name == "manifest.json" {
                    String::from_utf8(c)
                        .unwrap()
                        .replacen("\"peak_score\"", "\"peak_score\": 0.1, \"was\"", 1)
                        .into_bytes()
                } else {
                    c
                }
            }),
            Some(&key_file),
            "signature does not hold",
        ),
        (
            "a file added",
            {
                let mut z = rewrite_zip(&original, |_, c| c);
                z = {
                    use std::io::Write;
                    let mut w = zip::ZipWriter::new_append(std::io::Cursor::new(z)).unwrap();
                    w.start_file(
                        "evidence/extra.jpg",
                        zip::write::SimpleFileOptions::default(),
                    )
                    .unwrap();
                    w.write_all(b"not evidence").unwrap();
                    w.finish().unwrap().into_inner()
                };
                z
            },
            Some(&key_file),
            "evidence/extra.jpg: in the ZIP but not listed",
        ),
        (
            "the bundle re-signed by another key",
            {
                let other =
                    firelane::evidence::signing::SiteKey::load_or_create(&dir.join("other.key"))
                        .unwrap();
                rewrite_zip(&original, |name, c| match name {
                    "manifest.sig" => {
                        let m = {
                            use std::io::Read;
                            let mut a =
                                zip::ZipArchive::new(std::io::Cursor::new(&original[..])).unwrap();
                            let mut m = Vec::new();
                            a.by_name("manifest.json")
                                .unwrap()
                                .read_to_end(&mut m)
                                .unwrap();
                            m
                        };
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .encode(other.sign(&m))
                            .into_bytes()
                    }
                    "public_key.txt" => format!("{}\n", other.public_key_hex()).into_bytes(),
                    _ => c,
                })
            },
            Some(&key_file),
            "signature does not hold for the given public key",
        ),
        (
            "a byte flipped in the ZIP itself",
            {
                let mut z = original.clone();
                let n = z.len() / 2;
                z[n] ^= 0xFF;
                z
            },
            Some(&key_file),
            "",
        ),
    ];
    for (what, bytes, key, needle) in cases {
        let path = dir.join("tampered.zip");
        std::fs::write(&path, &bytes).unwrap();
        let (ok, text) = verify_cli(&path, key);
        assert!(!ok, "{what}: verify passed:\n{text}");
        assert!(text.contains(needle), "{what}: {text}");
        assert!(
            text.contains("FAILED")
                || text.contains("not a readable ZIP")
                || text.contains("unreadable"),
            "{what}: {text}"
        );
    }

    // Tokens from the command line; the export above is in the audit log.
    let out = site.cli(&["token", "create", "--role", "officer", "--name", "dana"]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("flt_"));
    let listed = String::from_utf8(site.cli(&["token", "list"]).stdout).unwrap();
    assert!(
        listed.contains("dana") && listed.contains("officer"),
        "{listed}"
    );
    assert!(
        !listed.contains(token.splitn(3, '_').nth(2).unwrap()),
        "the secret must not be listed"
    );
    let out = site.cli(&["token", "create", "--role", "sheriff", "--name", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sheriff"));

    let out = site.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = firelane::audit::verify(&site.store).await.unwrap();
    assert_eq!(entries.entries, 1);
    sqlx::query("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1")
        .execute(site.store.pool())
        .await
        .unwrap();
    let out = site.cli(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("entry 1 (bundle.export") && err.contains("does not match its hash"),
        "{err}"
    );

    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officer_page_in_headless_chromium_reviews_and_downloads_a_bundle() {
    let site = Site::start().await;
    let officer = site.token(Role::Officer).await;
    let download = site.data.path().join("from-browser.zip");
    let result = common::browser_walk(
        "officer.mjs",
        vec![
            ("BASE_URL", site.base.clone()),
            ("TOKEN", officer.clone()),
            ("DOWNLOAD_PATH", download.display().to_string()),
        ],
    )
    .await;
    assert_eq!(result["ok"], true);
    assert_eq!(result["violation"], site.violation.as_str());
    assert_eq!(result["review_status"], "confirmed");
    assert!(result["images"].as_u64().unwrap() >= 2, "{result}");

    // What the browser saved is a bundle that verifies against the site key.
    let (ok, text) = verify_cli(&download, Some(&site.data.path().join("site.key.pub")));
    assert!(ok, "{text}");
    // The review the page made is recorded, by the officer.
    let v = site
        .store
        .violation(&site.violation)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.review_status, "confirmed");
    let reviews = site.store.reviews(&site.violation).await.unwrap();
    assert_eq!(reviews[0].actor, "officer-user");
    assert_eq!(reviews[0].note, "seen on site");
    site.stop().await;
}
