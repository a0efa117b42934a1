//! Annotated evidence frames: zone outline, score, state and capture time.

use image::{Rgb, RgbImage};

use crate::base::geometry::{PixelRect, ZonePolygon};
use crate::base::tiles::Tile;
use crate::base::time::{Millis, format_rfc3339};

use super::EvidenceError;

const RED: Rgb<u8> = Rgb([230, 30, 30]);
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const YELLOW: Rgb<u8> = Rgb([250, 220, 40]);

/// What to write on the frame.
pub struct Caption<'a> {
    pub zone: &'a str,
    pub camera: &'a str,
    pub kind: &'a str,
    pub score: Option<f64>,
    pub captured_at: Millis,
    /// The zone's tile scores, in [`ZonePolygon::tiles`] order (empty or
    /// one for a zone scored whole).
    pub tiles: &'a [f32],
}

/// Draws the zone and caption on a copy of `frame`; returns JPEG bytes.
pub fn annotate(
    frame: &RgbImage,
    polygon: &ZonePolygon,
    caption: &Caption,
) -> Result<Vec<u8>, EvidenceError> {
    let mut img = frame.clone();
    let (w, h) = img.dimensions();
    let thickness = (w.max(h) / 400).max(2) as i64;
    draw_zone(&mut img, polygon, caption.tiles, thickness);
    let score = caption.score.map_or("-".to_string(), |s| format!("{s:.2}"));
    let lines = [
        format!("{} / {}", caption.camera, caption.zone),
        format!("{} score {}", caption.kind, score),
        format_rfc3339(caption.captured_at),
    ];
    let scale = (w / 640).clamp(1, 4);
    let line_h = 9 * scale;
    let box_w = lines.iter().map(|l| l.len() as u32).max().unwrap_or(0) * 8 * scale + 8;
    let box_h = lines.len() as u32 * line_h + 8;
    // Caption at the bottom-left, over a dark band so it reads on any frame.
    let y0 = h.saturating_sub(box_h);
    for y in y0..h {
        for x in 0..box_w.min(w) {
            let p = img.get_pixel_mut(x, y);
            p.0 = p.0.map(|v| v / 4);
        }
    }
    for (i, line) in lines.iter().enumerate() {
        draw_text(&mut img, 4, y0 + 4 + i as u32 * line_h, line, scale, WHITE);
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .map_err(|e| EvidenceError::Annotate(e.to_string()))?;
    Ok(out)
}

/// The zone's outline and, for a tiled zone, each tile with its score; the
/// tile that gave the zone its score is outlined twice as thick.
pub(super) fn draw_zone(img: &mut RgbImage, polygon: &ZonePolygon, tiles: &[f32], thickness: i64) {
    let (w, h) = img.dimensions();
    let shapes = polygon.tiles(w, h);
    if tiles.len() > 1 && tiles.len() == shapes.len() {
        let best = tiles
            .iter()
            .enumerate()
            .fold(0, |b, (i, s)| if *s > tiles[b] { i } else { b });
        for (i, tile) in shapes.iter().enumerate() {
            let corners = match tile {
                // On the tile's outer pixels, not beyond them.
                Tile::Upright(r) => [
                    (r.x0 as f64, r.y0 as f64),
                    (r.x1 as f64 - 1.0, r.y0 as f64),
                    (r.x1 as f64 - 1.0, r.y1 as f64 - 1.0),
                    (r.x0 as f64, r.y1 as f64 - 1.0),
                ],
                Tile::Turned(c) => *c,
            };
            let line = if i == best { 2 } else { 1 };
            for k in 0..4 {
                draw_line(img, corners[k], corners[(k + 1) % 4], line, YELLOW);
            }
        }
        let labels: Vec<String> = tiles.iter().map(|s| format!("{s:.2}")).collect();
        let rects: Vec<PixelRect> = shapes.iter().map(Tile::label_box).collect();
        let (scale, at) = tile_labels(&rects, 4, (w / 640).clamp(1, 4), best);
        for ((x, y), text) in at
            .into_iter()
            .zip(&labels)
            .filter_map(|(a, t)| Some((a?, t)))
        {
            let (tw, th) = (text.len() as u32 * 8 * scale, 8 * scale);
            // A dark backing so the score reads on a bright car or sky.
            for py in y.saturating_sub(1)..(y + th + 1).min(h) {
                for px in x.saturating_sub(1)..(x + tw + 1).min(w) {
                    let p = img.get_pixel_mut(px, py);
                    p.0 = p.0.map(|v| v / 3);
                }
            }
            draw_text(img, x, y, text, scale, YELLOW);
        }
    }
    let pts = polygon.to_pixels(w, h);
    for i in 0..pts.len() {
        let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
        draw_line(img, a, b, thickness, RED);
    }
}

/// Where each tile's score label of `chars` characters goes, and at what
/// text scale (at most `scale`). Tiles overlap by half, so labels in their
/// corners ran into each other ("0.010.010.92"): each label is centred on
/// its tile along the strip, and when neighbours' labels would touch they
/// alternate between the tile's two long edges; the scale shrinks until
/// they fit. Tiles too small for that keep only the label of `best`, the
/// tile that gave the zone its score.
fn tile_labels(
    rects: &[PixelRect],
    chars: u32,
    scale: u32,
    best: usize,
) -> (u32, Vec<Option<(u32, u32)>>) {
    let (first, last) = (rects[0], rects[rects.len() - 1]);
    let horizontal = last.x0.abs_diff(first.x0) >= last.y0.abs_diff(first.y0);
    let along = |r: &PixelRect| {
        if horizontal {
            (r.x0, r.x1)
        } else {
            (r.y0, r.y1)
        }
    };
    let across = |r: &PixelRect| {
        if horizontal {
            (r.y0, r.y1)
        } else {
            (r.x0, r.x1)
        }
    };
    let step = rects
        .windows(2)
        .map(|p| along(&p[1]).0.abs_diff(along(&p[0]).0))
        .min()
        .unwrap_or(u32::MAX);
    let thick = rects
        .iter()
        .map(|r| across(r).1 - across(r).0)
        .min()
        .unwrap_or(0);
    let size = |s: u32| {
        let (tw, th) = (chars * 8 * s, 8 * s);
        if horizontal { (tw, th) } else { (th, tw) }
    };
    let gap = 4;
    let mut s = scale.max(1);
    // (labels alternate between edges, every tile labelled, scale)
    let (alternate, all, s) = loop {
        // Along the strip a label takes `len`, across it `wide`.
        let (len, wide) = size(s);
        if step >= len + gap {
            break (false, true, s);
        }
        if step * 2 >= len + gap && thick >= 2 * wide + 3 * gap {
            break (true, true, s);
        }
        if s == 1 {
            break (false, false, s);
        }
        s -= 1;
    };
    let at = rects
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if !all && i != best {
                return None;
            }
            let (a0, a1) = along(r);
            let (c0, c1) = across(r);
            let (len, wide) = size(s);
            let a = ((a0 + a1) / 2).saturating_sub(len / 2);
            let c = if alternate && i % 2 == 1 {
                c1.saturating_sub(gap + wide)
            } else {
                c0 + gap
            };
            Some(if horizontal { (a, c) } else { (c, a) })
        })
        .collect();
    (s, at)
}

