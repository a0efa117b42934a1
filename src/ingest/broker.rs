//! The embedded MQTT broker (rumqttd), so a small site runs with nothing
//! else installed. It serves MQTT 3.1.1 (cameras, sensors, mosquitto_pub)
//! and MQTT 5 (firelane's own client) on loopback by default.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::EmbeddedBrokerConfig;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker settings: {0}")]
    Settings(String),
    #[error("embedded broker did not start listening on {0} within 10 s (is the port taken?)")]
    NotListening(SocketAddr),
}

/// Starts the broker on its own thread (rumqttd blocks and has no shutdown
/// handle; it ends with the process) and waits until both ports accept.
pub async fn start(cfg: &EmbeddedBrokerConfig, max_payload: usize) -> Result<(), BrokerError> {
    let v4: SocketAddr = cfg
        .listen
        .parse()
        .map_err(|e| BrokerError::Settings(format!("listen: {e}")))?;
    let v5: SocketAddr = cfg
        .listen_v5
        .parse()
        .map_err(|e| BrokerError::Settings(format!("listen_v5: {e}")))?;
    // Payload limit above the frame limit, so firelane's own size check
    // (with its clear message) is what refuses an oversized frame.
    let payload = max_payload + 64 * 1024;
    let toml_cfg = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = {segment}
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{v4}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = {payload}
max_inflight_count = 100
dynamic_filters = true

[v5.1]
name = "v5-1"
listen = "{v5}"
next_connection_delay_ms = 1
[v5.1.connections]
connection_timeout_ms = 60000
max_payload_size = {payload}
max_inflight_count = 100
dynamic_filters = true
"#,
        segment = (payload * 4).max(100 * 1024 * 1024),
    );
    let config: rumqttd::Config =
        toml::from_str(&toml_cfg).map_err(|e| BrokerError::Settings(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError::Settings(e.to_string()))?;
    for addr in [v4, v5] {
        wait_listening(addr).await?;
    }
    tracing::info!(%v4, %v5, "embedded MQTT broker listening");
    Ok(())
}

async fn wait_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BrokerError::NotListening(addr))
}
