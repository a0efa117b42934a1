//! Bent zones: a lane around a corner (an L, a U) or along a curve.
//!
//! Cut along one axis, such a zone gets tiles that straddle its bend or
//! hold mostly what lies inside the bend. Instead its middle is found
//! (the ridge of its distance to the outline, on a grid) and squares as
//! thick as the zone is there are laid along it, half a side apart, as a
//! straight strip's tiles are.

use super::super::geometry::row_crossings;
use super::{Axes, Point, STRIDE, Tile, shoelace};

/// A zone filling less than this much of its smallest enclosing rectangle
/// may be bent (a straight strip or a bay, even in perspective, fills more).
const BENT_FILL: f64 = 0.6;
/// A poorly filled zone is cut along its middle only when its rectangle's
/// long side is at least this many times its thickness; a triangle or a
/// blob stays one tile.
const BENT_ASPECT: f64 = 2.5;
/// At most this many grid cells (a lane 20 times longer than wide, thick
/// in pixels, keeps twelve cells across).
const MAX_CELLS: f64 = 250_000.0;
/// A ridge cell thinner than this share of a ridge cell nearby (within
/// twice its own depth) is where the middle forks into a corner; the
/// tiles of the middle hold it already.
const FORK: f32 = 0.6;
/// Nor is a ridge cell thinner than this share of the thickest a centre:
/// the tip of a fork into a corner cut at a slant.
const MIN_RIDGE: f32 = 0.3;
/// At most this many tiles, however winding the zone.
const MAX_TILES: usize = 64;

/// Squares along a bent zone's middle, in the axes turned by `turn`
/// radians (upright tiles when `turn` is 0, clipped to the `width` x
/// `height` frame); `None` when the zone is not thin enough for that
/// (see [`BENT_ASPECT`]).
pub(super) fn bent_tiles(
    pts: &[Point],
    turn: f64,
    rect_area: f64,
    width: u32,
    height: u32,
) -> Option<Vec<Tile>> {
    let area = shoelace(pts);
    if area <= 0.0 || area >= BENT_FILL * rect_area {
        return None;
    }
    let axes = Axes::new(turn);
    let (local, lo, hi) = axes.local(pts);
    // Cells a twelfth of the zone's mean thickness (its area over half its
    // outline, for a thin zone), at most MAX_CELLS of them.
    let outline: f64 = (0..pts.len())
        .map(|i| {
            let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
            (b.0 - a.0).hypot(b.1 - a.1)
        })
        .sum();
    let (bu, bv) = (hi.0 - lo.0, hi.1 - lo.1);
    let cell = (2.0 * area / outline / 12.0).max((bu * bv / MAX_CELLS).sqrt());
    let grid = Grid::of(&local, lo, hi, cell);
    let thickest = grid.dist.iter().copied().fold(0.0f32, f32::max);
    let thick = (2.0 * f64::from(thickest) - 1.0) * grid.cell;
    if bu.max(bv) < BENT_ASPECT * thick {
        return None;
    }
    let squares = grid.squares(thickest);
    Some(
        squares
            .into_iter()
            .map(|(cu, cv, side)| {
                let h = side / 2.0;
                let corners = [
                    (cu - h, cv - h),
                    (cu + h, cv - h),
                    (cu + h, cv + h),
                    (cu - h, cv + h),
                ];
                if turn == 0.0 {
                    Tile::Upright(super::upright_rect(corners[0], side, width, height))
                } else {
                    Tile::Turned(corners.map(|p| axes.to_frame(p)))
                }
            })
            .collect(),
    )
}

/// The zone rasterised in its own axes, with each inside cell's distance
/// (in cells) to the nearest outside one.
struct Grid {
    origin: Point,
    cell: f64,
    nx: usize,
    ny: usize,
    dist: Vec<f32>,
}

