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
//! does that). A bent zone (a lane around a corner, or a curve) gets
//! squares along its middle instead (see [`bent`]).

use std::sync::{Mutex, MutexGuard};

use geo::{Coord, LineString, MinimumRotatedRect, Polygon};

use super::geometry::{PixelRect, ZonePolygon};

mod bent;

/// Zones up to this long-to-short ratio are scored whole.
pub const MAX_ASPECT: f64 = 1.5;
/// Strips up to this many degrees off the frame's axes get upright tiles.
pub const MAX_UPRIGHT_DEG: f64 = 10.0;
/// A slanted zone scored whole is turned only when it fills this much of
/// its smallest enclosing rectangle.
const MIN_FILL: f64 = 0.85;
/// Tiles overlap by half, so a car on a tile boundary is whole in one.
const STRIDE: f64 = 0.5;
/// A strip whose thickest stretch is this much thicker than its thinnest
/// (a kerb seen in perspective, wide near the camera, thin far off) gets
/// tiles as thick as the strip where each lies, not all its mean.
const TAPER: f64 = 1.4;

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

/// A zone's tiles for one frame size, kept: a camera's frames keep their
/// size, and a bent zone's layout costs about a millisecond. A zone edit
/// makes a new [`ZonePolygon`], so tiles never outlive their outline.
#[derive(Default)]
pub struct TileMemo(Mutex<Option<(u32, u32, Vec<Tile>)>>);

impl Clone for TileMemo {
    fn clone(&self) -> Self {
        TileMemo(Mutex::new(self.kept().clone()))
    }
}

impl std::fmt::Debug for TileMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TileMemo")
    }
}

impl TileMemo {
    fn kept(&self) -> MutexGuard<'_, Option<(u32, u32, Vec<Tile>)>> {
        // A panic elsewhere cannot leave the memo half-written: it is
        // replaced whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ZonePolygon {
    /// The tiles to score for this zone in a `width` x `height` frame.
    pub fn tiles(&self, width: u32, height: u32) -> Vec<Tile> {
        if let Some((_, _, tiles)) = self
            .tiles
            .kept()
            .as_ref()
            .filter(|(w, h, _)| (*w, *h) == (width, height))
        {
            return tiles.clone();
        }
        let tiles = self.lay_out(width, height);
        *self.tiles.kept() = Some((width, height, tiles.clone()));
        tiles
    }

