//! The daemon end to end against a real mosquitto: frames and sensor
//! readings in, a violation with evidence in SQLite and MQTT events out;
//! bad input skipped; a SIGKILL in the middle of a violation neither
//! duplicates nor loses it.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::mqtt::*;
use common::{Mosquitto, jpeg_frame, repo_root};
use firelane::store::Store;
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_and_sensors_over_mosquitto_make_one_violation_with_evidence() {
    let broker = Mosquitto::start();
    let data = tempfile::tempdir().unwrap();
    let cfg_path = data.path().join("site.toml");
    std::fs::write(&cfg_path, config_toml(&broker, data.path())).unwrap();
    let config = firelane::config::Config::load(&cfg_path).unwrap();
    let (_listen_client, mut rx) = listener(&broker, "listener-1").await;
    let mut seen = Vec::new();

    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(firelane::runtime::daemon::run(config, shutdown.clone()));
    wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;

    let pubr = publisher(&broker, "camera-1").await;
    let t0 = firelane::base::time::wall_clock_ms() - 600_000;
    let s = 1000;
    let mut frames: HashMap<i64, Vec<u8>> = HashMap::new();
    let mut send = |k: i64| {
        let jpeg = jpeg_frame(640, 480, k as u32);
        frames.insert(t0 + k * 10 * s, jpeg.clone());
        jpeg
    };
    pubr.sensor(t0, false).await;
    pubr.frame(t0, &send(0)).await;
    pubr.sensor(t0 + 10 * s, true).await;
    for k in 1..=8 {
        pubr.frame(t0 + k * 10 * s, &send(k)).await;
    }
    // Bad input in the middle: each is skipped with a reason, nothing stops.
    let good = jpeg_frame(640, 480, 99);
    pubr.raw("site/cameras/cam1/frame", good[..good.len() / 2].to_vec())
        .await; // truncated
    pubr.raw("site/cameras/cam1/frame", b"{\"captured_at\": 12".to_vec())
        .await; // malformed JSON
    pubr.raw("site/cameras/nope/frame", good.clone()).await; // unknown camera
    pubr.raw("site/sensors/ghost", br#"{"occupied": true}"#.to_vec())
        .await; // unknown sensor
    pubr.frame(t0 - 60 * s, &good).await; // backwards in time
    pubr.frame(firelane::base::time::wall_clock_ms() + 86_400_000, &good)
        .await; // far future
    let mut corrupt = vec![0xFF, 0xD8, 0xFF, 0xDB];
    corrupt.extend(std::iter::repeat_n(0x11, 400));
    corrupt.extend([0xFF, 0xD9]);
    pubr.raw("site/cameras/cam1/frame", corrupt).await; // corrupt JPEG

    wait_event(&mut rx, &mut seen, "site/violations", event_is("new")).await;
    pubr.sensor(t0 + 90 * s, false).await;
    for k in 9..=11 {
        pubr.frame(t0 + k * 10 * s, &send(k)).await;
    }
    wait_event(&mut rx, &mut seen, "site/violations", event_is("end")).await;
    wait_state(&mut rx, &mut seen, "clear").await;

    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    wait_event(&mut rx, &mut seen, "site/available", |p| p == b"offline").await;

    assert_eq!(
        count_events(&seen, "new"),
        1,
        "one new event: {:?}",
        summary(&seen)
    );
    assert_eq!(count_events(&seen, "end"), 1);
    let end: serde_json::Value = seen
        .iter()
        .find(|(t, p)| t == "site/violations" && event_is_dyn(p, "end"))
        .map(|(_, p)| serde_json::from_slice(p).unwrap())
        .unwrap();
    assert_eq!(end["violation"]["start"], rfc(t0 + 10 * s));
    assert_eq!(end["violation"]["confirmed_at"], rfc(t0 + 70 * s));
    assert_eq!(end["violation"]["cleared"], rfc(t0 + 90 * s));

    let store = Store::open(&format!("sqlite://{}/firelane.db", data.path().display()))
        .await
        .unwrap();
    let violations = store.violations().await.unwrap();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0];
    assert_eq!(
        (v.start_ms, v.confirmed_ms, v.cleared_ms),
        (t0 + 10 * s, t0 + 70 * s, Some(t0 + 90 * s))
    );
    assert_eq!(v.status, "cleared");
    assert_eq!(v.model_name, "obstruction-v2");
    assert_eq!(v.model_sha256.len(), 64);
    let evidence = store.evidence(&v.id).await.unwrap();
    let kinds: Vec<(String, String)> = evidence
        .iter()
        .map(|e| (e.kind.to_string(), e.variant.to_string()))
        .collect();
    for kind in ["first", "confirm", "clear"] {
        for variant in ["original", "annotated", "closeup"] {
            assert!(
                kinds.contains(&(kind.to_string(), variant.to_string())),
                "missing {kind}/{variant}: {kinds:?}"
            );
        }
    }
    for e in &evidence {
        let bytes = std::fs::read(data.path().join("evidence").join(&e.path)).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            e.sha256,
            "file content matches its hash"
        );
        assert_eq!(bytes.len() as i64, e.bytes);
        if e.variant == "original" {
            assert_eq!(
                &bytes, &frames[&e.captured_ms],
                "{} original is the published frame byte for byte",
                e.kind
            );
        } else {
            assert_ne!(
                &bytes, &frames[&e.captured_ms],
                "annotated differs from the original"
            );
            firelane::vision::decode_jpeg(&bytes).expect("annotated copy is a JPEG");
        }
    }
    let first = evidence.iter().find(|e| e.kind == "first").unwrap();
    let clear = evidence.iter().find(|e| e.kind == "clear").unwrap();
    assert_eq!(first.captured_ms, t0 + 10 * s, "t0={t0} {evidence:?}");
    assert_eq!(clear.captured_ms, t0 + 90 * s);
}

