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
    #[error("JPEG has more than {max} scans (a camera writes at most about a dozen)")]
    TooManyScans { max: usize },
}

/// Frames above this many pixels (about 8K) are refused before decoding.
const MAX_PIXELS: u64 = 8192 * 8192;

/// Scans a frame may have. Each progressive scan is a pass over every
/// block of the image however few bytes encode it: 50,000 twelve-byte
/// scans (600 kB) held libjpeg 4.8 s on a 1440x960 frame (BENCHMARKS.md,
/// *Hostile progressive JPEGs*). zune-jpeg stops at 100; libjpeg has no
/// bound of its own, so every path is held to this one.
const MAX_SCANS: usize = 100;

/// Whether the payload looks like a JPEG (what raw frame payloads are).
pub fn looks_like_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8])
}

/// Refuses what is not a whole JPEG. Decoders fill a truncated scan with
/// grey and succeed; a frame cut off in transit must not be scored as a
/// picture of an empty lane.
fn check_whole(bytes: &[u8]) -> Result<(), DecodeError> {
    if !looks_like_jpeg(bytes) {
        return Err(DecodeError::NotJpeg);
    }
    let tail_start = bytes.len().saturating_sub(64);
    if !bytes[tail_start..].windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    if more_scans_than(bytes, MAX_SCANS) {
        return Err(DecodeError::TooManyScans { max: MAX_SCANS });
    }
    Ok(())
}

/// Whether a progressive JPEG has more than `max` scans (SOS markers),
/// walking its segments by their lengths and the entropy-coded data for
/// its next marker. A sequential frame stops at its first scan: there a
/// scan costs what its bytes do, and the walk would cost 45 µs a frame.
/// What it cannot follow (a length past the end) ends the walk: that is
/// for the decoders to report.
fn more_scans_than(bytes: &[u8], max: usize) -> bool {
    let mut at = 2; // past SOI
    let mut scans = 0;
    let mut progressive = false;
    while let Some(ff) = memchr::memchr(0xFF, bytes.get(at..).unwrap_or_default()) {
        let mut i = at + ff;
        while bytes.get(i + 1) == Some(&0xFF) {
            i += 1; // fill bytes
        }
        at = match bytes.get(i + 1) {
            None | Some(0xD9) => return false,
            // A stuffed zero, a restart marker, SOI or TEM: no length.
            Some(0x00 | 0xD0..=0xD8 | 0x01) => i + 2,
            Some(&marker) => {
                // SOF2, 6, 10 and 14 are the progressive frame kinds.
                progressive |= matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
                if marker == 0xDA {
                    scans += 1;
                    if scans > max {
                        return true;
                    }
                    if !progressive {
                        return false;
                    }
                }
                match bytes.get(i + 2..i + 4) {
                    Some(len) => i + 2 + u16::from_be_bytes([len[0], len[1]]) as usize,
                    None => return false,
                }
            }
        };
    }
    false
}

unsafe extern "C" {
    /// libjpeg-turbo's own probe, defined both by its SIMD dispatch and by
    /// the stub linked in its place when it is built without SIMD (which
    /// returns 0).
    fn jsimd_can_idct_4x4() -> std::ffi::c_int;
}

/// Whether the linked libjpeg-turbo runs its SIMD for the scaled decodes
/// on this CPU. False where firelane was built without nasm: the plain C,
/// the same pixels, slower (BENCHMARKS.md, *libjpeg-turbo's SIMD*). The
/// build says nothing then, so the daemon's start line and `firelane
/// bench` do.
pub fn scaled_decode_simd() -> bool {
    // SAFETY: no arguments, no memory handed over; it reads the CPU's
    // features once per thread.
    unsafe { jsimd_can_idct_4x4() != 0 }
}

/// The largest DCT scale decoded as such. At 1/2 a scaled decode saves
/// little over a full one (3.2 against 3.8 ms with SIMD), and the model,
/// fed DCT-halved pixels, saw cars later: lanes3 start
/// error 133 -> 150 s, turned upright 300 -> 467 s (BENCHMARKS.md,
/// *libjpeg-turbo's SIMD*).
const SCALED_AT_MOST: f64 = 0.25;

