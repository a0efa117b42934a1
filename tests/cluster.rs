//! Cluster mode with real parts: three `firelane run` processes, one
//! PostgreSQL, one mosquitto, a webhook receiver; six cameras publishing
//! the demo sample's frames (a car in each camera's zone, then gone).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use common::faults::{Daemon, Hooks, wait_for};
use common::{Mosquitto, Postgres, free_port};
use firelane::api::auth::{Role, create_token};
use firelane::store::Store;

const CAMERAS: usize = 6;

/// One city at a time: nine daemons and three databases at once would
/// measure this machine's two cores, not the cluster.
static ONE_CITY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
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
    format!(
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
{site}
[[sites.webhooks]]
url = "http://127.0.0.1:{hook}/hook"
"#,
        data = dir.join(format!("inst-{http}")).display(),
        shared = dir.display(),
        site = site(),
    )
}

/// What a cluster instance and the single instance it is compared with
/// share: tracking, ingest, the site, the cameras and their zones. Crop
/// reuse is off: a taking-over instance starts without the previous
/// holder's kept crops, so a reused score is not a property of the frames.
fn site() -> String {
    let mut t = r#"
[tracking]
grace_s = 4
clear_s = 2
update_every_s = 0
reattach_s = 0
[ingest]
max_past_skew_s = 0
reuse_max_diff = 0
[alerts]
retry_base_s = 0.2
retry_max_s = 1
"#
    .to_string();
    // The sample's west strip on every camera.
    for k in camera_ids() {
        t += &format!(
            "[[cameras]]\nid = \"{k}\"\n[[zones]]\nid = \"lane-{k}\"\ncamera = \"{k}\"\npolygon = [[0.0417, 0.3148], [0.4792, 0.3148], [0.4792, 0.5926], [0.0417, 0.5926]]\n"
        );
    }
    // Sites last: the caller appends the site's tables.
    t + "[[sites]]\nid = \"city\"\n"
}

/// The sample's frames with a car in the west strip, and without.
fn frames() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    (common::sample_frames(4..20), common::sample_frames(26..30))
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

/// A frame as published: whose, its capture time, which of the sample's
/// pictures.
#[derive(Debug, Clone)]
struct Sent {
    camera: String,
    at_ms: i64,
    busy: bool,
    index: usize,
    round: usize,
}

fn frame_body(f: &Sent, jpeg: &[u8]) -> Vec<u8> {
    serde_json::json!({
        "captured_at": firelane::base::time::format_rfc3339(f.at_ms),
        "jpeg_base64": base64::engine::general_purpose::STANDARD.encode(jpeg),
    })
    .to_string()
    .into_bytes()
}

/// What a violation's record says of the frames, compared between runs.
/// Not compared: when it was confirmed (a tick may confirm it between
/// frames, on each run's wall clock) and its peak score (kept in the
/// holder's memory between commits, so a killed holder's peak since its
/// last commit is gone with it).
#[derive(Debug, PartialEq)]
struct Judged {
    id: String,
    zone: String,
    start_ms: i64,
    last_obstructed_ms: i64,
    cleared_ms: Option<i64>,
    end: Option<String>,
}

impl Judged {
    fn of(v: &firelane::store::ViolationRow) -> Judged {
        Judged {
            id: v.id.clone(),
            zone: v.zone.clone(),
            start_ms: v.start_ms,
            last_obstructed_ms: v.last_obstructed_ms,
            cleared_ms: v.cleared_ms,
            end: v.end_reason.map(|r| format!("{r:?}")),
        }
    }
}

/// Three instances, their broker, database and webhook receiver, and the
/// six cameras' publisher.
struct City {
    pg: Postgres,
    broker: Mosquitto,
    hooks: Hooks,
    store: Store,
    token: String,
    ports: Vec<u16>,
    daemons: Vec<Daemon>,
    cameras: Vec<String>,
    camera: common::mqtt::Publisher,
    busy: Vec<Vec<u8>>,
    empty: Vec<Vec<u8>>,
    round: usize,
    /// Every frame published, in order.
    sent: Vec<Sent>,
    _dir: tempfile::TempDir,
}

