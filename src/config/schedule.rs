//! Zone schedules: the windows of the week in which a zone is enforced.
//!
//! A loading bay that may be used 07:00–10:00 on weekdays has an
//! `inactive` window there; a lane enforced only at night has an `active`
//! one. Times are local to a named time zone, so a window follows daylight
//! saving time as a sign on the site would.

use chrono::{Datelike, TimeZone, Timelike};
use serde::{Deserialize, Serialize};

use crate::base::time::Millis;

/// `[zones.schedule]` as written in TOML (and sent by the zone editor).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// IANA name, e.g. `Europe/Rome`; default the zone's site's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Windows in which the zone is enforced; none listed: always, except
    /// the `inactive` ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<WindowConfig>,
    /// Windows in which the zone is not enforced (they win over `active`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inactive: Vec<WindowConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Days and ranges: `["mon-fri"]`, `["sat", "sun"]`, `["daily"]`.
    pub days: Vec<String>,
    /// Local `HH:MM`.
    pub from: String,
    /// Local `HH:MM` (`24:00` for midnight at the end); earlier than `from`
    /// means the window runs past midnight into the next day.
    pub to: String,
}

/// A validated schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub timezone: chrono_tz::Tz,
    active: Vec<Window>,
    inactive: Vec<Window>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    /// Monday first.
    days: [bool; 7],
    /// Minutes after local midnight.
    from: u32,
    to: u32,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    let short = s.get(..3)?;
    let i = DAYS.iter().position(|d| *d == short)?;
    // "mon" or a full name ("monday"), nothing else.
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    (s.len() == 3 || s == full[i]).then_some(i)
}

fn parse_days(items: &[String]) -> Result<[bool; 7], String> {
    if items.is_empty() {
        return Err("no days: list some, e.g. [\"mon-fri\"] or [\"daily\"]".into());
    }
    let mut days = [false; 7];
    for item in items {
        let t = item.trim().to_ascii_lowercase();
        if t == "daily" || t == "all" {
            days = [true; 7];
            continue;
        }
        let bad = || format!("{item:?} is not a day (mon..sun) or a range like \"mon-fri\"");
        match t.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a).ok_or_else(bad)?, day_index(b).ok_or_else(bad)?);
                // A range may wrap the week: "fri-mon".
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day_index(&t).ok_or_else(bad)?] = true,
        }
    }
    Ok(days)
}

fn parse_minutes(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a time HH:MM (00:00 to 24:00)");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Window {
    fn contains(&self, weekday: usize, minute: u32) -> bool {
        if self.from < self.to {
            self.days[weekday] && minute >= self.from && minute < self.to
        } else {
            // Past midnight: the part after midnight belongs to the day before.
            (self.days[weekday] && minute >= self.from)
                || (self.days[(weekday + 6) % 7] && minute < self.to)
        }
    }
}

impl ScheduleConfig {
    /// Validates; problems come back as (field, message) pairs, the field
    /// relative to the schedule (e.g. `schedule.active[0].from`).
    pub fn resolve(&self, site_tz: chrono_tz::Tz) -> Result<Schedule, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let timezone = match &self.timezone {
            None => site_tz,
            Some(name) => name.parse().unwrap_or_else(|_| {
                problems.push((
                    "schedule.timezone".to_string(),
                    format!("unknown time zone {name:?}; use an IANA name like \"Europe/Rome\""),
                ));
                site_tz
            }),
        };
        let mut windows = |list: &[WindowConfig], name: &str| -> Vec<Window> {
            let mut out = Vec::new();
            for (i, w) in list.iter().enumerate() {
                let field = |f: &str| format!("schedule.{name}[{i}].{f}");
                let days = parse_days(&w.days).map_err(|m| problems.push((field("days"), m)));
                let from = parse_minutes(&w.from).map_err(|m| problems.push((field("from"), m)));
                let to = parse_minutes(&w.to).map_err(|m| problems.push((field("to"), m)));
                if let (Ok(days), Ok(from), Ok(to)) = (days, from, to) {
                    if from == 1440 {
                        problems.push((
                            field("from"),
                            "24:00 ends a day; a window starts at 00:00 to 23:59".into(),
                        ));
                    } else if from == to {
                        problems.push((
                            field("to"),
                            format!(
                                "the window {}-{} is empty; for a whole day use 00:00-24:00",
                                w.from, w.to
                            ),
                        ));
                    } else {
                        out.push(Window { days, from, to });
                    }
                }
            }
            out
        };
        let active = windows(&self.active, "active");
        let inactive = windows(&self.inactive, "inactive");
        if self.active.is_empty() && self.inactive.is_empty() {
            problems.push((
                "schedule".to_string(),
                "no windows: add `active` or `inactive` windows, or remove the schedule".into(),
            ));
        }
        if problems.is_empty() {
            Ok(Schedule {
                timezone,
                active,
                inactive,
            })
        } else {
            Err(problems)
        }
    }
}

