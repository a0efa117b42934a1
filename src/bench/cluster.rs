//! `firelane bench --cluster N`: what each instance of a cluster scores.
//!
//! N `firelane run` processes (this binary) in cluster mode share one
//! PostgreSQL server (a database made for the run and dropped after) and a
//! mosquitto started on a free port; the cluster spreads the cameras over
//! them itself. Frames are published over MQTT as fast as the instances
//! score them; each instance's frames and stage times come from its
//! `/metrics`, its CPU seconds and peak memory from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{BenchOptions, BenchRow, bench_raw, cpu_seconds_of, peak_rss_mb_of};

/// One instance: its process, API port and log.
struct Instance {
    id: String,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counters read off one instance's `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    frames: f64,
    /// Refused and superseded frames: sent, never scored.
    unscored: f64,
    superseded: f64,
    /// decode, crop, inference, tracking, store (seconds).
    stages: [f64; 5],
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let mut u = url::Url::parse(url).with_context(|| format!("--database-url {url:?}"))?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        bail!("--database-url {url:?}: cluster mode needs a postgres:// URL");
    }
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}

/// Runs the cluster bench; one row per instance, then the cluster's.
pub async fn run_cluster(
    opts: &BenchOptions,
    instances: usize,
    database_url: &str,
) -> anyhow::Result<Vec<BenchRow>> {
    let (jpegs, zones) = super::prepare(opts)?;
    let dir = opts.work_dir.join("cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    // A database of the run's own, so no earlier run's members or leases
    // take part.
    let name = format!("firelane_bench_{}", std::process::id());
    let admin = sqlx::PgPool::connect(database_url)
        .await
        .with_context(|| format!("connecting to {database_url}"))?;
    let create = format!("CREATE DATABASE {name}");
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&admin)
        .await?;
    let url = with_database(database_url, &name)?;
    let result = measure(opts, instances, &url, &dir, &jpegs, &zones).await;
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
    result
}

async fn measure(
    opts: &BenchOptions,
    instances: usize,
    url: &str,
    dir: &Path,
    jpegs: &[Arc<Vec<u8>>],
    zones: &super::Polygons,
) -> anyhow::Result<Vec<BenchRow>> {
    let store = crate::store::Store::open(url).await?;
    let token = crate::api::auth::create_token(&store, "bench", crate::api::auth::Role::Admin, 0)
        .await?
        .token;
    drop(store);

    let (mut broker, mqtt_port) = super::mqtt::broker(dir)?;

    let result = async {
        let mut fleet = Vec::new();
        for i in 0..instances {
            fleet.push(spawn(opts, zones, url, mqtt_port, dir, i)?);
        }
        let http = crate::alerts::webhook::client();
        until_spread(&http, &token, &fleet, opts.cameras).await?;

        let publisher = super::mqtt::cameras(mqtt_port).await;

        let before = read_all(&http, &token, &fleet).await?;
        let cpu0: Vec<f64> = fleet
            .iter()
            .map(|x| cpu_seconds_of(&x.child.id().to_string()))
            .collect();
        let t0 = Instant::now();
        let done = async |http: &reqwest::Client| -> anyhow::Result<f64> {
            let now = read_all(http, &token, &fleet).await?;
            Ok(now
                .iter()
                .zip(&before)
                .map(|(n, b)| n.frames + n.unscored - b.frames - b.unscored)
                .sum())
        };
        // At most one unscored frame per camera: a second would only
        // replace the first in its camera's slot.
        super::drive(
            opts,
            jpegs,
            opts.cameras as u64,
            Duration::from_millis(5),
            async || Ok(done(&http).await?.round() as u64),
            async |f| Ok(super::mqtt::publish(&publisher, f).await?),
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while done(&http).await? < opts.frames as f64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seconds = t0.elapsed().as_secs_f64();
        let after = read_all(&http, &token, &fleet).await?;
        let held = holdings(&http, &token, &fleet[0]).await?;

        let mut rows = Vec::new();
        let mut total = (0.0, 0.0, 0.0, [0.0; 5]);
        for (i, x) in fleet.iter().enumerate() {
            let pid = x.child.id().to_string();
            let cpu = cpu_seconds_of(&pid) - cpu0[i];
            let frames = after[i].frames - before[i].frames;
            let superseded = after[i].superseded - before[i].superseded;
            let mut stages = [0.0; 5];
            for (s, st) in stages.iter_mut().enumerate() {
                *st = after[i].stages[s] - before[i].stages[s];
                total.3[s] += *st;
            }
            total.0 += frames;
            total.1 += cpu;
            total.2 += superseded;
            let cams = held.iter().filter(|(_, o)| *o == x.id).count();
            rows.push(cluster_row(
                &format!("instance {} ({cams} cameras)", x.id),
                frames,
                seconds,
                cpu,
                stages,
                opts.zones,
                peak_rss_mb_of(&pid),
                superseded,
            ));
        }
        rows.push(cluster_row(
            &format!("cluster of {instances}, {} cameras", opts.cameras),
            total.0,
            seconds,
            total.1,
            total.3,
            opts.zones,
            0.0,
            total.2,
        ));
        for x in &fleet {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(x.child.id().to_string())
                .status();
        }
        Ok(rows)
    }
    .await;
    let _ = broker.kill();
    let _ = broker.wait();
    result
}

#[allow(clippy::too_many_arguments)]
fn cluster_row(
    run: &str,
    frames: f64,
    seconds: f64,
    cpu: f64,
    stages: [f64; 5],
    zones: usize,
    rss: f64,
    superseded: f64,
) -> BenchRow {
    let per = |s: f64| if frames > 0.0 { s * 1e3 / frames } else { 0.0 };
    BenchRow {
        run: run.to_string(),
        frames: frames as u64,
        crops: frames as u64 * zones as u64,
        // Not read back from the instances (their /metrics has no tile counts).
        tiles: 0,
        crops_reused: 0,
        seconds,
        frames_per_s: frames / seconds,
        crops_per_s: frames * zones as f64 / seconds,
        frames_per_cpu_s: if cpu > 0.0 { frames / cpu } else { 0.0 },
        p50_ms: None,
        p99_ms: None,
        decode_ms: per(stages[0]),
        crop_ms: per(stages[1]),
        inference_ms: per(stages[2]),
        tracking_ms: per(stages[3]),
        store_ms: per(stages[4]),
        peak_rss_mb: rss,
        dropped: superseded as u64,
    }
}

/// Instance `i`: the bench's cameras and zones, cluster mode on `url`.
fn spawn(
    opts: &BenchOptions,
    zones: &super::Polygons,
    url: &str,
    mqtt_port: u16,
    dir: &Path,
    i: usize,
) -> anyhow::Result<Instance> {
    let id = format!("bench-{i}");
    let mut raw = bench_raw(opts, zones, Some(format!("mqtt://127.0.0.1:{mqtt_port}")));
    let port = super::mqtt::free_port()?;
    raw.storage.data_dir = dir.join(&id);
    raw.storage.database_url = Some(url.to_string());
    raw.storage.evidence_dir = Some(dir.join("evidence"));
    raw.storage.site_key = Some(dir.join("site.key"));
    raw.http.enabled = true;
    raw.http.listen = format!("127.0.0.1:{port}");
    raw.mqtt.client_id = id.clone();
    raw.ingest.workers = Some(opts.workers);
    raw.cluster = Some(crate::config::cluster::ClusterConfig {
        enabled: true,
        ..toml::from_str("")?
    });
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, toml::to_string(&raw)?)?;
    let log = dir.join(format!("{id}.log"));
    let child = Command::new(std::env::current_exe()?)
        .args(["run", "--config"])
        .arg(&path)
        .env("FIRELANE_INSTANCE_ID", &id)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting an instance")?;
    Ok(Instance {
        id,
        child,
        port,
        log,
    })
}

