//! Annotated evidence frames: zone outline, score, state and capture time.

use image::{Rgb, RgbImage};

use crate::base::geometry::ZonePolygon;
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

/// The zone's outline and, for a tiled zone, each tile with its score.
pub(super) fn draw_zone(img: &mut RgbImage, polygon: &ZonePolygon, tiles: &[f32], thickness: i64) {
    let (w, h) = img.dimensions();
    let rects = polygon.tiles(w, h);
    if tiles.len() > 1 && tiles.len() == rects.len() {
        let scale = (w / 640).clamp(1, 4);
        for (r, score) in rects.iter().zip(tiles) {
            let corners = [
                (r.x0 as f64, r.y0 as f64),
                (r.x1 as f64 - 1.0, r.y0 as f64),
                (r.x1 as f64 - 1.0, r.y1 as f64 - 1.0),
                (r.x0 as f64, r.y1 as f64 - 1.0),
            ];
            for i in 0..4 {
                draw_line(img, corners[i], corners[(i + 1) % 4], 1, YELLOW);
            }
            draw_text(
                img,
                r.x0 + 2,
                r.y0 + 2,
                &format!("{score:.2}"),
                scale,
                YELLOW,
            );
        }
    }
    let pts = polygon.to_pixels(w, h);
    for i in 0..pts.len() {
        let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
        draw_line(img, a, b, thickness, RED);
    }
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
}
