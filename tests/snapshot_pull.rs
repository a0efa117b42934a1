//! Pulled cameras against a local HTTP(S) server standing in for IP
//! cameras: open, Basic, Digest (checked here by hand, RFC 7616, with a
//! nonce that goes stale), HTTPS with a site CA, a wrong password, a slow
//! one and a broken one. The daemon is the real one, in process.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use md5::{Digest, Md5};
use tokio_util::sync::CancellationToken;

use common::free_port;
use firelane::api::auth::{Role, create_token};
use firelane::config::Config;
use firelane::store::Store;

const USER: &str = "admin";
const PASSWORD: &str = "cam-secret";
const REALM: &str = "IP Camera(C1234)";

#[derive(Default)]
struct Cameras {
    frames: Vec<Vec<u8>>,
    served: Mutex<HashMap<String, u64>>,
    challenges: AtomicU64,
    /// Per camera, the nonce and how often it was used: it goes stale
    /// after 3 uses.
    nonces: Mutex<HashMap<String, (String, u32)>>,
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// `k="v"` and `k=v` pairs of an `Authorization: Digest …` value.
fn digest_params(v: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = v.trim_start_matches("Digest").trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_string();
        rest = &rest[eq + 1..];
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap();
            value = r[..end].to_string();
            rest = &r[end + 1..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches(',').trim();
        out.insert(key, value);
    }
    out
}

impl Cameras {
    fn frame(&self, kind: &str) -> Response {
        let mut served = self.served.lock().unwrap();
        let n = served.entry(kind.to_string()).or_default();
        *n += 1;
        let jpeg = self.frames[*n as usize % self.frames.len()].clone();
        ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response()
    }

    fn challenge(&self, kind: &str, stale: bool) -> Response {
        self.challenges.fetch_add(1, Ordering::Relaxed);
        let mut nonces = self.nonces.lock().unwrap();
        let n = nonces.entry(kind.to_string()).or_default();
        *n = (format!("{:032x}", rand_nonce()), 0);
        let value = format!(
            "Digest realm=\"{REALM}\", qop=\"auth\", nonce=\"{}\", opaque=\"op1\", algorithm=MD5{}",
            n.0,
            if stale { ", stale=TRUE" } else { "" }
        );
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, value)],
        )
            .into_response()
    }

    /// RFC 7616 with qop=auth, MD5: the response the camera expects.
    fn digest_ok(&self, kind: &str, headers: &HeaderMap, uri: &str) -> Result<(), bool> {
        let Some(v) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(false);
        };
        let p = digest_params(v);
        let get = |k: &str| p.get(k).cloned().unwrap_or_default();
        let mut nonces = self.nonces.lock().unwrap();
        let nonce = nonces.entry(kind.to_string()).or_default();
        if get("nonce") != nonce.0 || get("uri") != uri || get("username") != USER {
            return Err(get("nonce") != nonce.0);
        }
        nonce.1 += 1;
        if nonce.1 > 3 {
            return Err(true);
        }
        let ha1 = md5_hex(&format!("{USER}:{REALM}:{PASSWORD}"));
        let ha2 = md5_hex(&format!("GET:{uri}"));
        let want = md5_hex(&format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            nonce.0,
            get("nc"),
            get("cnonce")
        ));
        if get("response") == want && get("opaque") == "op1" {
            Ok(())
        } else {
            Err(false)
        }
    }
}

