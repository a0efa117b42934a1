//! Each camera's and sensor's clock, checked against arrival time.
//!
//! A capture time further ahead of arrival than `[ingest] max_future_skew_s`,
//! or further behind than `max_past_skew_s`, is a wrong clock (a time-zone
//! slip, a clock reset to 2000 after a power cut), not an old event: the
//! input is refused or re-stamped with its arrival time (`on_clock_skew`).
//! Either way only that source is touched: every camera and sensor zone
//! runs on its own event time downstream. The book keeps each configured
//! source's offset and counts, logs once when a clock goes wrong and once
//! when it is right again, and feeds `/metrics` and `GET /api/cameras`.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::base::time::{Millis, format_rfc3339};
pub use crate::config::ClockSkewPolicy;

/// The window around arrival a capture time must fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockRule {
    pub max_ahead_ms: Millis,
    /// `None`: any time in the past is accepted (replay-style feeds).
    pub max_behind_ms: Option<Millis>,
    pub policy: ClockSkewPolicy,
}

impl ClockRule {
    pub fn of(config: &crate::config::Config) -> ClockRule {
        let i = &config.ingest;
        ClockRule {
            max_ahead_ms: crate::base::time::secs_to_ms(i.max_future_skew_s),
            max_behind_ms: (i.max_past_skew_s > 0.0)
                .then(|| crate::base::time::secs_to_ms(i.max_past_skew_s)),
            policy: i.on_clock_skew,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockStatus {
    Ok,
    Ahead,
    Behind,
}

/// Whether a capture time `at`, arriving at `arrival`, is within the rule.
pub fn judge(rule: &ClockRule, at: Millis, arrival: Millis) -> ClockStatus {
    let offset = at - arrival;
    if offset > rule.max_ahead_ms {
        ClockStatus::Ahead
    } else if rule.max_behind_ms.is_some_and(|m| -offset > m) {
        ClockStatus::Behind
    } else {
        ClockStatus::Ok
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Camera,
    Sensor,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Camera => "camera",
            SourceKind::Sensor => "sensor",
        }
    }
}

/// A capture time outside the window, refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{} \"{id}\" stamped {at}, {offset_s:.0} s {} its arrival (limit {limit_s:.0} s); refused",
    kind.as_str(),
    if *offset_s > 0.0 { "ahead of" } else { "behind" }
)]
pub struct Skewed {
    pub kind: SourceKind,
    pub id: String,
    pub at: String,
    pub offset_s: f64,
    pub limit_s: f64,
}

/// One source's clock as last seen.
#[derive(Debug, Clone, Serialize)]
pub struct ClockReport {
    pub status: ClockStatus,
    /// Capture time minus arrival time of its latest input.
    pub offset_s: f64,
    /// Since when (arrival, RFC 3339) the status holds.
    pub since: String,
    /// Inputs refused, and re-stamped with arrival time, for a wrong clock.
    pub refused: u64,
    pub restamped: u64,
}

/// Every configured source's clock.
#[derive(Debug, Default)]
pub struct ClockBook {
    sources: Mutex<HashMap<(SourceKind, String), ClockReport>>,
}

impl ClockBook {
    /// The time to use for an input of `id` stamped `at`, arriving at
    /// `arrival`; `Err` when it is refused. Call only for configured ids:
    /// the book holds one entry per source it was asked about.
    pub fn admit(
        &self,
        rule: &ClockRule,
        kind: SourceKind,
        id: &str,
        at: Millis,
        arrival: Millis,
    ) -> Result<Millis, Skewed> {
        let status = judge(rule, at, arrival);
        let offset_s = (at - arrival) as f64 / 1000.0;
        let mut sources = self.sources.lock().expect("clock book lock");
        let entry = sources
            .entry((kind, id.to_string()))
            .or_insert_with(|| ClockReport {
                status: ClockStatus::Ok,
                offset_s,
                since: format_rfc3339(arrival),
                refused: 0,
                restamped: 0,
            });
        entry.offset_s = offset_s;
        if entry.status != status {
            entry.status = status;
            entry.since = format_rfc3339(arrival);
            match status {
                ClockStatus::Ok => tracing::info!(
                    source = kind.as_str(), %id, offset_s,
                    "clock back within limits; inputs accepted again"
                ),
                _ => tracing::warn!(
                    source = kind.as_str(), %id, offset_s, policy = ?rule.policy,
                    "clock is off: inputs {} until it is corrected",
                    match rule.policy {
                        ClockSkewPolicy::Refuse => "refused",
                        ClockSkewPolicy::Restamp => "stamped with their arrival time",
                    }
                ),
            }
        }
        match (status, rule.policy) {
            (ClockStatus::Ok, _) => Ok(at),
            (_, ClockSkewPolicy::Restamp) => {
                entry.restamped += 1;
                Ok(arrival)
            }
            (_, ClockSkewPolicy::Refuse) => {
                entry.refused += 1;
                let limit_ms = match status {
                    ClockStatus::Ahead => rule.max_ahead_ms,
                    _ => rule.max_behind_ms.unwrap_or_default(),
                };
                Err(Skewed {
                    kind,
                    id: id.to_string(),
                    at: format_rfc3339(at),
                    offset_s,
                    limit_s: limit_ms as f64 / 1000.0,
                })
            }
        }
    }

