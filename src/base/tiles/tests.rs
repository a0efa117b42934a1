//! Tables for [`super`]: which tiles a zone gets.

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

/// A bay narrowing sharply away from the camera (front 120 px, back 60)
/// at a slant is no rectangle turned by a rolled camera: it keeps its
/// bounding box, where its car stands as the camera sees it.
#[test]
fn a_slanted_bay_in_strong_perspective_keeps_its_bounding_box() {
    let (s, c) = 30f64.to_radians().sin_cos();
    let p = |x: f64, y: f64| {
        [
            (500.0 + x * c - y * s) / 1000.0,
            (500.0 + x * s + y * c) / 1000.0,
        ]
    };
    let z = zone(&[
        p(-30.0, -50.0),
        p(30.0, -50.0),
        p(60.0, 50.0),
        p(-60.0, 50.0),
    ]);
    assert_eq!(
        z.tiles(1000, 1000),
        vec![Tile::Upright(z.bounding_box(1000, 1000))]
    );
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

/// A kerb seen in perspective: 200 px thick near the camera, 50 px far
/// off. Tiles follow its thickness (upright and at a slant), each on
/// the strip, neighbours overlapping.
#[test]
fn a_strip_in_perspective_gets_tiles_as_thick_as_it_is_where_they_lie() {
    let wedge = zone(&[[0.1, 0.4], [0.9, 0.475], [0.9, 0.525], [0.1, 0.6]]);
    let slanted = {
        let (s, c) = 25f64.to_radians().sin_cos();
        let p = |x: f64, y: f64| {
            let (dx, dy) = (x * 1000.0 - 500.0, y * 1000.0 - 500.0);
            [
                (450.0 + dx * c - dy * s) / 1000.0,
                (500.0 + dx * s + dy * c) / 1000.0,
            ]
        };
        zone(&[p(0.1, 0.4), p(0.9, 0.475), p(0.9, 0.525), p(0.1, 0.6)])
    };
    for (name, z) in [("upright", wedge), ("slanted", slanted)] {
        let tiles = z.tiles(1000, 1000);
        let pts = z.to_pixels(1000, 1000);
        let sides: Vec<f64> = tiles
            .iter()
            .map(|t| {
                let c = t.corners();
                (c[1].0 - c[0].0).hypot(c[1].1 - c[0].1)
            })
            .collect();
        assert!(sides[0] >= 170.0, "{name}: near tile {sides:?}");
        assert!(*sides.last().unwrap() <= 80.0, "{name}: far tile {sides:?}");
        for w in sides.windows(2) {
            assert!(
                w[1] <= w[0] + 1.0,
                "{name}: thinner along the strip {sides:?}"
            );
        }
        for (k, t) in tiles.iter().enumerate() {
            let c = t.corners();
            let centre = ((c[0].0 + c[2].0) / 2.0, (c[0].1 + c[2].1) / 2.0);
            assert!(
                crate::base::geometry::inside(&pts, centre),
                "{name}: tile {k} {t:?} off the strip"
            );
        }
        // Neighbours overlap: each starts before the previous ends.
        let along = |t: &Tile| {
            let c = t.corners();
            let xs = [c[0].0, c[1].0, c[2].0, c[3].0];
            let (lo, hi) = xs
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
            (lo, hi)
        };
        for w in tiles.windows(2) {
            assert!(along(&w[1]).0 < along(&w[0]).1 - 10.0, "{name}: gap {w:?}");
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

/// Points every twentieth of the way along each leg of `path`.
fn along(path: &[Point]) -> Vec<Point> {
    path.windows(2)
        .flat_map(|w| {
            let (a, b) = (w[0], w[1]);
            (0..=20).map(move |k| {
                let t = k as f64 / 20.0;
                (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
            })
        })
        .collect()
}

/// A bent lane `thick` px wide in a 1000 px frame, turned `deg` degrees
/// about (500, 500): an L round a building's corner, or a U round three
/// sides; with points along its middle, in pixels.
fn bent_lane(u: bool, thick: f64, deg: f64) -> (ZonePolygon, Vec<Point>) {
    let (lo, hi, h) = (200.0, 800.0, thick / 2.0);
    let mut ring = vec![(lo, lo), (lo + thick, lo), (lo + thick, hi - thick)];
    let mut middle = vec![(lo + h, lo + h), (lo + h, hi - h)];
    if u {
        ring.extend([(hi - thick, hi - thick), (hi - thick, lo), (hi, lo)]);
        middle.extend([(hi - h, hi - h), (hi - h, lo + h)]);
    } else {
        ring.push((hi, hi - thick));
        middle.push((hi - h, hi - h));
    }
    ring.extend([(hi, hi), (lo, hi)]);
    let axes = Axes::new(-deg.to_radians());
    let turn = |(x, y): Point| {
        let (a, b) = axes.to_local((x - 500.0, y - 500.0));
        (a + 500.0, b + 500.0)
    };
    let points: Vec<[f64; 2]> = ring
        .into_iter()
        .map(&turn)
        .map(|(x, y)| [x / 1000.0, y / 1000.0])
        .collect();
    (
        zone(&points),
        along(&middle).into_iter().map(turn).collect(),
    )
}

/// Whether the square of side `side` centred on `p` and turned `deg`
/// degrees lies inside `tile`.
fn holds(tile: &Tile, p: Point, side: f64, deg: f64) -> bool {
    let quad = tile.corners();
    let axes = Axes::new(-deg.to_radians());
    let h = side / 2.0;
    [(-h, -h), (h, -h), (h, h), (-h, h)].iter().all(|&c| {
        let (dx, dy) = axes.to_local(c);
        super::super::geometry::inside(&quad, (p.0 + dx, p.1 + dy))
    })
}

/// A lane bent round a corner (an L) or two (a U) gets squares as thick
/// as the lane along every arm, not one squashed square or tiles straddling the bend: a car
/// anywhere along its middle (0.4 of the lane's thickness) is whole in
/// some tile, and each tile is mostly lane.
#[test]
fn a_lane_round_a_corner_gets_squares_along_both_arms() {
    for (u, thick, deg) in [
        (false, 60.0, 0.0),
        (false, 60.0, 5.0),
        (false, 90.0, 0.0),
        (false, 60.0, 30.0),
        (false, 80.0, -40.0),
        (true, 60.0, 0.0),
        (true, 70.0, 20.0),
    ] {
        let (z, middle) = bent_lane(u, thick, deg);
        let tiles = z.tiles(1000, 1000);
        let upright = deg.abs() <= MAX_UPRIGHT_DEG;
        let pts = z.to_pixels(1000, 1000);
        for t in &tiles {
            assert_eq!(
                matches!(t, Tile::Upright(_)),
                upright,
                "{thick} {deg}: {t:?}"
            );
            let c = t.corners();
            let side = (c[1].0 - c[0].0).hypot(c[1].1 - c[0].1);
            assert!(
                (0.6 * thick..=1.4 * thick).contains(&side),
                "{thick} {deg}: side {side} of {t:?}"
            );
            // Its share of lane, sampled on a 10 x 10 lattice.
            let inside = (0..100)
                .filter(|k| {
                    let (u, v) = ((k % 10) as f64 + 0.5, (k / 10) as f64 + 0.5);
                    let at = |d: usize| {
                        let along = |e: usize| match d {
                            0 => c[e].0 - c[0].0,
                            _ => c[e].1 - c[0].1,
                        };
                        let origin = if d == 0 { c[0].0 } else { c[0].1 };
                        origin + along(1) * u / 10.0 + along(3) * v / 10.0
                    };
                    super::super::geometry::inside(&pts, (at(0), at(1)))
                })
                .count();
            assert!(inside >= 45, "{thick} {deg}: {t:?} is {inside} % lane");
        }
        for p in &middle {
            assert!(
                tiles.iter().any(|t| holds(t, *p, 0.4 * thick, deg)),
                "{thick} {deg}: no tile holds {p:?} with a margin"
            );
        }
        // A straight strip gets two tiles per thickness of its length; a
        // bend's ridge, stepping on the grid, at most a quarter more.
        let length: f64 = middle
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).hypot(w[1].1 - w[0].1))
            .sum();
        assert!(
            tiles.len() as f64 <= 2.5 * length / thick + 6.0,
            "{thick} {deg}: {} tiles",
            tiles.len()
        );
    }
}

/// Straight strips, bays and thick blobs fill their rectangle or are not
/// thin enough: they keep the tiles they had.
#[test]
fn only_a_thin_poorly_filled_zone_counts_as_bent() {
    let (w, h) = (1000, 1000);
    let triangle = zone(&[[0.1, 0.1], [0.7, 0.1], [0.4, 0.4]]);
    let plus = zone(&[
        [0.4, 0.2],
        [0.6, 0.2],
        [0.6, 0.4],
        [0.8, 0.4],
        [0.8, 0.6],
        [0.6, 0.6],
        [0.6, 0.8],
        [0.4, 0.8],
        [0.4, 0.6],
        [0.2, 0.6],
        [0.2, 0.4],
        [0.4, 0.4],
    ]);
    let pts = |z: &ZonePolygon| z.to_pixels(w, h);
    for z in [
        triangle,
        plus,
        strip(600.0, 100.0, 0.0),
        strip(600.0, 100.0, 30.0),
    ] {
        let p = pts(&z);
        let (turn, long, short) = slant(&p).unwrap();
        assert!(
            bent::bent_tiles(&p, turn, long * short, w, h).is_none(),
            "{z:?}"
        );
    }
}

/// Tiles are kept per frame size: asked again, a zone gives the same; for
/// another size, those a fresh zone would.
#[test]
fn tiles_are_kept_per_frame_size() {
    let (z, _) = bent_lane(false, 60.0, 30.0);
    let fresh = || zone(z.points());
    assert_eq!(z.tiles(1000, 1000), fresh().tiles(1000, 1000));
    assert_eq!(z.tiles(1000, 1000), fresh().tiles(1000, 1000));
    assert_eq!(z.tiles(640, 480), fresh().tiles(640, 480));
    assert_ne!(z.tiles(640, 480), z.tiles(1000, 1000));
    assert_eq!(z.clone().tiles(640, 480), fresh().tiles(640, 480));
}
