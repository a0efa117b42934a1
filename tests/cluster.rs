//! Cluster mode with real parts: three `firelane run` processes, one
//! PostgreSQL, one mosquitto, a webhook receiver; six cameras publishing
//! the demo sample's frames (a car in each camera's zone, then gone).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use common::faults::{Daemon, Hooks, wait_for};
use common::{Mosquitto, Postgres, free_port, repo_root};
use firelane::api::auth::{Role, create_token};
use firelane::store::Store;

const CAMERAS: usize = 6;
const INSTANCES: [&str; 3] = ["inst0", "inst1", "inst2"];

/// Six camera ids, two for each instance by the cluster's own spread (a
/// random six could leave one instance without a camera).
fn camera_ids() -> Vec<String> {
    let members: Vec<String> = INSTANCES.iter().map(|s| s.to_string()).collect();
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for k in 0.. {
        let id = vec![format!("cam{k}")];
        let owner = firelane::cluster::spread::spread(&id, &members)[id[0].as_str()].to_string();
        let n = per.entry(owner).or_default();
        if *n < 2 {
            *n += 1;
            out.push(id[0].clone());
        }
        if out.len() == CAMERAS {
            return out;
        }
    }
    unreachable!()
}

fn config(dir: &Path, pg: &str, mqtt: u16, http: u16, hook: u16) -> String {
    let mut t = format!(
        r#"
[storage]
data_dir = "{data}"
database_url = "{pg}"
evidence_dir = "{shared}/evidence"
site_key = "{shared}/site.key"
[mqtt]
url = "mqtt://127.0.0.1:{mqtt}"
client_id = "firelane"
topic_prefix = "site"
[http]
listen = "127.0.0.1:{http}"
[cluster]
enabled = true
lease_s = 4
heartbeat_s = 1
[tracking]
grace_s = 4
clear_s = 2
update_every_s = 0
reattach_s = 0
[ingest]
max_past_skew_s = 0
[alerts]
retry_base_s = 0.2
retry_max_s = 1
[[sites]]
id = "city"
[[sites.webhooks]]
url = "http://127.0.0.1:{hook}/hook"
"#,
        data = dir.join(format!("inst-{http}")).display(),
        shared = dir.display(),
    );
    // The sample's west strip on every camera.
    for k in camera_ids() {
        t += &format!(
            "[[cameras]]\nid = \"{k}\"\n[[zones]]\nid = \"lane-{k}\"\ncamera = \"{k}\"\npolygon = [[0.0417, 0.3148], [0.4792, 0.3148], [0.4792, 0.5926], [0.0417, 0.5926]]\n"
        );
    }
    t
}

/// The sample's frames: index 3..=24 have a car in the west strip.
fn frames() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let dir = repo_root().join("samples/demo/frames/street");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let read = |r: std::ops::Range<usize>| {
        files[r]
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect::<Vec<_>>()
    };
    (read(4..20), read(26..30))
}

