//! Tests of [`super`]: refusals, scaled decodes, Pillow's pixels.
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
    let too_many =
        |r: Result<(), DecodeError>| matches!(r, Err(DecodeError::TooManyScans { max: MAX_SCANS }));
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

/// Greyscale and progressive frames take the libjpeg path too and come
/// out as RGB, within JPEG rounding of the general decoder's.
#[test]
fn greyscale_and_progressive_frames_decode_as_rgb() {
    let max_diff = |a: &RgbImage, b: &RgbImage| {
        assert_eq!(a.dimensions(), b.dimensions());
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap()
    };
    let grey = image::GrayImage::from_fn(64, 48, |x, y| image::Luma([(x * 3 + y * 2) as u8]));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode_image(&grey)
        .unwrap();
    let img = decode_jpeg(&bytes).unwrap();
    assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    assert!(max_diff(&img, &general_decode(&bytes).unwrap()) <= 4);

    let bytes = progressive(96, 64, 0);
    let mut buf = Vec::new();
    assert_eq!(decode_jpeg_into(&bytes, &mut buf).unwrap(), (96, 64));
    let img = RgbImage::from_raw(96, 64, buf).unwrap();
    assert!(max_diff(&img, &general_decode(&bytes).unwrap()) <= 4);

    // CMYK, which libjpeg is not asked to turn into RGB, goes to the
    // general decoder, whole frame and scaled path alike.
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_CMYK);
    c.set_size(64, 48);
    let mut started = c.start_compress(Vec::new()).unwrap();
    started
        .write_scanlines(&[40u8, 80, 120, 10].repeat(64 * 48))
        .unwrap();
    let cmyk = started.finish().unwrap();
    assert_eq!(decode_jpeg(&cmyk).unwrap().dimensions(), (64, 48));
    let whole = [[0.0, 0.0, 1.0, 1.0]];
    let (img, d) = decode_jpeg_for_zones(&cmyk, &whole, 8).unwrap();
    assert_eq!((img.dimensions(), d), ((64, 48), 1));
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