    /// The tiles for a `width` x `height` frame, worked out afresh.
    fn lay_out(&self, width: u32, height: u32) -> Vec<Tile> {
        let pts = self.to_pixels(width, height);
        let rect = slant(&pts);
        let upright_turn = |turn: f64| turn.abs() <= MAX_UPRIGHT_DEG.to_radians();
        if let Some((turn, long, short)) = rect {
            let turn = if upright_turn(turn) { 0.0 } else { turn };
            if let Some(tiles) = bent::bent_tiles(&pts, turn, long * short, width, height) {
                return tiles;
            }
        }
        let slanted = rect.filter(|&(turn, ..)| !upright_turn(turn));
        if let Some((turn, long, short)) = slanted {
            if long > short * MAX_ASPECT {
                return turned_tiles(&pts, turn);
            }
            // A bay is turned only when it is a rectangle at a slant (a
            // rolled camera): one sheared by perspective keeps its
            // bounding box, where its car stands upright.
            if shoelace(&pts) >= MIN_FILL * long * short {
                return vec![turned_whole(&pts, turn)];
            }
        }
        self.upright_tiles(width, height)
            .into_iter()
            .map(Tile::Upright)
            .collect()
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
        let along0 = if horizontal { bbox.x0 } else { bbox.y0 } as f64;
        if let Some(squares) = tapered(&pts, horizontal, along0, long, short) {
            return squares
                .into_iter()
                .map(|(a, c, side)| {
                    let corner = if horizontal { (a, c) } else { (c, a) };
                    upright_rect(corner, side, width, height)
                })
                .collect();
        }
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

/// The pixels of a square from `corner` (top left) with `side`, kept
/// inside the `width` x `height` frame and at least one pixel a side.
fn upright_rect((x, y): Point, side: f64, width: u32, height: u32) -> PixelRect {
    let x0 = (x.floor().max(0.0) as u32).min(width - 1);
    let y0 = (y.floor().max(0.0) as u32).min(height - 1);
    PixelRect {
        x0,
        y0,
        x1: ((x + side).ceil() as u32).clamp(x0 + 1, width),
        y1: ((y + side).ceil() as u32).clamp(y0 + 1, height),
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

/// A point in pixels, in the frame or in a strip's own axes.
type Point = (f64, f64);

/// A slanted strip's own axes: the frame turned back by `turn` radians.
#[derive(Clone, Copy)]
struct Axes {
    sin: f64,
    cos: f64,
}

impl Axes {
    fn new(turn: f64) -> Self {
        let (sin, cos) = turn.sin_cos();
        Axes { sin, cos }
    }

    /// Frame pixels to the strip's axes.
    fn to_local(self, (x, y): (f64, f64)) -> (f64, f64) {
        (x * self.cos + y * self.sin, -x * self.sin + y * self.cos)
    }

    /// The strip's axes back to frame pixels.
    fn to_frame(self, (u, v): (f64, f64)) -> (f64, f64) {
        (u * self.cos - v * self.sin, u * self.sin + v * self.cos)
    }

    /// `pts` in the strip's axes and their bounds there (low, high).
    fn local(self, pts: &[Point]) -> (Vec<Point>, Point, Point) {
        let local: Vec<(f64, f64)> = pts.iter().map(|&p| self.to_local(p)).collect();
        let (mut lo, mut hi) = (
            (f64::INFINITY, f64::INFINITY),
            (f64::NEG_INFINITY, f64::NEG_INFINITY),
        );
        for &(u, v) in &local {
            lo = (lo.0.min(u), lo.1.min(v));
            hi = (hi.0.max(u), hi.1.max(v));
        }
        (local, lo, hi)
    }
}

/// A slanted bay scored whole: its bounding rectangle in the frame turned
/// back by `turn`, so the bay is seen square to the frame as upright bays
/// are, without its neighbours' corners.
fn turned_whole(pts: &[(f64, f64)], turn: f64) -> Tile {
    let axes = Axes::new(turn);
    let (_, lo, hi) = axes.local(pts);
    Tile::Turned([lo, (hi.0, lo.1), hi, (lo.0, hi.1)].map(|p| axes.to_frame(p)))
}

/// Tiles turned by `turn` radians along a slanted strip: the same cut as
/// upright tiles, done in the frame turned back by `turn`.
fn turned_tiles(pts: &[(f64, f64)], turn: f64) -> Vec<Tile> {
    let axes = Axes::new(turn);
    let (local, lo, hi) = axes.local(pts);
    let (bu, bv) = (hi.0 - lo.0, hi.1 - lo.1);
    let horizontal = bu >= bv;
    let (long, short, along0) = if horizontal {
        (bu, bv, lo.0)
    } else {
        (bv, bu, lo.1)
    };
    let squares = tapered(&local, horizontal, along0, long, short).unwrap_or_else(|| {
        let side = (shoelace(&local) / long).clamp(1.0, short.max(1.0));
        // Turned coordinates carry rounding: 4.000000001 strides are 4.
        let n = (((long - side) / (side * STRIDE) - 1e-9).ceil() as usize + 1).max(2);
        let step = (long - side) / (n - 1) as f64;
        (0..n)
            .map(|k| {
                let a = along0 + k as f64 * step;
                let (c_lo, c_hi) = extent_across(&local, horizontal, a, a + side);
                (a, (c_lo + c_hi) / 2.0 - side / 2.0, side)
            })
            .collect()
    });
    squares
        .into_iter()
        .map(|(a, c, side)| {
            let (u0, v0) = if horizontal { (a, c) } else { (c, a) };
            Tile::Turned(
                [
                    (u0, v0),
                    (u0 + side, v0),
                    (u0 + side, v0 + side),
                    (u0, v0 + side),
                ]
                .map(|p| axes.to_frame(p)),
            )
        })
        .collect()
}

/// For a strip whose thickness changes along it by more than [`TAPER`]
/// (`pts` running along the first axis if `horizontal`, else the second,
/// from `along0` for `long`): squares as thick as the strip where each
/// lies, overlapping by half, as (start along, start across, side). `None`
/// for a strip of even thickness.
fn tapered(
    pts: &[(f64, f64)],
    horizontal: bool,
    along0: f64,
    long: f64,
    short: f64,
) -> Option<Vec<(f64, f64, f64)>> {
    let thick = |a: f64, len: f64| slice_area(pts, horizontal, a, a + len) / len;
    // Eight stretches, the two ends left out: a strip cut square to a
    // slanted kerb is thin at its ends without tapering.
    let eighth = long / 8.0;
    let inner: Vec<f64> = (1..7)
        .map(|k| thick(along0 + k as f64 * eighth, eighth))
        .collect();
    let (thin, thickest) = inner.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &t| {
        (lo.min(t), hi.max(t))
    });
    if thin <= 0.0 || thickest < thin * TAPER {
        return None;
    }
    let mean = shoelace(pts) / long;
    let end = along0 + long;
    let mut out = Vec::new();
    let mut a = along0;
    while out.len() < 1000 {
        // As thick as the strip over the tile's own length.
        let mut side = mean;
        for _ in 0..4 {
            let len = side.min(end - a).max(1.0);
            side = thick(a, len).clamp((mean / 4.0).max(1.0), short.max(1.0));
        }
        let last = a + side >= end;
        if last {
            a = (end - side).max(along0);
        }
        let (lo, hi) = extent_across(pts, horizontal, a, a + side);
        out.push((a, (lo + hi) / 2.0 - side / 2.0, side));
        if last {
            break;
        }
        a += side * STRIDE;
    }
    Some(out)
}

/// The polygon's area between `a0` and `a1` along its long axis (clipped
/// to that slice: Sutherland-Hodgman against its two borders).
fn slice_area(pts: &[(f64, f64)], horizontal: bool, a0: f64, a1: f64) -> f64 {
    let along = |p: (f64, f64)| if horizontal { p.0 } else { p.1 };
    let mut poly = pts.to_vec();
    for (border, above) in [(a0, true), (a1, false)] {
        let keep = |p: (f64, f64)| (along(p) >= border) == above || along(p) == border;
        let mut out = Vec::with_capacity(poly.len() + 2);
        for i in 0..poly.len() {
            let (p, q) = (poly[i], poly[(i + 1) % poly.len()]);
            if keep(p) {
                out.push(p);
            }
            if keep(p) != keep(q) {
                let t = (border - along(p)) / (along(q) - along(p));
                out.push((p.0 + (q.0 - p.0) * t, p.1 + (q.1 - p.1) * t));
            }
        }
        if out.len() < 3 {
            return 0.0;
        }
        poly = out;
    }
    shoelace(&poly)
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
mod tests;
