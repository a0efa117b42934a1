//! The store's queries on both backends: SQLite (default) and a real
//! PostgreSQL started by the test.

mod common;

use firelane::base::kinds::{EndReason, EvidenceKind, EvidenceVariant, ViolationStatus};
use firelane::store::{EvidenceRow, Store, ViolationRow, ZoneStateRow, violation_id};
use firelane::tracking::{ClearRun, Phase};

async fn exercise(store: &Store) {
    let id = violation_id("cam", "lane", 1_000);
    let mut v = ViolationRow {
        id: id.clone(),
        camera: "cam".into(),
        zone: "lane".into(),
        start_ms: 1_000,
        confirmed_ms: 601_000,
        cleared_ms: None,
        last_obstructed_ms: 601_000,
        peak_score: 0.93,
        model_name: "obstruction-v1".into(),
        model_sha256: "ab".repeat(32),
        status: ViolationStatus::Open,
        end_reason: None,
        zone_polygon: "[[0.1,0.5],[0.6,0.5],[0.6,0.9]]".into(),
        config_sha256: "cd".repeat(32),
        review_status: "pending".into(),
    };
    store.upsert_violation(&v).await.unwrap();
    // Same id again (a replay run twice): replaced, not duplicated.
    v.peak_score = 0.95;
    store.upsert_violation(&v).await.unwrap();
    assert_eq!(store.violations().await.unwrap(), vec![v.clone()]);

    store.update_progress(&id, 700_000, 0.97).await.unwrap();
    store
        .end_violation(&id, 800_000, 790_000, 0.98, EndReason::Cleared)
        .await
        .unwrap();
    let got = store.violation(&id).await.unwrap().unwrap();
    assert_eq!(got.cleared_ms, Some(800_000));
    assert_eq!(got.last_obstructed_ms, 790_000);
    assert_eq!(got.peak_score, 0.98);
    assert_eq!(got.status, "cleared");
    assert_eq!(got.end_reason, Some(EndReason::Cleared));
    assert!(store.violation("v-missing").await.unwrap().is_none());

    let e = EvidenceRow {
        violation_id: id.clone(),
        kind: EvidenceKind::First,
        variant: EvidenceVariant::Original,
        sha256: "cd".repeat(32),
        path: "cd/cdcd.jpg".into(),
        bytes: 1234,
        captured_ms: 1_000,
        score: Some(0.91),
    };
    store.add_evidence(&e).await.unwrap();
    store.add_evidence(&e).await.unwrap();
    assert_eq!(store.evidence(&id).await.unwrap(), vec![e]);

    let state = ZoneStateRow {
        zone: "lane".into(),
        camera: "cam".into(),
        phase: Phase::Violation {
            start: 1_000,
            confirmed_at: 601_000,
            last_obstructed: 700_000,
            peak: 0.97,
            last_reminder: 601_000,
            saved_at: 700_000,
            saved_peak: 0.97,
            clear_run: Some(ClearRun {
                since: 710_000,
                readings: 1,
            }),
        },
        last_at_ms: Some(710_000),
        violation_id: Some(id.clone()),
        first_sha256: Some("cd".repeat(32)),
        first_captured_ms: Some(1_000),
        first_score: None,
    };
    store.save_zone_state(&state).await.unwrap();
    let mut cleared = state.clone();
    cleared.phase = Phase::Clear;
    store.save_zone_state(&state).await.unwrap();
    assert_eq!(store.zone_states().await.unwrap(), vec![state]);
    store.save_zone_state(&cleared).await.unwrap();
    assert_eq!(store.zone_states().await.unwrap(), vec![cleared]);
    store
        .save_sensor_state("loop-1", true, 5_000)
        .await
        .unwrap();
    store
        .save_sensor_state("loop-1", false, 6_000)
        .await
        .unwrap();
    assert_eq!(
        store.sensor_states().await.unwrap(),
        vec![("loop-1".to_string(), false, 6_000)]
    );
    store.clear_zone_states().await.unwrap();
    assert!(store.sensor_states().await.unwrap().is_empty());
    assert!(store.zone_states().await.unwrap().is_empty());
    nulls_then_values(store, &v).await;
}