impl Grid {
    fn of(pts: &[Point], lo: Point, hi: Point, cell: f64) -> Grid {
        let cell = cell.max(1e-9);
        // A ring of outside cells around the zone.
        let origin = (lo.0 - cell, lo.1 - cell);
        let nx = ((hi.0 - lo.0) / cell).ceil() as usize + 2;
        let ny = ((hi.1 - lo.1) / cell).ceil() as usize + 2;
        let mut dist = vec![0.0f32; nx * ny];
        // Scanline fill at cell centres (even-odd, as the crop's mask).
        let mut crossings = Vec::with_capacity(pts.len());
        for j in 0..ny {
            let y = origin.1 + (j as f64 + 0.5) * cell;
            row_crossings(pts, y, &mut crossings);
            for span in crossings.chunks_exact(2) {
                let from = ((span[0] - origin.0) / cell - 0.5).ceil().max(0.0) as usize;
                let to = ((span[1] - origin.0) / cell - 0.5).floor();
                if to < 0.0 {
                    continue;
                }
                for i in from..=(to as usize).min(nx - 1) {
                    dist[j * nx + i] = f32::INFINITY;
                }
            }
        }
        chamfer(&mut dist, nx, ny);
        Grid {
            origin,
            cell,
            nx,
            ny,
            dist,
        }
    }

    /// Squares (centre u, centre v, side) along the ridge, then more
    /// where an inside cell is in none.
    fn squares(&self, thickest: f32) -> Vec<(f64, f64, f64)> {
        let at = |k: usize| (k % self.nx, k / self.nx);
        let crest: Vec<usize> = (0..self.dist.len())
            .filter(|&k| self.dist[k] >= MIN_RIDGE * thickest && self.on_ridge(k))
            .collect();
        let mut ridge: Vec<usize> = crest
            .iter()
            .copied()
            .filter(|&k| {
                let (d, (i, j)) = (self.dist[k], at(k));
                let reach = 2.0 * d;
                !crest.iter().any(|&m| {
                    let (x, y) = at(m);
                    self.dist[m] * FORK > d
                        && (x as f32 - i as f32).abs() <= reach
                        && (y as f32 - j as f32).abs() <= reach
                })
            })
            .collect();
        // Thickest first; ties in grid order, so the same zone always
        // gets the same tiles.
        // Depths within a cell tie: a ridge at a slant steps between
        // nearby depths, and in grid order its cells come along it.
        ridge.sort_by(|&a, &b| {
            (self.dist[b].floor())
                .total_cmp(&self.dist[a].floor())
                .then(a.cmp(&b))
        });
        // Centres in cells, and sides in cells.
        let mut picked: Vec<(f64, f64, f64)> = Vec::new();
        for &k in &ridge {
            if picked.len() == MAX_TILES {
                break;
            }
            let (i, j) = at(k);
            let (x, y, side) = (i as f64, j as f64, self.side(k));
            let apart = picked
                .iter()
                .all(|&(px, py, ps)| (x - px).hypot(y - py) >= STRIDE * side.max(ps));
            if apart {
                picked.push((x, y, side));
            }
        }
        // Every ridge cell well inside some square (within 0.3 of its side
        // of the centre), so a car on the middle is whole in one (the greedy pick above leaves wider
        // gaps where the ridge steps, on a lane at a slant).
        for &k in &ridge {
            if picked.len() == MAX_TILES {
                break;
            }
            let (x, y) = (at(k).0 as f64, at(k).1 as f64);
            let centred = |&(px, py, ps): &(f64, f64, f64)| {
                (x - px).abs() <= 0.3 * ps && (y - py).abs() <= 0.3 * ps
            };
            if !picked.iter().any(centred) {
                picked.push((x, y, self.side(k)));
            }
        }
        // Cover every inside cell: one no square holds gets a copy of the
        // nearest square moved just far enough to hold it (a lane's end
        // lies beyond its last centre), as a strip's last tile sits flush
        // with its end.
        let full = 2.0 * f64::from(thickest) - 1.0;
        let gap = |(x, y): (f64, f64), &(px, py, ps): &(f64, f64, f64)| {
            ((x - px).abs() - ps / 2.0)
                .max((y - py).abs() - ps / 2.0)
                .max(0.0)
        };
        for k in 0..self.dist.len() {
            if picked.len() == MAX_TILES {
                break;
            }
            let p = (at(k).0 as f64, at(k).1 as f64);
            // A cell on the outline within a cell of a square is held: the
            // grid's rounding, not a gap.
            if self.dist[k] <= 0.0 || picked.iter().any(|t| gap(p, t) <= 1.0) {
                continue;
            }
            let moved = picked
                .iter()
                .min_by(|a, b| gap(p, a).total_cmp(&gap(p, b)))
                .map(|&(x, y, side)| {
                    let h = side / 2.0;
                    (x.clamp(p.0 - h, p.0 + h), y.clamp(p.1 - h, p.1 + h), side)
                });
            picked.push(moved.unwrap_or((p.0, p.1, full)));
        }
        picked
            .into_iter()
            .map(|(x, y, side)| {
                (
                    self.origin.0 + (x + 0.5) * self.cell,
                    self.origin.1 + (y + 0.5) * self.cell,
                    side * self.cell,
                )
            })
            .collect()
    }

