//! The close-up: what an officer looks at first. The zone's bounding box
//! with a margin, cut from the full frame and enlarged to a readable size,
//! with the outline, tiles and scores drawn and a caption. The whole
//! frame (original and annotated) stays beside it as evidence; this shows
//! the car, not the car park.

use image::{RgbImage, imageops};

use super::EvidenceError;
use super::annotate::{Caption, draw_text, draw_zone};
use crate::base::geometry::ZonePolygon;
use crate::base::time::format_rfc3339;

/// Margin around the zone, as a fraction of its larger side.
const MARGIN: f64 = 0.25;
/// The close-up's width: readable on a phone, small enough for a list.
const WIDTH: u32 = 640;

/// The close-up of `polygon` in `frame`, as JPEG bytes.
pub fn closeup(
    frame: &RgbImage,
    polygon: &ZonePolygon,
    caption: &Caption,
) -> Result<Vec<u8>, EvidenceError> {
    let (fw, fh) = frame.dimensions();
    // Drawn on the whole frame first, so tiles and outline match it.
    let mut drawn = frame.clone();
    let thickness = (fw.max(fh) / 600).max(1) as i64;
    draw_zone(&mut drawn, polygon, caption.tiles, thickness);
    let b = polygon.bounding_box(fw, fh);
    let margin = (b.width().max(b.height()) as f64 * MARGIN).round() as u32;
    let x0 = b.x0.saturating_sub(margin);
    let y0 = b.y0.saturating_sub(margin);
    let x1 = (b.x1 + margin).min(fw);
    let y1 = (b.y1 + margin).min(fh);
    let cut = imageops::crop_imm(&drawn, x0, y0, x1 - x0, y1 - y0).to_image();
    let height = ((WIDTH as f64 * cut.height() as f64 / cut.width() as f64).round() as u32)
        .clamp(120, 2 * WIDTH);
    let mut out: RgbImage = imageops::resize(&cut, WIDTH, height, imageops::FilterType::CatmullRom);
    let score = caption.score.map_or("-".to_string(), |s| format!("{s:.2}"));
    let line = format!(
        "{} {} {}  {}",
        caption.zone,
        caption.kind,
        score,
        format_rfc3339(caption.captured_at)
    );
    let band = 14;
    for y in out.height().saturating_sub(band)..out.height() {
        for x in 0..out.width() {
            let p = out.get_pixel_mut(x, y);
            p.0 = p.0.map(|v| v / 4);
        }
    }
    let y = out.height().saturating_sub(band) + 3;
    draw_text(&mut out, 4, y, &line, 1, image::Rgb([255, 255, 255]));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 88)
        .encode_image(&out)
        .map_err(|e| EvidenceError::Annotate(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_zone_becomes_a_readable_closeup() {
        let frame = RgbImage::from_pixel(1440, 960, image::Rgb([90, 90, 90]));
        // A 60 x 40 px bay.
        let zone = ZonePolygon::new(vec![
            [0.5, 0.5],
            [0.5 + 60.0 / 1440.0, 0.5],
            [0.5 + 60.0 / 1440.0, 0.5 + 40.0 / 960.0],
            [0.5, 0.5 + 40.0 / 960.0],
        ])
        .unwrap();
        let caption = Caption {
            zone: "bay",
            camera: "cam",
            kind: "confirm",
            score: Some(0.9),
            captured_at: 0,
            tiles: &[0.9],
        };
        let jpeg = closeup(&frame, &zone, &caption).unwrap();
        let img = crate::vision::decode_jpeg(&jpeg).unwrap();
        assert_eq!(img.width(), WIDTH);
        // 60 px plus margins, enlarged about 7x: the outline is visible.
        let reds = img.pixels().filter(|p| p.0[0] > 180 && p.0[1] < 90).count();
        assert!(reds > 1000, "outline drawn large: {reds} red pixels");
    }
}