async fn cluster_view(http: u16, token: &str) -> Option<serde_json::Value> {
    let c = firelane::alerts::webhook::client();
    let r = c
        .get(format!("http://127.0.0.1:{http}/api/cluster"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// camera → owner, from a cluster view (live leases only).
fn owners(v: &serde_json::Value) -> BTreeMap<String, String> {
    v["leases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["live"] == true)
        .map(|l| {
            (
                l["camera"].as_str().unwrap().to_string(),
                l["owner"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_spread_the_cameras_and_take_over_a_killed_one() {
    let pg = Postgres::start();
    let broker = Mosquitto::start();
    let hook_port = free_port();
    let hooks = Hooks::start(hook_port).await;
    let dir = tempfile::tempdir().unwrap();
    // The schema and an admin token, before any instance starts.
    let store = Store::open(&pg.url()).await.unwrap();
    let token = create_token(&store, "admin", Role::Admin, 0)
        .await
        .unwrap()
        .token;

    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut daemons: Vec<Daemon> = ports
        .iter()
        .enumerate()
        .map(|(i, &http)| {
            let path = dir.path().join(format!("inst{i}.toml"));
            std::fs::write(
                &path,
                config(dir.path(), &pg.url(), broker.port, http, hook_port),
            )
            .unwrap();
            let mut d = Daemon::new(path, dir.path());
            d.spawn_with_env(&[("FIRELANE_INSTANCE_ID", &format!("inst{i}"))]);
            d
        })
        .collect();
    let logs = |d: &[Daemon]| {
        d.iter()
            .map(|x| x.log())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };

    // Every camera held, by all three instances.
    let mut view = serde_json::Value::Null;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(v) = cluster_view(ports[1], &token).await {
            let o = owners(&v);
            let holders: HashSet<&String> = o.values().collect();
            if o.len() == CAMERAS && holders.len() == 3 {
                view = v;
                break;
            }
            view = v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = owners(&view);
    assert_eq!(before.len(), CAMERAS, "{view}\n{}", logs(&daemons));
    assert_eq!(
        before.values().collect::<HashSet<_>>().len(),
        3,
        "spread over all three: {before:?}"
    );

    // The cameras publish: a car parks in every lane.
    let camera = common::mqtt::publisher_on(broker.port, "cameras", 1000);
    let (busy, empty) = frames();
    let cameras = camera_ids();
    let publish = |k: &str, jpeg: &[u8]| {
        let body = serde_json::json!({
            "captured_at": firelane::base::time::format_rfc3339(firelane::base::time::wall_clock_ms()),
            "jpeg_base64": base64::engine::general_purpose::STANDARD.encode(jpeg),
        });
        (
            format!("site/cameras/{k}/frame"),
            body.to_string().into_bytes(),
        )
    };
    let mut round = 0usize;
    let mut send_round = async |jpegs: &[Vec<u8>]| {
        for k in &cameras {
            let (topic, body) = publish(k, &jpegs[round % jpegs.len()]);
            camera.raw(&topic, body).await;
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // 7 s of the car: every lane's violation is confirmed (grace 4 s).
    for _ in 0..14 {
        send_round(&busy).await;
    }
    let confirmed = store.violations().await.unwrap().len();
    assert!(
        confirmed >= CAMERAS - 1,
        "{confirmed} confirmed\n{}",
        logs(&daemons)
    );

    // kill -9 the instance holding the first camera, mid-violation.
    let victim = before[&cameras[0]].clone();
    let v: usize = victim.trim_start_matches("inst").parse().unwrap();
    let lost: Vec<String> = before
        .iter()
        .filter(|(_, o)| **o == victim)
        .map(|(c, _)| c.clone())
        .collect();
    daemons[v].kill9();
    let killed = Instant::now();
    let watcher = ports[(v + 1) % 3];
    let mut took = None;
    while killed.elapsed() < Duration::from_secs(20) {
        send_round(&busy).await;
        if let Some(view) = cluster_view(watcher, &token).await {
            let o = owners(&view);
            if lost.iter().all(|c| o.get(c).is_some_and(|x| *x != victim)) {
                took = Some(killed.elapsed());
                break;
            }
        }
    }
    let took =
        took.unwrap_or_else(|| panic!("{lost:?} not taken over in 20 s\n{}", logs(&daemons)));
    eprintln!(
        "takeover of {lost:?} after kill -9: {:.1} s",
        took.as_secs_f64()
    );
    assert!(took <= Duration::from_secs(10), "takeover took {took:?}");

    // More of the car, then the lanes clear.
    for _ in 0..6 {
        send_round(&busy).await;
    }
    for _ in 0..12 {
        send_round(&empty).await;
    }

    // One violation per lane, ended; none twice though cameras changed hands.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let vs = store.violations().await.unwrap();
        let zones: HashSet<&str> = vs.iter().map(|v| v.zone.as_str()).collect();
        if zones.len() == CAMERAS && vs.iter().all(|v| v.cleared_ms.is_some()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every lane's violation ended: {vs:#?}\n{}",
            logs(&daemons)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let vs = store.violations().await.unwrap();
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for v in &vs {
        *per_zone.entry(v.zone.clone()).or_default() += 1;
    }
    assert_eq!(per_zone.len(), CAMERAS, "{vs:#?}");
    assert!(per_zone.values().all(|n| *n == 1), "{per_zone:?}");
    // Each new and end reached the webhook once (by delivery id), whichever
    // instance sent it.
    wait_for(
        "every new and end at the webhook",
        20,
        || {
            cameras
                .iter()
                .all(|k| hooks.count(&format!("lane-{k}"), "end") == 1)
        },
        || format!("{:?}", hooks.seen.lock().unwrap()),
    )
    .await;
    for k in &cameras {
        let zone = format!("lane-{k}");
        assert_eq!(hooks.count(&zone, "new"), 1, "{zone}");
        assert_eq!(hooks.count(&zone, "end"), 1, "{zone}");
    }
    let all = hooks.seen.lock().unwrap().len();
    let unique: HashSet<String> = hooks
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.delivery.clone())
        .collect();
    eprintln!(
        "webhook: {all} requests, {} distinct deliveries",
        unique.len()
    );

    for d in &mut daemons {
        d.term();
    }
}
