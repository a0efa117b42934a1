//! The embedded MQTT broker (rumqttd), so a small site runs with nothing
//! else installed. rumqttd listens on two loopback ports of its own (MQTT
//! 3.1.1 and 5) that only firelane's own clients use; what the site sees on
//! `listen`, `listen_v5` and `listen_tls` is the [`super::gate`], which
//! checks logins and topic rights before anything reaches rumqttd.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::gate::{Gate, Rights};
use super::mqtt::IngestMetrics;
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker settings: {0}")]
    Settings(String),
    #[error("embedded broker did not start listening on {0} within 10 s (is the port taken?)")]
    NotListening(SocketAddr),
    #[error("[mqtt.embedded_broker] cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("[mqtt.embedded_broker] {field} {path}: {message}")]
    Tls {
        field: &'static str,
        path: String,
        message: String,
    },
}

/// rumqttd's own MQTT 5 address, once it runs in this process: firelane's
/// clients connect there, past the gate.
static INTERNAL_V5: OnceLock<SocketAddr> = OnceLock::new();

pub fn internal_v5() -> Option<SocketAddr> {
    INTERNAL_V5.get().copied()
}

/// A loopback port free now (for rumqttd, which cannot report the port it
/// bound to 0).
fn free_loopback() -> Result<SocketAddr, BrokerError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|source| BrokerError::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })
}

fn tls_acceptor(
    b: &crate::config::EmbeddedBrokerConfig,
) -> Result<tokio_rustls::TlsAcceptor, BrokerError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert, key) = (
        b.cert_file.clone().unwrap_or_default(),
        b.key_file.clone().unwrap_or_default(),
    );
    let err = |field, path: &std::path::Path, message: String| BrokerError::Tls {
        field,
        path: path.display().to_string(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect())
        .map_err(|e| err("cert_file", &cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(err("cert_file", &cert, "holds no certificate".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&key).map_err(|e| err("key_file", &key, e.to_string()))?;
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| err("cert_file", &cert, e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// Binds the configured listeners, starts rumqttd on its own thread (it
/// blocks and has no shutdown handle; it ends with the process) on hidden
/// loopback ports, then serves the gate on those listeners.
pub async fn start(config: &Config, metrics: Arc<IngestMetrics>) -> Result<(), BrokerError> {
    let Some(cfg) = &config.mqtt.embedded_broker else {
        return Ok(());
    };
    let max_payload = config.mqtt.max_payload_bytes;
    // The site's listeners are bound first, so the hidden ports picked
    // next can never be one of them (a free port picked here and released
    // could otherwise be handed out again before its listener binds it).
    let tls = match &cfg.listen_tls {
        Some(addr) => Some((addr.clone(), tls_acceptor(cfg)?)),
        None => None,
    };
    let mut bound = Vec::new();
    for (addr, tls) in [
        Some((cfg.listen.clone(), None)),
        Some((cfg.listen_v5.clone(), None)),
        tls.map(|(a, t)| (a, Some(t))),
    ]
    .into_iter()
    .flatten()
    {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| BrokerError::Bind {
                addr: addr.clone(),
                source,
            })?;
        bound.push((addr, listener, tls));
    }
    let (v4, v5) = (free_loopback()?, free_loopback()?);
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
    let inner: rumqttd::Config =
        toml::from_str(&toml_cfg).map_err(|e| BrokerError::Settings(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(inner);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError::Settings(e.to_string()))?;
    for addr in [v4, v5] {
        wait_listening(addr).await?;
    }
    let _ = INTERNAL_V5.set(v5);
    let gate = Arc::new(Gate {
        rights: Rights::of(config),
        upstream_v4: v4,
        upstream_v5: v5,
        max_packet: payload,
        metrics,
    });
    for (addr, listener, tls) in bound {
        tracing::info!(%addr, tls = tls.is_some(), users = cfg.users.len(), "embedded MQTT broker listening");
        tokio::spawn(gate.clone().serve(listener, tls));
    }
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
