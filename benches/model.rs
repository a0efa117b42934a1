//! Classifier and frame-path timings, printed as a table.
//!
//! `cargo bench --bench model` (release build, one thread). Uses the shipped
//! model; frames come from `$FIRELANE_SHARED/scenarios/cnrpark-a` when present,
//! otherwise a synthetic 1440x960 JPEG.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use firelane::config::ZonePolygon;
use firelane::vision::{Classifier, decode_jpeg};

fn time<F: FnMut()>(min_time: Duration, mut f: F) -> (f64, usize) {
    f(); // warm-up
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < min_time || n < 5 {
        f();
        n += 1;
    }
    (start.elapsed().as_secs_f64() / n as f64, n)
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let classifier =
        Classifier::load(&root.join("models/obstruction-v1.onnx")).expect("load model");
    let input = &classifier.card.input;
    let len = 3 * (input.width * input.height) as usize;
    println!(
        "model {} ({}x{}), tract single thread",
        classifier.name(),
        input.width,
        input.height
    );
    println!();
    println!("| batch | ms per batch | ms per crop | crops/s |");
    println!("|---:|---:|---:|---:|");
    for batch in [1usize, 4, 16, 51, 64] {
        let data = vec![0.1f32; batch * len];
        let (secs, _) = time(Duration::from_secs(2), || {
            classifier.score_tensor(data.clone(), batch).unwrap();
        });
        println!(
            "| {batch} | {:.3} | {:.3} | {:.0} |",
            secs * 1e3,
            secs * 1e3 / batch as f64,
            batch as f64 / secs
        );
    }

    let shared = std::env::var_os("FIRELANE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    let scenario_dir = shared.join("scenarios/cnrpark-a");
    let (jpeg, zones, source) = match firelane::replay::Scenario::load(&scenario_dir) {
        Ok(sc) => {
            let bytes = std::fs::read(sc.frame_path(&sc.frames[0])).unwrap();
            let zones: Vec<ZonePolygon> = sc.file.cameras[0]
                .zones
                .iter()
                .map(|z| ZonePolygon::new(z.polygon.clone()).unwrap())
                .collect();
            (bytes, zones, "cnrpark-a frame 1440x960, 51 zones")
        }
        Err(_) => {
            let img = image::RgbImage::from_fn(1440, 960, |x, y| {
                image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
            });
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
                .encode_image(&img)
                .unwrap();
            let zones = (0..6)
                .map(|i| {
                    let x = i as f64 / 6.0;
                    ZonePolygon::new(vec![[x, 0.5], [x + 0.15, 0.5], [x + 0.15, 0.9], [x, 0.9]])
                        .unwrap()
                })
                .collect();
            (out, zones, "synthetic frame 1440x960, 6 zones")
        }
    };
    println!();
    println!("frame path on {source}:");
    println!();
    println!("| stage | ms per frame |");
    println!("|---|---:|");
    let (decode, _) = time(Duration::from_secs(2), || {
        decode_jpeg(&jpeg).unwrap();
    });
    let frame = decode_jpeg(&jpeg).unwrap();
    let (crops, _) = time(Duration::from_secs(2), || {
        let mut data = vec![0f32; zones.len() * len];
        for (z, out) in zones.iter().zip(data.chunks_exact_mut(len)) {
            let c = firelane::vision::crop::zone_crop(&frame, z, input);
            firelane::vision::crop::normalise_into(&c, input, out);
        }
    });
    let (whole, _) = time(Duration::from_secs(3), || {
        let f = decode_jpeg(&jpeg).unwrap();
        classifier.score_zones(&f, zones.iter()).unwrap();
    });
    println!("| decode | {:.2} |", decode * 1e3);
    println!(
        "| crop + resize + normalise ({} zones) | {:.2} |",
        zones.len(),
        crops * 1e3
    );
    println!(
        "| inference (batch of {}) | {:.2} |",
        zones.len(),
        (whole - decode - crops).max(0.0) * 1e3
    );
    println!("| whole frame | {:.2} |", whole * 1e3);
    println!();
    println!(
        "frames/s on one core: {:.1}; zone crops/s: {:.0}",
        1.0 / whole,
        zones.len() as f64 / whole
    );
}
