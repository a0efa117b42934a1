//! Zone changes inside the pipeline: a schedule window's end closes an
//! open violation at that instant and the zone records nothing until it
//! opens again; a new configuration keeps the state of unchanged zones and
//! ends the violations of redrawn or removed ones.

mod common;

use std::sync::Arc;

use firelane::base::input::{Frame, SensorReading};
use firelane::base::time::parse_rfc3339;
use firelane::config::Config;
use firelane::pipeline::Pipeline;
use firelane::runtime::assemble::{Options, assemble};
use firelane::store::Store;
use firelane::tracking::Phase;

const S: i64 = 1000;

fn config_text(dir: &std::path::Path, zones: &str) -> String {
    format!(
        r#"
[storage]
data_dir = "{}"
[tracking]
grace_s = 60
clear_s = 30
reattach_s = 0
# the synthetic frames show no real car: the sensors decide
sensor_weight = 10
[[cameras]]
id = "cam"
{zones}
"#,
        dir.display()
    )
}

async fn pipeline(config: &Arc<Config>) -> (Pipeline, Store) {
    let parts = assemble(config, Options::default()).await.unwrap();
    (parts.pipeline, parts.store)
}

async fn frame(p: &mut Pipeline, at: i64) {
    p.on_frame(Frame {
        arrived: None,
        camera: "cam".into(),
        captured_at: at,
        jpeg: Arc::new(common::jpeg_frame(320, 240, (at / S) as u32)),
    })
    .await
    .unwrap();
}

async fn sensor(p: &mut Pipeline, id: &str, at: i64, occupied: bool) {
    p.on_sensor(&SensorReading {
        sensor: id.into(),
        measured_at: at,
        occupied,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn violation_closes_at_the_end_of_the_enforced_window() {
    let dir = tempfile::tempdir().unwrap();
    let zones = r#"
[[zones]]
id = "bay"
camera = "cam"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
# enforced 08:00-09:00 on weekdays, Rome time
schedule = { timezone = "Europe/Rome", active = [{ days = ["mon-fri"], from = "08:00", to = "09:00" }] }
[[sensors]]
id = "loop"
zone = "bay"
"#;
    let config = Arc::new(Config::from_toml(&config_text(dir.path(), zones), "t.toml").unwrap());
    let (mut p, store) = pipeline(&config).await;
    // Monday 2026-11-30, 08:50 in Rome (UTC+1).
    let t0 = parse_rfc3339("2026-11-30T07:50:00Z").unwrap();
    let window_end = parse_rfc3339("2026-11-30T08:00:00Z").unwrap();
    sensor(&mut p, "loop", t0, true).await;
    for k in 0..30 {
        frame(&mut p, t0 + k * 20 * S).await; // to 08:59:40
    }
    let v = store.violations().await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].status, "open");

    // The first frame after 09:00 closes it, at 09:00 exactly.
    frame(&mut p, t0 + 30 * 20 * S).await;
    let ended = store.violation(&v[0].id).await.unwrap().unwrap();
    assert_eq!(ended.cleared_ms, Some(window_end));
    assert_eq!(ended.end_reason.map(|r| r.as_str()), Some("schedule_ended"));
    assert_eq!(p.zone_phases()[0].1, Phase::Clear);

    // Still parked after the window: nothing recorded, however long.
    for k in 31..80 {
        frame(&mut p, t0 + k * 20 * S).await;
    }
    assert_eq!(store.violations().await.unwrap().len(), 1);
    assert_eq!(p.zone_phases()[0].1, Phase::Clear);

    // The next morning's window: enforced again, a new violation after grace.
    let t1 = parse_rfc3339("2026-12-01T07:00:00Z").unwrap(); // Tue 08:00 Rome
    for k in 0..5 {
        frame(&mut p, t1 + k * 20 * S).await;
    }
    let all = store.violations().await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().any(|v| v.start_ms == t1 && v.status == "open"));
}

#[tokio::test]
async fn a_window_that_closed_while_the_camera_was_silent_still_ends_the_violation() {
    let dir = tempfile::tempdir().unwrap();
    let zones = r#"
[[zones]]
id = "bay"
camera = "cam"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
schedule = { timezone = "UTC", active = [{ days = ["daily"], from = "08:00", to = "09:00" }] }
[[sensors]]
id = "loop"
zone = "bay"
"#;
    let config = Arc::new(Config::from_toml(&config_text(dir.path(), zones), "t.toml").unwrap());
    let (mut p, store) = pipeline(&config).await;
    let t0 = parse_rfc3339("2026-11-30T08:50:00Z").unwrap();
    sensor(&mut p, "loop", t0, true).await;
    for k in 0..5 {
        frame(&mut p, t0 + k * 20 * S).await;
    }
    let v = store.violations().await.unwrap();
    assert_eq!(v.len(), 1);
    // Silent until the next morning's window, the car still there.
    let next = parse_rfc3339("2026-12-01T08:05:00Z").unwrap();
    frame(&mut p, next).await;
    let ended = store.violation(&v[0].id).await.unwrap().unwrap();
    assert_eq!(ended.end_reason.map(|r| r.as_str()), Some("schedule_ended"));
    assert_eq!(
        ended.cleared_ms,
        Some(parse_rfc3339("2026-11-30T09:00:00Z").unwrap())
    );
    // Today's obstruction starts today, not yesterday.
    assert!(matches!(p.zone_phases()[0].1, Phase::Obstructed { start, .. } if start == next));
}

