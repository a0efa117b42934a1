//! MQTT alerts confirmed by the broker. The outbox marks an MQTT row sent
//! only once the broker's PUBACK for it came back: `publish` on the main
//! client returns when the message is queued inside the client, and a
//! crash then would lose it. Alerts therefore go over a connection of
//! their own, one at a time, and each waits for its acknowledgement.

use std::time::Duration;

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, EventLoop};

use crate::config::Config;
use crate::ingest::mqtt::{MqttError, connection_options};

/// How long one alert may wait for its PUBACK before it is retried.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AckedPublisher {
    config: std::sync::Arc<Config>,
    conn: Option<(AsyncClient, EventLoop)>,
}

impl AckedPublisher {
    pub fn new(config: std::sync::Arc<Config>) -> AckedPublisher {
        AckedPublisher { config, conn: None }
    }

    fn connection(&mut self) -> Result<&mut (AsyncClient, EventLoop), MqttError> {
        if self.conn.is_none() {
            let id = format!("{}-alerts", crate::ingest::mqtt::client_id(&self.config));
            let mut opts = connection_options(&self.config, &id)?;
            opts.set_clean_start(true);
            self.conn = Some(AsyncClient::new(opts, 8));
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    /// Publishes `payload` on `topic` at QoS 1 and returns once the broker
    /// acknowledged it. On any failure the connection is dropped (and with
    /// it anything unacknowledged), so a retry starts clean.
    pub async fn publish(&mut self, topic: &str, payload: &str) -> Result<(), String> {
        let result = self.try_publish(topic, payload).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn try_publish(&mut self, topic: &str, payload: &str) -> Result<(), String> {
        let (client, eventloop) = self.connection().map_err(|e| e.to_string())?;
        client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
            .await
            .map_err(|e| format!("MQTT client closed: {e}"))?;
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        let mut pkid = None;
        loop {
            let event = tokio::time::timeout_at(deadline, eventloop.poll())
                .await
                .map_err(|_| "no PUBACK from the broker in time".to_string())?;
            match event {
                Ok(Event::Outgoing(Outgoing::Publish(id))) => pkid = Some(id),
                Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == pkid => {
                    // "No matching subscribers" is still accepted (0x10).
                    return match ack.reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                        other => Err(format!("broker refused the alert: {other:?}")),
                    };
                }
                Ok(_) => {}
                Err(e) => return Err(format!("MQTT: {e}")),
            }
        }
    }
}
