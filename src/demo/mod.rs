//! `firelane demo`: the product working within a minute, with nothing wired.
//!
//! The real daemon runs on its embedded broker and SQLite in a data folder
//! of its own; a scenario's frames and sensor readings are published to that
//! broker as a camera and a sensor would, on an accelerated clock: the
//! recording's span is replayed in `seconds`, ending about now, each input
//! stamped with its (shifted) capture time. Nothing here decides anything:
//! what the page shows is what the daemon made of the inputs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio_util::sync::CancellationToken;

use crate::base::time::{Millis, format_rfc3339, wall_clock_ms};
use crate::base::topics;
use crate::config::{Config, ConfigError, EmbeddedBrokerConfig};
use crate::replay::scenario::Scenario;

/// Where the bundled sample is looked for, in order: beside the working
/// folder (a clone), where the Debian package puts it, then the source tree
/// the binary was built from (`cargo run` from elsewhere).
pub fn sample_dirs() -> Vec<PathBuf> {
    vec![
        PathBuf::from("samples/demo"),
        PathBuf::from("/usr/share/firelane/samples/demo"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/demo"),
    ]
}

/// The demo site: the built-in configuration's broker, API and storage
/// settings with the scenario's cameras, zones and sensors. Its inputs are
/// a recording replayed into the past, so the past-skew check is off.
pub fn config(
    scenario: &Scenario,
    data_dir: &Path,
    listen: &str,
    broker: (SocketAddr, SocketAddr),
) -> Result<Config, ConfigError> {
    let builtin = Config::builtin();
    let base = builtin.raw();
    let mut raw = scenario.to_raw_config(scenario.file.grace_s);
    raw.storage = base.storage.clone();
    raw.storage.data_dir = data_dir.to_path_buf();
    raw.model = base.model.clone();
    raw.mqtt = base.mqtt.clone();
    raw.mqtt.embedded_broker = Some(EmbeddedBrokerConfig {
        listen: broker.0.to_string(),
        listen_v5: broker.1.to_string(),
        ..base
            .mqtt
            .embedded_broker
            .clone()
            .expect("the built-in config runs the embedded broker (tested)")
    });
    raw.http = base.http.clone();
    raw.http.listen = listen.to_string();
    raw.ingest.max_past_skew_s = 0.0;
    Config::from_raw(raw, &format!("(demo of {})", scenario.dir.display()), None)
}

/// One input of the feed, in capture order.
enum Input<'a> {
    Frame(&'a crate::replay::scenario::FrameLine),
    Reading(&'a crate::replay::scenario::SensorLine),
}

/// What [`feed`] published.
#[derive(Debug, Default)]
pub struct Fed {
    pub frames: usize,
    pub readings: usize,
    pub unreadable: usize,
}

/// Publishes the scenario to the broker at `port` (MQTT 3.1.1) over about
/// `seconds`, the last input stamped near the time of publishing.
pub async fn feed(
    scenario: &Scenario,
    prefix: &str,
    port: u16,
    seconds: f64,
    stop: &CancellationToken,
) -> anyhow::Result<Fed> {
    let mut inputs: Vec<(Millis, Input)> = scenario
        .frames
        .iter()
        .map(|f| (f.captured_at, Input::Frame(f)))
        .chain(
            scenario
                .sensors
                .iter()
                .map(|r| (r.measured_at, Input::Reading(r))),
        )
        .collect();
    // Stable: at one instant a reading keeps its place after the frame.
    inputs.sort_by_key(|(t, _)| *t);
    let (Some(first), Some(last)) = (inputs.first(), inputs.last()) else {
        anyhow::bail!("{}: no frames or readings to feed", scenario.dir.display());
    };
    let (first, span) = (first.0, (last.0 - first.0).max(1));
    let mut opts = MqttOptions::new(
        format!("firelane-demo-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    opts.set_max_packet_size(64 * 1024 * 1024, 64 * 1024 * 1024);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let pump = tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                // rumqttc reconnects on the next poll.
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), connected)
        .await
        .map_err(|_| {
            anyhow::anyhow!("the demo's broker on 127.0.0.1:{port} did not answer within 30 s")
        })??;
    // The clock starts once the camera is connected.
    let start_wall = wall_clock_ms();
    let started = tokio::time::Instant::now();
    let shift = start_wall + (seconds * 1000.0) as i64 - last.0;
    let mut fed = Fed::default();
    for (at, input) in &inputs {
        let due = started + Duration::from_secs_f64(seconds * (at - first) as f64 / span as f64);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        // Never ahead of now: a capture time from the future is refused.
        let stamped = (at + shift).min(wall_clock_ms());
        match input {
            Input::Frame(f) => {
                let path = scenario.frame_path(f);
                let Ok(jpeg) = std::fs::read(&path) else {
                    tracing::warn!(file = %path.display(), "demo frame unreadable; skipped");
                    fed.unreadable += 1;
                    continue;
                };
                let body = serde_json::json!({
                    "captured_at": format_rfc3339(stamped),
                    "jpeg_base64": base64::engine::general_purpose::STANDARD.encode(jpeg),
                });
                client
                    .publish(
                        topics::camera_frame(prefix, &f.camera),
                        QoS::AtMostOnce,
                        false,
                        body.to_string(),
                    )
                    .await?;
                fed.frames += 1;
            }
            Input::Reading(r) => {
                let body = serde_json::json!({
                    "sensor": r.sensor,
                    "measured_at": format_rfc3339(stamped),
                    "occupied": r.occupied,
                });
                client
                    .publish(
                        topics::sensor(prefix, &r.sensor),
                        QoS::AtLeastOnce,
                        false,
                        body.to_string(),
                    )
                    .await?;
                fed.readings += 1;
            }
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), pump).await;
    Ok(fed)
}

/// A free loopback address (bound, then released for the broker).
pub fn free_loopback() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}
