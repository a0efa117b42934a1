//! Per-camera calibration from presence sensors.
//!
//! A camera the model never saw may score every car lower (or every empty
//! bay higher) than the cameras it learned from. Zones with presence
//! sensors label that camera's scores for free: when a sensor has held the
//! same state for a while (a confident reading), the camera's score of its
//! zone at that moment is a labelled sample. The thresholds that separate
//! the samples best (highest balanced accuracy) form a range; the camera's
//! threshold moves into it, as little as it can while keeping clear of its
//! ends, bounded around the configured one, so a new camera gets better by
//! itself and one bad sensor cannot drag it far. It moves only when that
//! separates the samples clearly better than the threshold in force: one
//! that already separates them is not pushed about by a few borderline
//! scores. Pure: the pipeline feeds it and applies what it suggests.

use std::collections::VecDeque;

/// Samples kept per camera (the most recent).
const CAPACITY: usize = 600;
/// Samples of each class needed before suggesting anything.
const MIN_EACH: usize = 20;
/// A suggestion moves at most this far from the configured threshold.
pub const MAX_SHIFT: f64 = 0.3;
/// A suggestion must beat the threshold in force by this much balanced
/// accuracy (2 % of each class's samples, or more of one): less is
/// within what a few hundred noisy samples give by chance.
pub const MIN_GAIN: f64 = 0.02;

#[derive(Debug, Clone, Default)]
pub struct Calibrator {
    samples: VecDeque<(f64, bool)>,
    /// Samples since the last suggestion was asked for.
    pub fresh: usize,
}

