//! JPEG decoding that refuses corrupt and truncated frames.

use image::RgbImage;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JPEG (does not start with the SOI marker FF D8)")]
    NotJpeg,
    #[error("truncated JPEG (no EOI marker FF D9 at the end; {0} bytes)")]
    Truncated(usize),
    #[error("corrupt JPEG: {0}")]
    Corrupt(String),
    #[error("frame is {width}x{height}, larger than the {max}-pixel limit")]
    TooLarge { width: u32, height: u32, max: u64 },
}

/// Frames above this many pixels (about 8K) are refused before decoding.
const MAX_PIXELS: u64 = 8192 * 8192;

/// Whether the payload looks like a JPEG (what raw frame payloads are).
pub fn looks_like_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8])
}

pub fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    if !looks_like_jpeg(bytes) {
        return Err(DecodeError::NotJpeg);
    }
    // Decoders fill a truncated scan with grey and succeed; a frame cut off
    // in transit must not be scored as a picture of an empty lane.
    let tail_start = bytes.len().saturating_sub(64);
    if !bytes[tail_start..].windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Jpeg);
    reader.no_limits();
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max: MAX_PIXELS,
        });
    }
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    Ok(img.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn decodes_a_real_jpeg() {
        let img = decode_jpeg(&jpeg(64, 48)).unwrap();
        assert_eq!(img.dimensions(), (64, 48));
    }

    #[test]
    fn refuses_truncated_and_foreign_bytes() {
        let j = jpeg(64, 48);
        assert!(matches!(
            decode_jpeg(&j[..j.len() / 2]),
            Err(DecodeError::Truncated(_))
        ));
        assert!(matches!(
            decode_jpeg(b"\x89PNG\r\n"),
            Err(DecodeError::NotJpeg)
        ));
        let mut garbage = vec![0xFF, 0xD8];
        garbage.extend(std::iter::repeat_n(0x42, 500));
        garbage.extend([0xFF, 0xD9]);
        assert!(matches!(
            decode_jpeg(&garbage),
            Err(DecodeError::Corrupt(_))
        ));
    }
}