#[tokio::test]
async fn reconfiguring_keeps_unchanged_zones_and_ends_redrawn_ones() {
    let dir = tempfile::tempdir().unwrap();
    let zone = |id: &str, x0: f64, sensor: &str| {
        format!(
            "[[zones]]\nid = \"{id}\"\ncamera = \"cam\"\npolygon = [[{x0}, 0.1], [{x1}, 0.1], [{x1}, 0.9], [{x0}, 0.9]]\n[[sensors]]\nid = \"{sensor}\"\nzone = \"{id}\"\n",
            x1 = x0 + 0.3
        )
    };
    let before = Arc::new(
        Config::from_toml(
            &config_text(
                dir.path(),
                &(zone("keep", 0.1, "s-keep") + &zone("move", 0.5, "s-move")),
            ),
            "t.toml",
        )
        .unwrap(),
    );
    let (mut p, store) = pipeline(&before).await;
    let t0 = 1_780_000_000_000;
    sensor(&mut p, "s-keep", t0, true).await;
    sensor(&mut p, "s-move", t0, true).await;
    for k in 0..5 {
        frame(&mut p, t0 + k * 20 * S).await;
    }
    assert_eq!(store.violations().await.unwrap().len(), 2);

    // "move" is redrawn, "keep" only gets a new threshold.
    let mut text = config_text(
        dir.path(),
        &(zone("keep", 0.1, "s-keep") + &zone("move", 0.6, "s-move")),
    );
    text = text.replace(
        "[[zones]]\nid = \"keep\"",
        "[[zones]]\nid = \"keep\"\nthreshold = 0.7",
    );
    let after = Arc::new(Config::from_toml(&text, "t.toml").unwrap());
    p.reconfigure(after).await.unwrap();
    frame(&mut p, t0 + 5 * 20 * S).await;

    let v = store.violations().await.unwrap();
    let keep = v.iter().find(|v| v.zone == "keep").unwrap();
    assert_eq!(
        keep.status, "open",
        "an unchanged zone's violation continues"
    );
    let moved: Vec<_> = v.iter().filter(|v| v.zone == "move").collect();
    assert_eq!(moved[0].status, "cleared");
    assert_eq!(
        moved[0].end_reason.map(|r| r.as_str()),
        Some("zone_changed")
    );
    assert_eq!(
        moved[0].cleared_ms,
        Some(t0 + 4 * 20 * S),
        "its last reading"
    );
    // The redrawn zone starts afresh: its sensor still says occupied.
    assert!(matches!(
        p.zone_phases()
            .iter()
            .find(|(id, _)| id == "move")
            .unwrap()
            .1,
        Phase::Obstructed { .. }
    ));

    // Removing a zone ends its violation too.
    let only_move = Arc::new(
        Config::from_toml(
            &config_text(dir.path(), &zone("move", 0.6, "s-move")),
            "t.toml",
        )
        .unwrap(),
    );
    p.reconfigure(only_move).await.unwrap();
    let keep = store.violation(&keep.id).await.unwrap().unwrap();
    assert_eq!(keep.end_reason.map(|r| r.as_str()), Some("zone_removed"));
    assert_eq!(p.zone_phases().len(), 1);
}

#[tokio::test]
async fn a_zone_redrawn_while_the_daemon_was_down_does_not_resume_its_violation() {
    let dir = tempfile::tempdir().unwrap();
    let zone = |x0: f64| {
        format!(
            "[[zones]]\nid = \"lane\"\ncamera = \"cam\"\npolygon = [[{x0}, 0.1], [0.9, 0.1], [0.9, 0.9], [{x0}, 0.9]]\n[[sensors]]\nid = \"loop\"\nzone = \"lane\"\n"
        )
    };
    let before =
        Arc::new(Config::from_toml(&config_text(dir.path(), &zone(0.1)), "t.toml").unwrap());
    let (mut p, store) = pipeline(&before).await;
    let t0 = 1_780_000_000_000;
    sensor(&mut p, "loop", t0, true).await;
    for k in 0..5 {
        frame(&mut p, t0 + k * 20 * S).await;
    }
    let id = store.violations().await.unwrap()[0].id.clone();
    drop(p);

    // Unchanged: the restart picks the violation up.
    let (mut same, _) = pipeline(&before).await;
    assert_eq!(same.resume().await.unwrap(), 1);
    drop(same);
    // Redrawn: it ends (at the last reading the store knows of: state is
    // saved on changes, not per frame) and the zone starts afresh.
    let after =
        Arc::new(Config::from_toml(&config_text(dir.path(), &zone(0.3)), "t.toml").unwrap());
    let (mut redrawn, store) = pipeline(&after).await;
    assert_eq!(redrawn.resume().await.unwrap(), 0);
    let v = store.violation(&id).await.unwrap().unwrap();
    assert_eq!(v.end_reason.map(|r| r.as_str()), Some("zone_changed"));
    assert!(
        v.cleared_ms
            .is_some_and(|c| c >= v.confirmed_ms && c <= t0 + 4 * 20 * S),
        "{v:?}"
    );
    assert_eq!(redrawn.zone_phases()[0].1, Phase::Clear);
}