impl Calibrator {
    /// A labelled score: `occupied` as a confident sensor says.
    pub fn observe(&mut self, score: f64, occupied: bool) {
        if !score.is_finite() {
            return;
        }
        if self.samples.len() == CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back((score, occupied));
        self.fresh += 1;
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The threshold these samples call for, within [`MAX_SHIFT`] of
    /// `configured` and inside (0.02, 0.98); `None` until both classes
    /// have enough samples, and while `current` (the threshold in force)
    /// separates them within [`MIN_GAIN`] of it.
    pub fn suggest(&self, configured: f64, current: f64) -> Option<f64> {
        let pos = self.samples.iter().filter(|s| s.1).count();
        let neg = self.samples.len() - pos;
        if pos < MIN_EACH || neg < MIN_EACH {
            return None;
        }
        let mut sorted: Vec<(f64, bool)> = self.samples.iter().copied().collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        // A threshold between sorted[k-1] and sorted[k]: the first k
        // samples read clear. Ties cannot be split.
        let n = sorted.len();
        let (mut clear_pos, mut clear_neg) = (0usize, 0usize);
        let mut best = f64::NEG_INFINITY;
        let mut range = (0.0, 1.0);
        for k in 0..=n {
            if k > 0 {
                if sorted[k - 1].1 {
                    clear_pos += 1;
                } else {
                    clear_neg += 1;
                }
            }
            if k > 0 && k < n && sorted[k].0 == sorted[k - 1].0 {
                continue;
            }
            let lo = if k == 0 { 0.0 } else { sorted[k - 1].0 };
            let hi = if k == n { 1.0 } else { sorted[k].0 };
            let tpr = (pos - clear_pos) as f64 / pos as f64;
            let tnr = clear_neg as f64 / neg as f64;
            let balanced = (tpr + tnr) / 2.0;
            if balanced > best + 1e-12 {
                best = balanced;
                range = (lo, hi);
            } else if (balanced - best).abs() <= 1e-12 {
                range.1 = hi;
            }
        }
        // The smallest move into the best range, kept a quarter of its
        // width inside it: the configured threshold was chosen on far more
        // data than a camera's sensors give, so it moves only as far as
        // the samples demand.
        let quarter = (range.1 - range.0) / 4.0;
        let suggested = current
            .clamp(range.0 + quarter, range.1 - quarter)
            .clamp(configured - MAX_SHIFT, configured + MAX_SHIFT)
            .clamp(0.02, 0.98);
        let gain =
            self.balanced_accuracy(suggested, pos, neg) - self.balanced_accuracy(current, pos, neg);
        (gain >= MIN_GAIN).then_some(suggested)
    }

    /// Balanced accuracy of `threshold` on the samples (a score at or
    /// above it reads obstructed, as in the tracker).
    fn balanced_accuracy(&self, threshold: f64, pos: usize, neg: usize) -> f64 {
        let hit = |s: &&(f64, bool)| (s.0 >= threshold) == s.1;
        let tp = self.samples.iter().filter(|s| s.1).filter(hit).count();
        let tn = self.samples.iter().filter(|s| !s.1).filter(hit).count();
        (tp as f64 / pos as f64 + tn as f64 / neg as f64) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of `n` scores around `centre`.
    fn scores(n: usize, centre: f64, spread: f64) -> impl Iterator<Item = f64> {
        (0..n).map(move |i| centre + spread * (((i * 37) % 101) as f64 / 100.0 - 0.5))
    }

    fn accuracy(samples: &[(f64, bool)], t: f64) -> f64 {
        samples.iter().filter(|(s, o)| (*s >= t) == *o).count() as f64 / samples.len() as f64
    }

    #[test]
    fn a_camera_that_scores_cars_low_recovers() {
        // The model learned at 0.41; this camera's cars score ~0.25 and its
        // empty bays ~0.05: at 0.41 most cars are missed.
        let mut samples = Vec::new();
        samples.extend(scores(150, 0.25, 0.2).map(|s| (s, true)));
        samples.extend(scores(150, 0.05, 0.08).map(|s| (s, false)));
        let before = accuracy(&samples, 0.41);
        let mut c = Calibrator::default();
        for &(s, o) in &samples {
            c.observe(s, o);
        }
        let t = c.suggest(0.41, 0.41).expect("enough of both");
        let after = accuracy(&samples, t);
        assert!(before < 0.75, "the shift hurts: {before}");
        assert!(after > 0.97, "recovered: {after} at {t}");
        assert!(t < 0.2 && t > 0.08, "{t}");
    }

    #[test]
    fn it_waits_for_both_classes_and_stays_bounded() {
        let mut c = Calibrator::default();
        for s in scores(100, 0.95, 0.04) {
            c.observe(s, true);
        }
        assert_eq!(c.suggest(0.5, 0.5), None, "no empty-lane samples yet");
        // Empty lanes scoring 0.55-0.85 (a camera far off the model, or
        // a bad sensor) call for about 0.87; the bound stops it at 0.8.
        for s in scores(100, 0.7, 0.3) {
            c.observe(s, false);
        }
        let t = c.suggest(0.5, 0.5).unwrap();
        assert!((t - (0.5 + MAX_SHIFT)).abs() < 1e-9, "{t}");
    }

    #[test]
    fn a_threshold_that_separates_the_classes_stays_where_it_is() {
        let mut c = Calibrator::default();
        for s in scores(60, 0.9, 0.1) {
            c.observe(s, true);
        }
        for s in scores(60, 0.1, 0.1) {
            c.observe(s, false);
        }
        assert_eq!(c.suggest(0.5, 0.5), None, "0.5 already separates them");
        // One that does not (left by an earlier calibration) moves back
        // between the classes.
        let t = c.suggest(0.5, 0.9).unwrap();
        assert!(t > 0.15 && t < 0.85, "{t}");
    }

    #[test]
    fn a_few_borderline_scores_do_not_move_it() {
        // (cars' centre, empty bays' centre, borderline cars under the
        // threshold, expected suggestion)
        type Range = Option<(f64, f64)>;
        let table: [(f64, f64, usize, Range); 3] = [
            // 1 of 100 cars just under 0.45: a gain of 0.5 %, kept.
            (0.9, 0.1, 1, None),
            // 30 of 100 cars at 0.40: a real shift, lowered below them.
            (0.9, 0.1, 30, Some((0.2, 0.4))),
            // none: nothing to gain.
            (0.8, 0.2, 0, None),
        ];
        for (cars, empty, low, want) in table {
            let mut c = Calibrator::default();
            for s in scores(100 - low, cars, 0.1) {
                c.observe(s, true);
            }
            for _ in 0..low {
                c.observe(0.40, true);
            }
            for s in scores(100, empty, 0.1) {
                c.observe(s, false);
            }
            let got = c.suggest(0.45, 0.45);
            match want {
                None => assert_eq!(got, None, "{cars} {empty} {low}"),
                Some((lo, hi)) => {
                    let t = got.expect("moves");
                    assert!(t > lo && t < hi, "{cars} {empty} {low}: {t}");
                }
            }
        }
    }
}
