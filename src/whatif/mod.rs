//! What-if: a scenario under the current and a new configuration, and
//! what the change would do, zone by zone — violations added, removed and
//! changed — before it goes live.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::base::time::{Millis, format_rfc3339};
use crate::config::{Config, ConfigError, RawConfig};
use crate::replay::{self, ReplayError, ReplayOptions, ReportViolation, Scenario, Span};

#[derive(Debug, thiserror::Error)]
pub enum WhatIfError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("cannot clear {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{file}: none of its cameras ({cameras}) is in the scenario ({scenario}); nothing to compare"
    )]
    NoCameras {
        file: String,
        cameras: String,
        scenario: String,
    },
}

/// One side of the comparison.
#[derive(Debug, Clone)]
pub struct Side {
    /// Shown in the output: a file name, or "scenario.json".
    pub label: String,
    /// `None`: the scenario's own zones and grace.
    pub raw: Option<RawConfig>,
}

impl Side {
    /// Loads and validates a TOML config; one without zones takes the
    /// scenario's zones and sensors (to try tracking settings alone).
    pub fn load(path: &Path, scenario: &Scenario) -> Result<Side, WhatIfError> {
        let file = path.display().to_string();
        let config = Config::load(path)?;
        let mut raw = config.raw().clone();
        if raw.zones.is_empty() {
            let own = scenario.to_raw_config(raw.tracking.grace_s);
            raw.cameras = own.cameras;
            raw.zones = own.zones;
            raw.sensors = own.sensors;
        }
        let in_scenario: Vec<&str> = scenario
            .file
            .cameras
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        if !raw
            .cameras
            .iter()
            .any(|c| in_scenario.contains(&c.id.as_str()))
        {
            return Err(WhatIfError::NoCameras {
                file,
                cameras: raw
                    .cameras
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                scenario: in_scenario.join(", "),
            });
        }
        // The scenario's cameras the config does not know are not an error
        // of the config: leave their frames out rather than count them bad.
        Ok(Side {
            label: file,
            raw: Some(raw),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ViolationSpan {
    pub zone: String,
    pub start: String,
    pub end: Option<String>,
    #[serde(skip)]
    span: Span,
}

impl ViolationSpan {
    fn of(v: &ReportViolation) -> ViolationSpan {
        ViolationSpan {
            zone: v.zone.clone(),
            start: format_rfc3339(v.start),
            end: v.cleared.map(format_rfc3339),
            span: Span {
                start: v.start,
                end: v.cleared,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub current: ViolationSpan,
    pub new: ViolationSpan,
    /// New start minus current start, seconds.
    pub start_shift_s: f64,
    /// New end minus current end, seconds (`None` if either is open).
    pub end_shift_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ZoneDiff {
    pub current: usize,
    pub new: usize,
    pub added: Vec<ViolationSpan>,
    pub removed: Vec<ViolationSpan>,
    pub changed: Vec<Changed>,
    pub unchanged: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhatIf {
    pub scenario: String,
    pub frames: usize,
    pub current: String,
    pub new: String,
    pub zones: BTreeMap<String, ZoneDiff>,
}

/// Matches the two runs' violations zone by zone: overlapping spans are
/// the same vehicle (each matched once, in time order); a match whose start
/// or end moved is `changed`.
pub fn diff(current: &[ReportViolation], new: &[ReportViolation]) -> BTreeMap<String, ZoneDiff> {
    let mut by_zone: BTreeMap<String, (Vec<ViolationSpan>, Vec<ViolationSpan>)> = BTreeMap::new();
    for v in current {
        by_zone
            .entry(v.zone.clone())
            .or_default()
            .0
            .push(ViolationSpan::of(v));
    }
    for v in new {
        by_zone
            .entry(v.zone.clone())
            .or_default()
            .1
            .push(ViolationSpan::of(v));
    }
    let secs = |ms: Millis| ms as f64 / 1000.0;
    by_zone
        .into_iter()
        .map(|(zone, (mut cur, mut new))| {
            cur.sort_by_key(|v| v.span.start);
            new.sort_by_key(|v| v.span.start);
            let mut d = ZoneDiff {
                current: cur.len(),
                new: new.len(),
                ..ZoneDiff::default()
            };
            let mut taken = vec![false; new.len()];
            for c in cur {
                let found = (0..new.len()).find(|&j| !taken[j] && c.span.overlaps(&new[j].span));
                match found {
                    Some(j) => {
                        taken[j] = true;
                        let n = new[j].clone();
                        if n.span == c.span {
                            d.unchanged += 1;
                        } else {
                            d.changed.push(Changed {
                                start_shift_s: secs(n.span.start - c.span.start),
                                end_shift_s: match (c.span.end, n.span.end) {
                                    (Some(a), Some(b)) => Some(secs(b - a)),
                                    _ => None,
                                },
                                current: c,
                                new: n,
                            });
                        }
                    }
                    None => d.removed.push(c),
                }
            }
            d.added = new
                .into_iter()
                .zip(taken)
                .filter(|(_, t)| !t)
                .map(|(v, _)| v)
                .collect();
            (zone, d)
        })
        .collect()
}

/// Runs `scenario` under both sides (each in its own folder under
/// `work_dir`, emptied first) and compares the violations.
pub async fn run(
    scenario: &Scenario,
    current: &Side,
    new: &Side,
    model: &Path,
    work_dir: &Path,
    progress: Option<indicatif::ProgressBar>,
) -> Result<WhatIf, WhatIfError> {
    let mut reports = Vec::new();
    for (name, side) in [("current", current), ("new", new)] {
        let data_dir: PathBuf = work_dir.join(name);
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir).map_err(|source| WhatIfError::Folder {
                path: data_dir.display().to_string(),
                source,
            })?;
        }
        if let Some(p) = &progress {
            p.set_message(format!("{name}: {}", side.label));
        }
        let opts = ReplayOptions {
            data_dir,
            grace_s: None,
            model: model.to_path_buf(),
            base_config: side.raw.clone(),
            progress: progress.clone(),
        };
        reports.push(replay::run(scenario, &opts).await?);
    }
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    Ok(WhatIf {
        scenario: scenario.file.name.clone(),
        frames: scenario.frames.len(),
        current: current.label.clone(),
        new: new.label.clone(),
        zones: diff(&reports[0].violations, &reports[1].violations),
    })
}

impl WhatIf {
    /// The table and the list of differences, for the terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "what-if on {} ({} frames)\n  current: {}\n  new:     {}\n",
            self.scenario, self.frames, self.current, self.new
        );
        let width = self.zones.keys().map(String::len).max().unwrap_or(4).max(5);
        let _ = writeln!(
            out,
            "{:<width$}  {:>7}  {:>5}  {:>5}  {:>7}  {:>7}",
            "zone", "current", "new", "added", "removed", "changed"
        );
        let mut total = [0usize; 5];
        for (zone, d) in &self.zones {
            let row = [
                d.current,
                d.new,
                d.added.len(),
                d.removed.len(),
                d.changed.len(),
            ];
            for (t, v) in total.iter_mut().zip(row) {
                *t += v;
            }
            let _ = writeln!(
                out,
                "{zone:<width$}  {:>7}  {:>5}  {:>5}  {:>7}  {:>7}",
                row[0], row[1], row[2], row[3], row[4]
            );
        }
        let _ = writeln!(
            out,
            "{:<width$}  {:>7}  {:>5}  {:>5}  {:>7}  {:>7}",
            "total", total[0], total[1], total[2], total[3], total[4]
        );
        let span = |v: &ViolationSpan| {
            format!(
                "{} – {}",
                v.start,
                v.end.as_deref().unwrap_or("(still open)")
            )
        };
        let mut details = String::new();
        for (zone, d) in &self.zones {
            for v in &d.added {
                let _ = writeln!(details, "  {zone}  added    {}", span(v));
            }
            for v in &d.removed {
                let _ = writeln!(details, "  {zone}  removed  {}", span(v));
            }
            for c in &d.changed {
                let end = c
                    .end_shift_s
                    .map_or(String::new(), |s| format!(", end {s:+.0} s"));
                let _ = writeln!(
                    details,
                    "  {zone}  changed  {} → {} (start {:+.0} s{end})",
                    span(&c.current),
                    span(&c.new),
                    c.start_shift_s
                );
            }
        }
        if details.is_empty() {
            out.push_str("\nno differences\n");
        } else {
            out.push_str("\ndifferences:\n");
            out.push_str(&details);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(zone: &str, start: Millis, end: Option<Millis>) -> ReportViolation {
        ReportViolation {
            id: format!("{zone}-{start}"),
            camera: "cam".into(),
            zone: zone.into(),
            start,
            confirmed_at: start,
            cleared: end,
            peak_score: 0.9,
            evidence: vec![],
        }
    }

    #[test]
    fn diff_sorts_violations_into_added_removed_changed() {
        let current = [
            v("a", 0, Some(100)),
            v("a", 500, Some(600)),
            v("b", 0, None),
        ];
        let new = [
            v("a", 20, Some(100)),    // same vehicle, later start
            v("a", 1000, Some(1100)), // a new one
            v("b", 0, None),          // unchanged
        ];
        let d = diff(&current, &new);
        let a = &d["a"];
        assert_eq!((a.current, a.new), (2, 2));
        assert_eq!(a.changed.len(), 1);
        assert_eq!(a.changed[0].start_shift_s, 0.02);
        assert_eq!(a.removed.len(), 1);
        assert_eq!(a.removed[0].span.start, 500);
        assert_eq!(a.added.len(), 1);
        assert_eq!(a.added[0].span.start, 1000);
        let b = &d["b"];
        assert_eq!((b.unchanged, b.added.len(), b.removed.len()), (1, 0, 0));
    }
}