/// What a run recorded, relative to its start time `t0`.
#[derive(Debug, PartialEq)]
struct Recorded {
    start: i64,
    confirmed: i64,
    cleared: Option<i64>,
    evidence: Vec<String>,
    new_events: usize,
}

/// A violation with a SIGKILL and a restart in the middle, on the given
/// database (SQLite in the data folder when `None`). Returns what it
/// recorded and the daemons' logs.
async fn sigkill_run(database_url: Option<String>) -> (Recorded, String) {
    let broker = Mosquitto::start();
    let data = tempfile::tempdir().unwrap();
    let cfg_path = data.path().join("site.toml");
    let mut text = config_toml(&broker, data.path());
    if let Some(url) = &database_url {
        text = text.replacen(
            "[storage]\n",
            &format!("[storage]\ndatabase_url = \"{url}\"\n"),
            1,
        );
    }
    std::fs::write(&cfg_path, text).unwrap();
    let (_listen_client, mut rx) = listener(&broker, "listener-2").await;
    let mut seen = Vec::new();
    let logs: Vec<std::path::PathBuf> = (0..2)
        .map(|k| data.path().join(format!("daemon-{k}.log")))
        .collect();
    // Killed when the test ends, whatever the outcome.
    let spawn = |k: usize| {
        common::Reaped(
            std::process::Command::new(env!("CARGO_BIN_EXE_firelane"))
                .args(["run", "--config"])
                .arg(&cfg_path)
                .current_dir(repo_root())
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&logs[k]).unwrap())
                .spawn()
                .unwrap(),
        )
    };
    let mut child = spawn(0);
    wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;
    let pubr = publisher(&broker, "camera-2").await;
    let t0 = firelane::base::time::wall_clock_ms() - 600_000;
    let s = 1000;
    pubr.sensor(t0, true).await;
    for k in 0..=7 {
        pubr.frame(t0 + k * 10 * s, &jpeg_frame(320, 240, k as u32))
            .await;
    }
    wait_event(&mut rx, &mut seen, "site/violations", event_is("new")).await;
    // Delivery is at least once: killed between the broker's ack and the
    // outbox row marked sent, a restart sends it again. Wait for the row to
    // be marked; this test is about state, not that window.
    let url = database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/firelane.db", data.path().display()));
    {
        let store = Store::open(&url).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !store
            .outbox()
            .await
            .unwrap()
            .iter()
            .any(|r| r.event == "new" && r.status == "sent")
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new alert was never marked sent: {:?}",
                store.outbox().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    child.kill().unwrap(); // SIGKILL: no goodbye
    child.wait().unwrap();
    // The broker publishes the last will.
    wait_event(&mut rx, &mut seen, "site/available", |p| p == b"offline").await;

    let mut child = spawn(1);
    seen.retain(|(t, _)| t != "site/available");
    wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;
    for k in 8..=10 {
        pubr.frame(t0 + k * 10 * s, &jpeg_frame(320, 240, k as u32))
            .await;
    }
    pubr.sensor(t0 + 110 * s, false).await;
    for k in 11..=13 {
        pubr.frame(t0 + k * 10 * s, &jpeg_frame(320, 240, k as u32))
            .await;
    }
    wait_event(&mut rx, &mut seen, "site/violations", event_is("end")).await;
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();

    assert_eq!(
        count_events(&seen, "new"),
        1,
        "the restart did not announce it again: {:?}",
        summary(&seen)
    );
    let store = Store::open(&url).await.unwrap();
    let violations = store.violations().await.unwrap();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0];
    let mut evidence: Vec<String> = store
        .evidence(&v.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{}/{}", e.kind, e.variant))
        .collect();
    evidence.sort();
    let log = logs
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let recorded = Recorded {
        start: v.start_ms - t0,
        confirmed: v.confirmed_ms - t0,
        cleared: v.cleared_ms.map(|c| c - t0),
        evidence,
        new_events: count_events(&seen, "new"),
    };
    (recorded, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_violation_resumes_without_duplicates() {
    let (r, _) = sigkill_run(None).await;
    let s = 1000;
    assert_eq!(r.new_events, 1, "the restart did not announce it again");
    assert_eq!(r.start, 0, "start survives the restart");
    assert_eq!(r.confirmed, 60 * s);
    assert_eq!(r.cleared, Some(110 * s));
    assert_eq!(r.evidence.len(), 9, "{:?}", r.evidence);
}

/// The same on PostgreSQL: what SQLite records, and not one error logged
/// (every zone-state write lands, NULL scores included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_on_postgres_records_what_sqlite_records() {
    let pg = common::Postgres::start();
    let (on_pg, log) = sigkill_run(Some(pg.url())).await;
    let (on_sqlite, _) = sigkill_run(None).await;
    assert_eq!(on_pg, on_sqlite);
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("not recorded"))
        .collect();
    assert!(
        errors.is_empty(),
        "errors logged on PostgreSQL: {errors:#?}"
    );
}

