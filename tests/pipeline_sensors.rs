//! The pipeline without a camera frame: a zone with a presence sensor is
//! judged by its sensor alone, time passing (ticks) confirms and ends the
//! violation, and the camera's next frame supplies the evidence.

mod common;

use std::sync::Arc;

use firelane::base::input::{Frame, SensorReading};
use firelane::config::Config;
use firelane::pipeline::{Pipeline, SensorOutcome};
use firelane::runtime::assemble::{Options, assemble};
use firelane::tracking::Phase;

const MIN: i64 = 60_000;

#[tokio::test]
async fn sensor_alone_confirms_and_ends_on_event_time() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[storage]
data_dir = "{}"
[tracking]
grace_s = 300
clear_s = 60
camera_stale_s = 120
# the synthetic frame shows no real car: let the sensor decide
sensor_weight = 10
[[cameras]]
id = "cam"
[[zones]]
id = "lane"
camera = "cam"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
[[sensors]]
id = "loop"
zone = "lane"
"#,
        dir.path().display()
    );
    let config = Config::from_toml(&text, "t.toml").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let parts = assemble(
        &config,
        Options {
            events: Some(tx),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let (store, mut p) = (parts.store, parts.pipeline);

    let t0 = 1_700_000_000_000;
    let first = SensorReading {
        sensor: "loop".into(),
        measured_at: t0,
        occupied: true,
    };
    assert_eq!(p.on_sensor(&first).await.unwrap(), SensorOutcome::Applied);
    assert!(matches!(p.zone_phases()[0].1, Phase::Obstructed { start, .. } if start == t0));
    // The broker's redelivery of the same reading (its acknowledgement
    // lost) is recognised and changes nothing.
    assert_eq!(p.on_sensor(&first).await.unwrap(), SensorOutcome::Repeated);
    assert_eq!(p.metrics.snapshot().sensor_readings, 1);
    p.tick(t0 + 4 * MIN).await.unwrap();
    assert!(
        store.violations().await.unwrap().is_empty(),
        "grace not over yet"
    );
    p.tick(t0 + 5 * MIN).await.unwrap();
    let v = store.violations().await.unwrap();
    assert_eq!(v.len(), 1, "confirmed by time passing alone");
    assert_eq!((v[0].start_ms, v[0].confirmed_ms), (t0, t0 + 5 * MIN));
    assert!(
        store.evidence(&v[0].id).await.unwrap().is_empty(),
        "no frame yet"
    );

    // The camera's next frame becomes the first and confirm evidence.
    let jpeg = Arc::new(common::jpeg_frame(320, 240, 7));
    p.on_frame(Frame {
        arrived: None,
        camera: "cam".into(),
        captured_at: t0 + 6 * MIN,
        jpeg: jpeg.clone(),
    })
    .await
    .unwrap();
    let ev = store.evidence(&v[0].id).await.unwrap();
    assert_eq!(ev.len(), 6, "{ev:?}");
    assert!(ev.iter().all(|e| e.captured_ms == t0 + 6 * MIN));

    // Still occupied five minutes on (camera stale by now): an update.
    p.tick(t0 + 11 * MIN).await.unwrap();

    // Sensor says free; two ticks a minute apart end it, cleared at the reading.
    p.on_sensor(&SensorReading {
        sensor: "loop".into(),
        measured_at: t0 + 20 * MIN,
        occupied: false,
    })
    .await
    .unwrap();
    p.tick(t0 + 20 * MIN + 30_000).await.unwrap();
    assert_eq!(
        store.violation(&v[0].id).await.unwrap().unwrap().cleared_ms,
        None,
        "clear for 30 s only"
    );
    p.tick(t0 + 21 * MIN).await.unwrap();
    let ended = store.violation(&v[0].id).await.unwrap().unwrap();
    assert_eq!(ended.cleared_ms, Some(t0 + 20 * MIN));
    assert_eq!(ended.status, "cleared");

    let mut kinds = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let firelane::alerts::AlertEvent::Violation(m) = e {
            kinds.push(format!("{:?}", m.event));
        }
    }
    assert_eq!(
        kinds,
        vec!["New", "Update", "End"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    );

    // Unknown sensors and readings from the past are refused with a reason.
    let err = p
        .on_sensor(&SensorReading {
            sensor: "ghost".into(),
            measured_at: t0,
            occupied: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown sensor \"ghost\"");
    let err = p
        .on_sensor(&SensorReading {
            sensor: "loop".into(),
            measured_at: t0,
            occupied: true,
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is older than the previous one"),
        "{err}"
    );
}

async fn two_camera_pipeline(dir: &std::path::Path) -> Pipeline {
    let text = format!(
        r#"
[storage]
data_dir = "{}"
[[cameras]]
id = "a"
[[cameras]]
id = "b"
[[zones]]
id = "za"
camera = "a"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
[[zones]]
id = "zb"
camera = "b"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
"#,
        dir.display()
    );
    let config = Config::from_toml(&text, "t.toml").unwrap();
    assemble(&config, Options::default())
        .await
        .unwrap()
        .pipeline
}

/// The engine: frames of several cameras scored in parallel reach the
/// tracker, a newer frame replaces a waiting one (counted), and the engine
/// stops on shutdown even when its input queues close at the same moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_scores_in_parallel_and_stops_cleanly() {
    use firelane::pipeline::Metrics;
    use std::time::{Duration, Instant};
    for round in 0..5u32 {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let engine = firelane::runtime::engine::Engine::start(
            two_camera_pipeline(dir.path()).await,
            2,
            8,
            None,
            shutdown.clone(),
        );
        let jpeg = Arc::new(common::jpeg_frame(320, 240, round));
        for k in 0..20 {
            for camera in ["a", "b"] {
                engine.frames.push(Frame {
                    camera: camera.into(),
                    captured_at: 1_700_000_000_000 + k * 1000,
                    jpeg: jpeg.clone(),
                    arrived: Some(Instant::now()),
                });
            }
        }
        let metrics = engine.metrics.clone();
        let frames = engine.frames.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Metrics::get(&metrics.frames) + frames.dropped() < 40 {
            assert!(Instant::now() < deadline, "frames lost");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(frames.dropped() > 0, "40 frames at once must replace some");
        assert!(Metrics::get(&metrics.frames) >= 2);
        assert!(!metrics.latencies_us.lock().unwrap().is_empty());
        // Cancel and close the queues at once: the tracker must still end.
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), engine.finished())
            .await
            .expect("engine did not stop");
    }
}

/// A 1 KB JPEG whose header declares 8192 x 8192 is refused from its
/// header, before any buffer is sized for it; the camera goes on.
#[tokio::test]
async fn a_pixel_bomb_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = two_camera_pipeline(dir.path()).await;
    let mut bomb = common::jpeg_frame(64, 48, 3);
    let sof = bomb
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline JPEG has SOF0");
    // SOF0: marker, length (2), precision (1), height (2), width (2).
    bomb[sof + 5..sof + 7].copy_from_slice(&8192u16.to_be_bytes());
    bomb[sof + 7..sof + 9].copy_from_slice(&8192u16.to_be_bytes());
    assert!(bomb.len() < 4096);
    let err = p
        .on_frame(Frame {
            arrived: None,
            camera: "a".into(),
            captured_at: 1_700_000_000_000,
            jpeg: Arc::new(bomb),
        })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("8192x8192") && text.contains("pixel limit"),
        "{text}"
    );
    // A normal frame of the same camera is scored next.
    p.on_frame(Frame {
        arrived: None,
        camera: "a".into(),
        captured_at: 1_700_000_001_000,
        jpeg: Arc::new(common::jpeg_frame(320, 240, 4)),
    })
    .await
    .unwrap();
}

