//! Zone crops: bounding box of the polygon → resize → normalised CHW floats.

use fast_image_resize as fir;
use image::RgbImage;

use crate::base::geometry::{PixelRect, ZonePolygon};
use crate::base::tiles::Tile;

use super::card::CardInput;

/// Number of floats one crop takes in the input tensor.
pub fn crop_len(input: &CardInput) -> usize {
    3 * input.width as usize * input.height as usize
}

/// The zone's crop of `frame`, resized to the model's input size (the
/// polygon's outside filled with the mean colour when the card says so).
pub fn zone_crop(frame: &RgbImage, polygon: &ZonePolygon, input: &CardInput) -> RgbImage {
    let (fw, fh) = frame.dimensions();
    tile_crop(
        frame,
        polygon,
        Tile::Upright(polygon.bounding_box(fw, fh)),
        input,
    )
}

/// One tile of a zone (see [`ZonePolygon::tiles`]), resized to the model's
/// input size, masked outside the polygon when the card says so.
pub fn tile_crop(
    frame: &RgbImage,
    polygon: &ZonePolygon,
    tile: Tile,
    input: &CardInput,
) -> RgbImage {
    let (fw, fh) = frame.dimensions();
    let mean = [0, 1, 2].map(|c| (input.mean[c] / input.scale).round().clamp(0.0, 255.0) as u8);
    match tile {
        Tile::Upright(rect) => {
            // Copied out first: resizing with a crop box would let the
            // filter read the frame's pixels beyond the tile's edge.
            let mut crop = copy_rect(frame, rect);
            if input.mask_outside_polygon {
                let mask = polygon.mask(rect, fw, fh);
                for (px, inside) in crop.pixels_mut().zip(mask) {
                    if !inside {
                        px.0 = mean;
                    }
                }
            }
            resize(&crop, input)
        }
        Tile::Turned(corners) => {
            let cap = 2 * input.width.max(input.height);
            let mut crop = turned_copy(frame, corners, cap);
            if input.mask_outside_polygon {
                let pts = polygon.to_pixels(fw, fh);
                let size = crop.dimensions();
                for (i, px) in crop.pixels_mut().enumerate() {
                    let (col, row) = (i as u32 % size.0, i as u32 / size.0);
                    if !crate::base::geometry::inside(&pts, sample_at(corners, size, col, row)) {
                        px.0 = mean;
                    }
                }
            }
            resize(&crop, input)
        }
    }
}

/// Where pixel (`col`, `row`) of a `w` x `h` turned crop takes its centre
/// from, in frame pixel coordinates.
fn sample_at(c: [(f64, f64); 4], (w, h): (u32, u32), col: u32, row: u32) -> (f64, f64) {
    let (u, v) = ((col as f64 + 0.5) / w as f64, (row as f64 + 0.5) / h as f64);
    (
        c[0].0 + (c[1].0 - c[0].0) * u + (c[3].0 - c[0].0) * v,
        c[0].1 + (c[1].1 - c[0].1) * u + (c[3].1 - c[0].1) * v,
    )
}

