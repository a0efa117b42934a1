//! Criterion micro-benchmarks of the frame path: decode (full, full into a
//! reused buffer, and at the zones' DCT scale), crop + resize + normalise, and inference per batch
//! size. `cargo bench --bench vision`. Frames: the first frame of
//! cnrpark-a under `$FIRELANE_SHARED` (or ../shared), else a synthetic one
//! (said on stderr); resized to 1920x1080 with six boxes of 1/8 the width
//! as zones, and at its own size with the scenario's 51 zones.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use firelane::base::geometry::ZonePolygon;
use firelane::replay::Scenario;
use firelane::vision::Classifier;
use firelane::vision::decode::{decode_jpeg, decode_jpeg_for_zones, decode_jpeg_into};
use tract_onnx::prelude::*;

/// cnrpark-a's first frame (JPEG) and its camera's zones, when present.
fn scenario_frame() -> Option<(Vec<u8>, Vec<ZonePolygon>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = std::env::var_os("FIRELANE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    let scenario = Scenario::load(&shared.join("scenarios/cnrpark-a")).ok()?;
    let camera = scenario.file.cameras.first()?;
    let frame = scenario.frames.iter().find(|f| f.camera == camera.id)?;
    let jpeg = std::fs::read(scenario.dir.join(&frame.file)).ok()?;
    let zones = camera
        .zones
        .iter()
        .map(|z| ZonePolygon::new(z.polygon.clone()).unwrap())
        .collect();
    Some((jpeg, zones))
}

fn frame_1080p(scenario: Option<&(Vec<u8>, Vec<ZonePolygon>)>) -> Vec<u8> {
    let img = scenario
        .map(|(jpeg, _)| image::load_from_memory(jpeg).unwrap().into_rgb8())
        .unwrap_or_else(|| {
            eprintln!("cnrpark-a not found: the benchmarks use a synthetic frame");
            image::RgbImage::from_fn(1440, 960, |x, y| {
                image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 239) as u8])
            })
        });
    let img = image::imageops::resize(&img, 1920, 1080, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

fn zones() -> Vec<ZonePolygon> {
    (0..6)
        .map(|i| {
            let x = 0.05 + 0.15 * i as f64;
            ZonePolygon::new(vec![[x, 0.5], [x + 0.12, 0.5], [x + 0.12, 0.62], [x, 0.62]]).unwrap()
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let classifier = Classifier::load(&root.join("models/obstruction-v2.onnx")).unwrap();
    let scenario = scenario_frame();
    let jpeg = frame_1080p(scenario.as_ref());
    let zones = zones();
    let bounds: Vec<[f64; 4]> = zones.iter().map(|z| z.fraction_bounds()).collect();

    let mut g = c.benchmark_group("decode_1080p");
    g.bench_function("full", |b| {
        b.iter(|| decode_jpeg(black_box(&jpeg)).unwrap())
    });
    // What the scoring threads do: libjpeg-turbo straight into a buffer kept
    // from the frame before (no input copy, no fresh 6 MB allocation).
    let mut buf = Vec::new();
    g.bench_function("full_into_reused_buffer", |b| {
        b.iter(|| decode_jpeg_into(black_box(&jpeg), &mut buf).unwrap())
    });
    g.bench_function("scaled_for_6_zones", |b| {
        b.iter(|| decode_jpeg_for_zones(black_box(&jpeg), &bounds, classifier.input_px()).unwrap())
    });
    // Zones big enough for a DCT-scaled decode: 480x270 px keeps 64 px at
    // 1/4, 960x540 at 1/8.
    for (name, zone) in [
        ("scaled_quarter", [0.0, 0.0, 0.25, 0.25]),
        ("scaled_eighth", [0.0, 0.0, 0.5, 0.5]),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                decode_jpeg_for_zones(black_box(&jpeg), &[zone], classifier.input_px()).unwrap()
            })
        });
    }
    g.finish();

    let full = decode_jpeg(&jpeg).unwrap();
    let (scaled, _) = decode_jpeg_for_zones(&jpeg, &bounds, classifier.input_px()).unwrap();
    let input = &classifier.card.input;
    let len = firelane::vision::crop::crop_len(input);
    let mut g = c.benchmark_group("crop_resize_normalise_6_zones");
    for (name, img) in [("from_full", &full), ("from_scaled", &scaled)] {
        g.bench_function(name, |b| {
            let mut out = vec![0.0f32; len];
            b.iter(|| {
                for z in &zones {
                    let crop = firelane::vision::crop::zone_crop(img, z, input);
                    firelane::vision::crop::normalise_into(&crop, input, &mut out);
                }
                black_box(&out);
            })
        });
    }
    g.finish();

    // One strip of 3:1 (a third of the frame's width) as upright tiles,
    // and the same strip turned 30 degrees: what sampling turned tiles costs.
    let mut g = c.benchmark_group("tiles_of_a_strip");
    let strip = |deg: f64| {
        let (s, c) = deg.to_radians().sin_cos();
        let (fw, fh) = (full.width() as f64, full.height() as f64);
        let p = |i: f64, j: f64| {
            let (x, y) = (
                960.0 + i * 320.0 * c - j * 107.0 * s,
                540.0 + i * 320.0 * s + j * 107.0 * c,
            );
            [x / fw, y / fh]
        };
        ZonePolygon::new(vec![p(-1.0, -1.0), p(1.0, -1.0), p(1.0, 1.0), p(-1.0, 1.0)]).unwrap()
    };
    for (name, zone) in [("upright", strip(0.0)), ("turned_30", strip(30.0))] {
        let tiles = zone.tiles(full.width(), full.height());
        // Laying the tiles out afresh (a new zone, as after an edit); each
        // frame after that takes the kept copy.
        g.bench_function(format!("{name}_layout"), |b| {
            b.iter(|| {
                let fresh = ZonePolygon::new(zone.points().to_vec()).unwrap();
                black_box(fresh.tiles(full.width(), full.height()))
            })
        });
        g.bench_function(format!("{name}_{}_tiles", tiles.len()), |b| {
            let mut out = vec![0.0f32; len];
            b.iter(|| {
                for t in &tiles {
                    let crop = firelane::vision::crop::tile_crop(&full, &zone, *t, input);
                    firelane::vision::crop::normalise_into(&crop, input, &mut out);
                }
                black_box(&out);
            })
        });
    }
    // A lane round a corner (an L, 60 px arms, 1080p): its middle is
    // found on a grid, once per zone and frame size.
    let (fw, fh) = (full.width() as f64, full.height() as f64);
    let l = [
        (400.0, 200.0),
        (460.0, 200.0),
        (460.0, 740.0),
        (1400.0, 740.0),
        (1400.0, 800.0),
        (400.0, 800.0),
    ];
    let bent = ZonePolygon::new(l.iter().map(|&(x, y)| [x / fw, y / fh]).collect()).unwrap();
    let n = bent.tiles(full.width(), full.height()).len();
    g.bench_function(format!("bent_layout_{n}_tiles"), |b| {
        b.iter(|| {
            let fresh = ZonePolygon::new(bent.points().to_vec()).unwrap();
            black_box(fresh.tiles(full.width(), full.height()))
        })
    });
    g.bench_function("bent_kept", |b| {
        b.iter(|| black_box(bent.tiles(full.width(), full.height())))
    });
    g.finish();

    let mut g = c.benchmark_group("inference");
    for batch in [1usize, 6, 32] {
        let data = vec![0.1f32; batch * len];
        g.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &n| {
            b.iter(|| classifier.score_tensor(data.clone(), n).unwrap())
        });
    }
    g.finish();

    // The shipped model at batch 1 as tract plans it, with firelane's pools
    // only (`vision::pool`), and as the daemon runs it
    // (`vision::model::optimise`: pools, stem and direct convolutions).
    let mut g = c.benchmark_group("inference_pool");
    for (name, plan) in [
        ("tract_pool", Plan::Tract),
        ("firelane_pool", Plan::Pools),
        ("daemon_plan", Plan::Daemon),
    ] {
        let plan = shipped_plan(plan);
        let input = Tensor::from_shape(&[1, 3, 64, 64], &vec![0.1f32; len]).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| plan.run(tvec!(input.clone().into_tvalue())).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("frame_6_zones");
    // The scoring threads' path: full decode into the reused buffer, then
    // crop and score one crop at a time; beside it the general decoder.
    let mut buf = Vec::new();
    g.bench_function("decode_into_reused_score", |b| {
        b.iter(|| {
            let (w, h) = decode_jpeg_into(&jpeg, &mut buf).unwrap();
            let img = image::RgbImage::from_raw(w, h, std::mem::take(&mut buf)).unwrap();
            let scored = classifier.score_zones_timed(&img, zones.iter(), 1).unwrap();
            buf = img.into_raw();
            scored
        })
    });
    g.bench_function("decode_general_score", |b| {
        b.iter(|| {
            let img = decode_jpeg(&jpeg).unwrap();
            classifier.score_zones_timed(&img, zones.iter(), 1).unwrap()
        })
    });
    for chunk in [1usize, 6] {
        g.bench_with_input(
            BenchmarkId::new("decode_scaled_score_chunk", chunk),
            &chunk,
            |b, &chunk| {
                b.iter(|| {
                    let (img, _) =
                        decode_jpeg_for_zones(&jpeg, &bounds, classifier.input_px()).unwrap();
                    classifier
                        .score_zones_timed(&img, zones.iter(), chunk)
                        .unwrap()
                })
            },
        );
    }
    g.finish();

    // A real site's frame: every zone of the scenario's camera, scored
    // one crop per call as the scoring threads do.
    if let Some((jpeg, zones)) = &scenario {
        let mut g = c.benchmark_group(format!("frame_{}_zones", zones.len()));
        let img = decode_jpeg(jpeg).unwrap();
        g.bench_function("score", |b| {
            b.iter(|| classifier.score_zones_timed(&img, zones.iter(), 1).unwrap())
        });
        g.finish();
    }
}

enum Plan {
    Tract,
    Pools,
    Daemon,
}

fn shipped_plan(plan: Plan) -> std::sync::Arc<TypedRunnableModel> {
    let bytes = firelane::vision::model::BUILTIN_MODELS[0].onnx;
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, 64, 64]).into()))
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .unwrap();
    let model = match plan {
        Plan::Tract => model.into_optimized().unwrap(),
        Plan::Pools => {
            firelane::vision::pool::clamp_after_pool(&mut model).unwrap();
            let mut model = model.into_optimized().unwrap();
            firelane::vision::pool::swap_in(&mut model).unwrap();
            model
        }
        Plan::Daemon => firelane::vision::model::optimise(model).unwrap(),
    };
    model.into_runnable().unwrap()
}

criterion_group! {
    name = vision;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(vision);
