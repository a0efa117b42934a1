//! Scoring a replay against `truth.json`, as FORMAT.md defines it: a
//! reported violation matches a true one of the same zone when their spans
//! overlap; each true violation matches at most one report.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::base::time::Millis;

use super::scenario::Truth;

/// A violation's span; `end` `None` means still open at the recording's end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub start: Millis,
    pub end: Option<Millis>,
}

impl Span {
    pub fn overlaps(&self, other: &Span) -> bool {
        let a_end = self.end.unwrap_or(Millis::MAX);
        let b_end = other.end.unwrap_or(Millis::MAX);
        self.start <= b_end && other.start <= a_end
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub reported: usize,
    pub truth: usize,
    pub matched: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Mean absolute start error over matches, seconds.
    pub mean_start_error_s: Option<f64>,
}

/// Scores `reported` (zone → spans) against the truth's violations.
pub fn score(reported: &BTreeMap<String, Vec<Span>>, truth: &Truth) -> Score {
    let mut matched = 0usize;
    let mut start_errors = Vec::new();
    let total_truth: usize = truth.zones.values().map(|z| z.violations.len()).sum();
    let total_reported: usize = reported.values().map(Vec::len).sum();
    for (zone, spans) in reported {
        let Some(tz) = truth.zones.get(zone) else {
            continue;
        };
        let mut truths: Vec<Span> = tz
            .violations
            .iter()
            .map(|v| Span {
                start: v.start,
                end: v.cleared,
            })
            .collect();
        truths.sort_by_key(|s| s.start);
        let mut used = vec![false; truths.len()];
        let mut spans = spans.clone();
        spans.sort_by_key(|s| s.start);
        for r in &spans {
            // The overlapping true violation with the nearest start.
            let best = truths
                .iter()
                .enumerate()
                .filter(|(i, t)| !used[*i] && r.overlaps(t))
                .min_by_key(|(_, t)| (t.start - r.start).abs());
            if let Some((i, t)) = best {
                used[i] = true;
                matched += 1;
                start_errors.push((t.start - r.start).abs() as f64 / 1000.0);
            }
        }
    }
    let precision = if total_reported == 0 {
        if total_truth == 0 { 1.0 } else { 0.0 }
    } else {
        matched as f64 / total_reported as f64
    };
    let recall = if total_truth == 0 {
        1.0
    } else {
        matched as f64 / total_truth as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let mean_start_error_s = (!start_errors.is_empty())
        .then(|| start_errors.iter().sum::<f64>() / start_errors.len() as f64);
    Score {
        reported: total_reported,
        truth: total_truth,
        matched,
        precision,
        recall,
        f1,
        mean_start_error_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::scenario::{TruthSpan, TruthZone};

    /// (start, cleared) of each true violation.
    type Spans<'a> = &'a [(i64, Option<i64>)];

    fn truth(zones: &[(&str, Spans)]) -> Truth {
        Truth {
            grace_s: Some(600.0),
            zones: zones
                .iter()
                .map(|(z, vs)| {
                    let violations = vs
                        .iter()
                        .map(|&(s, c)| TruthSpan {
                            start: s,
                            last_obstructed: s,
                            cleared: c,
                        })
                        .collect();
                    (
                        z.to_string(),
                        TruthZone {
                            obstructions: vec![],
                            violations,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn each_truth_matches_once() {
        let t = truth(&[("a", &[(0, Some(100_000))]), ("b", &[(0, None)])]);
        let mut r = BTreeMap::new();
        // two reports overlap a's single violation: one match, one false positive
        r.insert(
            "a".to_string(),
            vec![
                Span {
                    start: 10_000,
                    end: Some(50_000),
                },
                Span {
                    start: 60_000,
                    end: None,
                },
            ],
        );
        let s = score(&r, &t);
        assert_eq!((s.reported, s.truth, s.matched), (3 - 1, 2, 1));
        assert_eq!(s.precision, 0.5);
        assert_eq!(s.recall, 0.5);
        assert_eq!(s.mean_start_error_s, Some(10.0));
    }

    #[test]
    fn other_zone_does_not_match() {
        let t = truth(&[("a", &[(0, Some(100))])]);
        let mut r = BTreeMap::new();
        r.insert(
            "b".to_string(),
            vec![Span {
                start: 0,
                end: Some(100),
            }],
        );
        let s = score(&r, &t);
        assert_eq!(s.matched, 0);
        assert_eq!(s.f1, 0.0);
    }
}