/// The shipped default: firelane's own broker, nothing else installed.
/// A camera speaking MQTT 3.1.1 publishes to it; firelane (MQTT 5) sees
/// the frames and publishes its state back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_serves_cameras_and_subscribers() {
    let data = tempfile::tempdir().unwrap();
    let (v4, v5) = (common::free_port(), common::free_port());
    let text = format!(
        r#"
[storage]
data_dir = "{data}"
[model]
path = "{model}"
[mqtt]
url = "mqtt://127.0.0.1:{v5}"
topic_prefix = "site"
[mqtt.embedded_broker]
listen = "127.0.0.1:{v4}"
listen_v5 = "127.0.0.1:{v5}"
[http]
listen = "127.0.0.1:0"
[tracking]
sensor_weight = 10
grace_s = 0
[[cameras]]
id = "cam1"
[[zones]]
id = "lane-1"
camera = "cam1"
polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 0.9], [0.1, 0.9]]
[[sensors]]
id = "loop-1"
zone = "lane-1"
"#,
        data = data.path().display(),
        model = firelane::config::DEFAULT_MODEL,
    );
    let config = firelane::config::Config::from_toml(&text, "embedded.toml").unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut daemon = tokio::spawn(firelane::runtime::daemon::run(config, shutdown.clone()));
    // The broker is up once the daemon says it is online.
    let fake = Mosquitto::external(v4);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", v4)).is_err() {
        if daemon.is_finished() {
            panic!(
                "the daemon ended before its broker listened: {:?}",
                daemon.await
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "embedded broker never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_c, mut rx) = listener(&fake, "listener-3").await;
    let mut seen = Vec::new();
    // A daemon that stopped (say, a listener port taken by another test's
    // broker in the meantime) is reported as such, not as a silent broker.
    tokio::select! {
        r = &mut daemon => panic!("the daemon ended early: {r:?}"),
        _ = wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online") => {}
    }
    let pubr = publisher(&fake, "camera-3").await;
    let t0 = firelane::base::time::wall_clock_ms() - 600_000;
    pubr.sensor(t0, true).await;
    pubr.frame(t0, &jpeg_frame(640, 480, 1)).await;
    pubr.frame(t0 + 1000, &jpeg_frame(640, 480, 2)).await;
    tokio::select! {
        r = &mut daemon => panic!("the daemon ended early: {r:?}"),
        _ = wait_event(&mut rx, &mut seen, "site/violations", event_is("new")) => {}
    }
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    let store = Store::open(&format!("sqlite://{}/firelane.db", data.path().display()))
        .await
        .unwrap();
    let v = store.violations().await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].start_ms, t0);
    assert_eq!(
        store.evidence(&v[0].id).await.unwrap().len(),
        6,
        "first and confirm: original, annotated and close-up"
    );
}

/// `mqtts://` with the site's CA: firelane connects over TLS (rustls) and
/// works as over plain MQTT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_over_tls_with_the_sites_ca() {
    let (broker, tls_port, ca) = Mosquitto::start_tls();
    let data = tempfile::tempdir().unwrap();
    let text = config_toml(&broker, data.path()).replace(
        &format!("url = \"{}\"", broker.url()),
        &format!(
            "url = \"mqtts://localhost:{tls_port}\"\nca_file = \"{}\"",
            ca.display()
        ),
    );
    assert!(text.contains("mqtts://"));
    let config = firelane::config::Config::from_toml(&text, "tls.toml").unwrap();
    let (_c, mut rx) = listener(&broker, "listener-tls").await;
    let mut seen = Vec::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(firelane::runtime::daemon::run(config, shutdown.clone()));
    wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;
    let pubr = publisher(&broker, "camera-tls").await;
    let t0 = firelane::base::time::wall_clock_ms() - 600_000;
    pubr.sensor(t0, true).await;
    pubr.frame(t0, &jpeg_frame(320, 240, 1)).await;
    wait_state(&mut rx, &mut seen, "obstructed").await;
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

