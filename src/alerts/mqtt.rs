//! Publishes alert events over MQTT.

use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use tokio::sync::mpsc;

use super::{AlertEvent, ViolationMessage};

/// Topic of the violation event stream.
pub fn violations_topic(prefix: &str) -> String {
    format!("{prefix}/violations")
}

pub fn zone_state_topic(prefix: &str, zone: &str) -> String {
    format!("{prefix}/zones/{zone}/state")
}

/// Forwards events until the channel closes. Violation events go at QoS 1;
/// zone state is retained so a new subscriber sees every zone at once.
pub async fn publish_alerts(
    client: AsyncClient,
    prefix: String,
    mut events: mpsc::UnboundedReceiver<AlertEvent>,
) {
    while let Some(event) = events.recv().await {
        let (topic, payload, retain) = match &event {
            AlertEvent::Violation {
                kind,
                violation,
                at,
            } => {
                let msg = ViolationMessage {
                    event: *kind,
                    at: *at,
                    violation,
                };
                (
                    violations_topic(&prefix),
                    serde_json::to_vec(&msg).expect("serialises"),
                    false,
                )
            }
            AlertEvent::ZoneState(state) => (
                zone_state_topic(&prefix, &state.zone),
                serde_json::to_vec(state).expect("serialises"),
                true,
            ),
        };
        if let Err(e) = client
            .publish(topic.clone(), QoS::AtLeastOnce, retain, payload)
            .await
        {
            tracing::warn!(%topic, error = %e, "alert not published: MQTT client closed");
            return;
        }
    }
}
