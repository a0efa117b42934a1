//! Alerts for property managers over every channel, against a real
//! mosquitto, a local HTTP receiver (axum) and a local SMTP receiver:
//! one `new` per violation, reminders on event time, the end notice, HMAC
//! signatures, a webhook down for a while then up (and a daemon restart in
//! between) receiving each alert exactly once, quiet hours, and Home
//! Assistant discovery.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::faults::smtp_receiver;
use common::mqtt::*;
use common::{Mosquitto, jpeg_frame};
use firelane::store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const S: i64 = 1000;

#[derive(Debug, Clone)]
struct Hook {
    headers: HashMap<String, String>,
    body: String,
}

/// A loopback port held for the webhook receiver: bound but not listening,
/// so a connection to it is refused (the receiver is down) and no other
/// test's free port can be this one meanwhile.
fn hook_socket() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// A webhook receiver on the held `socket`, up from when this is called.
async fn webhook_receiver(socket: tokio::net::TcpSocket) -> Arc<Mutex<Vec<Hook>>> {
    let seen: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let store = store.clone();
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                store.lock().unwrap().push(Hook { headers, body });
                "ok"
            }
        }),
    );
    let listener = socket.listen(64).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    seen
}

fn site_toml(
    broker: &Mosquitto,
    data: &Path,
    hook_port: u16,
    smtp_port: u16,
    site_extra: &str,
) -> String {
    format!(
        r#"
[storage]
data_dir = "{data}"
[model]
path = "{model}"
[mqtt]
url = "{url}"
client_id = "firelane-alerts"
topic_prefix = "site"
[http]
enabled = false
[tracking]
grace_s = 60
clear_s = 10
sensor_weight = 10
[alerts]
retry_base_s = 0.2
retry_max_s = 1
smtp_url = "smtp://127.0.0.1:{smtp_port}"
email_from = "firelane <firelane@test.local>"
home_assistant = true
[[sites]]
id = "north"
name = "North campus"
reminder_every_s = 20
reattach_s = 15
email_to = ["manager@example.com"]
{site_extra}
[[sites.webhooks]]
url = "http://127.0.0.1:{hook_port}/hook"
secret = "s3cret"
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
        data = data.display(),
        model = common::model_path().display(),
        url = broker.url(),
    )
}

