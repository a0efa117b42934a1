//! Delivers the outbox. Rows are tried in order per target (a target's
//! `end` never overtakes its `new`); a failure is retried with exponential
//! backoff and jitter until `give_up_after_s`. A row is marked sent only
//! after its channel accepted it, so a restart or an outage delays alerts
//! and loses none; a crash between a receiver's 2xx and the mark can repeat
//! one, which `X-Firelane-Delivery` lets the receiver drop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use tokio_util::sync::CancellationToken;

use super::acked::AckedPublisher;
use super::outbox::Outbox;
use super::{ViolationEventKind, ViolationMessage, email, homeassistant, webhook};
use crate::base::time::{Millis, secs_to_ms, wall_clock_ms};
use crate::config::Config;
use crate::evidence::EvidenceStore;
use crate::ingest::mqtt::IngestMetrics;
use crate::store::{OutboxRow, Store, StoreError};

pub struct Dispatcher {
    pub store: Store,
    pub config: Arc<Config>,
    pub outbox: Arc<Outbox>,
    pub client: AsyncClient,
    pub mqtt: Arc<IngestMetrics>,
    pub evidence: EvidenceStore,
}

/// Delay before attempt `attempts + 1`: base·2^attempts capped at max,
/// scaled by a random factor in [0.5, 1] so many failed targets do not
/// retry in step.
pub fn backoff_ms(attempts: i64, base_ms: Millis, max_ms: Millis, jitter: f64) -> Millis {
    let exp = base_ms.saturating_mul(1i64 << attempts.clamp(0, 30));
    let capped = exp.min(max_ms).max(1);
    ((capped as f64) * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))) as Millis
}

