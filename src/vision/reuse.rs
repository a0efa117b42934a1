//! Skipping inference that cannot change the answer. On a live feed most
//! zones look the same frame after frame; a tile whose preprocessed crop
//! differs from the one last scored by less than `max_diff` (mean absolute
//! difference of the normalised values) keeps that score, for at most
//! `max_age_ms` of capture time after it was really scored. Keys include
//! the zone's polygon and the frame size, so an edited zone is scored anew.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::base::geometry::ZonePolygon;
use crate::base::time::Millis;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReuseRule {
    /// 0 turns reuse off.
    pub max_diff: f32,
    pub max_age_ms: Millis,
}

impl Default for ReuseRule {
    fn default() -> Self {
        ReuseRule::OFF
    }
}

impl ReuseRule {
    pub const OFF: ReuseRule = ReuseRule {
        max_diff: 0.0,
        max_age_ms: 0,
    };

    pub fn enabled(&self) -> bool {
        self.max_diff > 0.0 && self.max_age_ms > 0
    }
}

struct Kept {
    crop: Vec<f32>,
    score: f32,
    at: Millis,
}

/// One camera's last really-scored crops, per zone and tile.
#[derive(Default)]
pub struct ScoreCache {
    zones: HashMap<u64, Vec<Option<Kept>>>,
}

/// A zone as a cache key: its id, its exact polygon and the frame size.
pub fn zone_key(id: &str, polygon: &ZonePolygon, width: u32, height: u32) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    for p in polygon.points() {
        p[0].to_bits().hash(&mut h);
        p[1].to_bits().hash(&mut h);
    }
    (width, height).hash(&mut h);
    h.finish()
}

pub fn mean_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return f32::INFINITY;
    }
    let sum: f32 = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum();
    sum / a.len() as f32
}

impl ScoreCache {
    /// The kept score of `tile` of zone `key` when `crop` (captured `at`)
    /// is close enough to the crop it was scored on.
    pub fn lookup(
        &self,
        key: u64,
        tile: usize,
        crop: &[f32],
        at: Millis,
        rule: &ReuseRule,
    ) -> Option<f32> {
        if !rule.enabled() {
            return None;
        }
        let kept = self.zones.get(&key)?.get(tile)?.as_ref()?;
        let age = at - kept.at;
        (0..=rule.max_age_ms).contains(&age).then_some(())?;
        (mean_abs_diff(crop, &kept.crop) < rule.max_diff).then_some(kept.score)
    }

    /// Remembers a really-scored crop.
    pub fn keep(
        &mut self,
        key: u64,
        tile: usize,
        tiles: usize,
        crop: &[f32],
        score: f32,
        at: Millis,
    ) {
        let slots = self.zones.entry(key).or_default();
        slots.resize_with(tiles, || None);
        if let Some(slot) = slots.get_mut(tile) {
            match slot {
                Some(k) => {
                    k.crop.clear();
                    k.crop.extend_from_slice(crop);
                    k.score = score;
                    k.at = at;
                }
                None => {
                    *slot = Some(Kept {
                        crop: crop.to_vec(),
                        score,
                        at,
                    })
                }
            }
        }
    }

    /// Forgets zones not in `keys` (removed or redrawn).
    pub fn retain(&mut self, keys: &[u64]) {
        self.zones.retain(|k, _| keys.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_only_when_close_recent_and_the_same_zone() {
        let rule = ReuseRule {
            max_diff: 0.05,
            max_age_ms: 60_000,
        };
        let square =
            ZonePolygon::new(vec![[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]).unwrap();
        let moved = ZonePolygon::new(vec![[0.1, 0.1], [0.6, 0.1], [0.6, 0.5], [0.1, 0.5]]).unwrap();
        let key = zone_key("z", &square, 640, 480);
        assert_ne!(
            key,
            zone_key("z", &moved, 640, 480),
            "an edit is a new zone"
        );
        assert_ne!(key, zone_key("z", &square, 1280, 960));
        let crop = vec![0.5f32; 100];
        let mut cache = ScoreCache::default();
        cache.keep(key, 0, 1, &crop, 0.9, 1000);
        let near: Vec<f32> = crop.iter().map(|v| v + 0.01).collect();
        let far: Vec<f32> = crop.iter().map(|v| v + 0.2).collect();
        // (crop, capture time, rule, expected)
        let table: [(&[f32], Millis, ReuseRule, Option<f32>); 6] = [
            (&crop, 1000, rule, Some(0.9)),
            (&near, 61_000, rule, Some(0.9)),
            (&near, 61_001, rule, None), // too old
            (&near, 999, rule, None),    // earlier than scored
            (&far, 2000, rule, None),    // changed
            (&crop, 2000, ReuseRule::OFF, None),
        ];
        for (c, at, r, want) in table {
            assert_eq!(cache.lookup(key, 0, c, at, &r), want, "at {at}");
        }
        assert_eq!(
            cache.lookup(key, 1, &crop, 1000, &rule),
            None,
            "no such tile"
        );
        cache.retain(&[]);
        assert_eq!(cache.lookup(key, 0, &crop, 1000, &rule), None);
    }
}
