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
    let need = scale_needed(zones, width, height, min_px);
    if need > SCALED_AT_MOST {
        return decode_jpeg(bytes).map(|img| (img, 1));
    }
    // Eighths: 1/8 or 1/4.
    let eighths = (need * 8.0).ceil().clamp(1.0, SCALED_AT_MOST * 8.0) as u8;
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
    if let Some(dims) = libjpeg_into(bytes, 8, (width, height), buf)? {
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
mod tests {
    use super::*;

    /// `.ci/run` installs nasm before building and sets
    /// FIRELANE_EXPECT_JPEG_SIMD, so a CI build (and the package it makes)
    /// that lost libjpeg-turbo's SIMD fails here instead of running
    /// quietly slower.
    #[test]
    fn scaled_decodes_run_simd_where_the_build_had_nasm() {
        let simd = scaled_decode_simd();
        if std::env::var_os("FIRELANE_EXPECT_JPEG_SIMD").is_some() {
            assert!(simd, "libjpeg-turbo was built without its SIMD (no nasm?)");
        }
        // Either way the answer is the same on every thread.
        let other = std::thread::spawn(scaled_decode_simd).join().unwrap();
        assert_eq!(simd, other);
    }

    #[test]
    fn scaled_decode_keeps_every_zone_at_least_the_models_size() {
        let bytes = jpeg(1920, 1080);
        // A zone a quarter of the width and height: 480x270 px; 64 px
        // needs only 1/4 scale (120x67).
        let (img, d) = decode_jpeg_for_zones(&bytes, &[[0.0, 0.0, 0.25, 0.25]], 64).unwrap();
        assert_eq!((img.width(), img.height(), d), (480, 270, 4));
        // A small zone (100x60 px) needs the full frame.
        let small = [0.5, 0.5, 0.5 + 100.0 / 1920.0, 0.5 + 60.0 / 1080.0];
        let (img, d) = decode_jpeg_for_zones(&bytes, &[[0.0, 0.0, 0.25, 0.25], small], 64).unwrap();
        assert_eq!((img.width(), img.height(), d), (1920, 1080, 1));
        // The same refusals as the full decoder.
        assert!(matches!(
            decode_jpeg_for_zones(&bytes[..bytes.len() / 2], &[], 64),
            Err(DecodeError::Truncated(_))
        ));
        // The same picture, averaged down: channel means agree.
        let mean = |img: &RgbImage, c: usize| {
            img.pixels().map(|p| p[c] as f64).sum::<f64>() / (img.width() * img.height()) as f64
        };
        let full = decode_jpeg(&bytes).unwrap();
        let (quarter, _) = decode_jpeg_for_zones(&bytes, &[[0.0, 0.0, 0.25, 0.25]], 64).unwrap();
        for c in 0..3 {
            assert!(
                (mean(&full, c) - mean(&quarter, c)).abs() < 2.0,
                "channel {c}"
            );
        }
    }

    /// A frame libjpeg cannot decode is refused with its message, from
    /// the scaled path as from the others; the scoring thread goes on.
    #[test]
    fn scaled_decode_refuses_what_libjpeg_cannot_read() {
        let bytes = jpeg(1920, 1080);
        let quarter = [[0.0, 0.0, 0.25, 0.25]];
        // Past the frame header (which the pixel limit reads first): the
        // scan header names its components and Huffman tables.
        let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        // (what is changed, offset from the SOS marker, new byte)
        let table = [
            ("first component's tables 3 and 3, never defined", 6, 0x33u8),
            ("first component id 9, not in the frame", 5, 9),
            ("spectral end 70", 5 + 2 * 3 + 1, 70),
        ];
        let mut from_libjpeg = 0;
        for (what, at, byte) in table {
            let mut bad = bytes.clone();
            bad[sos + at] = byte;
            match decode_jpeg_for_zones(&bad, &quarter, 64) {
                Err(DecodeError::Corrupt(msg)) => {
                    from_libjpeg += usize::from(msg.starts_with("libjpeg"));
                }
                other => panic!("{what}: {:?}", other.map(|(i, d)| (i.dimensions(), d))),
            }
        }
        assert!(from_libjpeg > 0, "no case reached libjpeg");
        // And the next frame decodes.
        assert!(decode_jpeg_for_zones(&bytes, &quarter, 64).is_ok());
    }

    /// The number of scans the walk finds: the least `max` it keeps to.
    fn scans(bytes: &[u8]) -> usize {
        (0..=MAX_SCANS + 1)
            .find(|&max| !more_scans_than(bytes, max))
            .unwrap()
    }

    /// A progressive JPEG (libjpeg's own), `extra` copies of its last scan
    /// added before EOI, and an APP1 segment full of scan markers that the
    /// walk must step over by its length.
    fn progressive(w: usize, h: usize, extra: usize) -> Vec<u8> {
        let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i % 3 * 40 + 60) as u8).collect();
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_size(w, h);
        c.set_progressive_mode();
        let mut started = c.start_compress(Vec::new()).unwrap();
        started.write_marker(mozjpeg::Marker::APP(1), &[0xFF, 0xDA, 0, 4].repeat(300));
        started.write_scanlines(&pixels).unwrap();
        let out = started.finish().unwrap();
        let last = out.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        let end = out.len() - 2;
        let mut bad = out[..end].to_vec();
        for _ in 0..extra {
            bad.extend_from_slice(&out[last..end]);
        }
        bad.extend_from_slice(&[0xFF, 0xD9]);
        bad
    }

    /// A frame of many cheap scans, each a pass over the whole image, is
    /// refused by every path before any decoder sees it; real progressive
    /// frames and their APP segments pass.
    #[test]
    fn refuses_a_jpeg_of_too_many_scans() {
        assert_eq!(
            scans(&jpeg(64, 48)),
            1,
            "a sequential frame: its first scan"
        );
        let real = progressive(512, 256, 0);
        assert!((2..=12).contains(&scans(&real)), "{}", scans(&real));
        let big_zone = [[0.0, 0.0, 1.0, 1.0]];
        let mut buf = Vec::new();
        assert_eq!(decode_jpeg(&real).unwrap().dimensions(), (512, 256));
        assert_eq!(decode_jpeg_into(&real, &mut buf).unwrap(), (512, 256));
        let (img, d) = decode_jpeg_for_zones(&real, &big_zone, 64).unwrap();
        assert_eq!((img.dimensions(), d), ((128, 64), 4));
        // Up to the limit, libjpeg decodes repeated scans (it only warns).
        let at_limit = progressive(512, 256, MAX_SCANS - scans(&real));
        assert_eq!(scans(&at_limit), MAX_SCANS);
        assert!(decode_jpeg_for_zones(&at_limit, &big_zone, 64).is_ok());
        let hostile = progressive(512, 256, MAX_SCANS + 1 - scans(&real));
        let too_many = |r: Result<(), DecodeError>| {
            matches!(r, Err(DecodeError::TooManyScans { max: MAX_SCANS }))
        };
        assert!(too_many(decode_jpeg(&hostile).map(drop)));
        assert!(too_many(decode_jpeg_into(&hostile, &mut buf).map(drop)));
        assert!(too_many(
            decode_jpeg_for_zones(&hostile, &big_zone, 64).map(drop)
        ));
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn decoding_into_a_reused_buffer_gives_the_same_pixels() {
        let mut buf = Vec::new();
        for (w, h) in [(64, 48), (32, 24), (64, 48)] {
            let bytes = jpeg(w, h);
            assert_eq!(decode_jpeg_into(&bytes, &mut buf).unwrap(), (w, h));
            assert_eq!(buf, decode_jpeg(&bytes).unwrap().into_raw());
        }
        let bytes = jpeg(64, 48);
        assert!(matches!(
            decode_jpeg_into(&bytes[..bytes.len() / 2], &mut buf),
            Err(DecodeError::Truncated(_))
        ));
    }

    /// The model was trained on Pillow's pixels (libjpeg-turbo). The
    /// hashes are of Pillow 13's RGB decode of a demo frame, whole and
    /// with `draft()` at 1/4: `hashlib.sha256(im.convert("RGB").tobytes())`.
    #[test]
    fn decodes_the_pixels_pillow_gives_in_training() {
        use sha2::{Digest, Sha256};
        let bytes = include_bytes!("../../samples/demo/frames/street/1780304400000.jpg");
        let hash = |img: &RgbImage| hex::encode(Sha256::digest(img.as_raw()));
        let full = decode_jpeg(bytes).unwrap();
        assert_eq!(full.dimensions(), (960, 540));
        assert_eq!(
            hash(&full),
            "2833e11d7c24acf80bd2824445255587ec04e9a0a19f8665b77e9c5cdc75621b"
        );
        let mut buf = vec![7; 10];
        assert_eq!(decode_jpeg_into(bytes, &mut buf).unwrap(), (960, 540));
        assert_eq!(&buf, full.as_raw());
        // A zone of 256x256 px keeps 64 px at 1/4.
        let zone = [0.0, 0.0, 256.0 / 960.0, 256.0 / 540.0];
        let (quarter, d) = decode_jpeg_for_zones(bytes, &[zone], 64).unwrap();
        assert_eq!((quarter.dimensions(), d), ((240, 135), 4));
        assert_eq!(
            hash(&quarter),
            "6ab2949c83fd7a2f80fa7509b9654e4f7d14848eb453cf4f633405a52db96e85"
        );
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
