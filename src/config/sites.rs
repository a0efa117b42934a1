//! Sites (properties): who hears about a site's zones, on which channels,
//! when not (quiet hours), and how a violation is escalated.

use chrono::{NaiveTime, TimeZone, Timelike};
use serde::{Deserialize, Serialize};

use crate::base::time::Millis;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub id: String,
    /// Shown in alerts; default the id.
    pub name: Option<String>,
    /// IANA name for quiet hours, e.g. `Europe/Rome`; default `UTC`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// `HH:MM-HH:MM` local time (may wrap midnight): webhooks and email
    /// hold `new` and `end` notices until the window ends and skip
    /// reminders. MQTT and Home Assistant are never held.
    pub quiet_hours: Option<String>,
    /// Seconds between reminders while a lane stays blocked (0: none);
    /// default `[tracking] update_every_s`.
    pub reminder_every_s: Option<f64>,
    /// A lane clear for less than this and blocked again continues the
    /// same violation; default `[tracking] reattach_s`.
    pub reattach_s: Option<f64>,
    /// Send a notice when the lane is clear again.
    #[serde(default = "default_true")]
    pub notify_clear: bool,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Recipients of email alerts (needs `[alerts] smtp_url`).
    #[serde(default)]
    pub email_to: Vec<String>,
}

fn default_timezone() -> String {
    "UTC".into()
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// HMAC-SHA256 key for the `X-Firelane-Signature` header.
    pub secret: Option<String>,
}

/// Local time window; `start > end` wraps midnight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    pub fn parse(s: &str) -> Result<QuietHours, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not HH:MM-HH:MM, e.g. \"22:00-07:00\""))?;
        let t = |x: &str| {
            NaiveTime::parse_from_str(x.trim(), "%H:%M")
                .map_err(|_| format!("{x:?} in {s:?} is not a time HH:MM"))
        };
        let (start, end) = (t(a)?, t(b)?);
        if start == end {
            return Err(format!("{s:?} is empty: start and end are the same"));
        }
        Ok(QuietHours { start, end })
    }

    /// When `at` falls inside the window, the instant the window ends.
    pub fn release_after(&self, at: Millis, tz: chrono_tz::Tz) -> Option<Millis> {
        let local = tz.timestamp_millis_opt(at).single()?;
        let t = local.time();
        let inside = if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        };
        if !inside {
            return None;
        }
        let mut day = local.date_naive();
        if t >= self.end {
            day = day.succ_opt()?;
        }
        let end = day.and_hms_opt(self.end.hour(), self.end.minute(), 0)?;
        // A gap (DST) at the end time: take the earliest valid instant after.
        let end = tz.from_local_datetime(&end).earliest().or_else(|| {
            tz.from_local_datetime(&(end + chrono::Duration::hours(1)))
                .earliest()
        })?;
        Some(end.timestamp_millis())
    }
}

/// A validated site.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub timezone: chrono_tz::Tz,
    pub quiet_hours: Option<QuietHours>,
    pub notify_clear: bool,
    pub webhooks: Vec<WebhookConfig>,
    pub email_to: Vec<String>,
    pub reminder_every_s: Option<f64>,
    pub reattach_s: Option<f64>,
}

impl Site {
    /// The site zones belong to when no `[[sites]]` are configured.
    pub fn implicit() -> Site {
        Site {
            id: "default".into(),
            name: "default".into(),
            timezone: chrono_tz::UTC,
            quiet_hours: None,
            notify_clear: true,
            webhooks: Vec::new(),
            email_to: Vec::new(),
            reminder_every_s: None,
            reattach_s: None,
        }
    }
}

/// Validates `[[sites]]`, pushing problems as (item, field, message).
pub fn resolve(
    raw: &[SiteConfig],
    smtp_configured: bool,
    push: &mut dyn FnMut(String, &str, String),
) -> Vec<Site> {
    if raw.is_empty() {
        return vec![Site::implicit()];
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, s) in raw.iter().enumerate() {
        let item = format!("site \"{}\" (sites[{i}])", s.id);
        if !super::valid_id(&s.id) {
            push(
                item.clone(),
                "id",
                "must be non-empty, without MQTT wildcards (+ #) or control characters".into(),
            );
        }
        if !seen.insert(s.id.clone()) {
            push(item.clone(), "id", "duplicate site id".into());
        }
        let timezone = s.timezone.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
            push(
                item.clone(),
                "timezone",
                format!(
                    "unknown time zone {:?}; use an IANA name such as \"Europe/Rome\" or \"UTC\"",
                    s.timezone
                ),
            );
            chrono_tz::UTC
        });
        let quiet_hours = s.quiet_hours.as_deref().and_then(|q| {
            QuietHours::parse(q)
                .map_err(|m| push(item.clone(), "quiet_hours", m))
                .ok()
        });
        for (field, v) in [
            ("reminder_every_s", s.reminder_every_s),
            ("reattach_s", s.reattach_s),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && (0.0..=86_400.0 * 7.0).contains(&v))
            {
                push(
                    item.clone(),
                    field,
                    format!("{v} is out of range 0..604800 seconds"),
                );
            }
        }
        for (j, w) in s.webhooks.iter().enumerate() {
            match url::Url::parse(&w.url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => push(
                    item.clone(),
                    &format!("webhooks[{j}].url"),
                    format!("{:?} is not an http:// or https:// URL", w.url),
                ),
            }
        }
        for (j, to) in s.email_to.iter().enumerate() {
            if to.parse::<lettre::Address>().is_err() {
                push(
                    item.clone(),
                    &format!("email_to[{j}]"),
                    format!("{to:?} is not an email address"),
                );
            }
        }
        if !s.email_to.is_empty() && !smtp_configured {
            push(
                item.clone(),
                "email_to",
                "email recipients need [alerts] smtp_url".into(),
            );
        }
        out.push(Site {
            id: s.id.clone(),
            name: s.name.clone().unwrap_or_else(|| s.id.clone()),
            timezone,
            quiet_hours,
            notify_clear: s.notify_clear,
            webhooks: s.webhooks.clone(),
            email_to: s.email_to.clone(),
            reminder_every_s: s.reminder_every_s,
            reattach_s: s.reattach_s,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Millis {
        crate::base::time::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn quiet_hours_wrap_midnight_in_the_sites_time_zone() {
        let q = QuietHours::parse("22:00-07:00").unwrap();
        let rome: chrono_tz::Tz = "Europe/Rome".parse().unwrap();
        // 23:30 in Rome (UTC+1 in winter) is quiet until 07:00 Rome next day.
        assert_eq!(
            q.release_after(ms("2026-11-29T22:30:00Z"), rome),
            Some(ms("2026-11-30T06:00:00Z"))
        );
        // 03:00 Rome: same night, ends 07:00 that day.
        assert_eq!(
            q.release_after(ms("2026-11-30T02:00:00Z"), rome),
            Some(ms("2026-11-30T06:00:00Z"))
        );
        // 12:00 Rome: not quiet.
        assert_eq!(q.release_after(ms("2026-11-30T11:00:00Z"), rome), None);
        let day = QuietHours::parse("12:00-13:30").unwrap();
        assert_eq!(
            day.release_after(ms("2026-11-30T12:10:00Z"), chrono_tz::UTC),
            Some(ms("2026-11-30T13:30:00Z"))
        );
        assert!(
            QuietHours::parse("22:00")
                .unwrap_err()
                .contains("HH:MM-HH:MM")
        );
        assert!(
            QuietHours::parse("25:00-07:00")
                .unwrap_err()
                .contains("25:00")
        );
    }
}
