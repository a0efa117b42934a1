//! The embedded broker with users: a camera without credentials or with a
//! wrong password is refused, a camera publishing to another camera's topic
//! or spoofing firelane's outputs is cut off, a subscriber gets only what
//! its rights cover, and the same holds over TLS with a CA made here.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::{free_port, jpeg_frame};
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

fn config(data: &Path, v4: u16, v5: u16, tls: u16, hash: &str) -> String {
    format!(
        r#"
[storage]
data_dir = "{data}"
[model]
path = "{model}"
[mqtt]
url = "mqtt://127.0.0.1:{v5}"
topic_prefix = "site"
[mqtt.embedded_broker]
listen = "127.0.0.1:{v4}"
listen_v5 = "127.0.0.1:{v5}"
listen_tls = "127.0.0.1:{tls}"
cert_file = "{data}/server.pem"
key_file = "{data}/server.key"
[[mqtt.embedded_broker.users]]
name = "cam1"
password_hash = "{hash}"
cameras = ["cam1"]
[[mqtt.embedded_broker.users]]
name = "loop"
password_hash = "{hash}"
sensors = ["loop-1"]
[[mqtt.embedded_broker.users]]
name = "ha"
password_hash = "{hash}"
subscribe = ["site/#"]
[http]
enabled = false
[tracking]
sensor_weight = 10
grace_s = 0
[[cameras]]
id = "cam1"
[[cameras]]
id = "cam2"
[[zones]]
id = "lane-1"
camera = "cam1"
polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 0.9], [0.1, 0.9]]
[[zones]]
id = "lane-2"
camera = "cam2"
polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 0.9], [0.1, 0.9]]
[[sensors]]
id = "loop-1"
zone = "lane-1"
"#,
        data = data.display(),
        model = firelane::config::DEFAULT_MODEL,
    )
}

/// A client's view of its connection: what it received, and how it ended.
struct Client {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Result<(String, Vec<u8>), String>>,
}

async fn connect(
    port: u16,
    login: Option<(&str, &str)>,
    tls_ca: Option<&Path>,
    id: &str,
) -> Client {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    if let Some((u, p)) = login {
        opts.set_credentials(u, p);
    }
    if let Some(ca) = tls_ca {
        let _ = rustls::crypto::ring::default_provider().install_default();
        opts.set_transport(rumqttc::Transport::tls(
            std::fs::read(ca).unwrap(),
            None,
            None,
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = tx.send(Ok(("connack".into(), Vec::new())));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(Ok((p.topic.clone(), p.payload.to_vec())));
                }
                Ok(_) => {}
                Err(e) => {
                    let refused = matches!(
                        e,
                        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)
                    );
                    let _ = tx.send(Err(if refused {
                        "not authorized".into()
                    } else {
                        e.to_string()
                    }));
                    return;
                }
            }
        }
    });
    Client { client, rx }
}

impl Client {
    /// The next thing that happened within 30 s (a loaded machine runs
    /// the model for the first time in that span).
    async fn next(&mut self) -> Result<(String, Vec<u8>), String> {
        tokio::time::timeout(Duration::from_secs(30), self.rx.recv())
            .await
            .expect("something within 30 s")
            .expect("the client task is alive")
    }

    async fn connected(&mut self) {
        assert_eq!(self.next().await, Ok(("connack".into(), Vec::new())));
    }

    async fn frame(&self, camera: &str, at: i64) {
        let body = serde_json::json!({
            "captured_at": firelane::base::time::format_rfc3339(at),
            "jpeg_base64": base64::engine::general_purpose::STANDARD.encode(jpeg_frame(640, 480, at as u32)),
        });
        self.client
            .publish(
                format!("site/cameras/{camera}/frame"),
                QoS::AtLeastOnce,
                false,
                body.to_string(),
            )
            .await
            .unwrap();
    }