impl Dispatcher {
    pub async fn run(self, shutdown: CancellationToken) {
        let http = webhook::client();
        let mailer = match &self.config.alerts.smtp_url {
            Some(url) => match email::mailer(url) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!(error = %e, "email alerts disabled");
                    None
                }
            },
            None => None,
        };
        let mut acked = AckedPublisher::new(self.config.clone());
        let mut announced = false;
        loop {
            let connected = self.mqtt.connected.load(Ordering::Relaxed);
            if connected && !announced {
                self.announce().await;
            }
            announced = connected;
            if let Err(e) = self.round(&http, mailer.as_ref(), &mut acked).await {
                tracing::error!(error = %e, "outbox: database error; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.outbox.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Home Assistant discovery and the site counts, after each connect.
    async fn announce(&self) {
        let prefix = self.config.prefix();
        if self.config.alerts.home_assistant {
            for (topic, payload) in homeassistant::discovery(&self.config) {
                let _ = self
                    .client
                    .publish(topic, QoS::AtLeastOnce, true, payload.to_string())
                    .await;
            }
        }
        self.publish_counts(prefix).await;
    }

    async fn publish_counts(&self, prefix: &str) {
        let Ok(by_zone) = self.store.open_violations_by_zone().await else {
            return;
        };
        for site in &self.config.sites {
            let n: i64 = by_zone
                .iter()
                .filter(|(zone, _)| {
                    self.config
                        .zones
                        .iter()
                        .any(|z| &z.id == zone && z.site == site.id)
                })
                .map(|(_, n)| n)
                .sum();
            let _ = self
                .client
                .publish(
                    crate::base::topics::site_open_violations(prefix, &site.id),
                    QoS::AtLeastOnce,
                    true,
                    n.to_string(),
                )
                .await;
        }
    }

    async fn round(
        &self,
        http: &reqwest::Client,
        mailer: Option<&email::Mailer>,
        acked: &mut AckedPublisher,
    ) -> Result<(), StoreError> {
        let a = &self.config.alerts;
        let now = wall_clock_ms();
        // Each target's oldest pending row only: per-target order holds, and
        // a dead target delays nothing but itself.
        let due = match &self.config.cluster {
            // Claimed for longer than one delivery may take (webhook and
            // SMTP time out well within it).
            Some(c) => {
                self.store
                    .outbox_claim(&c.instance, now, 120_000, 200)
                    .await?
            }
            None => self.store.outbox_due(now, 200).await?,
        };
        for row in due {
            if !self.outbox.still_configured(&row) {
                // A webhook or address removed from the config: its secret
                // is gone too, so the row is dropped rather than sent unsigned.
                tracing::warn!(channel = %row.channel, target = %crate::base::redact::url(&row.target), "alert dropped: target no longer configured");
                self.store
                    .outbox_expire(row.id, "target no longer configured")
                    .await?;
                continue;
            }
            match self.deliver(&row, http, mailer, acked).await {
                Ok(()) => {
                    self.store.outbox_sent(row.id, wall_clock_ms()).await?;
                    tracing::info!(channel = %row.channel, target = %crate::base::redact::url(&row.target), event = %row.event, violation = %row.violation_id, "alert delivered");
                }
                Err(e) => {
                    // Measured from when it was queued: an old capture time
                    // (a replay, a backlog, a camera's clock) is no reason
                    // to give up on an alert never tried.
                    let queued = if row.queued_ms > 0 {
                        row.queued_ms
                    } else {
                        row.event_ms
                    };
                    let age = now - queued.min(now);
                    if age > secs_to_ms(a.give_up_after_s) {
                        tracing::error!(channel = %row.channel, target = %crate::base::redact::url(&row.target), error = %e, "alert given up");
                        self.store.outbox_expire(row.id, &e).await?;
                    } else {
                        let wait = backoff_ms(
                            row.attempts,
                            secs_to_ms(a.retry_base_s),
                            secs_to_ms(a.retry_max_s),
                            rand::random::<f64>(),
                        );
                        tracing::warn!(channel = %row.channel, target = %crate::base::redact::url(&row.target), attempt = row.attempts + 1, retry_in_ms = wait, error = %e, "alert not delivered");
                        self.store.outbox_retry(row.id, now + wait, &e).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn deliver(
        &self,
        row: &OutboxRow,
        http: &reqwest::Client,
        mailer: Option<&email::Mailer>,
        acked: &mut AckedPublisher,
    ) -> Result<(), String> {
        match row.channel.as_str() {
            "mqtt" => {
                if !self.mqtt.connected.load(Ordering::Relaxed) {
                    return Err("MQTT broker not connected".into());
                }
                // Sent only once the broker acknowledged it (PUBACK).
                acked.publish(&row.target, &row.payload).await?;
                self.after_mqtt(row).await;
                Ok(())
            }
            "webhook" => {
                let secret = self
                    .outbox
                    .site(&row.site)
                    .and_then(|s| s.webhooks.iter().find(|w| w.url == row.target))
                    .and_then(|w| w.secret.clone());
                webhook::deliver(
                    http,
                    &row.target,
                    secret.as_deref(),
                    &row.event,
                    &row.event_key,
                    &row.payload,
                    wall_clock_ms() / 1000,
                )
                .await
            }
            "email" => {
                let mailer = mailer.ok_or("no working [alerts] smtp_url")?;
                let msg: ViolationMessage = serde_json::from_str(&row.payload)
                    .map_err(|e| format!("outbox row {}: {e}", row.id))?;
                let frame = self.annotated_frame(&row.violation_id).await;
                email::deliver(
                    mailer,
                    &self.config.alerts.email_from,
                    &row.target,
                    &msg,
                    &row.event_key,
                    frame,
                )
                .await
            }
            other => Err(format!("unknown channel {other:?}")),
        }
    }

    /// The best annotated frame of a violation: the confirming one, else
    /// the first.
    async fn annotated_frame(&self, violation_id: &str) -> Option<Vec<u8>> {
        let rows = self.store.evidence(violation_id).await.ok()?;
        let pick = |kind: &str| {
            rows.iter()
                .find(|e| e.kind == kind && e.variant == "annotated")
        };
        let row = pick("confirm").or_else(|| pick("first"))?;
        self.evidence.get(&row.sha256).ok()
    }

    /// Keeps the Home Assistant image and the site counts current.
    async fn after_mqtt(&self, row: &OutboxRow) {
        let prefix = self.config.prefix();
        if row.event == ViolationEventKind::New.as_str() && self.config.alerts.home_assistant {
            let zone = serde_json::from_str::<ViolationMessage>(&row.payload)
                .map(|m| m.violation.zone)
                .ok();
            if let (Some(zone), Some(jpeg)) = (zone, self.annotated_frame(&row.violation_id).await)
            {
                let _ = self
                    .client
                    .publish(
                        crate::base::topics::zone_evidence(prefix, &zone),
                        QoS::AtLeastOnce,
                        true,
                        jpeg,
                    )
                    .await;
            }
        }
        if row.event != ViolationEventKind::Update.as_str() {
            self.publish_counts(prefix).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        assert_eq!(backoff_ms(0, 1000, 60_000, 1.0), 1000);
        assert_eq!(backoff_ms(3, 1000, 60_000, 1.0), 8000);
        assert_eq!(backoff_ms(20, 1000, 60_000, 1.0), 60_000);
        assert_eq!(backoff_ms(3, 1000, 60_000, 0.0), 4000);
        assert_eq!(backoff_ms(200, 1000, 60_000, 0.5), 45_000);
    }
}