/// Every query with an optional parameter, alternating NULL and a value
/// many times, on the pool and in transactions: a backend that caches a
/// statement's parameter types from its first use must still take both
/// (sqlx's `Any` once bound a NULL float as `float4` on PostgreSQL).
async fn nulls_then_values(store: &Store, v: &ViolationRow) {
    for round in 0..6i64 {
        let some = round % 2 == 1;
        let score = some.then_some(0.5 + round as f64 / 100.0);
        let state = ZoneStateRow {
            zone: "lane-2".into(),
            camera: "cam".into(),
            phase: Phase::Clear,
            last_at_ms: some.then_some(round),
            violation_id: some.then(|| v.id.clone()),
            first_sha256: some.then(|| "ef".repeat(32)),
            first_captured_ms: some.then_some(round),
            first_score: score,
        };
        store.save_zone_state(&state).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.save_zone_state(&state).await.unwrap();
        let e = EvidenceRow {
            violation_id: v.id.clone(),
            kind: EvidenceKind::Confirm,
            variant: EvidenceVariant::Annotated,
            sha256: "ab".repeat(32),
            path: "ab/abab.jpg".into(),
            bytes: 10 + round,
            captured_ms: round,
            score,
        };
        tx.add_evidence(&e).await.unwrap();
        let row = ViolationRow {
            cleared_ms: some.then_some(900_000 + round),
            end_reason: some.then_some(EndReason::ScheduleEnded),
            ..v.clone()
        };
        tx.upsert_violation(&row).await.unwrap();
        tx.commit().await.unwrap();
        store.add_evidence(&e).await.unwrap();
        let stored = store.zone_states().await.unwrap();
        assert!(stored.contains(&state), "round {round}: {stored:?}");
        let evidence = store.evidence(&v.id).await.unwrap();
        assert!(evidence.contains(&e), "round {round}");
        assert_eq!(store.violation(&v.id).await.unwrap().unwrap(), row);
    }
    // A transaction dropped without commit leaves nothing behind.
    let mut tx = store.begin().await.unwrap();
    tx.save_sensor_state("loop-9", true, 1).await.unwrap();
    drop(tx);
    assert!(store.sensor_states().await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_store_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}/nested/firelane.db?mode=rwc",
        dir.path().display()
    );
    let store = Store::open(&url).await.unwrap();
    exercise(&store).await;
    // Reopening runs the migrations again harmlessly and keeps the data.
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.violations().await.unwrap().len(), 1);
}

#[tokio::test]
async fn postgres_store_round_trips() {
    let pg = common::Postgres::start();
    let store = Store::open(&pg.url()).await.unwrap();
    exercise(&store).await;
    let again = Store::open(&pg.url()).await.unwrap();
    assert_eq!(again.violations().await.unwrap().len(), 1);
}

/// What the leases record of a camera no one judged: a silent holder's
/// span starts at its own last renewal whatever lease length the taker
/// runs with; a released lease is not renewed back (its holder takes it
/// again, a new epoch, and the span it was let go is recorded); a holder
/// that resumes after a lapse records it.
#[tokio::test]
async fn postgres_leases_record_every_unjudged_span() {
    use firelane::store::UnwatchedCause::{Lapsed, Released, Silent};
    use std::time::Duration;
    let pg = common::Postgres::start();
    let store = Store::open(&pg.url()).await.unwrap();
    // Leases long enough that a stalled machine does not let them lapse
    // where the test needs them held.
    let first = store
        .acquire_lease("cam", "a", 3_000)
        .await
        .unwrap()
        .unwrap();
    assert!(first.unwatched.is_none());
    // The API's view: who holds it, and where that holder's API is.
    store
        .heartbeat("a", Some("http://a.example:8080"), 0)
        .await
        .unwrap();
    let holder = |owner: &str, api_url: Option<&str>| firelane::store::Holder {
        camera: "cam".into(),
        owner: owner.into(),
        api_url: api_url.map(String::from),
    };
    assert_eq!(
        store.live_holders().await.unwrap(),
        [holder("a", Some("http://a.example:8080"))]
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = store.db_now().await.unwrap();
    assert_eq!(store.renew_leases("a", 3_000).await.unwrap().len(), 1);
    let after = store.db_now().await.unwrap();
    // Still a's: b cannot take it.
    assert!(
        store
            .acquire_lease("cam", "b", 60_000)
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let taken = store
        .acquire_lease("cam", "b", 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.epoch, first.epoch + 1);
    let u = taken.unwatched.unwrap();
    assert_eq!((u.cause, u.previous_owner.as_str()), (Silent, "a"));
    assert!(
        (before..=after).contains(&u.from_ms),
        "{u:?}: from a's renewal ({before}..{after}), not from b's lease length"
    );

    // b lets it go; renewing does not bring it back (a handover's new
    // owner is not held off); b, restarted under the same name, takes it
    // again and the span it was let go is recorded; then b falls silent
    // under a short lease.
    assert_eq!(
        store.live_holders().await.unwrap(),
        [holder("b", None)],
        "b advertises no API"
    );
    store.release_lease("cam", "b").await.unwrap();
    assert!(store.live_holders().await.unwrap().is_empty(), "released");
    assert!(store.renew_leases("b", 200).await.unwrap().is_empty());
    let again = store.acquire_lease("cam", "b", 200).await.unwrap().unwrap();
    assert_eq!(again.epoch, taken.epoch + 1);
    let u = again.unwatched.unwrap();
    assert_eq!((u.cause, u.previous_owner.as_str()), (Released, "b"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let u = store
        .acquire_lease("cam", "c", 6_000)
        .await
        .unwrap()
        .unwrap()
        .unwatched
        .unwrap();
    assert_eq!((u.cause, u.previous_owner.as_str()), (Silent, "b"), "{u:?}");

    // c stopped judging for 1.5 s and renewed it back.
    let now = store.db_now().await.unwrap();
    let lapsed = store
        .record_lapsed("c", &["cam".to_string()], now, 1_500)
        .await
        .unwrap();
    assert_eq!(lapsed.len(), 1);
    let spans = store.unwatched(10).await.unwrap();
    let seen: Vec<_> = spans
        .iter()
        .map(|u| (u.cause, u.previous_owner.as_str(), u.owner.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Lapsed, "c", "c"),
            (Silent, "b", "c"),
            (Released, "b", "b"),
            (Silent, "a", "b")
        ]
    );
    assert_eq!((spans[0].from_ms, spans[0].to_ms), (now - 1_500, now));
}