impl Schedule {
    /// Whether the zone is enforced at `at`.
    pub fn is_active(&self, at: Millis) -> bool {
        let Some(local) = self.timezone.timestamp_millis_opt(at).earliest() else {
            return true;
        };
        let weekday = local.weekday().num_days_from_monday() as usize;
        let minute = local.hour() * 60 + local.minute();
        let inside = |w: &Window| w.contains(weekday, minute);
        (self.active.is_empty() || self.active.iter().any(inside))
            && !self.inactive.iter().any(inside)
    }

    /// The first instant in `(after, until]` at which the zone is not
    /// enforced, if there is one: where an enforced window closed between
    /// two readings, however far apart (a silent camera, a daemon down
    /// overnight). Windows change on minute boundaries, so minutes are
    /// probed (62 days at most, then `until` itself) and the change is
    /// then found to the millisecond.
    pub fn first_inactive_after(&self, after: Millis, until: Millis) -> Option<Millis> {
        const MINUTE: Millis = 60_000;
        const HORIZON: Millis = 62 * 24 * 60 * MINUTE;
        let end = until.min(after.saturating_add(HORIZON));
        let mut lo = after;
        let mut t = (after.div_euclid(MINUTE) + 1) * MINUTE;
        while t < end {
            if !self.is_active(t) {
                return Some(self.first_change(lo, t));
            }
            lo = t;
            t += MINUTE;
        }
        (!self.is_active(until)).then(|| self.first_change(lo, until))
    }

    /// Between `lo` (enforced) and `hi` (not): the first instant not enforced.
    fn first_change(&self, mut lo: Millis, mut hi: Millis) -> Millis {
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.is_active(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(days: &[&str], from: &str, to: &str) -> WindowConfig {
        WindowConfig {
            days: days.iter().map(|d| d.to_string()).collect(),
            from: from.into(),
            to: to.into(),
        }
    }

    fn at(s: &str) -> Millis {
        crate::base::time::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn loading_bay_is_not_enforced_on_weekday_mornings_local_time() {
        let s = ScheduleConfig {
            timezone: Some("Europe/Rome".into()),
            active: vec![],
            inactive: vec![window(&["mon-fri"], "07:00", "10:00")],
        }
        .resolve(chrono_tz::UTC)
        .unwrap();
        // Monday 2026-11-30: Rome is UTC+1 in winter.
        assert!(s.is_active(at("2026-11-30T05:59:00Z")));
        assert!(!s.is_active(at("2026-11-30T06:00:00Z")));
        assert!(!s.is_active(at("2026-11-30T08:59:59Z")));
        assert!(s.is_active(at("2026-11-30T09:00:00Z")));
        // Saturday: enforced all day.
        assert!(s.is_active(at("2026-11-28T07:00:00Z")));
        // In summer (UTC+2) the window moves with the clock.
        assert!(!s.is_active(at("2026-06-01T05:00:00Z")));
        assert!(s.is_active(at("2026-06-01T08:00:00Z")));
        // The window's end found between two readings, to the millisecond.
        assert_eq!(
            s.first_inactive_after(at("2026-11-30T05:30:00Z"), at("2026-11-30T06:30:00Z")),
            Some(at("2026-11-30T06:00:00Z"))
        );
        // A gap of a day and a half holding a whole window (and its end).
        assert_eq!(
            s.first_inactive_after(at("2026-11-30T05:30:00Z"), at("2026-12-01T20:00:00Z")),
            Some(at("2026-11-30T06:00:00Z"))
        );
        assert_eq!(
            s.first_inactive_after(at("2026-11-30T09:00:00Z"), at("2026-11-30T20:00:00Z")),
            None
        );
    }

    #[test]
    fn overnight_active_window_belongs_to_the_day_it_starts() {
        let s = ScheduleConfig {
            timezone: None,
            active: vec![window(&["fri"], "22:00", "06:00")],
            inactive: vec![],
        }
        .resolve(chrono_tz::UTC)
        .unwrap();
        assert!(s.is_active(at("2026-11-27T23:00:00Z"))); // Friday night
        assert!(s.is_active(at("2026-11-28T05:00:00Z"))); // into Saturday
        assert!(!s.is_active(at("2026-11-28T23:00:00Z"))); // Saturday night
        assert!(!s.is_active(at("2026-11-27T05:00:00Z"))); // Friday early
    }

    #[test]
    fn bad_windows_are_named_by_field() {
        let problems = ScheduleConfig {
            timezone: Some("Mars/Olympus".into()),
            active: vec![window(&["mon-fir"], "7:60", "10:00")],
            inactive: vec![window(&["sun"], "10:00", "10:00")],
        }
        .resolve(chrono_tz::UTC)
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "schedule.timezone",
                "schedule.active[0].days",
                "schedule.active[0].from",
                "schedule.inactive[0].to"
            ]
        );
        assert!(problems[1].1.contains("\"mon-fir\""), "{problems:?}");
    }
}