async fn start(
    path: &Path,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), firelane::runtime::daemon::DaemonError>>,
) {
    let config = firelane::config::Config::load(path).unwrap();
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(firelane::runtime::daemon::run(config, shutdown.clone()));
    (shutdown, daemon)
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn events(seen: &[(String, Vec<u8>)]) -> Vec<serde_json::Value> {
    seen.iter()
        .filter(|(t, _)| t == "site/violations")
        .map(|(_, p)| serde_json::from_slice(p).unwrap())
        .collect()
}

async fn drain(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    seen: &mut Vec<(String, Vec<u8>)>,
) {
    while let Ok(m) = rx.try_recv() {
        seen.push(m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_gets_each_alert_once_through_an_outage_and_a_restart() {
    let broker = Mosquitto::start();
    let data = tempfile::tempdir().unwrap();
    let (hook, hook_port) = hook_socket();
    let (smtp_port, mails) = smtp_receiver().await;
    let cfg = data.path().join("site.toml");
    std::fs::write(
        &cfg,
        site_toml(&broker, data.path(), hook_port, smtp_port, ""),
    )
    .unwrap();
    let (_c, mut rx) = listener_on(&broker, "alerts-listener", "#").await;
    let mut seen = Vec::new();

    // The webhook receiver is down at first.
    let (shutdown, daemon) = start(&cfg).await;
    wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;
    let camera = publisher(&broker, "alerts-camera").await;
    let t0 = firelane::base::time::wall_clock_ms() - 600_000;
    camera.sensor(t0, false).await;
    camera.frame(t0, &jpeg_frame(640, 480, 0)).await;
    camera.sensor(t0 + 10 * S, true).await;
    for k in 1..=9 {
        camera
            .frame(t0 + k * 10 * S, &jpeg_frame(640, 480, k as u32))
            .await;
    }
    wait_event(&mut rx, &mut seen, "site/violations", event_is("update")).await;

    // Restart while the webhook is still down: its alerts wait in the outbox.
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    let store = Store::open(&format!("sqlite://{}/firelane.db", data.path().display()))
        .await
        .unwrap();
    let pending: Vec<_> = store
        .outbox()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.channel == "webhook" && r.status == "pending")
        .collect();
    assert_eq!(pending.len(), 2, "new and one reminder wait: {pending:?}");
    // The first was tried and failed; the later one waits behind it.
    assert_eq!(pending[0].event, "new");
    assert!(pending[0].attempts >= 1, "{pending:?}");
    assert!(
        pending[0].last_error.as_deref().unwrap().contains("/hook"),
        "{pending:?}"
    );

    let hooks = webhook_receiver(hook).await;
    let (shutdown, daemon) = start(&cfg).await;
    wait_until("the held webhooks", || hooks.lock().unwrap().len() >= 2).await;
    for k in 10..=12 {
        camera
            .frame(t0 + k * 10 * S, &jpeg_frame(640, 480, k as u32))
            .await;
    }
    camera.sensor(t0 + 125 * S, false).await;
    for k in 13..=16 {
        camera
            .frame(t0 + k * 10 * S, &jpeg_frame(640, 480, k as u32))
            .await;
    }
    wait_event(&mut rx, &mut seen, "site/violations", event_is("end")).await;
    wait_until("the end webhook", || {
        hooks
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.headers["x-firelane-event"] == "end")
    })
    .await;
    wait_until("four emails", || mails.lock().unwrap().len() >= 4).await;
    wait_event(
        &mut rx,
        &mut seen,
        "site/sites/north/open_violations",
        |p| p == b"0",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    drain(&mut rx, &mut seen).await;
    shutdown.cancel();
    daemon.await.unwrap().unwrap();

    // MQTT: new once, reminders at 20 s of event time, end once; each with
    // the violation before and after.
    let ev = events(&seen);
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["new", "update", "update", "end"], "{ev:#?}");
    let at = |i: usize| firelane::base::time::parse_rfc3339(ev[i]["at"].as_str().unwrap()).unwrap();
    assert_eq!(at(0), t0 + 70 * S);
    assert_eq!(at(1), t0 + 90 * S);
    assert_eq!(at(2), t0 + 110 * S);
    assert_eq!(
        at(3),
        t0 + 140 * S,
        "clear for the re-attach window (15 s) and two readings"
    );
    assert!(ev[0]["before"].is_null());
    assert_eq!(ev[3]["before"]["status"], "open");
    assert_eq!(ev[3]["violation"]["status"], "cleared");
    assert_eq!(ev[3]["violation"]["cleared"], rfc(t0 + 125 * S));
    assert_eq!(ev[0]["site"]["name"], "North campus");

    // Webhooks: the same four, each exactly once, signed.
    let hooks = hooks.lock().unwrap().clone();
    let deliveries: Vec<&str> = hooks
        .iter()
        .map(|h| h.headers["x-firelane-delivery"].as_str())
        .collect();
    let mut unique = deliveries.clone();
    unique.dedup();
    assert_eq!(deliveries.len(), 4, "{deliveries:?}");
    assert_eq!(unique.len(), 4, "a delivery repeated: {deliveries:?}");
    let hook_kinds: Vec<&str> = hooks
        .iter()
        .map(|h| h.headers["x-firelane-event"].as_str())
        .collect();
    assert_eq!(hook_kinds, ["new", "update", "update", "end"]);
    for h in &hooks {
        let ts: i64 = h.headers["x-firelane-timestamp"].parse().unwrap();
        assert_eq!(
            h.headers["x-firelane-signature"],
            firelane::alerts::webhook::signature("s3cret", ts, h.body.as_bytes())
        );
        let body: serde_json::Value = serde_json::from_str(&h.body).unwrap();
        assert_eq!(body["violation"]["zone"], "lane-1");
    }

    // Email: the same four, the annotated frame attached.
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 4);
    assert!(
        mails[0].contains("Subject: Fire lane blocked: lane-1 (North campus)"),
        "{}",
        &mails[0][..400.min(mails[0].len())]
    );
    assert!(mails[3].contains("Subject: Fire lane clear: lane-1"));
    for m in &mails {
        assert!(m.contains("To: manager@example.com"));
        assert!(m.contains("Content-Type: image/jpeg"), "no attachment");
    }

    // Home Assistant: discovery for the zone and the site, the evidence image.
    let config_msg = seen
        .iter()
        .find(|(t, _)| t == "homeassistant/binary_sensor/firelane/lane-1_obstructed/config")
        .expect("binary_sensor discovery");
    let cfg_json: serde_json::Value = serde_json::from_slice(&config_msg.1).unwrap();
    assert_eq!(cfg_json["device_class"], "problem");
    assert_eq!(cfg_json["availability_topic"], "site/available");
    assert!(
        seen.iter()
            .any(|(t, _)| t == "homeassistant/sensor/firelane/north_open_violations/config")
    );
    let image = seen
        .iter()
        .find(|(t, _)| t == "site/zones/lane-1/evidence")
        .expect("evidence image");
    assert_eq!(&image.1[..2], &[0xFF, 0xD8]);
    let counts: Vec<&[u8]> = seen
        .iter()
        .filter(|(t, _)| t == "site/sites/north/open_violations")
        .map(|(_, p)| p.as_slice())
        .collect();
    assert!(
        counts.contains(&&b"1"[..]) && counts.last() == Some(&&b"0"[..]),
        "{counts:?}"
    );

    // Everything was delivered; nothing is left pending.
    let rows = store.outbox().await.unwrap();
    assert!(rows.iter().all(|r| r.status == "sent"), "{rows:#?}");
    assert_eq!(rows.len(), 12, "4 alerts x (mqtt, webhook, email)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_people_channels_but_not_mqtt() {
    let broker = Mosquitto::start();
    let data = tempfile::tempdir().unwrap();
    let (hook, hook_port) = hook_socket();
    let hooks = webhook_receiver(hook).await;
    let (smtp_port, mails) = smtp_receiver().await;
    let now = firelane::base::time::wall_clock_ms();
    let t0 = now - 600_000;
    let hhmm = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%H:%M")
            .to_string()
    };
    // A window from before the events until two hours from now (UTC).
    let quiet = format!(
        "quiet_hours = \"{}-{}\"",
        hhmm(t0 - 600_000),
        hhmm(now + 7_200_000)
    );
    let cfg = data.path().join("site.toml");
    std::fs::write(
        &cfg,
        site_toml(&broker, data.path(), hook_port, smtp_port, &quiet),
    )
    .unwrap();
    let (_c, mut rx) = listener(&broker, "quiet-listener").await;
    let mut seen = Vec::new();
    let (shutdown, daemon) = start(&cfg).await;
    wait_event(&mut rx, &mut seen, "site/available", |p| p == b"online").await;
    let camera = publisher(&broker, "quiet-camera").await;
    camera.sensor(t0, false).await;
    camera.frame(t0, &jpeg_frame(640, 480, 0)).await;
    camera.sensor(t0 + 10 * S, true).await;
    for k in 1..=10 {
        camera
            .frame(t0 + k * 10 * S, &jpeg_frame(640, 480, k as u32))
            .await;
    }
    camera.sensor(t0 + 105 * S, false).await;
    for k in 11..=13 {
        camera
            .frame(t0 + k * 10 * S, &jpeg_frame(640, 480, k as u32))
            .await;
    }
    wait_event(&mut rx, &mut seen, "site/violations", event_is("end")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    shutdown.cancel();
    daemon.await.unwrap().unwrap();

    assert!(
        hooks.lock().unwrap().is_empty(),
        "webhook sent in quiet hours"
    );
    assert!(
        mails.lock().unwrap().is_empty(),
        "email sent in quiet hours"
    );
    let store = Store::open(&format!("sqlite://{}/firelane.db", data.path().display()))
        .await
        .unwrap();
    let rows = store.outbox().await.unwrap();
    let people: Vec<_> = rows.iter().filter(|r| r.channel != "mqtt").collect();
    let end_of_quiet = {
        let q = firelane::config::QuietHours::parse(&quiet[15..quiet.len() - 1]).unwrap();
        q.release_after(t0 + 70 * S, chrono_tz::UTC).unwrap()
    };
    for r in &people {
        match r.event.as_str() {
            // held until the window ends
            "new" | "end" => {
                assert_eq!(r.status, "pending", "{r:?}");
                assert_eq!(r.next_attempt_ms, end_of_quiet);
                assert_eq!(r.attempts, 0);
            }
            // reminders inside the window are skipped
            _ => assert_eq!(r.status, "suppressed", "{r:?}"),
        }
    }
    assert_eq!(people.iter().filter(|r| r.event == "new").count(), 2);
    assert!(
        rows.iter()
            .filter(|r| r.channel == "mqtt")
            .all(|r| r.status == "sent")
    );
}

/// An MQTT alert counts as sent only once the broker acknowledged it: with
/// the broker frozen (no PUBACK), the publish does not return; thawed, it
/// does. (Returning when the message was merely queued in the client lost
/// alerts on a crash.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_alert_is_sent_only_on_the_brokers_ack() {
    let broker = Mosquitto::start();
    let data = tempfile::tempdir().unwrap();
    let config = Arc::new(
        firelane::config::Config::from_toml(&config_toml(&broker, data.path()), "a.toml").unwrap(),
    );
    let mut publisher = firelane::alerts::acked::AckedPublisher::new(config);
    publisher
        .publish("site/violations", "{\"event\":\"new\"}")
        .await
        .unwrap();
    broker.pause();
    let pending = tokio::spawn(async move {
        let r = publisher
            .publish("site/violations", "{\"event\":\"end\"}")
            .await;
        (publisher, r)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !pending.is_finished(),
        "returned without the broker's PUBACK"
    );
    broker.resume();
    let (_, result) = tokio::time::timeout(Duration::from_secs(15), pending)
        .await
        .expect("the PUBACK came once the broker was back")
        .unwrap();
    result.unwrap();
}
