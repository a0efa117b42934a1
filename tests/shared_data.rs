//! Tests on the shared data folder (`../shared`, or `$FIRELANE_SHARED`):
//! the cnrpark-a replay through the real pipeline and the shipped model on
//! real patches. Run with `cargo test -- --ignored` (CI does).

mod common;

use common::{model_path, shared_dir};
use firelane::replay::{self, ReplayOptions, Scenario};
use firelane::vision::Classifier;
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ../shared (FIRELANE_SHARED)"]
async fn cnrpark_a_replay_reaches_f1_090() {
    let scenario = Scenario::load(&shared_dir().join("scenarios/cnrpark-a")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let opts = ReplayOptions {
        data_dir: data.path().to_path_buf(),
        grace_s: None,
        model: model_path(),
        base_config: None,
        progress: None,
    };
    let report = replay::run(&scenario, &opts).await.unwrap();
    let score = report.score.clone().expect("cnrpark-a has truth.json");
    println!("{score:?}");
    assert_eq!(report.stats.frames, 121);
    assert_eq!(report.stats.rejected, 0);
    assert!(score.f1 >= 0.90, "F1 {:.3} below 0.90: {score:?}", score.f1);
    // Every violation carries its first and confirming frames, original and
    // annotated, and the files hash to what the report says.
    for v in &report.violations {
        assert!(v.start < v.confirmed_at);
        assert!(v.confirmed_at - v.start >= 600_000);
        for kind in ["first", "confirm"] {
            assert!(
                v.evidence
                    .iter()
                    .any(|e| e.kind == kind && e.variant == "original"),
                "{} lacks {kind}",
                v.id
            );
        }
        if v.cleared.is_some() {
            assert!(
                v.evidence.iter().any(|e| e.kind == "clear"),
                "{} lacks its clearing frame",
                v.id
            );
        }
        for e in &v.evidence {
            let bytes = std::fs::read(&e.path).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&bytes)), e.sha256);
        }
    }
    // Replaying again into the same folder gives the same violations, no duplicates.
    let again = replay::run(&scenario, &opts).await.unwrap();
    let ids = |r: &replay::Report| {
        r.violations
            .iter()
            .map(|v| v.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&report), ids(&again));
    let store =
        firelane::store::Store::open(&format!("sqlite://{}/firelane.db", data.path().display()))
            .await
            .unwrap();
    assert_eq!(
        store.violations().await.unwrap().len(),
        report.violations.len()
    );

    // An officer can export a replay's violation as a signed bundle of the
    // real frames, and it verifies against the folder's site key.
    let bundle = data.path().join("bundle.zip");
    let id = &report.violations[0].id;
    let firelane = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_firelane"))
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .current_dir(common::repo_root())
            .output()
            .unwrap()
    };
    let out = firelane(&["evidence", "export", id, "-o", bundle.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_firelane"))
        .args([
            "evidence",
            "verify",
            bundle.to_str().unwrap(),
            "--public-key",
        ])
        .arg(data.path().join("site.key.pub"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = firelane(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ../shared (FIRELANE_SHARED)"]
async fn grace_override_changes_what_counts() {
    let scenario = Scenario::load(&shared_dir().join("scenarios/cnrpark-a")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let long = ReplayOptions {
        data_dir: data.path().join("long"),
        grace_s: Some(4.0 * 3600.0),
        model: model_path(),
        base_config: None,
        progress: None,
    };
    let report = replay::run(&scenario, &long).await.unwrap();
    assert_eq!(report.grace_s, 4.0 * 3600.0);
    assert!(
        report
            .violations
            .iter()
            .all(|v| v.confirmed_at - v.start >= 4 * 3_600_000)
    );
    assert!(report.violations.len() < 48);
    // Scored against the truth at that grace, recomputed from labels.csv
    // (truth.json holds it at 600 s): every true violation lasted 4 h.
    assert_eq!(report.truth.as_deref(), Some("labels.csv at grace 14400 s"));
    let score = report.score.expect("scored");
    assert!(
        score.truth < 48,
        "truth at 4 h has fewer violations: {score:?}"
    );
    assert!(score.f1 >= 0.90, "{score:?}");
}

/// Fire lanes are strips: the same frames with 17 zones of three bays each,
/// obstructed when any bay is. Long zones are scored as tiles, so one car
/// in a strip is seen when it arrives, not when the strip fills up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ../shared (FIRELANE_SHARED)"]
async fn lanes3_strips_are_seen_when_the_first_car_arrives() {
    let scenario = Scenario::load(&shared_dir().join("scenarios/cnrpark-a-lanes3")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let opts = ReplayOptions {
        data_dir: data.path().to_path_buf(),
        grace_s: None,
        model: model_path(),
        base_config: None,
        progress: None,
    };
    let report = replay::run(&scenario, &opts).await.unwrap();
    let score = report.score.clone().expect("lanes3 has truth.json");
    println!("{score:?}");
    assert!(score.f1 >= 0.95, "F1 {:.3} below 0.95: {score:?}", score.f1);
    let err = score.mean_start_error_s.expect("matches");
    assert!(err <= 300.0, "mean start error {err:.0} s over 300 s");
    // The close-up of a strip shows its tiles; every violation has one.
    for v in &report.violations {
        assert!(
            v.evidence
                .iter()
                .any(|e| e.kind == "confirm" && e.variant == "closeup"),
            "{} lacks its close-up",
            v.id
        );
    }
}

/// The shipped model, through the daemon's own loading and preprocessing,
/// on the held-out (odd) bays: as good as its card says.
#[test]
#[ignore = "needs ../shared (FIRELANE_SHARED)"]
fn shipped_model_matches_its_card_on_held_out_bays() {
    let classifier = Classifier::load(&model_path()).unwrap();
    let data = shared_dir().join("data/cnrpark-a");
    let mut samples = Vec::new();
    for (sub, label) in [("busy", true), ("free", false)] {
        let mut files: Vec<_> = std::fs::read_dir(data.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let slot: u32 = p
                    .file_stem()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .rsplit('_')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                slot % 2 == 1
            })
            .collect();
        files.sort();
        for (path, score) in firelane::vision::eval::score_files(&classifier, &files) {
            samples.push((
                score.unwrap_or_else(|e| panic!("{}: {e}", path.display())),
                label,
            ));
        }
    }
    let m = firelane::vision::eval::metrics(&samples, classifier.threshold());
    let card = &classifier.card.metrics["heldout_bays"];
    println!("{m:?}\ncard: {card}");
    assert_eq!(
        m.n as u64,
        card["n"].as_u64().unwrap(),
        "same held-out set as the card"
    );
    let card_acc = card["accuracy"].as_f64().unwrap();
    // The decoder is the one PIL uses; the resize differs from its by rounding.
    assert!(
        (m.accuracy - card_acc).abs() <= 0.005,
        "accuracy {} vs card {card_acc}",
        m.accuracy
    );
    // v2's card says 0.9921 (v1: 0.9987): it gives up a few false alarms
    // on camera A's tree-covered bay 7 for cameras it never saw.
    assert!(m.accuracy >= 0.99, "held-out accuracy {}", m.accuracy);
    assert!(m.roc_auc >= 0.995, "ROC AUC {}", m.roc_auc);
}

/// `firelane classify --eval` on the whole CNRPark-A folder (training and
/// held-out bays): the report's lines and a sane figure.
#[test]
#[ignore = "needs ../shared (FIRELANE_SHARED)"]
fn classify_eval_reports_accuracy_auc_and_confusion() {
    let data = shared_dir().join("data/cnrpark-a");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_firelane"))
        .args(["classify", "--eval"])
        .arg(&data)
        .current_dir(common::repo_root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("images 6171  (unreadable 0)"), "{text}");
    let value = |label: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in {text}"));
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    assert!(value("accuracy") >= 0.99, "{text}");
    // v2 trades a few false alarms on camera A (bay 7, a clear bay under a
    // tree: 21 of its 31 held-out errors) for cameras it never saw; v1
    // reached 0.99 here. Held to v2's measured 0.9897, not below.
    assert!(value("balanced accuracy") >= 0.989, "{text}");
    assert!(value("ROC AUC") >= 0.995, "{text}");
    assert!(text.contains("confusion"), "{text}");
}

/// Reusing the score of a crop that did not change decides nothing
/// differently: the cnrpark-a replay with reuse allowed across its 5-minute
/// frames (max age an hour) records the same violations as with every crop
/// scored, and crops were in fact reused. Measured here: at the default
/// 0.02, 3 of 6,171 crops are reused across 5 minutes of daylight change;
/// at 0.05 (this test), 694, with the same decisions; at 0.1, 2,789 and one
/// violation ends differently — the default keeps a margin of more than 2x.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ../shared (FIRELANE_SHARED)"]
async fn reusing_unchanged_crops_changes_no_decision() {
    let scenario = Scenario::load(&shared_dir().join("scenarios/cnrpark-a")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let run = |name: &str, diff: f64| {
        let mut raw = scenario.to_raw_config(scenario.file.grace_s);
        raw.ingest.reuse_max_diff = diff;
        raw.ingest.reuse_max_age_s = 3600.0;
        ReplayOptions {
            data_dir: data.path().join(name),
            grace_s: None,
            model: model_path(),
            base_config: Some(raw),
            progress: None,
        }
    };
    let every = replay::run(&scenario, &run("every", 0.0)).await.unwrap();
    let reusing = replay::run(&scenario, &run("reuse", 0.05)).await.unwrap();
    let decisions = |r: &replay::Report| {
        r.violations
            .iter()
            .map(|v| (v.zone.clone(), v.start, v.confirmed_at, v.cleared))
            .collect::<Vec<_>>()
    };
    println!(
        "crops {} reused {} of {}",
        every.stats.crops, reusing.stats.crops_reused, reusing.stats.crops
    );
    assert_eq!(every.stats.crops_reused, 0);
    assert!(reusing.stats.crops_reused > 300, "{:?}", reusing.stats);
    assert_eq!(decisions(&every), decisions(&reusing));
}

/// A copy of scenario `src` in `dst` with every frame passed through
/// `frame` and every zone point through `point` (image fractions), the
/// camera's size from the first frame as it comes out.
fn transformed_copy(
    src: &std::path::Path,
    dst: &std::path::Path,
    frame: impl Fn(image::RgbImage) -> image::RgbImage,
    point: impl Fn([f64; 2]) -> [f64; 2],
) {
    let mut size = None;
    for line in std::fs::read_to_string(src.join("frames.jsonl"))
        .unwrap()
        .lines()
    {
        let file = serde_json::from_str::<serde_json::Value>(line).unwrap()["file"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = frame(image::open(src.join(&file)).unwrap().to_rgb8());
        size.get_or_insert(out.dimensions());
        std::fs::create_dir_all(dst.join(&file).parent().unwrap()).unwrap();
        out.save(dst.join(&file)).unwrap();
    }
    for f in ["frames.jsonl", "truth.json", "sensors.jsonl"] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
    }
    let mut sc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("scenario.json")).unwrap()).unwrap();
    let (w, h) = size.unwrap();
    for cam in sc["cameras"].as_array_mut().unwrap() {
        cam["width"] = w.into();
        cam["height"] = h.into();
        for zone in cam["zones"].as_array_mut().unwrap() {
            let poly: Vec<[f64; 2]> = serde_json::from_value(zone["polygon"].clone()).unwrap();
            zone["polygon"] = serde_json::json!(poly.into_iter().map(&point).collect::<Vec<_>>());
        }
    }
    std::fs::write(dst.join("scenario.json"), sc.to_string()).unwrap();
}

/// `f` turned `deg` degrees clockwise about its centre onto a canvas grown
/// to hold it (grey outside; bilinear), as a camera mounted at a slant
/// sees the scene.
fn turned_frame(f: &image::RgbImage, deg: f64) -> image::RgbImage {
    let (w, h) = (f.width() as f64, f.height() as f64);
    let (s, c) = deg.to_radians().sin_cos();
    let (nw, nh) = turned_size(f.dimensions(), deg);
    image::RgbImage::from_fn(nw, nh, |x, y| {
        let (dx, dy) = (
            x as f64 + 0.5 - nw as f64 / 2.0,
            y as f64 + 0.5 - nh as f64 / 2.0,
        );
        let (sx, sy) = (
            dx * c + dy * s + w / 2.0 - 0.5,
            -dx * s + dy * c + h / 2.0 - 0.5,
        );
        if sx < 0.0 || sy < 0.0 || sx > w - 1.0 || sy > h - 1.0 {
            return image::Rgb([90, 90, 90]);
        }
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(f.width() - 1), (y0 + 1).min(f.height() - 1));
        let (ax, ay) = (sx - x0 as f64, sy - y0 as f64);
        let px = |x, y, k| f64::from(f.get_pixel(x, y).0[k]);
        image::Rgb([0, 1, 2].map(|k| {
            let top = px(x0, y0, k) * (1.0 - ax) + px(x1, y0, k) * ax;
            let bottom = px(x0, y1, k) * (1.0 - ax) + px(x1, y1, k) * ax;
            (top * (1.0 - ay) + bottom * ay).round() as u8
        }))
    })
}

fn turned_size((w, h): (u32, u32), deg: f64) -> (u32, u32) {
    let (s, c) = deg.to_radians().sin_cos();
    let (w, h) = (w as f64, h as f64);
    (
        (w * c.abs() + h * s.abs()).ceil() as u32,
        (w * s.abs() + h * c.abs()).ceil() as u32,
    )
}

/// Where point `[x, y]` (fractions) of a `size` frame lands once the frame
/// is turned as [`turned_frame`] turns it.
fn turned_point([x, y]: [f64; 2], size: (u32, u32), deg: f64) -> [f64; 2] {
    let (s, c) = deg.to_radians().sin_cos();
    let (w, h) = (size.0 as f64, size.1 as f64);
    let (nw, nh) = turned_size(size, deg);
    let (dx, dy) = (x * w - w / 2.0, y * h - h / 2.0);
    [
        (dx * c - dy * s + nw as f64 / 2.0) / nw as f64,
        (dx * s + dy * c + nh as f64 / 2.0) / nh as f64,
    ]
}

/// Zones in other cameras' shapes, through the real pipeline: the strips
/// of cnrpark-a-lanes3 turned upright (frames rotated a quarter turn,
/// zones with them), shrunk to a third (strips about 37 pixels thick,
/// under the model's 64) and turned 30 degrees (a kerb running across the
/// picture at a slant: tiles turn with the strip), and cnrpark-a's bays
/// turned 30 degrees (each bay's crop turned back square). Measured on the
/// shipped model: upright F1 1.000, mean start error 300 s; a third 0.973,
/// 317 s here (267 s when shrunk with Lanczos instead); strips at 30
/// degrees 0.973, 300 s here; bays at 30 degrees 0.979, 6 s here. Through
/// `bench/variant.py` (2026-12-05): strips at 20, 30 and 40 degrees 0.947,
/// 0.973 and 0.973, 317, 333 and 300 s (upright tiles around them gave
/// 0.947, 383 s at 20 degrees and 1983 s at 40); bays at 20 and 30
/// degrees 0.979, 13 s (0.939 at 20 with bounding boxes). As recorded: strips 0.973,
/// 133 s; bays 0.979, 13 s. The bound is two frame intervals: one frame
/// more or less at a start is the resampling's, not a regression.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ../shared (FIRELANE_SHARED)"]
async fn zones_are_found_turned_slanted_and_small() {
    let src = shared_dir().join("scenarios/cnrpark-a-lanes3");
    let dir = tempfile::tempdir().unwrap();
    let upright = dir.path().join("upright");
    transformed_copy(
        &src,
        &upright,
        |f| image::imageops::rotate90(&f),
        |[x, y]| [1.0 - y, x],
    );
    let small = dir.path().join("small");
    transformed_copy(
        &src,
        &small,
        |f| {
            let (w, h) = (f.width() / 3, f.height() / 3);
            image::imageops::resize(&f, w, h, image::imageops::FilterType::Triangle)
        },
        |p| p,
    );
    let sc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("scenario.json")).unwrap()).unwrap();
    let cam = &sc["cameras"][0];
    let size = (
        cam["width"].as_u64().unwrap() as u32,
        cam["height"].as_u64().unwrap() as u32,
    );
    let slanted = dir.path().join("slanted");
    transformed_copy(
        &src,
        &slanted,
        |f| turned_frame(&f, 30.0),
        |p| turned_point(p, size, 30.0),
    );
    let bays = dir.path().join("bays-slanted");
    transformed_copy(
        &shared_dir().join("scenarios/cnrpark-a"),
        &bays,
        |f| turned_frame(&f, 30.0),
        |p| turned_point(p, size, 30.0),
    );
    for scenario in [upright, small, slanted, bays] {
        let loaded = Scenario::load(&scenario).unwrap();
        let opts = ReplayOptions {
            data_dir: dir.path().join("data").join(scenario.file_name().unwrap()),
            grace_s: None,
            model: model_path(),
            base_config: None,
            progress: None,
        };
        let report = replay::run(&loaded, &opts).await.unwrap();
        let score = report.score.clone().expect("truth.json copied");
        println!("{}: {score:?}", scenario.display());
        assert_eq!(report.stats.rejected, 0);
        assert!(score.f1 >= 0.95, "{}: {score:?}", scenario.display());
        let err = score.mean_start_error_s.expect("matches");
        assert!(
            err <= 600.0,
            "{}: mean start error {err:.0} s",
            scenario.display()
        );
    }
}
