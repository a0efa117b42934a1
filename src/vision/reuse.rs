//! Skipping inference that cannot change the answer. On a live feed most
//! zones look the same frame after frame; a tile whose crop differs from
//! the one last scored by less than `max_diff` keeps that score, for at
//! most `max_age_ms` of capture time after it was really scored. Keys
//! include the zone's polygon and the frame size, so an edited zone is
//! scored anew.
//!
//! A crop is kept as its [`Signature`], the resized tile's bytes: 12 KB
//! for a 64×64 tile where the normalised floats took 48 KB (500 cameras of
//! 51 zones held 1.2 GB of them). The difference reads exactly as before,
//! the mean absolute difference of the values the model sees. (Block means
//! would keep less, but they let JPEG noise cancel and, at the same
//! threshold, reused scores through changes that did change decisions on
//! the recorded scenario.)

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

/// A crop as the model's input bytes (RGB, before normalisation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature(Vec<u8>);

impl Signature {
    /// The signature of `crop` (the tile resized to the model's input, RGB).
    pub fn of(crop: &image::RgbImage) -> Signature {
        Signature(crop.as_raw().clone())
    }

    /// Mean absolute difference of the normalised values: each channel's
    /// byte step weighted by `unit[c]` (see [`super::crop::byte_units`]).
    pub fn diff(&self, other: &Signature, unit: [f32; 3]) -> f32 {
        let (a, b) = (&self.0, &other.0);
        if a.len() != b.len() || a.is_empty() {
            return f32::INFINITY;
        }
        let mut per_channel = [0u64; 3];
        for (pa, pb) in a.chunks_exact(3).zip(b.chunks_exact(3)) {
            for c in 0..3 {
                per_channel[c] += pa[c].abs_diff(pb[c]) as u64;
            }
        }
        let total: f32 = (0..3).map(|c| per_channel[c] as f32 * unit[c]).sum();
        total / a.len() as f32
    }
}

struct Kept {
    crop: Signature,
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

impl ScoreCache {
    /// The kept score of `tile` of zone `key` when `crop` (captured `at`)
    /// is close enough to the crop it was scored on (`unit`: see
    /// [`Signature::diff`]).
    pub fn lookup(
        &self,
        key: u64,
        tile: usize,
        crop: &Signature,
        unit: [f32; 3],
        at: Millis,
        rule: &ReuseRule,
    ) -> Option<f32> {
        if !rule.enabled() {
            return None;
        }
        let kept = self.zones.get(&key)?.get(tile)?.as_ref()?;
        let age = at - kept.at;
        (0..=rule.max_age_ms).contains(&age).then_some(())?;
        (crop.diff(&kept.crop, unit) < rule.max_diff).then_some(kept.score)
    }

    /// Remembers a really-scored crop.
    pub fn keep(
        &mut self,
        key: u64,
        tile: usize,
        tiles: usize,
        crop: Signature,
        score: f32,
        at: Millis,
    ) {
        let slots = self.zones.entry(key).or_default();
        slots.resize_with(tiles, || None);
        if let Some(slot) = slots.get_mut(tile) {
            *slot = Some(Kept { crop, score, at });
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

    const UNIT: [f32; 3] = [1.0 / 255.0; 3];

    fn grey(v: u8) -> Signature {
        Signature::of(&image::RgbImage::from_pixel(64, 64, image::Rgb([v, v, v])))
    }

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
        let (crop, near, far) = (grey(128), grey(131), grey(180));
        let mut cache = ScoreCache::default();
        cache.keep(key, 0, 1, crop.clone(), 0.9, 1000);
        // (crop, capture time, rule, expected)
        let table: [(&Signature, Millis, ReuseRule, Option<f32>); 6] = [
            (&crop, 1000, rule, Some(0.9)),
            (&near, 61_000, rule, Some(0.9)),
            (&near, 61_001, rule, None), // too old
            (&near, 999, rule, None),    // earlier than scored
            (&far, 2000, rule, None),    // changed
            (&crop, 2000, ReuseRule::OFF, None),
        ];
        for (c, at, r, want) in table {
            assert_eq!(cache.lookup(key, 0, c, UNIT, at, &r), want, "at {at}");
        }
        assert_eq!(
            cache.lookup(key, 1, &crop, UNIT, 1000, &rule),
            None,
            "no such tile"
        );
        cache.retain(&[]);
        assert_eq!(cache.lookup(key, 0, &crop, UNIT, 1000, &rule), None);
    }

    /// The difference is the mean absolute difference of the normalised
    /// floats, as computed on them directly.
    #[test]
    fn diff_reads_in_the_models_units() {
        let input = crate::vision::card::CardInput {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            ..crate::vision::crop::tests::input(false)
        };
        let a = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 7, 200]));
        let b = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([y as u8 * 30, x as u8 * 9, 90]));
        let floats = |img: &image::RgbImage| {
            let mut v = vec![0.0; crate::vision::crop::crop_len(&input)];
            crate::vision::crop::normalise_into(img, &input, &mut v);
            v
        };
        let (fa, fb) = (floats(&a), floats(&b));
        let direct: f32 =
            fa.iter().zip(&fb).map(|(x, y)| (x - y).abs()).sum::<f32>() / fa.len() as f32;
        let unit = crate::vision::crop::byte_units(&input);
        let d = Signature::of(&a).diff(&Signature::of(&b), unit);
        assert!((d - direct).abs() < 1e-4, "{d} vs {direct}");
        assert_eq!(Signature::of(&a).diff(&Signature::of(&a), unit), 0.0);
        let other = Signature::of(&image::RgbImage::new(4, 4));
        assert_eq!(other.diff(&Signature::of(&a), unit), f32::INFINITY);
    }
}