fn rand_nonce() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn snap(
    State(cams): State<Arc<Cameras>>,
    UrlPath(kind): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    match kind.as_str() {
        "open" | "tls" => cams.frame(&kind),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            cams.frame(&kind)
        }
        "broken" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "html" => ([(header::CONTENT_TYPE, "text/html")], "<html>login</html>").into_response(),
        "basic" => {
            use base64::Engine;
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
            );
            if headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                == Some(&want)
            {
                cams.frame(&kind)
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"cam\"")],
                )
                    .into_response()
            }
        }
        "digest" | "digest-wrong" => {
            match cams.digest_ok(&kind, &headers, &format!("/{kind}/picture?channel=101")) {
                Ok(()) => cams.frame(&kind),
                Err(stale) => cams.challenge(&kind, stale),
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An HTTPS listener for axum: TLS accepted per connection.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((s, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(io) = self.tls.accept(s).await {
                return (io, addr);
            }
        }
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn tls_acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn sample_frames() -> Vec<Vec<u8>> {
    // The frames with all three zones taken (the 21st to the 25th).
    common::sample_frames(20..25)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_cameras_feed_the_pipeline_and_report_their_failures() {
    let cams = Arc::new(Cameras {
        frames: sample_frames(),
        ..Default::default()
    });
    let app = axum::Router::new()
        .route("/{kind}/picture", axum::routing::get(snap))
        .with_state(cams.clone());
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_port = http.local_addr().unwrap().port();
    tokio::spawn(axum::serve(http, app.clone()).into_future());
    let certs = tempfile::tempdir().unwrap();
    common::test_ca(certs.path());
    let https = TlsListener {
        tcp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tls: tls_acceptor(certs.path()),
    };
    let https_port = https.tcp.local_addr().unwrap().port();
    tokio::spawn(axum::serve(https, app).into_future());

    let data = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let base = format!("http://127.0.0.1:{http_port}");
    // 1 s for the camera that answers in 3 s; room for a loaded machine
    // where every pull must succeed.
    let camera = |id: &str, extra: &str| {
        let timeout = if id == "slow" { 1 } else { 5 };
        format!(
            "[[cameras]]\nid = \"{id}\"\nsnapshot_url = \"{base}/{id}/picture?channel=101\"\ninterval_s = 0.5\ntimeout_s = {timeout}\n{extra}\n"
        )
    };
    let login = format!("username = \"{USER}\"\npassword = \"{PASSWORD}\"");
    let mut toml = format!(
        r#"
[storage]
data_dir = "{data}"
[mqtt]
url = "mqtt://127.0.0.1:{v5}"
[mqtt.embedded_broker]
listen = "127.0.0.1:{v4}"
listen_v5 = "127.0.0.1:{v5}"
[http]
listen = "127.0.0.1:{api_port}"
[tracking]
grace_s = 2
"#,
        data = data.path().display(),
        v4 = free_port(),
        v5 = free_port(),
    );
    toml += &camera("open", "");
    toml += &camera("basic", &login);
    toml += &camera("digest", &login);
    toml += &camera(
        "digest-wrong",
        &format!("username = \"{USER}\"\npassword = \"guess\""),
    );
    toml += &camera("slow", "");
    toml += &camera("broken", "");
    toml += &camera("html", "");
    toml += &format!(
        "[[cameras]]\nid = \"tls\"\nsnapshot_url = \"https://localhost:{https_port}/tls/picture\"\ninterval_s = 0.5\nca_file = \"{}\"\n",
        certs.path().join("ca.pem").display()
    );
    // The sample's three zones on the open camera: pulled frames are
    // judged like published ones.
    for (id, poly) in [
        (
            "open-west",
            "[[0.0417, 0.3148], [0.4792, 0.3148], [0.4792, 0.5926], [0.0417, 0.5926]]",
        ),
        (
            "open-bay",
            "[[0.4167, 0.6667], [0.5833, 0.6667], [0.5833, 0.963], [0.4167, 0.963]]",
        ),
    ] {
        toml += &format!("[[zones]]\nid = \"{id}\"\ncamera = \"open\"\npolygon = {poly}\n");
    }
    let cfg_path = data.path().join("site.toml");
    std::fs::write(&cfg_path, &toml).unwrap();
    let cfg = Config::load(&cfg_path).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&cfg.storage.database_url).await.unwrap();
    let token = create_token(&store, "t", Role::Admin, 0)
        .await
        .unwrap()
        .token;

    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(firelane::runtime::daemon::run(cfg, shutdown.clone()));
    let client = firelane::alerts::webhook::client();
    let get = |path: &str| {
        client
            .get(format!("http://127.0.0.1:{api_port}{path}"))
            .bearer_auth(&token)
            .send()
    };

    // Until every camera has had its chance: the healthy ones pulled a few
    // times, the broken one failed twice in a row, and the open camera's
    // zones judged into violations.
    let mut cameras = serde_json::Value::Null;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(r) = get("/api/cameras").await
            && let Ok(v) = r.json::<serde_json::Value>().await
        {
            cameras = v;
        }
        let report = |id: &str| -> serde_json::Value {
            cameras["cameras"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["id"] == id))
                .map(|c| c["snapshot"].clone())
                .unwrap_or_default()
        };
        let pulls = |id: &str| report(id)["pulls"].as_u64().unwrap_or(0);
        let violations = store.violations().await.unwrap().len();
        let done = ["open", "basic", "digest", "tls"]
            .iter()
            .all(|c| pulls(c) >= 5)
            && report("broken")["failing_for"].as_u64().unwrap_or(0) >= 2
            && report("slow")["failures"].as_u64().unwrap_or(0) >= 1
            && violations >= 2;
        if done || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let report = |id: &str| -> serde_json::Value {
        cameras["cameras"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id))
            .map(|c| c["snapshot"].clone())
            .unwrap_or_else(|| panic!("no camera {id} in {cameras}"))
    };
    for id in ["open", "basic", "digest", "tls"] {
        let r = report(id);
        assert!(r["pulls"].as_u64().unwrap() >= 5, "{id}: {r}");
        assert_eq!(r["failures"], 0, "{id}: {r}");
        assert!(r["last_error"].is_null(), "{id}: {r}");
    }
    // The digest camera's nonce went stale every three requests and was
    // answered anew without a failed pull; a kept answer saves requests.
    let digest_pulls = report("digest")["pulls"].as_u64().unwrap();
    let challenges = cams.challenges.load(Ordering::Relaxed);
    assert!(challenges >= 2, "{challenges}");
    // Query values may be keys: shown redacted.
    let url = report("digest")["url"].as_str().unwrap().to_string();
    assert!(url.ends_with("/digest/picture?channel=(redacted)"), "{url}");

    let r = report("digest-wrong");
    assert_eq!(r["pulls"], 0, "{r}");
    assert!(
        r["last_error"]
            .as_str()
            .unwrap()
            .contains("refused the login (HTTP 401 to Digest authentication)"),
        "{r}"
    );
    let r = report("slow");
    assert!(
        r["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer within 1s"),
        "{r}"
    );
    let r = report("broken");
    assert!(
        r["last_error"].as_str().unwrap().starts_with("HTTP 500"),
        "{r}"
    );
    // Backing off: the wait doubled from the 0.5 s interval.
    assert!(r["next_in_s"].as_f64().unwrap() >= 2.0, "{r}");
    let r = report("html");
    assert!(
        r["last_error"]
            .as_str()
            .unwrap()
            .contains("not a JPEG (Content-Type text/html"),
        "{r}"
    );
    // Frames made it into the pipeline: the open camera's picture is the
    // editor's, and its zones became violations on pulled frames.
    let open = cameras["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "open")
        .unwrap();
    assert_eq!(open["latest"]["width"], 960, "{open}");
    let mut zones: Vec<String> = store
        .violations()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.zone)
        .collect();
    zones.sort();
    zones.dedup();
    assert_eq!(zones, ["open-bay", "open-west"]);

    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for line in [
        "firelane_snapshot_failures_total{camera=\"broken\"}",
        "firelane_snapshot_failing{camera=\"broken\"}",
        "firelane_snapshot_latency_seconds{camera=\"slow\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing");
    }
    let open_pulls: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("firelane_snapshot_pulls_total{camera=\"open\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(open_pulls >= 5.0);
    // The password is nowhere in what the API shows.
    assert!(!cameras.to_string().contains(PASSWORD));
    assert!(digest_pulls >= 5);

    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}