impl City {
    /// Starts it; `db_user(i)` is instance i's database role (default
    /// `postgres`), so a test can cut one instance off.
    async fn start(db_user: impl Fn(usize) -> Option<&'static str>) -> City {
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
        let mut daemons = Vec::new();
        for (i, &http) in ports.iter().enumerate() {
            let url = match db_user(i) {
                Some(user) => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "CREATE ROLE {user} LOGIN SUPERUSER"
                    )))
                    .execute(store.pool())
                    .await
                    .unwrap();
                    pg.url().replace("postgres@", &format!("{user}@"))
                }
                None => pg.url(),
            };
            let path = dir.path().join(format!("inst{i}.toml"));
            std::fs::write(
                &path,
                config(dir.path(), &url, broker.port, http, hook_port),
            )
            .unwrap();
            let mut d = Daemon::new(path, dir.path());
            d.spawn_with_env(&[("FIRELANE_INSTANCE_ID", INSTANCES[i])]);
            daemons.push(d);
        }
        let (busy, empty) = frames();
        let city = City {
            camera: common::mqtt::publisher_on(broker.port, "cameras", 1000),
            pg,
            broker,
            hooks,
            store,
            token,
            ports,
            daemons,
            cameras: camera_ids(),
            busy,
            empty,
            round: 0,
            sent: Vec::new(),
            _dir: dir,
        };
        city.until_owners(
            1,
            Duration::from_secs(120),
            "cameras spread over three",
            |o| o.len() == CAMERAS && o.values().collect::<HashSet<_>>().len() == 3,
        )
        .await;
        city
    }

    /// Polls instance `i`'s camera → holder map until `holds` is true of
    /// it, and returns it; fails naming `what` after `timeout`.
    async fn until_owners(
        &self,
        i: usize,
        timeout: Duration,
        what: &str,
        holds: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> BTreeMap<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let o = self.owners(i).await;
            if holds(&o) {
                return o;
            }
            assert!(
                Instant::now() < deadline,
                "not {what} in {timeout:?}: {o:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every instance serves `zone` and has it in its own file within 10 s;
    /// each camera names its holder.
    async fn until_every_instance_has(&self, zone: &str) {
        let c = firelane::alerts::webhook::client();
        for (i, instance) in INSTANCES.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let cameras = c
                    .get(format!("http://127.0.0.1:{}/api/cameras", self.ports[i]))
                    .bearer_auth(&self.token)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                if cameras.contains(zone) {
                    // "here" only on the holder.
                    let v: serde_json::Value = serde_json::from_str(&cameras).unwrap();
                    for cam in v["cameras"].as_array().unwrap() {
                        let h = &cam["holder"];
                        assert_eq!(h["here"] == true, h["instance"] == *instance, "{cam}");
                    }
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "instance {i} never applied {zone}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let file = std::fs::read_to_string(&self.daemons[i].config).unwrap();
            assert!(file.contains(zone), "instance {i}'s file: {file}");
        }
    }

    fn logs(&self) -> String {
        self.daemons
            .iter()
            .map(|x| x.log())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }

    /// camera → holder, as instance `i` reports it.
    async fn owners(&self, i: usize) -> BTreeMap<String, String> {
        cluster_view(self.ports[i], &self.token)
            .await
            .map(|v| owners(&v))
            .unwrap_or_default()
    }

    /// One frame from every camera, then half a second.
    async fn send_round(&mut self, busy: bool) {
        let jpegs = if busy { &self.busy } else { &self.empty };
        let index = self.round % jpegs.len();
        for k in &self.cameras {
            let sent = Sent {
                camera: k.clone(),
                at_ms: firelane::base::time::wall_clock_ms(),
                busy,
                index,
                round: self.round,
            };
            self.camera
                .raw(
                    &format!("site/cameras/{k}/frame"),
                    frame_body(&sent, &jpegs[index]),
                )
                .await;
            self.sent.push(sent);
        }
        self.round += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    /// Feeds busy frames until `lost` are all held by another instance than
    /// `victim`, as instance `watcher` sees it; how long that took.
    async fn until_taken_over(
        &mut self,
        lost: &[String],
        victim: &str,
        watcher: usize,
    ) -> Duration {
        let from = Instant::now();
        while from.elapsed() < Duration::from_secs(20) {
            self.send_round(true).await;
            let o = self.owners(watcher).await;
            if lost.iter().all(|c| o.get(c).is_some_and(|x| x != victim)) {
                return from.elapsed();
            }
        }
        panic!("{lost:?} not taken over in 20 s\n{}", self.logs());
    }

    /// The ending: the lanes clear, and every lane has exactly one
    /// violation, ended, its new and end each delivered once.
    async fn lanes_clear_once_each(&mut self) {
        for _ in 0..12 {
            self.send_round(false).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let vs = self.store.violations().await.unwrap();
            let zones: HashSet<&str> = vs.iter().map(|v| v.zone.as_str()).collect();
            if zones.len() == CAMERAS && vs.iter().all(|v| v.cleared_ms.is_some()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not every lane's violation ended: {vs:#?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let vs = self.store.violations().await.unwrap();
        let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
        for v in &vs {
            *per_zone.entry(v.zone.clone()).or_default() += 1;
        }
        assert_eq!(per_zone.len(), CAMERAS, "{vs:#?}");
        assert!(per_zone.values().all(|n| *n == 1), "{per_zone:?}");
        let hooks = self.hooks.clone();
        let cameras = self.cameras.clone();
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
        for k in &self.cameras {
            let zone = format!("lane-{k}");
            assert_eq!(self.hooks.count(&zone, "new"), 1, "{zone}");
            assert_eq!(self.hooks.count(&zone, "end"), 1, "{zone}");
        }
        let all = self.hooks.seen.lock().unwrap().len();
        eprintln!("webhook: {all} requests for {} violations", vs.len());
    }

    /// One `firelane run` in single mode (SQLite) on the same broker under
    /// its own topic prefix, fed the frames published so far with their
    /// capture times, except those captured inside `gaps` (camera, from,
    /// to); each round waits until it is scored, so none is superseded.
    /// Its violations.
    async fn single_instance_run(
        &self,
        gaps: &[(String, i64, i64)],
    ) -> Vec<firelane::store::ViolationRow> {
        let dir = self._dir.path().join("solo");
        std::fs::create_dir_all(&dir).unwrap();
        let http = free_port();
        let path = self._dir.path().join("solo.toml");
        std::fs::write(
            &path,
            format!(
                "[storage]\ndata_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"solo\"\ntopic_prefix = \"solo\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n{}",
                dir.display(),
                self.broker.port,
                site()
            ),
        )
        .unwrap();
        let store = Store::open(&format!(
            "sqlite://{}?mode=rwc",
            dir.join("firelane.db").display()
        ))
        .await
        .unwrap();
        let token = create_token(&store, "admin", Role::Admin, 0)
            .await
            .unwrap()
            .token;
        let mut daemon = Daemon::new(path, self._dir.path());
        daemon.spawn();
        let c = firelane::alerts::webhook::client();
        let metric = async |name: &str| -> Option<u64> {
            let text = c
                .get(format!("http://127.0.0.1:{http}/metrics"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while metric("firelane_mqtt_connected").await != Some(1) {
            assert!(Instant::now() < deadline, "{}", daemon.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Its subscriptions are made before it says it is online (frames
        // are not retained: one sent before would be lost).
        let (_watch, mut rx) =
            common::mqtt::listener_on(&self.broker, "solo-watch", "solo/available").await;
        common::mqtt::wait_event(&mut rx, &mut Vec::new(), "solo/available", |p| {
            p == b"online"
        })
        .await;
        let publisher = common::mqtt::publisher_on(self.broker.port, "solo-cameras", 1000);
        let delivered: Vec<&Sent> = self
            .sent
            .iter()
            .filter(|f| {
                !gaps
                    .iter()
                    .any(|(k, from, to)| *k == f.camera && (*from..=*to).contains(&f.at_ms))
            })
            .collect();
        let mut scored = 0;
        for round in delivered.chunk_by(|a, b| a.round == b.round) {
            for f in round {
                let jpegs = if f.busy { &self.busy } else { &self.empty };
                publisher
                    .raw(
                        &format!("solo/cameras/{}/frame", f.camera),
                        frame_body(f, &jpegs[f.index]),
                    )
                    .await;
            }
            scored += round.len() as u64;
            let deadline = Instant::now() + Duration::from_secs(30);
            while metric("firelane_frames_total").await.unwrap_or(0) < scored {
                assert!(
                    Instant::now() < deadline,
                    "{scored} frames never scored\n{}",
                    daemon.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert_eq!(
            metric("firelane_frames_superseded_total").await,
            Some(0),
            "{}",
            daemon.log()
        );
        // Its alerts and evidence are written; the last decisions committed.
        daemon.term();
        store.violations().await.unwrap()
    }

    fn stop(&mut self) {
        for d in &mut self.daemons {
            d.term();
        }
        let _ = (&self.pg, &self.broker);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_spread_the_cameras_and_take_over_a_killed_one() {
    let _one = ONE_CITY.lock().await;
    let mut city = City::start(|_| None).await;
    let before = city.owners(1).await;
    // PostgreSQL's write load (BENCHMARKS.md G): idle first, then the run.
    // PostgreSQL 15 may hold a session's counters up to 10 s after its
    // last flush (PGSTAT_IDLE_INTERVAL): the start-up's writes (CI once
    // counted 923 rows in the idle window, 8 per second is usual) must be
    // in before the idle window opens.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let idle_from = (Instant::now(), pg_writes(&city.store).await);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = pg_writes(&city.store).await.minus(idle_from.1);
    let idle_s = idle_from.0.elapsed().as_secs_f64();
    let run_from = (Instant::now(), pg_writes(&city.store).await);
    // 7 s of the car: every lane's violation is confirmed (grace 4 s).
    for _ in 0..14 {
        city.send_round(true).await;
    }
    // Scored is not yet committed: three instances on two cores lag.
    let deadline = Instant::now() + Duration::from_secs(30);
    let confirmed = loop {
        let n = city.store.violations().await.unwrap().len();
        if n >= CAMERAS - 1 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        confirmed >= CAMERAS - 1,
        "{confirmed} confirmed\n{}",
        city.logs()
    );

    // Any instance serves any camera's live frame, fetched from its holder
    // with the caller's token.
    let c = firelane::alerts::webhook::client();
    // Under load a lease can lapse and move: each camera is asked of an
    // instance other than its holder of the moment, until both agree.
    for camera in before.keys() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = city.owners(0).await;
            let mut seen = None;
            if let Some(holder) = now.get(camera) {
                let other = INSTANCES.iter().position(|i| i != holder).unwrap();
                let r = c
                    .get(format!(
                        "http://127.0.0.1:{}/api/cameras/{camera}/latest.jpg",
                        city.ports[other]
                    ))
                    .bearer_auth(&city.token)
                    .send()
                    .await
                    .unwrap();
                let named = r
                    .headers()
                    .get("x-firelane-holder")
                    .map(|v| v.to_str().unwrap().to_string());
                if r.status() == 200 && named.as_ref() == Some(holder) {
                    assert!(
                        r.bytes().await.unwrap().starts_with(&[0xFF, 0xD8]),
                        "a JPEG"
                    );
                    break;
                }
                seen = Some((other, r.status(), named));
            }
            assert!(
                Instant::now() < deadline,
                "{camera}: (asked of, status, holder named) {seen:?}; owners then {before:?}, now {now:?}\n{}",
                city.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // kill -9 the instance holding the first camera, mid-violation. Who
    // holds what is read now: the spread may have moved cameras since
    // `before` (CI saw a lost camera that its instance no longer held).
    let holders = city
        .until_owners(0, Duration::from_secs(30), "every camera held", |o| {
            o.len() == CAMERAS
        })
        .await;
    let victim = holders[&city.cameras[0]].clone();
    let v = INSTANCES.iter().position(|i| *i == victim).unwrap();
    let lost: Vec<String> = holders
        .iter()
        .filter(|(_, o)| **o == victim)
        .map(|(c, _)| c.clone())
        .collect();
    let killed_ms = firelane::base::time::wall_clock_ms();
    city.daemons[v].kill9();
    let took = city.until_taken_over(&lost, &victim, (v + 1) % 3).await;
    eprintln!(
        "takeover of {lost:?} after kill -9: {:.1} s",
        took.as_secs_f64()
    );
    assert!(took <= Duration::from_secs(10), "takeover took {took:?}");
    // Each lost camera's unjudged span is recorded: from the victim's last
    // renewal (before the kill) to the takeover; the frames captured in it
    // are the ones no instance judged.
    let view = cluster_view(city.ports[(v + 1) % 3], &city.token)
        .await
        .unwrap();
    let spans = view["unwatched"].as_array().unwrap();
    let mut gaps = Vec::new();
    for camera in &lost {
        let mine: Vec<&serde_json::Value> = spans
            .iter()
            .filter(|u| u["camera"] == *camera && u["cause"] == "silent")
            .collect();
        assert_eq!(mine.len(), 1, "{camera}: {spans:?}");
        let u = mine[0];
        assert_eq!(u["previous_owner"], victim.as_str());
        let ms = |k: &str| firelane::base::time::parse_rfc3339(u[k].as_str().unwrap()).unwrap();
        let (from, to) = (ms("from"), ms("to"));
        assert!(
            from <= killed_ms && killed_ms <= to,
            "{u} vs kill at {killed_ms}"
        );
        assert!(u["seconds"].as_f64().unwrap() <= 10.0, "{u}");
        let unjudged = city
            .sent
            .iter()
            .filter(|f| f.camera == *camera && (from..=to).contains(&f.at_ms))
            .count();
        assert!(unjudged >= 1, "{u}");
        gaps.push((camera.clone(), from, to));
        eprintln!(
            "{camera}: unwatched {:.1} s, {unjudged} frames captured then",
            u["seconds"].as_f64().unwrap()
        );
    }
    for _ in 0..6 {
        city.send_round(true).await;
    }
    city.lanes_clear_once_each().await;
    let run = pg_writes(&city.store).await.minus(run_from.1);
    // The same violations as one instance judging the frames the cluster
    // judged: every frame but those captured while their camera had no
    // holder.
    let solo = city.single_instance_run(&gaps).await;
    let cluster = city.store.violations().await.unwrap();
    assert_eq!(
        cluster.iter().map(Judged::of).collect::<Vec<_>>(),
        solo.iter().map(Judged::of).collect::<Vec<_>>(),
        "cluster (left) against a single instance (right)"
    );
    let run_s = run_from.0.elapsed().as_secs_f64();
    let violations = city.store.violations().await.unwrap().len() as f64;
    assert!(idle.commits > 0 && run.rows > idle.rows, "{idle:?} {run:?}");
    let per_s = |w: u64| w as f64 / idle_s;
    eprintln!(
        "PostgreSQL, 3 instances idle (heartbeat_s 1): {:.1} row writes/s; run of {run_s:.0} s, {violations} violations, one takeover: {} row writes, {:.0} per violation beyond the idle rate",
        per_s(idle.rows),
        run.rows,
        (run.rows as f64 - per_s(idle.rows) * run_s) / violations,
    );
    city.stop();
}

/// Commits (read-only ones too) and row writes (inserted + updated +
/// deleted) of the database, from `pg_stat_database` (flushed by each
/// session at most once a second, so read after a pause; a session that
/// went idle within that second flushes up to 10 s later).
#[derive(Debug, Clone, Copy)]
struct Writes {
    commits: u64,
    rows: u64,
}

impl Writes {
    fn minus(self, earlier: Writes) -> Writes {
        Writes {
            commits: self.commits - earlier.commits,
            rows: self.rows - earlier.rows,
        }
    }
}

async fn pg_writes(store: &Store) -> Writes {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r: (i64, i64) = sqlx::query_as(
        "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    Writes {
        commits: r.0 as u64,
        rows: r.1 as u64,
    }
}

/// The time of the first log line of `log` containing `text`.
fn logged_at(log: &str, text: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains(text))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

/// Cut off from PostgreSQL (its role may no longer log in, its sessions
/// are terminated), an instance stops judging its cameras before any
/// other instance takes them: never two judges for one camera.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_from_the_database_stops_before_another_takes_over() {
    let _one = ONE_CITY.lock().await;
    let mut city = City::start(|i| (i == 2).then_some("inst2")).await;
    let before = city.owners(0).await;
    for _ in 0..14 {
        city.send_round(true).await;
    }
    let lost: Vec<String> = before
        .iter()
        .filter(|(_, o)| *o == "inst2")
        .map(|(c, _)| c.clone())
        .collect();
    for sql in [
        "ALTER ROLE inst2 NOLOGIN",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'inst2'",
    ] {
        sqlx::query(sql).execute(city.store.pool()).await.unwrap();
    }
    let took = city.until_taken_over(&lost, "inst2", 0).await;
    eprintln!(
        "cameras of the cut-off instance taken over after {:.1} s",
        took.as_secs_f64()
    );
    let cut = city.daemons[2].log();
    let stopped = logged_at(&cut, "judging nothing until the database answers")
        .unwrap_or_else(|| panic!("inst2 never stopped judging:\n{cut}"));
    let others = format!("{}\n{}", city.daemons[0].log(), city.daemons[1].log());
    for camera in &lost {
        let line = format!("camera taken camera={camera} epoch=");
        let taken = others
            .lines()
            .filter(|l| l.contains(&line))
            .filter_map(|l| l.split_whitespace().next())
            .max()
            .unwrap_or_else(|| panic!("{camera} never taken:\n{others}"));
        assert!(
            stopped.as_str() < taken,
            "{camera}: inst2 stopped at {stopped}, taken at {taken}"
        );
    }
    for _ in 0..4 {
        city.send_round(true).await;
    }
    city.lanes_clear_once_each().await;
    city.stop();
}

/// Each instance restarted in turn while the cameras publish: cameras
/// change hands twice each, and nothing is lost or announced twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_and_repeats_nothing() {
    let _one = ONE_CITY.lock().await;
    let mut city = City::start(|_| None).await;
    // A zone drawn on one instance's page is applied by all three, each
    // keeping it in its own file; one version is recorded, not three.
    let versions_before = city.store.config_versions(100).await.unwrap().len();
    let c = firelane::alerts::webhook::client();
    let r = c
        .put(format!(
            "http://127.0.0.1:{}/api/zones/kerb-extra",
            city.ports[0]
        ))
        .bearer_auth(&city.token)
        .json(&serde_json::json!({
            "camera": city.cameras[0],
            "polygon": [[0.0, 0.0], [0.3, 0.0], [0.3, 0.2], [0.0, 0.2]],
            "sensors": [],
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    city.until_every_instance_has("kerb-extra").await;
    let versions_after = city.store.config_versions(100).await.unwrap().len();
    assert_eq!(versions_after, versions_before + 1);
    for _ in 0..12 {
        city.send_round(true).await;
    }
    for i in 0..3 {
        city.daemons[i].term();
        for _ in 0..3 {
            city.send_round(true).await;
        }
        city.daemons[i].spawn();
        for _ in 0..6 {
            city.send_round(true).await;
        }
    }
    city.lanes_clear_once_each().await;
    // Every stop released its cameras, and each takeover recorded how long
    // they went unjudged in between.
    let spans = city.store.unwatched(100).await.unwrap();
    let released: Vec<_> = spans
        .iter()
        .filter(|u| u.cause == firelane::store::UnwatchedCause::Released)
        .collect();
    assert!(released.len() >= CAMERAS, "{spans:?}");
    let longest = released.iter().map(|u| u.to_ms - u.from_ms).max().unwrap();
    eprintln!(
        "rolling restart: {} handovers, the longest unjudged {longest} ms",
        released.len()
    );

    // `firelane config apply FILE` through any instance's config: recorded
    // once, applied by all three, cameras included (a new camera is spread
    // and held by one instance). A FILE whose zone names a camera it does
    // not have is refused, naming it, and records nothing.
    let dir = city.daemons[0].config.parent().unwrap().to_path_buf();
    let site = std::fs::read_to_string(&city.daemons[0].config).unwrap();
    let apply = |file: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_firelane"))
            .arg("config")
            .arg("apply")
            .arg(file)
            .arg("--config")
            .arg(&city.daemons[2].config)
            .args(["--actor", "ops"])
            .output()
            .unwrap()
    };
    let zone = |camera: &str, id: &str| {
        format!(
            "\n[[zones]]\nid = \"{id}\"\ncamera = \"{camera}\"\npolygon = [[0.5, 0.0], [0.8, 0.0], [0.8, 0.2], [0.5, 0.2]]\n"
        )
    };
    let before = city.store.config_versions(100).await.unwrap().len();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!("{site}{}", zone("no-such-camera", "kerb-bad")),
    )
    .unwrap();
    let out = apply(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no-such-camera"),
        "{err}"
    );
    assert_eq!(city.store.config_versions(100).await.unwrap().len(), before);
    let good = dir.join("applied.toml");
    std::fs::write(
        &good,
        format!(
            "{site}{}\n[[cameras]]\nid = \"cam-new\"\n{}",
            zone(&city.cameras[1], "kerb-applied"),
            zone("cam-new", "kerb-new")
        ),
    )
    .unwrap();
    let out = apply(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    city.until_every_instance_has("kerb-applied").await;
    city.until_every_instance_has("kerb-new").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leases = city.store.leases().await.unwrap();
        let holders: Vec<&str> = leases
            .iter()
            .filter(|l| l.camera == "cam-new")
            .map(|l| l.owner.as_str())
            .collect();
        if let [holder] = holders[..] {
            assert!(INSTANCES.contains(&holder), "{holder}");
            break;
        }
        assert!(Instant::now() < deadline, "cam-new never held: {leases:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let versions = city.store.config_versions(100).await.unwrap();
    assert_eq!(
        versions.len(),
        before + 1,
        "recorded once, not per instance"
    );
    assert_eq!(
        (versions[0].actor.as_str(), versions[0].source.as_str()),
        ("ops", "apply")
    );

    let log = city.logs();
    assert!(
        log.contains("cameras handed over") || log.contains("cluster mode: left"),
        "{log}"
    );
    city.stop();
}

/// `firelane bench --cluster 2`: two instances take the cameras between
/// them and every frame published is scored by one of them; the rows it
/// writes add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_bench_counts_every_frame_once() {
    let _one = ONE_CITY.lock().await;
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rows.json");
    let (url, work) = (pg.url(), dir.path().to_path_buf());
    let rows_at = json.clone();
    // Blocking: the bench runs its own runtime in its own process.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_firelane"))
            .current_dir(common::repo_root())
            .args(["bench", "--scenario", "samples/demo", "--cluster", "2"])
            .args(["--cameras", "4", "--frames", "24", "--workers", "1"])
            .arg("--database-url")
            .arg(url)
            .arg("--work-dir")
            .arg(work)
            .arg("--json")
            .arg(rows_at)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let logs = || {
        (0..2)
            .map(|i| {
                let p = dir.path().join(format!("cluster/bench-{i}.log"));
                std::fs::read_to_string(p).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(rows.len(), 3, "two instances and the cluster: {rows:?}");
    let frames = |r: &serde_json::Value| r["frames"].as_u64().unwrap();
    let superseded = |r: &serde_json::Value| r["dropped"].as_u64().unwrap();
    assert_eq!(frames(&rows[0]) + frames(&rows[1]), frames(&rows[2]));
    assert_eq!(frames(&rows[2]) + superseded(&rows[2]), 24, "{rows:?}");
    for r in &rows[..2] {
        assert!(frames(r) > 0, "each instance scored some: {rows:?}");
        assert!(r["frames_per_cpu_s"].as_f64().unwrap() > 0.0, "{r}");
    }
    // The run's own database is gone again.
    let store = Store::open(&pg.url()).await.unwrap();
    let left: Vec<(String,)> = sqlx::query_as(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'firelane_bench_%'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
