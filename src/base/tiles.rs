//! Long zones cut into near-square tiles.
//!
//! A fire lane is a strip along a kerb, often many times longer than it is
//! wide. Squashed into the model's square input, one car in it shrinks to
//! a sliver; cut into overlapping squares along its long axis, each tile
//! shows a car at the size the model learned. A zone no longer than
//! [`MAX_ASPECT`] is one tile: its bounding box.
//!
//! Tiles follow the strip: for each slice along the long axis, the tile is
//! centred on the polygon's own extent across that slice, so a diagonal
//! strip is followed rather than boxed.

use super::geometry::{PixelRect, ZonePolygon};

/// Zones up to this long-to-short ratio are scored whole.
pub const MAX_ASPECT: f64 = 1.5;
/// Tiles overlap by half, so a car on a tile boundary is whole in one.
const STRIDE: f64 = 0.5;

impl ZonePolygon {
    /// The pixel tiles to score for this zone in a `width` x `height` frame.
    pub fn tiles(&self, width: u32, height: u32) -> Vec<PixelRect> {
        let bbox = self.bounding_box(width, height);
        let (bw, bh) = (bbox.width() as f64, bbox.height() as f64);
        let horizontal = bw >= bh;
        let (long, short) = if horizontal { (bw, bh) } else { (bh, bw) };
        if long <= short * MAX_ASPECT {
            return vec![bbox];
        }
        let pts = self.to_pixels(width, height);
        // The strip's mean thickness across its long axis: its area over
        // its length (a diagonal strip is thinner than its bounding box).
        let thickness = (shoelace(&pts) / long).clamp(1.0, short);
        let side = thickness.max(1.0);
        let n = (((long - side) / (side * STRIDE)).ceil() as usize + 1).max(2);
        let step = (long - side) / (n - 1) as f64;
        let (along0, across_max) = if horizontal {
            (bbox.x0 as f64, height as f64)
        } else {
            (bbox.y0 as f64, width as f64)
        };
        (0..n)
            .map(|k| {
                let a = along0 + k as f64 * step;
                let (lo, hi) = extent_across(&pts, horizontal, a, a + side);
                let centre = (lo + hi) / 2.0;
                let c0 = (centre - side / 2.0).clamp(0.0, (across_max - side).max(0.0));
                let (a0, a1) = (a.floor(), (a + side).ceil());
                let (c0, c1) = (c0.floor(), (c0 + side).ceil().min(across_max));
                let rect = if horizontal {
                    (a0, c0, a1.min(width as f64), c1)
                } else {
                    (c0, a0, c1, a1.min(height as f64))
                };
                PixelRect {
                    x0: rect.0 as u32,
                    y0: rect.1 as u32,
                    x1: (rect.2 as u32).max(rect.0 as u32 + 1),
                    y1: (rect.3 as u32).max(rect.1 as u32 + 1),
                }
            })
            .collect()
    }
}

/// Twice-signed area halved: the polygon's area in pixels.
fn shoelace(pts: &[(f64, f64)]) -> f64 {
    let n = pts.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let (a, b) = (pts[i], pts[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum();
    twice.abs() / 2.0
}

/// The polygon's extent across the long axis within the slice `[a0, a1]`
/// along it: its vertices inside the slice and its edges' crossings of
/// the slice's two borders.
fn extent_across(pts: &[(f64, f64)], horizontal: bool, a0: f64, a1: f64) -> (f64, f64) {
    let split = |p: (f64, f64)| if horizontal { p } else { (p.1, p.0) };
    let mut seen = Vec::new();
    for i in 0..pts.len() {
        let (pa, pc) = split(pts[i]);
        let (qa, qc) = split(pts[(i + 1) % pts.len()]);
        if (a0..=a1).contains(&pa) {
            seen.push(pc);
        }
        for border in [a0, a1] {
            if (pa - border) * (qa - border) < 0.0 {
                seen.push(pc + (qc - pc) * (border - pa) / (qa - pa));
            }
        }
    }
    if seen.is_empty() {
        // A slice with no edge in it lies inside: the whole extent.
        seen.extend(pts.iter().map(|&p| split(p).1));
    }
    let lo = seen.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = seen.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(points: &[[f64; 2]]) -> ZonePolygon {
        ZonePolygon::new(points.to_vec()).unwrap()
    }

    #[test]
    fn a_bay_is_one_tile_its_bounding_box() {
        let z = zone(&[[0.1, 0.1], [0.2, 0.1], [0.2, 0.25], [0.1, 0.25]]);
        assert_eq!(z.tiles(1000, 1000), vec![z.bounding_box(1000, 1000)]);
    }

    #[test]
    fn a_strip_three_times_longer_than_wide_is_cut_into_overlapping_squares() {
        // 300 x 100 px.
        let z = zone(&[[0.1, 0.5], [0.4, 0.5], [0.4, 0.6], [0.1, 0.6]]);
        let tiles = z.tiles(1000, 1000);
        assert_eq!(tiles.len(), 5, "{tiles:?}");
        for t in &tiles {
            assert_eq!((t.width(), t.height()), (100, 100), "{t:?}");
            assert_eq!((t.y0, t.y1), (500, 600));
        }
        assert_eq!(tiles[0].x0, 100);
        assert_eq!(tiles[4].x1, 400);
        // Neighbours overlap by half a tile.
        assert_eq!(tiles[1].x0, 150);
    }

    #[test]
    fn a_vertical_strip_is_cut_along_its_height() {
        let z = zone(&[[0.5, 0.1], [0.55, 0.1], [0.55, 0.4], [0.5, 0.4]]);
        let tiles = z.tiles(1000, 1000);
        assert!(tiles.len() >= 6);
        assert!(tiles.iter().all(|t| t.x0 == 500 && t.width() == 50));
    }

    #[test]
    fn a_diagonal_strip_is_followed_not_boxed() {
        // A band from top-left to bottom-right, 60 px thick vertically.
        let z = zone(&[[0.1, 0.1], [0.7, 0.4], [0.7, 0.46], [0.1, 0.16]]);
        let tiles = z.tiles(1000, 1000);
        assert!(tiles.len() >= 3, "{tiles:?}");
        // Each tile sits on the band where it passes, lower to the right.
        for w in tiles.windows(2) {
            assert!(w[1].y0 > w[0].y0, "{tiles:?}");
        }
        for t in &tiles {
            // The band's middle where the tile is: y = 130 + (x - 100) / 2.
            let x = (t.x0 + t.x1) as f64 / 2.0;
            let middle = 130.0 + (x - 100.0) / 2.0;
            assert!(
                (t.y0 as f64) < middle && middle < t.y1 as f64,
                "{t:?} misses the band at x {x}"
            );
        }
    }

    #[test]
    fn tiles_stay_inside_the_frame() {
        let z = zone(&[[0.0, 0.95], [1.0, 0.95], [1.0, 1.0], [0.0, 1.0]]);
        for t in z.tiles(640, 480) {
            assert!(
                t.x1 <= 640 && t.y1 <= 480 && t.x0 < t.x1 && t.y0 < t.y1,
                "{t:?}"
            );
        }
    }
}