    pub fn report(&self, kind: SourceKind, id: &str) -> Option<ClockReport> {
        let sources = self.sources.lock().expect("clock book lock");
        sources.get(&(kind, id.to_string())).cloned()
    }

    /// Every source's report, sorted by kind and id.
    pub fn all(&self) -> Vec<(SourceKind, String, ClockReport)> {
        let sources = self.sources.lock().expect("clock book lock");
        let mut out: Vec<_> = sources
            .iter()
            .map(|((k, id), r)| (*k, id.clone(), r.clone()))
            .collect();
        out.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
        out
    }

    /// Forgets sources no longer configured (bounded by the configuration).
    pub fn retain(&self, config: &crate::config::Config) {
        let mut sources = self.sources.lock().expect("clock book lock");
        sources.retain(|(kind, id), _| match kind {
            SourceKind::Camera => config.cameras.iter().any(|c| &c.id == id),
            SourceKind::Sensor => config.sensors.iter().any(|s| &s.id == id),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Millis = 3_600_000;
    const NOW: Millis = 1_764_633_600_000; // 2025-12-02T00:00:00Z

    fn rule(behind: Option<Millis>, policy: ClockSkewPolicy) -> ClockRule {
        ClockRule {
            max_ahead_ms: 300_000,
            max_behind_ms: behind,
            policy,
        }
    }

    #[test]
    fn judged_against_the_window_around_arrival() {
        let r = rule(Some(900_000), ClockSkewPolicy::Refuse);
        let off = rule(None, ClockSkewPolicy::Refuse);
        // (rule, offset from arrival, status)
        let table: &[(&ClockRule, Millis, ClockStatus)] = &[
            (&r, 0, ClockStatus::Ok),
            (&r, 300_000, ClockStatus::Ok),
            (&r, 300_001, ClockStatus::Ahead),
            (&r, 8 * H, ClockStatus::Ahead),
            (&r, -900_000, ClockStatus::Ok),
            (&r, -900_001, ClockStatus::Behind),
            (&r, -(26 * 365 * 24 * H), ClockStatus::Behind), // reset to 2000
            (&off, -(26 * 365 * 24 * H), ClockStatus::Ok),
            (&off, 8 * H, ClockStatus::Ahead),
        ];
        for (rule, offset, want) in table {
            assert_eq!(judge(rule, NOW + offset, NOW), *want, "offset {offset}");
        }
    }

    #[test]
    fn refused_or_restamped_and_reported_per_source() {
        let book = ClockBook::default();
        let refuse = rule(Some(900_000), ClockSkewPolicy::Refuse);
        let restamp = rule(Some(900_000), ClockSkewPolicy::Restamp);
        let cam = SourceKind::Camera;
        assert_eq!(
            book.admit(&refuse, cam, "a", NOW - 1000, NOW).unwrap(),
            NOW - 1000
        );
        let e = book.admit(&refuse, cam, "b", NOW + 8 * H, NOW).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "camera \"b\" stamped {}, 28800 s ahead of its arrival (limit 300 s); refused",
                format_rfc3339(NOW + 8 * H)
            )
        );
        assert_eq!(
            book.admit(&restamp, cam, "c", NOW - 2 * H, NOW).unwrap(),
            NOW
        );
        let a = book.report(cam, "a").unwrap();
        assert_eq!((a.status, a.refused, a.restamped), (ClockStatus::Ok, 0, 0));
        let b = book.report(cam, "b").unwrap();
        assert_eq!(
            (b.status, b.refused, b.offset_s),
            (ClockStatus::Ahead, 1, 28_800.0)
        );
        let c = book.report(cam, "c").unwrap();
        assert_eq!((c.status, c.restamped), (ClockStatus::Behind, 1));
        // Corrected: accepted again, the count of refusals kept.
        assert!(book.admit(&refuse, cam, "b", NOW + 1000, NOW).is_ok());
        let b = book.report(cam, "b").unwrap();
        assert_eq!((b.status, b.refused), (ClockStatus::Ok, 1));
        assert!(book.report(SourceKind::Sensor, "a").is_none());
    }
}
