//! Routing: which outbox rows an alert becomes. Every alert goes to MQTT;
//! the zone's site adds its webhooks and email recipients, with its quiet
//! hours applied (held `new`/`end`, skipped reminders) and its choice about
//! clear notices.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

use super::{ViolationEventKind, ViolationMessage};
use crate::base::kinds::OutboxStatus;
use crate::config::{Config, Site};
use crate::store::OutboxRow;

pub struct Outbox {
    sites: HashMap<String, Site>,
    violations_topic: String,
    /// Wakes the dispatcher when rows were added.
    pub wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(config: &Config) -> Outbox {
        Outbox {
            sites: config
                .sites
                .iter()
                .map(|s| (s.id.clone(), s.clone()))
                .collect(),
            violations_topic: crate::base::topics::violations(config.prefix()),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Whether `row`'s target is still one of its site's (MQTT always is).
    pub fn still_configured(&self, row: &OutboxRow) -> bool {
        let site = self.sites.get(&row.site);
        match row.channel.as_str() {
            "webhook" => site.is_some_and(|s| s.webhooks.iter().any(|w| w.url == row.target)),
            "email" => site.is_some_and(|s| s.email_to.iter().any(|a| a == &row.target)),
            _ => true,
        }
    }

    pub fn site(&self, id: &str) -> Option<&Site> {
        self.sites.get(id)
    }

    /// The rows for one alert.
    pub fn rows_for(&self, msg: &ViolationMessage) -> Vec<OutboxRow> {
        let payload = serde_json::to_string(msg).expect("alert serialises");
        let row = |channel: &str, target: &str, status: OutboxStatus, next: i64| OutboxRow {
            id: 0,
            event_key: msg.event_key(),
            channel: channel.to_string(),
            target: target.to_string(),
            site: msg.site.id.clone(),
            violation_id: msg.violation.id.clone(),
            event: msg.event.as_str().to_string(),
            payload: payload.clone(),
            status,
            attempts: 0,
            next_attempt_ms: next,
            event_ms: msg.at,
            queued_ms: crate::base::time::wall_clock_ms(),
            sent_ms: None,
            last_error: None,
        };
        let mut rows = vec![row(
            "mqtt",
            &self.violations_topic,
            OutboxStatus::Pending,
            0,
        )];
        let Some(site) = self.sites.get(&msg.site.id) else {
            return rows;
        };
        if msg.event == ViolationEventKind::End && !site.notify_clear {
            return rows;
        }
        // Reminders are for machines (MQTT) unless the site asks people for
        // them: webhooks and email get `update` only with `reminder_every_s`.
        if msg.event == ViolationEventKind::Update && site.reminder_every_s.is_none() {
            return rows;
        }
        // People are not woken: `new` and `end` wait for the window's end,
        // reminders inside it are skipped (the next one after it goes out).
        let quiet_until = site
            .quiet_hours
            .and_then(|q| q.release_after(msg.at, site.timezone));
        let (status, next) = match (quiet_until, msg.event) {
            (None, _) => (OutboxStatus::Pending, 0),
            (Some(_), ViolationEventKind::Update) => (OutboxStatus::Suppressed, 0),
            (Some(until), _) => (OutboxStatus::Pending, until),
        };
        for w in &site.webhooks {
            rows.push(row("webhook", &w.url, status, next));
        }
        for to in &site.email_to {
            rows.push(row("email", to, status, next));
        }
        rows
    }
}
