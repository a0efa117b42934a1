//! Long zones cut into near-square tiles.
//!
//! A fire lane is a strip along a kerb, often many times longer than it is
//! wide. Squashed into the model's square input, one car in it shrinks to
//! a sliver; cut into overlapping squares along its long axis, each tile
//! shows a car at the size the model learned. A zone no longer than
//! [`MAX_ASPECT`] is one tile: its bounding box.
//!
//! Tiles follow the strip: for each slice along the long axis, the tile is
//! centred on the polygon's own extent across that slice. A strip within
//! [`MAX_UPRIGHT_DEG`] of the frame's axes gets upright tiles (pixel
//! rectangles, copied as they are); a strip at a slant gets tiles turned
//! with it, so each still holds the strip and little beside it, seen as if
//! the kerb ran along the frame (the crop turns by the smallest angle that
//! does that).

use geo::{Coord, LineString, MinimumRotatedRect, Polygon};

use super::geometry::{PixelRect, ZonePolygon};

/// Zones up to this long-to-short ratio are scored whole.
pub const MAX_ASPECT: f64 = 1.5;
/// Strips up to this many degrees off the frame's axes get upright tiles.
pub const MAX_UPRIGHT_DEG: f64 = 10.0;
/// Tiles overlap by half, so a car on a tile boundary is whole in one.
const STRIDE: f64 = 0.5;

/// One square of a zone to score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tile {
    /// Pixels of the frame as they are.
    Upright(PixelRect),
    /// A square turned with a slanted strip: its corners in frame pixels,
    /// `[0]` to `[1]` along the crop's rows, `[0]` to `[3]` down its columns.
    Turned([(f64, f64); 4]),
}

impl Tile {
    /// The tile's outline in frame pixels (an upright tile's edges on its
    /// outer pixel borders).
    pub fn corners(&self) -> [(f64, f64); 4] {
        match *self {
            Tile::Upright(r) => {
                let (x0, y0, x1, y1) = (r.x0 as f64, r.y0 as f64, r.x1 as f64, r.y1 as f64);
                [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
            }
            Tile::Turned(c) => c,
        }
    }

    /// The upright rectangle a label drawn on the tile stays inside: the
    /// tile itself, or the largest upright square centred in a turned one.
    pub fn label_box(&self) -> PixelRect {
        match *self {
            Tile::Upright(r) => r,
            Tile::Turned(c) => {
                let (cx, cy) = ((c[0].0 + c[2].0) / 2.0, (c[0].1 + c[2].1) / 2.0);
                let (dx, dy) = (c[1].0 - c[0].0, c[1].1 - c[0].1);
                let side = dx.hypot(dy);
                // A square of side s turned by t holds an upright one of
                // side s / (|cos t| + |sin t|).
                let half = side / (dx.abs() + dy.abs()) * side / 2.0;
                let lo = |v: f64| (v - half).ceil().max(0.0) as u32;
                let hi = |v: f64| (v + half).floor().max(0.0) as u32;
                let (x0, y0) = (lo(cx), lo(cy));
                PixelRect {
                    x0,
                    y0,
                    x1: hi(cx).max(x0 + 1),
                    y1: hi(cy).max(y0 + 1),
                }
            }
        }
    }
}

impl ZonePolygon {
    /// The tiles to score for this zone in a `width` x `height` frame.
    pub fn tiles(&self, width: u32, height: u32) -> Vec<Tile> {
        let pts = self.to_pixels(width, height);
        match slant(&pts) {
            Some((turn, long, short)) if turn.abs() > MAX_UPRIGHT_DEG.to_radians() => {
                if long <= short * MAX_ASPECT {
                    vec![turned_whole(&pts, turn)]
                } else {
                    turned_tiles(&pts, turn)
                }
            }
            _ => self
                .upright_tiles(width, height)
                .into_iter()
                .map(Tile::Upright)
                .collect(),
        }
    }