/// A turned tile sampled into an upright image (bilinear; beyond the
/// frame's edge its edge pixels repeat), at the frame's own pixel size up
/// to `cap` a side, so the same antialiased resize as an upright tile's
/// brings it to the input. The cap (twice the input) keeps a big tile from
/// costing more than it can add: the resize halves it anyway.
fn turned_copy(frame: &RgbImage, corners: [(f64, f64); 4], cap: u32) -> RgbImage {
    let (fw, fh) = frame.dimensions();
    let len = |a: (f64, f64), b: (f64, f64)| {
        ((b.0 - a.0).hypot(b.1 - a.1).round() as u32).clamp(1, cap.max(1))
    };
    let size = (len(corners[0], corners[1]), len(corners[0], corners[3]));
    let src = frame.as_raw();
    let stride = fw as usize * 3;
    // Affine steps per output column and row; pixel centres sit at +0.5.
    let (o, step_col, step_row) = {
        let (x, y) = sample_at(corners, size, 0, 0);
        let (x1, y1) = sample_at(corners, size, 1, 0);
        let (x2, y2) = sample_at(corners, size, 0, 1);
        ((x - 0.5, y - 0.5), (x1 - x, y1 - y), (x2 - x, y2 - y))
    };
    // Fixed point, 16 fraction bits, and 8-bit weights: float sampling
    // cost 21 ns a pixel, mostly conversions.
    let fixed = |v: f64| (v * 65536.0).round() as i64;
    let (sx, sy) = (fixed(step_col.0), fixed(step_col.1));
    let (xmax, ymax) = (i64::from(fw - 1) << 16, i64::from(fh - 1) << 16);
    let (last_x, last_y) = (fw as usize - 1, fh as usize - 1);
    let mut out = vec![0u8; (size.0 * size.1) as usize * 3];
    for (row, line) in out.chunks_exact_mut(size.0 as usize * 3).enumerate() {
        let mut x = fixed(o.0 + step_row.0 * row as f64);
        let mut y = fixed(o.1 + step_row.1 * row as f64);
        for px in line.chunks_exact_mut(3) {
            let (cx, cy) = (x.clamp(0, xmax), y.clamp(0, ymax));
            let (x0, y0) = ((cx >> 16) as usize, (cy >> 16) as usize);
            let (ax, ay) = (((cx >> 8) & 0xff) as u32, ((cy >> 8) & 0xff) as u32);
            let (x1, y1) = ((x0 + 1).min(last_x), (y0 + 1).min(last_y));
            let (r0, r1) = (y0 * stride, y1 * stride);
            let (a, b, c, d) = (r0 + x0 * 3, r0 + x1 * 3, r1 + x0 * 3, r1 + x1 * 3);
            for ch in 0..3 {
                let top = u32::from(src[a + ch]) * (256 - ax) + u32::from(src[b + ch]) * ax;
                let bottom = u32::from(src[c + ch]) * (256 - ax) + u32::from(src[d + ch]) * ax;
                px[ch] = ((top * (256 - ay) + bottom * ay + (1 << 15)) >> 16) as u8;
            }
            x += sx;
            y += sy;
        }
    }
    RgbImage::from_raw(size.0, size.1, out).expect("w x h x 3 bytes")
}

/// `rect` of `frame` as its own image, row by row (`SubImage::to_image`
/// copies pixel by pixel: more than half of a crop's time).
fn copy_rect(frame: &RgbImage, rect: PixelRect) -> RgbImage {
    let (fw, fh) = frame.dimensions();
    let x0 = rect.x0.min(fw);
    let y0 = rect.y0.min(fh);
    let w = rect.width().min(fw - x0);
    let h = rect.height().min(fh - y0);
    let (stride, row) = (fw as usize * 3, w as usize * 3);
    let src = frame.as_raw();
    let mut out = Vec::with_capacity(row * h as usize);
    for y in y0 as usize..(y0 + h) as usize {
        let start = y * stride + x0 as usize * 3;
        out.extend_from_slice(&src[start..start + row]);
    }
    RgbImage::from_raw(w, h, out).expect("rows of w pixels, h of them")
}

thread_local! {
    /// Each scoring thread's resizer (it keeps its coefficient buffers).
    static RESIZER: std::cell::RefCell<fir::Resizer> = std::cell::RefCell::new(fir::Resizer::new());
}

/// `src` resized to the model's input with SIMD bilinear convolution
/// (`fast_image_resize`, the same filter as Pillow's antialiased BILINEAR
/// the model was trained with).
fn resize(src: &RgbImage, input: &CardInput) -> RgbImage {
    let (w, h) = src.dimensions();
    let view = fir::images::ImageRef::new(w, h, src.as_raw(), fir::PixelType::U8x3)
        .expect("an RgbImage is width x height x 3 bytes");
    let mut dst = fir::images::Image::new(input.width, input.height, fir::PixelType::U8x3);
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear));
    RESIZER
        .with(|r| r.borrow_mut().resize(&view, &mut dst, &options))
        .expect("same pixel types, crop inside the frame");
    RgbImage::from_raw(input.width, input.height, dst.into_vec())
        .expect("the resizer fills width x height x 3 bytes")
}

/// What one step of a byte in each RGB channel is worth once normalised
/// (the card's scale ÷ the std of the model channel it feeds).
pub fn byte_units(input: &CardInput) -> [f32; 3] {
    let mut unit = [0.0; 3];
    for (c, &src) in channel_order(input).iter().enumerate() {
        unit[src] = input.scale / input.std[c];
    }
    unit
}

fn channel_order(input: &CardInput) -> [usize; 3] {
    if input.channel_order == "BGR" {
        [2, 1, 0]
    } else {
        [0, 1, 2]
    }
}

