//! The truth a replay is scored against. `truth.json` holds it at the
//! scenario's grace period; a replay at another grace (`--grace-s`) is
//! scored against truth recomputed from `labels.csv` at that grace, as
//! FORMAT.md defines it: an obstruction is a maximal run of frames labelled
//! obstructed, a violation one that lasted at least the grace period.

use std::collections::BTreeMap;
use std::path::Path;

use super::scenario::{ScenarioError, Truth, TruthSpan, TruthZone};
use crate::base::time::{Millis, secs_to_ms};

/// One line of `labels.csv`: `camera,captured_at,zone,obstructed`.
#[derive(Debug, Clone)]
pub struct Label {
    pub camera: String,
    pub captured_at: Millis,
    pub zone: String,
    pub obstructed: bool,
}

/// Reads `labels.csv`; each bad line is named by its number.
pub fn read_labels(path: &Path) -> Result<Vec<Label>, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| ScenarioError::Line {
            path: path.display().to_string(),
            line: n + 1,
            message,
        };
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let [camera, at, zone, obstructed] = cols[..] else {
            return Err(bad(format!(
                "expected 4 columns camera,captured_at,zone,obstructed, got {}",
                cols.len()
            )));
        };
        let captured_at = crate::base::time::parse_rfc3339(at)
            .map_err(|e| bad(format!("captured_at `{at}` is not RFC 3339: {e}")))?;
        let obstructed = match obstructed {
            "1" => true,
            "0" => false,
            o => return Err(bad(format!("obstructed `{o}` must be 1 or 0"))),
        };
        out.push(Label {
            camera: camera.to_string(),
            captured_at,
            zone: zone.to_string(),
            obstructed,
        });
    }
    Ok(out)
}

/// The truth of `labels` at `grace_s`.
pub fn from_labels(labels: &[Label], grace_s: f64) -> Truth {
    let grace = secs_to_ms(grace_s);
    let mut by_zone: BTreeMap<&str, Vec<&Label>> = BTreeMap::new();
    for l in labels {
        by_zone.entry(&l.zone).or_default().push(l);
    }
    let mut zones = BTreeMap::new();
    for (zone, mut ls) in by_zone {
        ls.sort_by_key(|l| l.captured_at);
        let mut obstructions = Vec::new();
        let mut open: Option<(Millis, Millis)> = None;
        for l in ls {
            match (open, l.obstructed) {
                (None, true) => open = Some((l.captured_at, l.captured_at)),
                (Some((start, _)), true) => open = Some((start, l.captured_at)),
                (Some((start, last)), false) => {
                    obstructions.push(TruthSpan {
                        start,
                        last_obstructed: last,
                        cleared: Some(l.captured_at),
                    });
                    open = None;
                }
                (None, false) => {}
            }
        }
        if let Some((start, last)) = open {
            obstructions.push(TruthSpan {
                start,
                last_obstructed: last,
                cleared: None,
            });
        }
        let violations = obstructions
            .iter()
            .filter(|o| o.last_obstructed - o.start >= grace)
            .cloned()
            .collect();
        zones.insert(
            zone.to_string(),
            TruthZone {
                obstructions,
                violations,
            },
        );
    }
    Truth {
        grace_s: Some(grace_s),
        zones,
    }
}

/// The truth for a replay at `grace_s`, and a line saying which it is.
pub fn for_grace(
    truth: Option<&Truth>,
    labels: Option<&[Label]>,
    grace_s: f64,
) -> Option<(Truth, String)> {
    let same_grace = |t: &Truth| t.grace_s.is_none_or(|g| (g - grace_s).abs() < 1e-9);
    match (truth, labels) {
        (Some(t), _) if same_grace(t) => Some((t.clone(), "truth.json".into())),
        (_, Some(labels)) => Some((
            from_labels(labels, grace_s),
            format!("labels.csv at grace {grace_s} s"),
        )),
        (Some(t), None) => Some((
            t.clone(),
            format!(
                "truth.json at grace {} s (no labels.csv to recompute it at {grace_s} s)",
                t.grace_s.unwrap_or(grace_s)
            ),
        )),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(minute: i64, obstructed: bool) -> Label {
        Label {
            camera: "c".into(),
            captured_at: minute * 60_000,
            zone: "z".into(),
            obstructed,
        }
    }

    #[test]
    fn runs_become_obstructions_and_long_ones_violations() {
        let labels: Vec<Label> = [0, 1, 1, 1, 0, 1, 0, 1, 1]
            .iter()
            .enumerate()
            .map(|(m, &o)| label(m as i64 * 5, o == 1))
            .collect();
        let t = from_labels(&labels, 600.0);
        let z = &t.zones["z"];
        assert_eq!(z.obstructions.len(), 3);
        assert_eq!(z.obstructions[0].start, 5 * 60_000);
        assert_eq!(z.obstructions[0].last_obstructed, 15 * 60_000);
        assert_eq!(z.obstructions[0].cleared, Some(20 * 60_000));
        assert_eq!(z.obstructions[2].cleared, None);
        // 10 min lasts the grace; 0 and 5 min do not.
        assert_eq!(z.violations.len(), 1);
        assert_eq!(from_labels(&labels, 300.0).zones["z"].violations.len(), 2);
    }
}
