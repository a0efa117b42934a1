//! The MQTT client: connects (TLS with rustls for `mqtts://`), subscribes,
//! reconnects with backoff and subscribes again, keeps
//! `<prefix>/available` retained `online` with an `offline` last will, and
//! hands parsed input to the pipeline through a bounded queue. The event
//! loop never waits on the pipeline: when the queue is full, input is
//! dropped and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::base::time::wall_clock_ms;
use crate::config::Config;

use super::clocks::ClockRule;
use super::payload::{Inbound, Limits, PayloadError, Subscription, TopicRouter};
use super::receipt::{Acks, Queued};

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("[mqtt] url `{url}`: {message}")]
    Url { url: String, message: String },
    #[error("[mqtt] ca_file {path}: {source}")]
    Ca {
        path: String,
        source: std::io::Error,
    },
}

/// Ingest counters.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    pub messages: AtomicU64,
    pub rejected: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub reconnects: AtomicU64,
    /// Between a ConnAck and the next connection error.
    pub connected: std::sync::atomic::AtomicBool,
    /// Each configured camera's and sensor's clock.
    pub clocks: super::clocks::ClockBook,
    /// Connections the embedded broker's gate refused or closed (login,
    /// topic rights, malformed packets).
    pub broker_refused: AtomicU64,
    /// Each pulled camera's snapshots.
    pub pulls: super::snapshot::PullBook,
}

/// How long the broker keeps firelane's session while it is away.
const SESSION_EXPIRY_S: u32 = 3600;

/// This instance's client id. Instances of a cluster share the config:
/// each gets its own, or the broker would keep only one connected.
pub fn client_id(config: &Config) -> String {
    match &config.cluster {
        Some(c) => format!("{}-{}", config.mqtt.client_id, c.instance),
        None => config.mqtt.client_id.clone(),
    }
}

/// The client options of firelane's main connection: `[mqtt]`, with a
/// persistent session and the `offline` last will.
pub fn options(config: &Config) -> Result<MqttOptions, MqttError> {
    let mut opts = connection_options(config, &client_id(config))?;
    // A persistent session: the broker keeps the subscriptions and queues
    // QoS 1 sensor readings while firelane reconnects or restarts.
    opts.set_clean_start(false);
    opts.set_session_expiry_interval(Some(SESSION_EXPIRY_S));
    // ... and keeps a reading until it is recorded: the tracker acknowledges it.
    opts.set_manual_acks(true);
    opts.set_last_will(LastWill::new(
        crate::base::topics::availability(config.prefix()),
        "offline",
        QoS::AtLeastOnce,
        true,
        None,
    ));
    Ok(opts)
}

/// Options for a connection to `[mqtt]`'s broker as `client_id`: address,
/// TLS, credentials and sizes, nothing session-specific.
pub fn connection_options(config: &Config, client_id: &str) -> Result<MqttOptions, MqttError> {
    let m = &config.mqtt;
    // With the broker in this process, firelane's clients go to it
    // directly, past the gate that checks everyone else.
    if m.embedded_broker.is_some()
        && let Some(addr) = super::broker::internal_v5()
    {
        let mut opts = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(15));
        opts.set_max_packet_size(Some((m.max_payload_bytes + 64 * 1024) as u32));
        opts.set_request_channel_capacity(256);
        return Ok(opts);
    }
    let url = url::Url::parse(&m.url).map_err(|e| MqttError::Url {
        url: m.url.clone(),
        message: e.to_string(),
    })?;
    let tls = url.scheme() == "mqtts";
    let host = url.host_str().ok_or_else(|| MqttError::Url {
        url: m.url.clone(),
        message: "no host".into(),
    })?;
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_max_packet_size(Some((m.max_payload_bytes + 64 * 1024) as u32));
    opts.set_request_channel_capacity(256);
    if let (Some(u), Some(p)) = (&m.username, &m.password) {
        opts.set_credentials(u.clone(), p.clone());
    }
    if tls {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_path = m.ca_file.as_ref().ok_or_else(|| MqttError::Url {
            url: m.url.clone(),
            message: "mqtts needs [mqtt] ca_file (PEM of the broker's CA)".into(),
        })?;
        let ca = std::fs::read(ca_path).map_err(|source| MqttError::Ca {
            path: ca_path.display().to_string(),
            source,
        })?;
        opts.set_transport(rumqttc::Transport::tls(ca, None, None));
    }
    Ok(opts)
}

pub fn connect(config: &Config) -> Result<(AsyncClient, EventLoop), MqttError> {
    let opts = options(config)?;
    Ok(AsyncClient::new(opts, 256))
}

