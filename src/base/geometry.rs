//! Zone polygons in 0..1 fractions of the frame, and their pixel geometry.

use geo::{Contains, Coord, LineString, Point, Polygon, Validation};

/// A zone outline as `[x, y]` fractions of the frame (origin top-left).
#[derive(Debug, Clone)]
pub struct ZonePolygon {
    points: Vec<[f64; 2]>,
    /// Its tiles for the last frame size asked (see [`Self::tiles`]).
    pub(super) tiles: super::tiles::TileMemo,
}

/// Two zones are equal when their outlines are: the tiles follow.
impl PartialEq for ZonePolygon {
    fn eq(&self, other: &Self) -> bool {
        self.points == other.points
    }
}

/// Why a polygon was refused. Messages name the offending point (1-based).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolygonError {
    #[error("needs at least 3 points, got {0}")]
    TooFewPoints(usize),
    #[error(
        "point {index} ({x}, {y}) is outside 0..1; points are fractions of the frame width and height"
    )]
    OutOfRange { index: usize, x: f64, y: f64 },
    #[error("is self-intersecting (its edges cross); list the points in order around the zone")]
    SelfIntersecting,
    #[error("has no area (all points on one line or repeated)")]
    NoArea,
}

/// Pixel bounding box, inclusive-exclusive: `x0..x1`, `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl PixelRect {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
}

impl ZonePolygon {
    pub fn new(points: Vec<[f64; 2]>) -> Result<Self, PolygonError> {
        if points.len() < 3 {
            return Err(PolygonError::TooFewPoints(points.len()));
        }
        for (i, p) in points.iter().enumerate() {
            let ok = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
            if !ok(p[0]) || !ok(p[1]) {
                return Err(PolygonError::OutOfRange {
                    index: i + 1,
                    x: p[0],
                    y: p[1],
                });
            }
        }
        let zone = ZonePolygon {
            points,
            tiles: Default::default(),
        };
        let poly = zone.to_geo();
        let area = geo::Area::unsigned_area(&poly);
        if !poly.is_valid() && area > 1e-12 {
            return Err(PolygonError::SelfIntersecting);
        }
        if area <= 1e-12 {
            // A bow-tie's halves cancel to zero area: call it what it is.
            return Err(if poly.is_valid() || collinear(&zone.points) {
                PolygonError::NoArea
            } else {
                PolygonError::SelfIntersecting
            });
        }
        Ok(zone)
    }

    pub fn points(&self) -> &[[f64; 2]] {
        &self.points
    }

    fn to_geo(&self) -> Polygon<f64> {
        let ring: Vec<Coord<f64>> = self
            .points
            .iter()
            .map(|p| Coord { x: p[0], y: p[1] })
            .collect();
        Polygon::new(LineString::from(ring), vec![])
    }

    /// The polygon in pixel coordinates of a `width` x `height` frame.
    pub fn to_pixels(&self, width: u32, height: u32) -> Vec<(f64, f64)> {
        self.points
            .iter()
            .map(|p| (p[0] * width as f64, p[1] * height as f64))
            .collect()
    }

    /// Smallest pixel rectangle that covers the polygon, clamped to the frame
    /// and at least one pixel each way.
    /// Bounding box as image fractions `[x0, y0, x1, y1]`.
    pub fn fraction_bounds(&self) -> [f64; 4] {
        let mut b = [1.0f64, 1.0, 0.0, 0.0];
        for p in &self.points {
            b[0] = b[0].min(p[0]);
            b[1] = b[1].min(p[1]);
            b[2] = b[2].max(p[0]);
            b[3] = b[3].max(p[1]);
        }
        b
    }

    pub fn bounding_box(&self, width: u32, height: u32) -> PixelRect {
        let (mut minx, mut miny, mut maxx, mut maxy) = (1.0f64, 1.0f64, 0.0f64, 0.0f64);
        for p in &self.points {
            minx = minx.min(p[0]);
            miny = miny.min(p[1]);
            maxx = maxx.max(p[0]);
            maxy = maxy.max(p[1]);
        }
        let x0 = ((minx * width as f64).floor() as u32).min(width.saturating_sub(1));
        let y0 = ((miny * height as f64).floor() as u32).min(height.saturating_sub(1));
        let x1 = ((maxx * width as f64).ceil() as u32).clamp(x0 + 1, width.max(x0 + 1));
        let y1 = ((maxy * height as f64).ceil() as u32).clamp(y0 + 1, height.max(y0 + 1));
        PixelRect { x0, y0, x1, y1 }
    }

    /// Whether the centre of pixel (`px`, `py`) of a `width` x `height` frame
    /// lies inside the zone.
    pub fn contains_pixel(&self, px: u32, py: u32, width: u32, height: u32) -> bool {
        let p = Point::new(
            (px as f64 + 0.5) / width as f64,
            (py as f64 + 0.5) / height as f64,
        );
        self.to_geo().contains(&p)
    }