pub(super) fn draw_line(
    img: &mut RgbImage,
    a: (f64, f64),
    b: (f64, f64),
    thickness: i64,
    colour: Rgb<u8>,
) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as i64).max(1);
    let half = thickness / 2;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let cx = (a.0 + (b.0 - a.0) * t).round() as i64;
        let cy = (a.1 + (b.1 - a.1) * t).round() as i64;
        for dy in -half..=half {
            for dx in -half..=half {
                let (x, y) = (cx + dx, cy + dy);
                if x >= 0 && y >= 0 && x < w && y < h {
                    img.put_pixel(x as u32, y as u32, colour);
                }
            }
        }
    }
}

pub(super) fn draw_text(
    img: &mut RgbImage,
    x0: u32,
    y0: u32,
    text: &str,
    scale: u32,
    colour: Rgb<u8>,
) {
    let (w, h) = img.dimensions();
    for (i, ch) in text.chars().enumerate() {
        let code = if ch.is_ascii() {
            ch as usize
        } else {
            b'?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for sy in 0..scale {
                    for sx in 0..scale {
                        let x = x0 + (i as u32 * 8 + col) * scale + sx;
                        let y = y0 + row as u32 * scale + sy;
                        if x < w && y < h {
                            img.put_pixel(x, y, colour);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_the_outline_and_stays_a_jpeg() {
        let frame = RgbImage::from_pixel(320, 240, Rgb([40, 120, 40]));
        let zone =
            ZonePolygon::new(vec![[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]).unwrap();
        let caption = Caption {
            zone: "lane-1",
            camera: "north",
            kind: "confirm",
            tiles: &[],
            score: Some(0.97),
            captured_at: 0,
        };
        let jpeg = annotate(&frame, &zone, &caption).unwrap();
        let back = crate::vision::decode_jpeg(&jpeg).unwrap();
        assert_eq!(back.dimensions(), (320, 240));
        let edge = back.get_pixel(160, 60).0; // top edge of the zone
        assert!(
            edge[0] > 180 && edge[1] < 90,
            "outline is red, got {edge:?}"
        );
        let inside = back.get_pixel(160, 120).0;
        assert!(
            inside[1] > 90 && inside[0] < 90,
            "inside untouched, got {inside:?}"
        );
    }

    /// Each tile with its label's box, if it has one, at the scale chosen.
    fn boxes(
        zone: &ZonePolygon,
        w: u32,
        h: u32,
        scale: u32,
        best: usize,
    ) -> Vec<(PixelRect, Option<PixelRect>)> {
        let rects: Vec<PixelRect> = zone.tiles(w, h).iter().map(Tile::label_box).collect();
        let (s, at) = tile_labels(&rects, 4, scale, best);
        let (tw, th) = (32 * s, 8 * s);
        rects
            .iter()
            .zip(at)
            .map(|(r, a)| {
                let label = a.map(|(x, y)| PixelRect {
                    x0: x,
                    y0: y,
                    x1: x + tw,
                    y1: y + th,
                });
                (*r, label)
            })
            .collect()
    }

    /// Labels clear of each other and centred in their own tiles; every
    /// tile labelled where the strip has room (cnrpark-a-lanes3's strips at
    /// the full frame's and the close-up's sizes, an upright strip), else
    /// at least the tile that decided (a strip 29 pixels thick).
    #[test]
    fn tile_labels_stay_in_their_tiles_and_apart() {
        let strip = |x0: f64, y0: f64, x1: f64, y1: f64| {
            ZonePolygon::new(vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]]).unwrap()
        };
        let lanes3 = strip(0.0035, 0.0052, 0.3299, 0.1615);
        // lanes3's strip turned 20 degrees about its centre (tiles turned
        // with it; labels in the upright square inside each).
        let slanted = {
            let (s, c) = 20f64.to_radians().sin_cos();
            let (cx, cy, hl, ht) = (300.0, 160.0, 235.0, 75.0);
            let p = |i: f64, j: f64| {
                let (x, y) = (cx + i * hl * c - j * ht * s, cy + i * hl * s + j * ht * c);
                [x / 1440.0, y / 960.0]
            };
            ZonePolygon::new(vec![p(-1.0, -1.0), p(1.0, -1.0), p(1.0, 1.0), p(-1.0, 1.0)]).unwrap()
        };
        let cases = [
            ("lanes3 at 1440x960", &lanes3, 1440, 960, 2, true),
            ("lanes3 at 640x427", &lanes3, 640, 427, 1, true),
            (
                "upright strip",
                &strip(0.4, 0.05, 0.5, 0.95),
                1440,
                960,
                2,
                true,
            ),
            ("six-to-one", &strip(0.1, 0.2, 0.7, 0.35), 640, 480, 1, true),
            ("lanes3 at 20 degrees", &slanted, 1440, 960, 2, true),
            (
                "thin strip",
                &strip(0.1, 0.5, 0.9, 0.53),
                1440,
                960,
                2,
                false,
            ),
        ];
        for (name, zone, w, h, scale, every) in cases {
            for best in [0, 1, zone.tiles(w, h).len() - 1] {
                let b = boxes(zone, w, h, scale, best);
                assert!(b.len() > 1, "{name}: tiled");
                assert!(
                    b[best].1.is_some(),
                    "{name}: the deciding tile {best} is labelled"
                );
                assert_eq!(
                    b.iter().all(|(_, l)| l.is_some()),
                    every,
                    "{name}: every tile labelled"
                );
                for (i, (tile, label)) in b.iter().enumerate() {
                    let Some(label) = label else { continue };
                    let (cx, cy) = ((label.x0 + label.x1) / 2, (label.y0 + label.y1) / 2);
                    assert!(
                        (tile.x0..tile.x1).contains(&cx) && (tile.y0..tile.y1).contains(&cy),
                        "{name}: label {i} {label:?} not centred in its tile {tile:?}"
                    );
                    if every {
                        assert!(
                            label.x0 >= tile.x0
                                && label.x1 <= tile.x1
                                && label.y0 >= tile.y0
                                && label.y1 <= tile.y1,
                            "{name}: label {i} {label:?} outside its tile {tile:?}"
                        );
                    }
                    for (j, (_, other)) in b.iter().enumerate().skip(i + 1) {
                        let Some(other) = other else { continue };
                        let apart = label.x1 <= other.x0
                            || other.x1 <= label.x0
                            || label.y1 <= other.y0
                            || other.y1 <= label.y0;
                        assert!(
                            apart,
                            "{name}: labels {i} {label:?} and {j} {other:?} overlap"
                        );
                    }
                }
            }
        }
    }
}