/// Subscribes to `topics`, sensors at QoS 1 so the broker keeps their
/// readings for this session while the connection is down.
async fn subscribe(client: AsyncClient, topics: Vec<Subscription>) {
    for t in topics {
        let qos = if t.reliable {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        if let Err(e) = client.subscribe(t.topic.clone(), qos).await {
            tracing::warn!(topic = %t.topic, error = %e, "subscribe failed");
        }
    }
}

/// Where parsed input goes.
pub struct Sinks {
    pub frames: Arc<super::FrameSlots>,
    pub readings: mpsc::Sender<super::receipt::Queued>,
    /// The rolling recording, when configured.
    pub recorder: Option<crate::recording::Recorder>,
}

/// Runs the event loop until `shutdown`: subscribes on every connection,
/// parses messages and queues them for the pipeline. A configuration sent
/// on `updates` changes the topics routed (and subscribes new ones).
pub async fn run_event_loop(
    config: Arc<Config>,
    client: AsyncClient,
    mut eventloop: EventLoop,
    sinks: Sinks,
    mut updates: Option<watch::Receiver<Arc<Config>>>,
    metrics: Arc<IngestMetrics>,
    shutdown: CancellationToken,
) {
    let Sinks {
        frames,
        readings,
        recorder,
    } = sinks;
    let mut router = TopicRouter::new(&config);
    let mut limits = Limits {
        max_bytes: config.mqtt.max_payload_bytes,
        clock: ClockRule::of(&config),
    };
    let prefix = config.prefix().to_string();
    let mut backoff = Duration::from_millis(250);
    let acks = Acks::new(client.clone());
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => ev,
            changed = async {
                match updates.as_mut() {
                    Some(rx) => rx.changed().await.map(|_| rx.borrow_and_update().clone()),
                    None => std::future::pending().await,
                }
            } => {
                match changed {
                    Ok(new) => {
                        let before = router.subscriptions();
                        router = TopicRouter::new(&new);
                        limits.clock = ClockRule::of(&new);
                        metrics.clocks.retain(&new);
                        let after = router.subscriptions();
                        let added: Vec<Subscription> =
                            after.iter().filter(|t| !before.contains(t)).cloned().collect();
                        let removed: Vec<String> = before
                            .into_iter()
                            .filter(|t| !after.iter().any(|a| a.topic == t.topic))
                            .map(|t| t.topic)
                            .collect();
                        tokio::spawn(subscribe(client.clone(), added));
                        // A camera handed to another instance (cluster
                        // mode): its frames are no longer taken here.
                        let c = client.clone();
                        tokio::spawn(async move {
                            for topic in removed {
                                let _ = c.unsubscribe(topic).await;
                            }
                        });
                    }
                    Err(_) => updates = None,
                }
                continue;
            }
        };
        // Acknowledgements the client's queue had no room for go now.
        acks.flush();
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                acks.connected();
                backoff = Duration::from_millis(250);
                metrics.connected.store(true, Ordering::Relaxed);
                tracing::info!(url = %crate::base::redact::url(&config.mqtt.url), "MQTT connected");
                // From another task: the request channel is drained by this loop.
                let client = client.clone();
                let topics = router.subscriptions();
                let prefix = prefix.clone();
                tokio::spawn(async move {
                    subscribe(client.clone(), topics).await;
                    let _ = client
                        .publish(
                            crate::base::topics::availability(&prefix),
                            QoS::AtLeastOnce,
                            true,
                            "online",
                        )
                        .await;
                });
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                metrics.messages.fetch_add(1, Ordering::Relaxed);
                // Every message is acknowledged exactly once: a reading by
                // the tracker once recorded, anything else here.
                let receipt = acks.receipt(&p);
                let topic = String::from_utf8_lossy(&p.topic).to_string();
                let props: Vec<(String, String)> = p
                    .properties
                    .map(|pp| pp.user_properties)
                    .unwrap_or_default();
                let parsed = router.parse(
                    &topic,
                    &p.payload,
                    &props,
                    wall_clock_ms(),
                    &limits,
                    &metrics.clocks,
                );
                match parsed {
                    // Never waits: the event loop must keep up with the broker.
                    Ok(Inbound::Frame(frame)) => {
                        receipt.ack();
                        if let Some(r) = &recorder {
                            r.frame(&frame);
                        }
                        frames.push(frame)
                    }
                    Ok(Inbound::Sensor(reading)) => {
                        if let Some(r) = &recorder {
                            r.reading(&reading);
                        }
                        tracing::debug!(sensor = %reading.sensor, measured_at = reading.measured_at, "sensor reading queued");
                        match readings.try_send(Queued { reading, receipt }) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(q)) => {
                                q.receipt.ack();
                                metrics.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(%topic, "sensor queue full; reading dropped");
                            }
                            // Stopping: the broker keeps it for the next start.
                            Err(mpsc::error::TrySendError::Closed(q)) => {
                                tracing::info!(sensor = %q.reading.sensor, "stopping; reading left with the broker");
                                drop(q);
                            }
                        }
                    }
                    Err(e) => {
                        receipt.ack();
                        metrics.rejected.fetch_add(1, Ordering::Relaxed);
                        // A wrong clock is logged when it goes wrong (by the
                        // book), not once per frame.
                        if matches!(e, PayloadError::Clock(_)) {
                            tracing::debug!(%topic, reason = %e, "message skipped");
                        } else {
                            tracing::warn!(%topic, reason = %e, "message skipped");
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                // rumqttc cleared its queue of acknowledgements when the
                // live connection failed; any the tracker queued since go
                // too (none can follow: the book is no longer live). Not
                // after a failed connect, where cleaning would move the
                // bounded request queue into rumqttc's unbounded one.
                metrics.connected.store(false, Ordering::Relaxed);
                if acks.disconnected() {
                    eventloop.clean();
                }
                metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT connection lost; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    // Say goodbye cleanly: retained offline, then disconnect.
    let _ = client.try_publish(
        crate::base::topics::availability(&prefix),
        QoS::AtLeastOnce,
        true,
        "offline",
    );
    let _ = client.try_disconnect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
    }
}