    /// A per-pixel inside/outside mask of the bounding box, row-major.
    ///
    /// Scanline, not a point-in-polygon test per pixel: each row's
    /// crossings with the edges are found once and the spans between them
    /// filled (even-odd rule, as `contains` for a simple polygon; a pixel
    /// centre exactly on an edge counts as outside, as there).
    pub fn mask(&self, rect: PixelRect, width: u32, height: u32) -> Vec<bool> {
        let (w, h) = (width as f64, height as f64);
        let pts: Vec<(f64, f64)> = self.points.iter().map(|p| (p[0] * w, p[1] * h)).collect();
        let mut mask = vec![false; (rect.width() * rect.height()) as usize];
        let mut crossings = Vec::with_capacity(pts.len());
        for (row, y) in (rect.y0..rect.y1).enumerate() {
            row_crossings(&pts, y as f64 + 0.5, &mut crossings);
            let line = &mut mask[row * rect.width() as usize..][..rect.width() as usize];
            for span in crossings.chunks_exact(2) {
                for (col, x) in (rect.x0..rect.x1).enumerate() {
                    let cx = x as f64 + 0.5;
                    if cx > span[0] && cx < span[1] {
                        line[col] = true;
                    }
                }
            }
        }
        mask
    }
}

/// Where the polygon `pts` crosses the row at height `y`, left to right,
/// into `out`: each pair bounds a stretch inside (even-odd rule).
pub fn row_crossings(pts: &[(f64, f64)], y: f64, out: &mut Vec<f64>) {
    out.clear();
    for (i, a) in pts.iter().enumerate() {
        let b = pts[(i + 1) % pts.len()];
        if (a.1 > y) != (b.1 > y) {
            out.push(a.0 + (y - a.1) * (b.0 - a.0) / (b.1 - a.1));
        }
    }
    out.sort_by(f64::total_cmp);
}

/// Whether point `p` lies inside the polygon `pts` (both in the same
/// units; even-odd rule, as [`ZonePolygon::mask`]).
pub fn inside(pts: &[(f64, f64)], p: (f64, f64)) -> bool {
    let mut odd = false;
    for (i, a) in pts.iter().enumerate() {
        let b = pts[(i + 1) % pts.len()];
        if (a.1 > p.1) != (b.1 > p.1) && p.0 < a.0 + (p.1 - a.1) * (b.0 - a.0) / (b.1 - a.1) {
            odd = !odd;
        }
    }
    odd
}

/// Whether all points lie on one line (or coincide).
fn collinear(points: &[[f64; 2]]) -> bool {
    let a = points[0];
    let Some(b) = points
        .iter()
        .find(|p| (p[0] - a[0]).abs() + (p[1] - a[1]).abs() > 1e-12)
    else {
        return true;
    };
    points
        .iter()
        .all(|p| ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])).abs() < 1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Vec<[f64; 2]> {
        vec![[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]
    }

    #[test]
    fn accepts_a_square_and_boxes_it_in_pixels() {
        let z = ZonePolygon::new(square()).unwrap();
        let r = z.bounding_box(1000, 500);
        assert_eq!(
            r,
            PixelRect {
                x0: 100,
                y0: 50,
                x1: 500,
                y1: 250
            }
        );
        assert!(z.contains_pixel(300, 100, 1000, 500));
        assert!(!z.contains_pixel(600, 100, 1000, 500));
    }

    #[test]
    fn refuses_two_points() {
        assert_eq!(
            ZonePolygon::new(vec![[0.0, 0.0], [1.0, 1.0]]),
            Err(PolygonError::TooFewPoints(2))
        );
    }

    #[test]
    fn refuses_points_outside_the_frame() {
        let err = ZonePolygon::new(vec![[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]).unwrap_err();
        assert_eq!(
            err,
            PolygonError::OutOfRange {
                index: 2,
                x: 1.2,
                y: 0.1
            }
        );
        assert!(err.to_string().contains("point 2"));
    }

    #[test]
    fn refuses_a_bow_tie() {
        let bow = vec![[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]];
        assert_eq!(ZonePolygon::new(bow), Err(PolygonError::SelfIntersecting));
    }

    #[test]
    fn refuses_collinear_points() {
        let line = vec![[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]];
        assert_eq!(ZonePolygon::new(line), Err(PolygonError::NoArea));
    }

    #[test]
    fn masks_a_triangle() {
        let z = ZonePolygon::new(vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).unwrap();
        let r = z.bounding_box(4, 4);
        let m = z.mask(r, 4, 4);
        assert_eq!(m.len(), 16);
        assert!(m[0]); // top-left is inside
        assert!(!m[15]); // bottom-right is outside
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// The scanline mask says what a point-in-polygon test of each
        /// pixel centre says, for any zone the config accepts.
        #[test]
        fn the_scanline_mask_agrees_with_point_in_polygon(
            points in proptest::collection::vec([0.0..1.0f64, 0.0..1.0f64], 3..9),
            (w, h) in (8u32..120, 8u32..120),
        ) {
            let Ok(z) = ZonePolygon::new(points) else { return Ok(()) };
            let r = z.bounding_box(w, h);
            let m = z.mask(r, w, h);
            let mut i = 0;
            for y in r.y0..r.y1 {
                for x in r.x0..r.x1 {
                    proptest::prop_assert_eq!(m[i], z.contains_pixel(x, y, w, h), "pixel {} {}", x, y);
                    i += 1;
                }
            }
        }
    }
}
