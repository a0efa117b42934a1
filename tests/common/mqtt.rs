//! MQTT test support: the site config the daemon tests share, a listener
//! on everything under `site/`, and a camera/sensor publisher.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use super::Mosquitto;

pub fn rfc(ms: i64) -> String {
    firelane::base::time::format_rfc3339(ms)
}

/// The test site; its HTTP API on an ephemeral port.
pub fn config_toml(broker: &Mosquitto, data_dir: &Path) -> String {
    config_toml_http(broker, data_dir, 0)
}

/// The test site with its HTTP API on `http_port`.
pub fn config_toml_http(broker: &Mosquitto, data_dir: &Path, http_port: u16) -> String {
    format!(
        r#"
[storage]
data_dir = "{data}"

[model]
path = "{model}"

[mqtt]
url = "{url}"
client_id = "firelane-under-test"
topic_prefix = "site"

[http]
listen = "127.0.0.1:{http_port}"

[tracking]
grace_s = 60
clear_s = 10
# The presence sensor decides (the synthetic frames show no real car); the
# frames still go through decode, the real model and evidence.
sensor_weight = 10
update_every_s = 0
# Ends after clear_s alone; the re-attach window has tests of its own.
reattach_s = 0

[[cameras]]
id = "cam1"

[[zones]]
id = "lane-1"
camera = "cam1"
polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 0.9], [0.1, 0.9]]

[[sensors]]
id = "loop-1"
zone = "lane-1"
"#,
        data = data_dir.display(),
        model = firelane::config::DEFAULT_MODEL,
        url = broker.url(),
    )
}

/// Subscribes to everything under `site/` and forwards (topic, payload).
pub async fn listener(
    broker: &Mosquitto,
    id: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    listener_on(broker, id, "site/#").await
}

/// Subscribes to `filter` and forwards (topic, payload).
pub async fn listener_on(
    broker: &Mosquitto,
    id: &str,
    filter: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", broker.port);
    opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let sub = client.clone();
    let filter = filter.to_string();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                // On every (re)connection: a clean session forgets the
                // subscription, and one sent on a connection that then
                // broke is not sent again by rumqttc.
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    sub.try_subscribe(filter.as_str(), QoS::AtLeastOnce)
                        .unwrap();
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (client, rx)
}

pub struct Publisher {
    client: AsyncClient,
}

impl Publisher {
    pub async fn frame(&self, at: i64, jpeg: &[u8]) {
        let body = serde_json::json!({
            "captured_at": rfc(at),
            "jpeg_base64": base64::engine::general_purpose::STANDARD.encode(jpeg),
        });
        self.raw("site/cameras/cam1/frame", body.to_string().into_bytes())
            .await;
        // Room to score it before the next: a newer frame replaces one still
        // waiting (the overload policy), and the tests assert exact times.
        tokio::time::sleep(Duration::from_millis(70)).await;
    }
    pub async fn sensor(&self, at: i64, occupied: bool) {
        let body =
            serde_json::json!({"sensor": "loop-1", "measured_at": rfc(at), "occupied": occupied});
        self.raw("site/sensors/loop-1", body.to_string().into_bytes())
            .await;
    }
    pub async fn raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        // keep one ordered stream through the broker
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

pub async fn publisher(broker: &Mosquitto, id: &str) -> Publisher {
    publisher_on(broker.port, id, 100)
}

/// A publishing client on a loopback `port` whose event loop reconnects
/// on its own; `capacity` requests may wait while the broker is away.
pub fn publisher_on(port: u16, id: &str, capacity: usize) -> Publisher {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, capacity);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    Publisher { client }
}

/// Waits for a message on `topic` whose JSON `event` is `event`.
pub async fn wait_event(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    seen: &mut Vec<(String, Vec<u8>)>,
    topic: &str,
    pred: impl Fn(&[u8]) -> bool,
) {
    if seen.iter().any(|(t, p)| t == topic && pred(p)) {
        return;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no matching message on {topic} within 60 s; saw {:?}",
                    summary(seen)
                )
            })
            .expect("listener alive");
        let hit = msg.0 == topic && pred(&msg.1);
        seen.push(msg);
        if hit {
            return;
        }
    }
}

/// Waits for the retained state of zone lane-1 to read `state`.
pub async fn wait_state(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    seen: &mut Vec<(String, Vec<u8>)>,
    state: &str,
) {
    wait_event(rx, seen, "site/zones/lane-1/state", |p| {
        serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|v| v["state"] == state)
    })
    .await;
}

pub fn summary(seen: &[(String, Vec<u8>)]) -> Vec<String> {
    seen.iter()
        .map(|(t, p)| format!("{t}: {}", String::from_utf8_lossy(&p[..p.len().min(160)])))
        .collect()
}

pub fn event_is(kind: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|v| v["event"] == kind)
}

pub fn count_events(seen: &[(String, Vec<u8>)], kind: &str) -> usize {
    seen.iter()
        .filter(|(t, p)| t == "site/violations" && event_is_dyn(p, kind))
        .count()
}

pub fn event_is_dyn(p: &[u8], kind: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|v| v["event"] == kind)
}
