//! The acknowledgement a QoS 1 message is owed. firelane acknowledges a
//! sensor reading only once the reading is recorded: until then the
//! broker keeps it in firelane's session and delivers it again after a
//! crash or a lost connection. (Acknowledged on receipt, a reading waiting
//! in the queue or in a stalled commit was lost to a SIGKILL.)

use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Publish;

/// A message's acknowledgement, not yet sent. Dropping it unsent leaves
/// the message with the broker, which delivers it again on the session's
/// next connection.
#[must_use = "an unsent receipt leaves the message with the broker"]
pub struct Receipt(Option<(AsyncClient, Publish)>);

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some((_, p)) => write!(f, "Receipt(pkid {})", p.pkid),
            None => f.write_str("Receipt(none)"),
        }
    }
}

impl Receipt {
    /// For input that owes the broker nothing (QoS 0, or not from MQTT).
    pub fn none() -> Receipt {
        Receipt(None)
    }

    /// The receipt of `p`, received by `client`'s connection.
    pub fn of(client: &AsyncClient, p: &Publish) -> Receipt {
        if p.qos == QoS::AtMostOnce {
            return Receipt(None);
        }
        // Only the packet id and QoS make the acknowledgement: the payload
        // is not kept alive for it.
        let slim = Publish {
            qos: p.qos,
            pkid: p.pkid,
            ..Publish::default()
        };
        Receipt(Some((client.clone(), slim)))
    }

    /// Sends the acknowledgement. A connection lost meanwhile makes the
    /// broker deliver the message again; a repeated reading is recognised
    /// and not applied twice.
    pub async fn ack(self) {
        if let Some((client, p)) = self.0
            && let Err(e) = client.ack(&p).await
        {
            tracing::debug!(pkid = p.pkid, error = %e, "acknowledgement not sent");
        }
    }

    /// Sends the acknowledgement from another task: for the event loop,
    /// which drains the client's request queue itself and must never wait
    /// on it.
    pub fn ack_later(self) {
        if self.0.is_some() {
            tokio::spawn(self.ack());
        }
    }
}

/// A sensor reading on its way to the tracker, with what it owes the
/// broker.
#[derive(Debug)]
pub struct Queued {
    pub reading: crate::base::input::SensorReading,
    pub receipt: Receipt,
}
