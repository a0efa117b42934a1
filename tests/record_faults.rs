//! Decide, then commit, under a failing database: PostgreSQL stops in the
//! middle of an obstruction and starts again. The steps that could not be
//! written are decided again on the next inputs, so the lane ends up with
//! exactly one violation, all its evidence, and one `new` and one `end`
//! alert in the outbox, as if nothing had happened.

mod common;

use std::sync::Arc;

use firelane::alerts::outbox::Outbox;
use firelane::base::input::{Frame, SensorReading};
use firelane::base::kinds::{EvidenceKind, EvidenceVariant, ViolationStatus};
use firelane::config::Config;
use firelane::pipeline::{Pipeline, PipelineError};
use firelane::runtime::assemble::{Options, assemble};
use firelane::tracking::Phase;

const S: i64 = 1000;

fn config(data: &std::path::Path, url: &str) -> Config {
    let text = format!(
        r#"
[storage]
data_dir = "{}"
database_url = "{url}"
[tracking]
grace_s = 300
clear_s = 60
camera_stale_s = 120
update_every_s = 0
# the synthetic frames show no real car: the sensor decides
sensor_weight = 10
[[cameras]]
id = "cam"
[[zones]]
id = "lane"
camera = "cam"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
sensors = ["loop"]
[[sensors]]
id = "loop"
zone = "lane"
"#,
        data.display()
    );
    Config::from_toml(&text, "t.toml").unwrap()
}

async fn frame(p: &mut Pipeline, at: i64) -> Result<(), PipelineError> {
    p.on_frame(Frame {
        arrived: None,
        camera: "cam".into(),
        captured_at: at,
        jpeg: Arc::new(common::jpeg_frame(320, 240, (at / S) as u32)),
    })
    .await
    .map(|_| ())
}

async fn sensor(p: &mut Pipeline, at: i64, occupied: bool) -> Result<(), PipelineError> {
    p.on_sensor(&SensorReading {
        sensor: "loop".into(),
        measured_at: at,
        occupied,
    })
    .await
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_violation_loses_and_duplicates_nothing() {
    let pg = common::Postgres::start();
    let data = tempfile::tempdir().unwrap();
    let config = config(data.path(), &pg.url());
    let parts = assemble(&config, Options::default()).await.unwrap();
    let (store, mut p) = (parts.store, parts.pipeline);
    p.set_outbox(Arc::new(Outbox::new(&parts.config)));

    let t0 = 1_700_000_000_000;
    sensor(&mut p, t0, true).await.unwrap();
    frame(&mut p, t0).await.unwrap();
    frame(&mut p, t0 + 120 * S).await.unwrap();
    assert!(matches!(p.zone_phases()[0].1, Phase::Obstructed { start, .. } if start == t0));

    // The database goes away just before the grace period is over.
    pg.stop();
    let mut failures = 0;
    for k in [300, 360] {
        match frame(&mut p, t0 + k * S).await {
            Err(PipelineError::Record(_)) => failures += 1,
            other => panic!("a write during the outage must fail, got {other:?}"),
        }
        // Not written, so not decided: the zone still waits to confirm.
        assert!(matches!(p.zone_phases()[0].1, Phase::Obstructed { .. }));
    }
    assert_eq!(failures, 2);
    pg.restart();

    // The next frame decides the confirmation again, for the same start.
    frame(&mut p, t0 + 420 * S).await.unwrap();
    assert!(matches!(p.zone_phases()[0].1, Phase::Violation { start, .. } if start == t0));
    // The lane clears: an outage during the end as well.
    sensor(&mut p, t0 + 600 * S, false).await.unwrap();
    frame(&mut p, t0 + 600 * S).await.unwrap();
    pg.stop();
    assert!(matches!(
        frame(&mut p, t0 + 720 * S).await,
        Err(PipelineError::Record(_))
    ));
    assert!(matches!(p.zone_phases()[0].1, Phase::Violation { .. }));
    pg.restart();
    frame(&mut p, t0 + 780 * S).await.unwrap();
    assert_eq!(p.zone_phases()[0].1, Phase::Clear);

    let violations = store.violations().await.unwrap();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    let v = &violations[0];
    assert_eq!(v.start_ms, t0);
    assert_eq!(v.confirmed_ms, t0 + 420 * S);
    assert_eq!(v.status, ViolationStatus::Cleared);
    assert_eq!(v.cleared_ms, Some(t0 + 600 * S));
    let evidence = store.evidence(&v.id).await.unwrap();
    for kind in [
        EvidenceKind::First,
        EvidenceKind::Confirm,
        EvidenceKind::Clear,
    ] {
        for variant in [EvidenceVariant::Original, EvidenceVariant::Annotated] {
            assert!(
                evidence
                    .iter()
                    .any(|e| e.kind == kind && e.variant == variant),
                "{kind} {variant} missing: {evidence:#?}"
            );
        }
    }
    let first = evidence
        .iter()
        .find(|e| e.kind == EvidenceKind::First)
        .unwrap();
    assert_eq!(
        first.captured_ms, t0,
        "the first frame is the obstruction's"
    );
    let outbox = store.outbox().await.unwrap();
    let events: Vec<&str> = outbox.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(events, ["new", "end"], "{outbox:#?}");
    // A restart from what was stored resumes a clear zone.
    let again = assemble(&config, Options::default()).await.unwrap();
    let mut q = again.pipeline;
    q.resume().await.unwrap();
    assert_eq!(q.zone_phases()[0].1, Phase::Clear);
}
