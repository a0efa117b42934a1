//! Publishes alert events over MQTT.

use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use tokio::sync::mpsc;

use super::AlertEvent;

/// Publishes zone state until the channel closes, retained so a new
/// subscriber sees every zone at once. Violation events reach MQTT through
/// the outbox ([`super::dispatch`]), not here.
pub async fn publish_alerts(
    client: AsyncClient,
    prefix: String,
    mut events: mpsc::UnboundedReceiver<AlertEvent>,
) {
    while let Some(event) = events.recv().await {
        let AlertEvent::ZoneState(state) = &event else {
            continue;
        };
        let topic = crate::base::topics::zone_state(&prefix, &state.zone);
        let payload = serde_json::to_vec(state).expect("serialises");
        if let Err(e) = client
            .publish(topic.clone(), QoS::AtLeastOnce, true, payload)
            .await
        {
            tracing::warn!(%topic, error = %e, "zone state not published: MQTT client closed");
            return;
        }
    }
}