/// A camera's latest capture time survives a restart: a frame older than
/// what was judged before is still refused as running backwards, while the
/// other camera (never stored) accepts any time.
#[tokio::test]
async fn a_restart_keeps_each_cameras_latest_time() {
    let dir = tempfile::tempdir().unwrap();
    let frame = |camera: &str, at: i64| Frame {
        arrived: None,
        camera: camera.into(),
        captured_at: at,
        jpeg: Arc::new(common::jpeg_frame(320, 240, at as u32)),
    };
    let t0 = 1_700_000_000_000;
    {
        let mut p = two_camera_pipeline(dir.path()).await;
        p.on_frame(frame("a", t0)).await.unwrap();
        p.on_frame(frame("a", t0 + 60_000)).await.unwrap();
        assert_eq!(p.save_camera_times().await.unwrap(), 1);
        assert_eq!(
            p.save_camera_times().await.unwrap(),
            0,
            "nothing moved since"
        );
    }
    let mut p = two_camera_pipeline(dir.path()).await;
    p.resume().await.unwrap();
    let err = p.on_frame(frame("a", t0 + 30_000)).await.unwrap_err();
    assert!(
        err.to_string().contains("older than the previous one"),
        "{err}"
    );
    p.on_frame(frame("a", t0 + 70_000)).await.unwrap();
    p.on_frame(frame("b", t0 - 3_600_000)).await.unwrap();
}