    /// Waits for a message on `topic` (skipping others).
    async fn wait(&mut self, topic: &str) -> Vec<u8> {
        loop {
            match self.next().await {
                Ok((t, p)) if t == topic => return p,
                Ok(_) => {}
                Err(e) => panic!("connection ended waiting for {topic}: {e}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_topic_rights_hold_on_plain_and_tls_listeners() {
    let data = tempfile::tempdir().unwrap();
    common::test_ca(data.path());
    let (v4, v5, tls) = (free_port(), free_port(), free_port());
    let hash = firelane::config::broker::hash_password("p4ss-word");
    let text = config(data.path(), v4, v5, tls, &hash);
    let config = firelane::config::Config::from_toml(&text, "gate.toml").unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(firelane::runtime::daemon::run(config, shutdown.clone()));
    common::faults::wait_port(v4).await;

    // No credentials, a wrong password: refused at CONNECT.
    let mut anon = connect(v4, None, None, "anon").await;
    assert_eq!(anon.next().await, Err("not authorized".into()));
    let mut wrong = connect(v4, Some(("cam1", "guess")), None, "wrong").await;
    assert_eq!(wrong.next().await, Err("not authorized".into()));

    // The subscriber with rights on site/#; one asking for more is cut off.
    let mut ha = connect(v5, Some(("ha", "p4ss-word")), None, "ha").await;
    ha.connected().await;
    ha.client
        .subscribe("site/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    // firelane subscribes before it says it is online: the frames and the
    // reading below (not retained) are not sent into the void.
    assert_eq!(ha.wait("site/available").await, b"online");
    let mut greedy = connect(v4, Some(("ha", "p4ss-word")), None, "greedy").await;
    greedy.connected().await;
    greedy
        .client
        .subscribe("#", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(
        greedy.next().await.is_err(),
        "a subscription beyond the rights closes the connection"
    );

    // A camera publishing to another camera's topic, or spoofing an alert.
    let t0 = firelane::base::time::wall_clock_ms() - 60_000;
    let mut rogue = connect(v4, Some(("cam1", "p4ss-word")), None, "rogue").await;
    rogue.connected().await;
    rogue.frame("cam2", t0).await;
    assert!(
        rogue.next().await.is_err(),
        "publishing to cam2's topic closes the connection"
    );
    let mut spoof = connect(v4, Some(("cam1", "p4ss-word")), None, "spoof").await;
    spoof.connected().await;
    spoof
        .client
        .publish(
            "site/violations",
            QoS::AtLeastOnce,
            false,
            "{\"event\":\"end\"}",
        )
        .await
        .unwrap();
    assert!(
        spoof.next().await.is_err(),
        "spoofing an output closes the connection"
    );

    // The camera over TLS and the sensor on the plain port, each with its
    // own rights: a violation, seen by the subscriber.
    let mut sensor = connect(v4, Some(("loop", "p4ss-word")), None, "loop").await;
    sensor.connected().await;
    let ca = data.path().join("ca.pem");
    let mut cam = connect(tls, Some(("cam1", "p4ss-word")), Some(&ca), "cam1").await;
    cam.connected().await;
    sensor
        .client
        .publish(
            "site/sensors/loop-1",
            QoS::AtLeastOnce,
            false,
            serde_json::json!({"measured_at": firelane::base::time::format_rfc3339(t0), "occupied": true}).to_string(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cam.frame("cam1", t0).await;
    cam.frame("cam1", t0 + 1000).await;
    let event: serde_json::Value =
        serde_json::from_slice(&ha.wait("site/violations").await).unwrap();
    assert_eq!(event["event"], "new");
    assert_eq!(event["violation"]["zone"], "lane-1");
    // Nothing the rogue clients sent reached anyone.
    while let Ok(Ok((topic, payload))) = ha.rx.try_recv() {
        assert!(
            !(topic == "site/violations" && payload == b"{\"event\":\"end\"}"),
            "the spoofed alert was delivered"
        );
    }
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    let store =
        firelane::store::Store::open(&format!("sqlite://{}/firelane.db", data.path().display()))
            .await
            .unwrap();
    let v = store.violations().await.unwrap();
    assert_eq!(v.len(), 1, "only lane-1, nothing on cam2: {v:?}");
    assert_eq!(v[0].zone, "lane-1");
}

#[test]
fn a_listener_beyond_loopback_needs_users() {
    let text = r#"
[mqtt.embedded_broker]
listen = "0.0.0.0:1883"
listen_v5 = "127.0.0.1:1884"
[[cameras]]
id = "cam1"
"#;
    let err = firelane::config::Config::from_toml(text, "open.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[mqtt.embedded_broker]")
            && err.contains("listen")
            && err.contains("0.0.0.0:1883"),
        "{err}"
    );
    let hash = firelane::config::broker::hash_password("x");
    let with_users = format!(
        "{text}[[mqtt.embedded_broker.users]]\nname = \"cam1\"\npassword_hash = \"{hash}\"\ncameras = [\"cam1\"]\n"
    );
    firelane::config::Config::from_toml(&with_users, "open.toml").unwrap();
    let bad = with_users.replace("cameras = [\"cam1\"]", "cameras = [\"cam9\"]");
    let err = firelane::config::Config::from_toml(&bad, "open.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("user \"cam1\"") && err.contains("no camera \"cam9\""),
        "{err}"
    );
}