/// The broker goes away and comes back: firelane reconnects, subscribes
/// again and says it is online again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_resubscribes_after_a_broker_restart() {
    let broker = Mosquitto::start();
    let port = broker.port;
    let data = tempfile::tempdir().unwrap();
    let config =
        firelane::config::Config::from_toml(&config_toml(&broker, data.path()), "r.toml").unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(firelane::runtime::daemon::run(config, shutdown.clone()));
    {
        let (_c, mut rx) = listener(&broker, "listener-r1").await;
        let mut seen = Vec::new();
        wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;
    }
    drop(broker); // the broker dies
    tokio::time::sleep(Duration::from_secs(1)).await;
    let broker = Mosquitto::start_on(port);
    let (_c, mut rx) = listener(&broker, "listener-r2").await;
    let mut seen = Vec::new();
    wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;
    let pubr = publisher(&broker, "camera-r").await;
    let t0 = firelane::base::time::wall_clock_ms() - 600_000;
    pubr.sensor(t0, true).await;
    pubr.frame(t0, &jpeg_frame(320, 240, 1)).await;
    wait_state(&mut rx, &mut seen, "obstructed").await;
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

/// The daemon, not just the pipeline, through a database outage: PostgreSQL
/// stops while a violation is about to be confirmed and starts again. The
/// steps that could not be written are decided again on the next frames;
/// afterwards one violation with all its evidence, and on MQTT exactly one
/// `new` and one `end`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_violation_loses_and_duplicates_nothing() {
    let pg = common::Postgres::start();
    let broker = Mosquitto::start();
    let data = tempfile::tempdir().unwrap();
    let text = config_toml(&broker, data.path()).replacen(
        "[storage]\n",
        &format!("[storage]\ndatabase_url = \"{}\"\n", pg.url()),
        1,
    );
    let config = firelane::config::Config::from_toml(&text, "site.toml").unwrap();
    let (_c, mut rx) = listener(&broker, "listener-outage").await;
    let mut seen = Vec::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(firelane::runtime::daemon::run(config, shutdown.clone()));
    wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;
    let pubr = publisher(&broker, "camera-outage").await;
    let t0 = firelane::base::time::wall_clock_ms() - 600_000;
    let s = 1000;
    pubr.sensor(t0, true).await;
    for k in 0..=3 {
        pubr.frame(t0 + k * 10 * s, &jpeg_frame(320, 240, k as u32))
            .await;
    }
    wait_state(&mut rx, &mut seen, "obstructed").await;
    // Grace is 60 s: the confirming frames come while the database is down.
    pg.stop();
    for k in 6..=8 {
        pubr.frame(t0 + k * 10 * s, &jpeg_frame(320, 240, k as u32))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    while let Ok(m) = rx.try_recv() {
        seen.push(m);
    }
    assert_eq!(
        count_events(&seen, "new"),
        0,
        "nothing announced unrecorded"
    );
    pg.restart();
    for k in 9..=10 {
        pubr.frame(t0 + k * 10 * s, &jpeg_frame(320, 240, k as u32))
            .await;
    }
    wait_event(&mut rx, &mut seen, "site/violations", event_is("new")).await;
    pubr.sensor(t0 + 110 * s, false).await;
    for k in 11..=13 {
        pubr.frame(t0 + k * 10 * s, &jpeg_frame(320, 240, k as u32))
            .await;
    }
    wait_event(&mut rx, &mut seen, "site/violations", event_is("end")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    daemon.await.unwrap().unwrap();

    assert_eq!(count_events(&seen, "new"), 1, "{:?}", summary(&seen));
    assert_eq!(count_events(&seen, "end"), 1, "{:?}", summary(&seen));
    let store = Store::open(&pg.url()).await.unwrap();
    let violations = store.violations().await.unwrap();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0];
    assert_eq!(v.start_ms, t0, "the start survives the outage");
    // Confirmed by the first frame whose step could be written: a step
    // still waiting for a connection when the database came back lands.
    assert!(
        v.confirmed_ms >= t0 + 60 * s && v.confirmed_ms <= t0 + 90 * s,
        "confirmed at +{} s",
        (v.confirmed_ms - t0) / s
    );
    assert_eq!(v.cleared_ms, Some(t0 + 110 * s));
    assert_eq!(store.evidence(&v.id).await.unwrap().len(), 9);
}