/// The largest factor any zone needs to keep `min_px` across (at least
/// 1/8, the smallest DCT scale).
fn scale_needed(zones: &[[f64; 4]], width: u32, height: u32, min_px: u32) -> f64 {
    zones
        .iter()
        .map(|b| {
            let zw = ((b[2] - b[0]) * width as f64).max(1.0);
            let zh = ((b[3] - b[1]) * height as f64).max(1.0);
            (min_px as f64 / zw).max(min_px as f64 / zh)
        })
        .fold(1.0 / 8.0, f64::max)
        .min(1.0)
}

/// Whether [`decode_jpeg_for_zones`] would decode a `width` x `height`
/// frame at a reduced scale; when not, a full decode into a reused buffer
/// ([`decode_jpeg_into`]) is the cheaper path.
pub fn scaled_decode_worth_it(width: u32, height: u32, zones: &[[f64; 4]], min_px: u32) -> bool {
    scale_needed(zones, width, height, min_px) <= SCALED_AT_MOST
}

/// The checks every decode path makes first: a whole JPEG, a readable
/// header, under the pixel limit; gives its width and height.
fn checked_header(bytes: &[u8]) -> Result<(u32, u32), DecodeError> {
    check_whole(bytes)?;
    let (width, height) = jpeg_dimensions(bytes)
        .ok_or_else(|| DecodeError::Corrupt("the JPEG header (SOF) cannot be read".into()))?;
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max: MAX_PIXELS,
        });
    }
    Ok((width, height))
}

/// Decodes at the smallest DCT scale (1/4 or 1/8; else full size) that
/// still gives every zone at least `min_px` pixels in width and height, so
/// the crops lose nothing the model's input could use. `zones` are bounding boxes as
/// image fractions `[x0, y0, x1, y1]`. Returns the image and the
/// denominator of the scale used. The scaling happens inside the inverse
/// DCT, so a quarter-scale decode does a fraction of the work.
///
/// The scaled decode is libjpeg-turbo's (as mozjpeg, built by `cc`, its x86
/// SIMD assembled where nasm is installed; the same pixels either way): on
/// 1440x960 frames 2.8 ms at 1/4 and 2.4 at 1/8 with SIMD, 3.6 and 2.6
/// without, where its full decode takes 3.8 (9.6 without).
pub fn decode_jpeg_for_zones(
    bytes: &[u8],
    zones: &[[f64; 4]],
    min_px: u32,
) -> Result<(RgbImage, u32), DecodeError> {
    let (width, height) = checked_header(bytes)?;
    let need = scale_needed(zones, width, height, min_px);
    // Eighths: 1/8 or 1/4 where every zone allows it, else the whole frame.
    let eighths = if need > SCALED_AT_MOST {
        8
    } else {
        (need * 8.0).ceil().clamp(1.0, SCALED_AT_MOST * 8.0) as u8
    };
    match scaled_decode(bytes, eighths, (width, height))? {
        Some(img) => {
            let denominator = (width / img.width().max(1)).max(1);
            Ok((img, denominator))
        }
        // CMYK cameras are rare: the general decoder handles them.
        None => general_decode(bytes).map(|img| (img, 1)),
    }
}

/// libjpeg's decode at `eighths`/8 scale, as RGB.
fn scaled_decode(
    bytes: &[u8],
    eighths: u8,
    checked: (u32, u32),
) -> Result<Option<RgbImage>, DecodeError> {
    let mut buf = Vec::new();
    Ok(libjpeg_into(bytes, eighths, checked, &mut buf)?
        .map(|(w, h)| RgbImage::from_raw(w, h, buf).expect("decoded size matches")))
}