    /// Upright tiles: pixel rectangles along the strip's bounding box.
    fn upright_tiles(&self, width: u32, height: u32) -> Vec<PixelRect> {
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

/// The smallest turn (radians, within ±45°) that lays the polygon's
/// minimum rotated rectangle along the frame's axes, and that rectangle's
/// long and short sides in pixels.
fn slant(pts: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let ring: Vec<Coord<f64>> = pts.iter().map(|&(x, y)| Coord { x, y }).collect();
    let rect = Polygon::new(LineString::from(ring), vec![]).minimum_rotated_rect()?;
    let c: Vec<Coord<f64>> = rect.exterior().coords().copied().collect();
    if c.len() < 4 {
        return None;
    }
    let (e1, e2) = (c[1] - c[0], c[2] - c[1]);
    let (l1, l2) = (e1.x.hypot(e1.y), e2.x.hypot(e2.y));
    let (long, short, edge) = if l1 >= l2 { (l1, l2, e1) } else { (l2, l1, e2) };
    if short <= 0.0 {
        return None;
    }
    let quarter = std::f64::consts::FRAC_PI_2;
    let mut turn = edge.y.atan2(edge.x).rem_euclid(quarter);
    if turn > quarter / 2.0 {
        turn -= quarter;
    }
    Some((turn, long, short))
}

/// A slanted bay scored whole: its bounding rectangle in the frame turned
/// back by `turn`, so the bay is seen square to the frame as upright bays
/// are, without its neighbours' corners.
fn turned_whole(pts: &[(f64, f64)], turn: f64) -> Tile {
    let (sin, cos) = turn.sin_cos();
    let (mut lo, mut hi) = (
        (f64::INFINITY, f64::INFINITY),
        (f64::NEG_INFINITY, f64::NEG_INFINITY),
    );
    for &(x, y) in pts {
        let (u, v) = (x * cos + y * sin, -x * sin + y * cos);
        lo = (lo.0.min(u), lo.1.min(v));
        hi = (hi.0.max(u), hi.1.max(v));
    }
    let back = |(u, v): (f64, f64)| (u * cos - v * sin, u * sin + v * cos);
    Tile::Turned([back(lo), back((hi.0, lo.1)), back(hi), back((lo.0, hi.1))])
}

/// Tiles turned by `turn` radians along a slanted strip: the same cut as
/// upright tiles, done in the frame turned back by `turn`.
fn turned_tiles(pts: &[(f64, f64)], turn: f64) -> Vec<Tile> {
    let (sin, cos) = turn.sin_cos();
    // Frame -> turned coordinates, and back.
    let into = |(x, y): (f64, f64)| (x * cos + y * sin, -x * sin + y * cos);
    let back = |(u, v): (f64, f64)| (u * cos - v * sin, u * sin + v * cos);
    let local: Vec<(f64, f64)> = pts.iter().map(|&p| into(p)).collect();
    let (mut lo, mut hi) = (
        (f64::INFINITY, f64::INFINITY),
        (f64::NEG_INFINITY, f64::NEG_INFINITY),
    );
    for &(u, v) in &local {
        lo = (lo.0.min(u), lo.1.min(v));
        hi = (hi.0.max(u), hi.1.max(v));
    }
    let (bu, bv) = (hi.0 - lo.0, hi.1 - lo.1);
    let horizontal = bu >= bv;
    let (long, short, along0) = if horizontal {
        (bu, bv, lo.0)
    } else {
        (bv, bu, lo.1)
    };
    let side = (shoelace(&local) / long).clamp(1.0, short.max(1.0));
    // Turned coordinates carry rounding: 4.000000001 strides are 4.
    let n = (((long - side) / (side * STRIDE) - 1e-9).ceil() as usize + 1).max(2);
    let step = (long - side) / (n - 1) as f64;
    (0..n)
        .map(|k| {
            let a = along0 + k as f64 * step;
            let (c_lo, c_hi) = extent_across(&local, horizontal, a, a + side);
            let c = (c_lo + c_hi) / 2.0 - side / 2.0;
            let (u0, v0) = if horizontal { (a, c) } else { (c, a) };
            Tile::Turned([
                back((u0, v0)),
                back((u0 + side, v0)),
                back((u0 + side, v0 + side)),
                back((u0, v0 + side)),
            ])
        })
        .collect()
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

    /// The tiles as pixel rectangles; every one must be upright.
    fn upright(tiles: Vec<Tile>) -> Vec<PixelRect> {
        tiles
            .into_iter()
            .map(|t| match t {
                Tile::Upright(r) => r,
                Tile::Turned(c) => panic!("turned tile {c:?}"),
            })
            .collect()
    }

    fn turned(tiles: Vec<Tile>) -> Vec<[(f64, f64); 4]> {
        tiles
            .into_iter()
            .map(|t| match t {
                Tile::Turned(c) => c,
                Tile::Upright(r) => panic!("upright tile {r:?}"),
            })
            .collect()
    }

    /// A strip `long` x `thick` px centred at (500, 500) of a 1000 px
    /// frame, its long axis at `deg` degrees (y down).
    fn strip(long: f64, thick: f64, deg: f64) -> ZonePolygon {
        let (s, c) = deg.to_radians().sin_cos();
        let (a, n) = (
            (c * long / 2.0, s * long / 2.0),
            (-s * thick / 2.0, c * thick / 2.0),
        );
        let p = |i: f64, j: f64| {
            [
                (500.0 + i * a.0 + j * n.0) / 1000.0,
                (500.0 + i * a.1 + j * n.1) / 1000.0,
            ]
        };
        zone(&[p(-1.0, -1.0), p(1.0, -1.0), p(1.0, 1.0), p(-1.0, 1.0)])
    }

    #[test]
    fn a_bay_is_one_tile_its_bounding_box() {
        let z = zone(&[[0.1, 0.1], [0.2, 0.1], [0.2, 0.25], [0.1, 0.25]]);
        assert_eq!(
            z.tiles(1000, 1000),
            vec![Tile::Upright(z.bounding_box(1000, 1000))]
        );
    }

    /// A bay at a slant is one tile too: its own rectangle turned back
    /// square to the frame, not a bounding box with its neighbours' corners.
    #[test]
    fn a_slanted_bay_is_one_tile_turned_with_it() {
        let z = strip(120.0, 100.0, 30.0);
        let tiles = turned(z.tiles(1000, 1000));
        assert_eq!(tiles.len(), 1, "{tiles:?}");
        let t = tiles[0];
        let side = |a: (f64, f64), b: (f64, f64)| (b.0 - a.0).hypot(b.1 - a.1);
        assert!((side(t[0], t[1]) - 120.0).abs() < 1e-6, "{t:?}");
        assert!((side(t[0], t[3]) - 100.0).abs() < 1e-6, "{t:?}");
        let (dx, dy) = (t[1].0 - t[0].0, t[1].1 - t[0].1);
        assert!((dy.atan2(dx).to_degrees() - 30.0).abs() < 1e-6, "{t:?}");
    }

    #[test]
    fn a_strip_three_times_longer_than_wide_is_cut_into_overlapping_squares() {
        // 300 x 100 px.
        let z = zone(&[[0.1, 0.5], [0.4, 0.5], [0.4, 0.6], [0.1, 0.6]]);
        let tiles = upright(z.tiles(1000, 1000));
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
        let tiles = upright(z.tiles(1000, 1000));
        assert!(tiles.len() >= 6);
        assert!(tiles.iter().all(|t| t.x0 == 500 && t.width() == 50));
    }

    #[test]
    fn a_strip_at_a_slight_slant_is_followed_by_upright_tiles() {
        // A band falling 0.15 px per px (8.5 degrees), 60 px thick.
        let z = zone(&[[0.1, 0.1], [0.7, 0.19], [0.7, 0.25], [0.1, 0.16]]);
        let tiles = upright(z.tiles(1000, 1000));
        assert!(tiles.len() >= 3, "{tiles:?}");
        // Each tile sits on the band where it passes, lower to the right.
        for w in tiles.windows(2) {
            assert!(w[1].y0 >= w[0].y0, "{tiles:?}");
        }
        for t in &tiles {
            let x = (t.x0 + t.x1) as f64 / 2.0;
            let middle = 130.0 + (x - 100.0) * 0.15;
            assert!(
                (t.y0 as f64) < middle && middle < t.y1 as f64,
                "{t:?} misses the band at x {x}"
            );
        }
    }

    /// Slanted strips (table: angle, expected turn of the tiles) get
    /// squares turned with them, as thick as the strip, along its middle,
    /// overlapping by half.
    #[test]
    fn a_slanted_strip_gets_tiles_turned_with_it() {
        for (deg, turn) in [
            (20.0, 20.0),
            (-30.0, -30.0),
            (40.0, 40.0),
            (70.0, -20.0),
            (125.0, 35.0),
        ] {
            let z = strip(300.0, 100.0, deg);
            let tiles = turned(z.tiles(1000, 1000));
            assert_eq!(tiles.len(), 5, "{deg}: {tiles:?}");
            let (s, c) = f64::to_radians(deg).sin_cos();
            for (k, t) in tiles.iter().enumerate() {
                let (dx, dy) = (t[1].0 - t[0].0, t[1].1 - t[0].1);
                assert!((dx.hypot(dy) - 100.0).abs() < 1e-6, "{deg}: side {t:?}");
                let got = dy.atan2(dx).to_degrees();
                assert!(
                    (got - turn).abs() < 1e-6,
                    "{deg}: rows turned {got}, want {turn}"
                );
                // Centres on the strip's middle line, 50 px apart.
                let (cx, cy) = ((t[0].0 + t[2].0) / 2.0, (t[0].1 + t[2].1) / 2.0);
                let along = (cx - 500.0) * c + (cy - 500.0) * s;
                let across = -(cx - 500.0) * s + (cy - 500.0) * c;
                assert!(
                    across.abs() < 1e-6,
                    "{deg}: tile {k} off the middle by {across}"
                );
                let want = (k as f64 - 2.0) * 50.0;
                assert!(
                    (along.abs() - want.abs()).abs() < 1e-6,
                    "{deg}: tile {k} at {along}"
                );
            }
        }
    }

    #[test]
    fn a_turned_tiles_label_box_is_inside_it() {
        let z = strip(300.0, 100.0, 30.0);
        for t in z.tiles(1000, 1000) {
            let b = t.label_box();
            let c = t.corners();
            let (cx, cy) = ((c[0].0 + c[2].0) / 2.0, (c[0].1 + c[2].1) / 2.0);
            // 100 / (cos 30 + sin 30) = 73.2 px, centred on the tile.
            assert!(
                (72..=74).contains(&b.width()) && (72..=74).contains(&b.height()),
                "{b:?}"
            );
            assert!(
                ((b.x0 + b.x1) as f64 / 2.0 - cx).abs() <= 1.0,
                "{b:?} vs {cx}"
            );
            assert!(
                ((b.y0 + b.y1) as f64 / 2.0 - cy).abs() <= 1.0,
                "{b:?} vs {cy}"
            );
        }
    }

    #[test]
    fn tiles_stay_inside_the_frame() {
        let z = zone(&[[0.0, 0.95], [1.0, 0.95], [1.0, 1.0], [0.0, 1.0]]);
        for t in upright(z.tiles(640, 480)) {
            assert!(
                t.x1 <= 640 && t.y1 <= 480 && t.x0 < t.x1 && t.y0 < t.y1,
                "{t:?}"
            );
        }
    }
}