/// Writes `crop` (already at input size) into `out` as normalised planar
/// floats in the card's channel order.
pub fn normalise_into(crop: &RgbImage, input: &CardInput, out: &mut [f32]) {
    let plane = (input.width * input.height) as usize;
    debug_assert_eq!(out.len(), 3 * plane);
    let order = channel_order(input);
    for (i, px) in crop.pixels().enumerate() {
        for (c, &src) in order.iter().enumerate() {
            out[c * plane + i] = (px.0[src] as f32 * input.scale - input.mean[c]) / input.std[c];
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small card input for tests (mean and std 0.5).
    pub(crate) fn input(mask: bool) -> CardInput {
        CardInput {
            name: "input".into(),
            layout: "NCHW".into(),
            channel_order: "RGB".into(),
            width: 8,
            height: 8,
            resize: "bilinear".into(),
            scale: 1.0 / 255.0,
            mean: [0.5, 0.5, 0.5],
            std: [0.5, 0.5, 0.5],
            mask_outside_polygon: mask,
        }
    }

    #[test]
    fn crops_the_zone_and_normalises() {
        // Left half red, right half blue; the zone is the right half.
        let frame = RgbImage::from_fn(100, 50, |x, _| {
            if x < 50 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let zone = ZonePolygon::new(vec![[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]).unwrap();
        let crop = zone_crop(&frame, &zone, &input(false));
        assert_eq!(crop.dimensions(), (8, 8));
        let mut t = vec![0.0; crop_len(&input(false))];
        normalise_into(&crop, &input(false), &mut t);
        assert!(
            (t[0] - -1.0).abs() < 1e-5,
            "red plane of blue crop is -1, got {}",
            t[0]
        );
        assert!(
            (t[2 * 64] - 1.0).abs() < 1e-5,
            "blue plane is +1, got {}",
            t[128]
        );
    }

    /// The row copy is the image crate's crop, at the edges too.
    #[test]
    fn copy_rect_equals_the_image_crates_crop() {
        let frame = RgbImage::from_fn(37, 23, |x, y| image::Rgb([x as u8, y as u8, (x * y) as u8]));
        for (x0, y0, x1, y1) in [
            (0, 0, 37, 23),
            (5, 3, 17, 20),
            (30, 20, 40, 30),
            (36, 0, 37, 1),
        ] {
            let rect = PixelRect { x0, y0, x1, y1 };
            let theirs = image::imageops::crop_imm(&frame, x0, y0, x1 - x0, y1 - y0).to_image();
            assert_eq!(copy_rect(&frame, rect), theirs, "{x0},{y0}..{x1},{y1}");
        }
    }

    /// A strip at 30 degrees, red on blue: its turned tiles see the strip
    /// and hardly anything beside it, its bounding box mostly the blue.
    #[test]
    fn a_slanted_strips_turned_tiles_see_the_strip() {
        let (s, c) = 30f64.to_radians().sin_cos();
        let p = |i: f64, j: f64| {
            (
                200.0 + i * 150.0 * c - j * 25.0 * s,
                200.0 + i * 150.0 * s + j * 25.0 * c,
            )
        };
        let pts = [p(-1.0, -1.0), p(1.0, -1.0), p(1.0, 1.0), p(-1.0, 1.0)];
        let zone =
            ZonePolygon::new(pts.iter().map(|q| [q.0 / 400.0, q.1 / 400.0]).collect()).unwrap();
        let frame = RgbImage::from_fn(400, 400, |x, y| {
            if crate::base::geometry::inside(&pts, (x as f64 + 0.5, y as f64 + 0.5)) {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let red = |img: &RgbImage| {
            let n = img
                .pixels()
                .filter(|px| px.0[0] > 200 && px.0[2] < 55)
                .count();
            n as f64 / (img.width() * img.height()) as f64
        };
        let tiles = zone.tiles(400, 400);
        assert_eq!(tiles.len(), 11, "{tiles:?}");
        for (k, t) in tiles.iter().enumerate() {
            assert!(matches!(t, Tile::Turned(_)), "{t:?}");
            let crop = tile_crop(&frame, &zone, *t, &input(false));
            assert_eq!(crop.dimensions(), (8, 8));
            assert!(red(&crop) >= 0.75, "tile {k}: {:.2} red", red(&crop));
        }
        assert!(red(&zone_crop(&frame, &zone, &input(false))) < 0.4);
    }

    #[test]
    fn masks_outside_the_polygon_with_the_mean() {
        let frame = RgbImage::from_pixel(40, 40, image::Rgb([255, 255, 255]));
        let tri = ZonePolygon::new(vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).unwrap();
        let crop = zone_crop(&frame, &tri, &input(true));
        let corner = crop.get_pixel(7, 7).0;
        assert!(
            corner.iter().all(|&v| (120..=135).contains(&v)),
            "outside filled with mean grey, got {corner:?}"
        );
        assert_eq!(crop.get_pixel(0, 0).0, [255, 255, 255]);
    }
}