    /// The side, in cells, of the square centred on cell `k` that is as
    /// thick as the zone there (a cell's distance runs to the centre of
    /// the nearest outside cell, half a cell beyond the outline).
    fn side(&self, k: usize) -> f64 {
        // The deepest of the cell and its neighbours: a ridge two cells
        // wide (an even count across) may be picked on either.
        let deepest = self
            .neighbours(k)
            .map(|(d, _)| d)
            .fold(self.dist[k], f32::max);
        (2.0 * f64::from(deepest) - 1.0).max(1.0)
    }

    /// Whether no neighbour lies further inside by nearly a full step:
    /// the cell is not on a slope towards the middle but on its crest.
    fn on_ridge(&self, k: usize) -> bool {
        let d = self.dist[k];
        d > 0.0 && self.neighbours(k).all(|(n, step)| n < d + 0.75 * step)
    }

    /// The depth of each of cell `k`'s eight neighbours that lies on the
    /// grid, with the step to it.
    fn neighbours(&self, k: usize) -> impl Iterator<Item = (f32, f32)> + '_ {
        let (i, j) = ((k % self.nx) as isize, (k / self.nx) as isize);
        NEIGHBOURS.iter().filter_map(move |&(di, dj, step)| {
            let (x, y) = (i + di, j + dj);
            let on_grid = x >= 0 && y >= 0 && x < self.nx as isize && y < self.ny as isize;
            on_grid.then(|| (self.dist[y as usize * self.nx + x as usize], step))
        })
    }
}

const SQRT2: f32 = std::f32::consts::SQRT_2;
const NEIGHBOURS: [(isize, isize, f32); 8] = [
    (-1, -1, SQRT2),
    (0, -1, 1.0),
    (1, -1, SQRT2),
    (-1, 0, 1.0),
    (1, 0, 1.0),
    (-1, 1, SQRT2),
    (0, 1, 1.0),
    (1, 1, SQRT2),
];

/// Two-pass chamfer distance (steps 1 and √2) from each inside cell
/// (infinite on entry) to the nearest outside cell (0).
fn chamfer(dist: &mut [f32], nx: usize, ny: usize) {
    let get = |d: &[f32], i: isize, j: isize| {
        if i < 0 || j < 0 || i >= nx as isize || j >= ny as isize {
            0.0
        } else {
            d[j as usize * nx + i as usize]
        }
    };
    for j in 0..ny as isize {
        for i in 0..nx as isize {
            let k = j as usize * nx + i as usize;
            if dist[k] > 0.0 {
                let m = NEIGHBOURS[..4]
                    .iter()
                    .map(|&(di, dj, s)| get(dist, i + di, j + dj) + s)
                    .fold(dist[k], f32::min);
                dist[k] = m;
            }
        }
    }
    for j in (0..ny as isize).rev() {
        for i in (0..nx as isize).rev() {
            let k = j as usize * nx + i as usize;
            if dist[k] > 0.0 {
                let m = NEIGHBOURS[4..]
                    .iter()
                    .map(|&(di, dj, s)| get(dist, i + di, j + dj) + s)
                    .fold(dist[k], f32::min);
                dist[k] = m;
            }
        }
    }
}