/// libjpeg's decode at `eighths`/8 scale, as RGB into `buf` (resized, its
/// allocation reused), giving the width and height, of a frame whose
/// header was `checked` at that full size; `None` for a colour
/// space it cannot turn into RGB. libjpeg reports a fatal error by
/// unwinding out of its C code (mozjpeg's `unwinding`), caught here: a
/// corrupt frame is refused, never a panic in a scoring thread.
fn libjpeg_into(
    bytes: &[u8],
    eighths: u8,
    checked: (u32, u32),
    buf: &mut Vec<u8>,
) -> Result<Option<(u32, u32)>, DecodeError> {
    use mozjpeg::ColorSpace;
    let mut run = || -> std::io::Result<Option<(u32, u32)>> {
        let mut decoder = mozjpeg::Decompress::builder().from_mem(bytes)?;
        // The callers checked the header zune-jpeg reads; libjpeg must
        // read the same one, or a doctored file could pass the pixel
        // limit with one size and be decoded at another.
        let (w, h) = decoder.size();
        if (w as u32, h as u32) != checked {
            return Err(std::io::Error::other(format!(
                "libjpeg reads the frame header as {w}x{h}, not as checked"
            )));
        }
        if !matches!(
            decoder.color_space(),
            ColorSpace::JCS_YCbCr | ColorSpace::JCS_RGB | ColorSpace::JCS_GRAYSCALE
        ) {
            return Ok(None);
        }
        decoder.scale(eighths);
        let mut started = decoder.rgb()?;
        let (w, h) = (started.width(), started.height());
        let size = w * h * 3;
        if buf.capacity() > 2 * size {
            // One huge frame must not pin its memory to the thread for good.
            *buf = Vec::new();
        }
        buf.resize(size, 0);
        // Fewer rows than the header promised is an error here, not a
        // short image.
        started.read_scanlines_into(&mut buf[..])?;
        started.finish()?;
        Ok(Some((w as u32, h as u32)))
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut run)) {
        Ok(Ok(dims)) => Ok(dims),
        Ok(Err(e)) => Err(DecodeError::Corrupt(e.to_string())),
        Err(fatal) => Err(DecodeError::Corrupt(
            fatal
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "libjpeg fatal error".into()),
        )),
    }
}

/// Decodes a whole frame as RGB into `buf` (resized, its allocation
/// reused: a 1080p frame is 6 MB a scoring thread need not ask for anew
/// each time) and returns its width and height. The same refusals as
/// [`decode_jpeg`]. libjpeg-turbo, the decoder Pillow uses in training:
/// on a scenario frame every value equals Pillow's, so the model scores
/// the pixels it was trained on (zune-jpeg's differ in 8 % of values, by
/// up to 4 levels). With its SIMD it is also faster than zune-jpeg (3.8
/// against 4.6 ms on a 1440x960 frame; without nasm 9.6 ms, the same
/// pixels). CMYK frames take the general decoder.
pub fn decode_jpeg_into(bytes: &[u8], buf: &mut Vec<u8>) -> Result<(u32, u32), DecodeError> {
    let checked = checked_header(bytes)?;
    if let Some(dims) = libjpeg_into(bytes, 8, checked, buf)? {
        return Ok(dims);
    }
    let img = general_decode(bytes)?;
    let dims = img.dimensions();
    *buf = img.into_raw();
    Ok(dims)
}

/// Width and height from the JPEG header, without decoding; read with the
/// options the decoders use, so any frame they would decode has one
/// (zune's default 16384-pixel side limit would make some unreadable here
/// that decode fine, and slip past the pixel limit).
pub fn jpeg_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(bytes),
        options,
    );
    decoder.decode_headers().ok()?;
    decoder.dimensions().map(|(w, h)| (w as u32, h as u32))
}

/// Decodes a whole frame as RGB, as the scoring threads do
/// ([`decode_jpeg_into`]): the evidence, the API and `classify` see the
/// pixels the model scored.
pub fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    let mut buf = Vec::new();
    let (w, h) = decode_jpeg_into(bytes, &mut buf)?;
    Ok(RgbImage::from_raw(w, h, buf).expect("decoded size matches"))
}

/// The image crate's decoder (zune-jpeg), for the colour spaces libjpeg
/// is not asked to turn into RGB (CMYK); the frame was checked whole and
/// under the pixel limit.
fn general_decode(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    Ok(img.into_rgb8())
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
