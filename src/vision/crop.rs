//! Zone crops: bounding box of the polygon → resize → normalised CHW floats.

use fast_image_resize as fir;
use image::RgbImage;

use crate::base::geometry::{PixelRect, ZonePolygon};

use super::card::CardInput;

/// Number of floats one crop takes in the input tensor.
pub fn crop_len(input: &CardInput) -> usize {
    3 * input.width as usize * input.height as usize
}

/// The zone's crop of `frame`, resized to the model's input size (the
/// polygon's outside filled with the mean colour when the card says so).
pub fn zone_crop(frame: &RgbImage, polygon: &ZonePolygon, input: &CardInput) -> RgbImage {
    let (fw, fh) = frame.dimensions();
    tile_crop(frame, polygon, polygon.bounding_box(fw, fh), input)
}

/// One tile of a zone (see [`ZonePolygon::tiles`]), resized to the model's
/// input size, masked outside the polygon when the card says so.
pub fn tile_crop(
    frame: &RgbImage,
    polygon: &ZonePolygon,
    rect: PixelRect,
    input: &CardInput,
) -> RgbImage {
    let (fw, fh) = frame.dimensions();
    // Copied out first: resizing with a crop box would let the filter read
    // the frame's pixels beyond the tile's edge.
    let mut crop = copy_rect(frame, rect);
    if !input.mask_outside_polygon {
        return resize(&crop, input);
    }
    let mean = [0, 1, 2].map(|c| (input.mean[c] / input.scale).round().clamp(0.0, 255.0) as u8);
    let mask = polygon.mask(rect, fw, fh);
    for (px, inside) in crop.pixels_mut().zip(mask) {
        if !inside {
            px.0 = mean;
        }
    }
    resize(&crop, input)
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