async fn get(
    http: &reqwest::Client,
    token: &str,
    x: &Instance,
    path: &str,
) -> Result<String, reqwest::Error> {
    http.get(format!("http://127.0.0.1:{}{path}", x.port))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

fn counters(text: &str) -> Counters {
    let mut c = Counters::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        match name {
            "firelane_frames_total" => c.frames = v,
            "firelane_frames_superseded_total" => {
                c.superseded = v;
                c.unscored += v;
            }
            "firelane_inputs_rejected_total" => c.unscored += v,
            _ => {
                for (s, stage) in ["decode", "crop", "inference", "tracking", "store"]
                    .iter()
                    .enumerate()
                {
                    if name == format!("firelane_stage_seconds_total{{stage=\"{stage}\"}}") {
                        c.stages[s] = v;
                    }
                }
            }
        }
    }
    c
}

async fn read_all(
    http: &reqwest::Client,
    token: &str,
    fleet: &[Instance],
) -> anyhow::Result<Vec<Counters>> {
    let mut out = Vec::new();
    for x in fleet {
        let text = get(http, token, x, "/metrics")
            .await
            .with_context(|| format!("{}'s /metrics (log: {})", x.id, x.log.display()))?;
        out.push(counters(&text));
    }
    Ok(out)
}

/// camera → holder of every live lease, as `x` sees them.
async fn holdings(
    http: &reqwest::Client,
    token: &str,
    x: &Instance,
) -> anyhow::Result<Vec<(String, String)>> {
    let v: serde_json::Value = serde_json::from_str(&get(http, token, x, "/api/cluster").await?)?;
    Ok(v["leases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["live"] == true)
        .filter_map(|l| Some((l["camera"].as_str()?.into(), l["owner"].as_str()?.into())))
        .collect())
}

/// Waits until every instance answers and every camera is held by the
/// instance the spread gives it with all of them alive, so no camera
/// changes hands during the run.
async fn until_spread(
    http: &reqwest::Client,
    token: &str,
    fleet: &[Instance],
    cameras: usize,
) -> anyhow::Result<()> {
    let ids: Vec<String> = (0..cameras).map(|c| format!("cam{c}")).collect();
    let members: Vec<String> = fleet.iter().map(|x| x.id.clone()).collect();
    let want: Vec<(String, String)> = crate::cluster::spread::spread(&ids, &members)
        .into_iter()
        .map(|(c, m)| (c.to_string(), m.to_string()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let answering = read_all(http, token, fleet).await.is_ok();
        let mut held = holdings(http, token, &fleet[0]).await.unwrap_or_default();
        held.sort();
        if answering && held == want {
            // Each holder subscribes to its cameras' topics after taking them.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(());
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = fleet.iter().map(|x| x.log.display().to_string()).collect();
            bail!(
                "the cluster did not spread its {cameras} cameras within 90 s (held: {held:?}, want: {want:?}); logs: {}",
                logs.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
