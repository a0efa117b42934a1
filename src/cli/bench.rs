//! `firelane bench`: the pipeline under load, beside the Python peer.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Scenario whose frames and first camera's zones are used.
    #[arg(long)]
    pub scenario: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub cameras: usize,
    /// Offered frames per second over all cameras (0: as fast as it goes).
    #[arg(long, default_value_t = 0.0)]
    pub fps: f64,
    /// Frames to send in all.
    #[arg(long, default_value_t = 300)]
    pub frames: usize,
    /// Frame size the scenario's frames are resized to; `native` keeps
    /// their own (what a site runs).
    #[arg(long, default_value = "native")]
    pub resolution: String,
    /// Zones per camera (the scenario camera's first ones); 0: all of them.
    #[arg(long, default_value_t = 0)]
    pub zones: usize,
    /// Scoring threads (default: cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Also run through a mosquitto started on a free port.
    #[arg(long)]
    pub mqtt: bool,
    /// Also run bench/peer.py on the same frames and zones.
    #[arg(long)]
    pub peer: bool,
    /// Python with Pillow, NumPy and onnxruntime (bench/requirements.txt).
    #[arg(long, default_value = "python3")]
    pub python: String,
    #[arg(long, default_value = crate::config::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Prepared frames and the runs' databases; default data/bench.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also write the rows as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A live-like feed: each frame sent N times a second apart (re-encoded,
    /// as a still scene looks to a camera); runs it with every crop scored,
    /// then with unchanged crops' scores reused.
    #[arg(long, default_value_t = 0)]
    pub live: usize,
    /// Instead: N `firelane run` processes in cluster mode, the cameras
    /// spread over them, fed over MQTT; a row per instance (needs
    /// --database-url; a database is made for the run and dropped after).
    #[arg(long, default_value_t = 0)]
    pub cluster: usize,
    /// PostgreSQL server for --cluster (`postgres://USER@HOST:PORT/DB`).
    #[arg(long)]
    pub database_url: Option<String>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let BenchArgs {
        scenario,
        cameras,
        fps,
        frames,
        resolution,
        zones,
        workers,
        mqtt,
        peer,
        python,
        model,
        work_dir,
        json,
        live,
        cluster,
        database_url,
    } = args;

    let size = if resolution == "native" {
        crate::bench::native_size(&scenario)?
    } else {
        resolution
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
    };
    let Some((w, h)) = size else {
        eprintln!("bench: --resolution {resolution:?} is not WIDTHxHEIGHT or native");
        return Ok(ExitCode::from(1));
    };
    let zones = if zones == 0 {
        crate::bench::zone_count(&scenario)?.max(1)
    } else {
        zones
    };
    let opts = crate::bench::BenchOptions {
        scenario,
        cameras: cameras.max(1),
        fps,
        frames: frames.max(1),
        width: w,
        height: h,
        zones,
        workers: crate::runtime::engine::worker_count(workers),
        mqtt,
        peer,
        python,
        model,
        work_dir: work_dir.unwrap_or_else(crate::bench::default_work_dir),
        live,
        reuse: true,
    };
    let rows = if cluster > 0 {
        // The cluster run offers frames as fast as the instances score
        // them, every crop scored, with no peer: say so rather than ignore.
        let unsupported = [(fps > 0.0, "--fps"), (live > 0, "--live"), (peer, "--peer")];
        if let Some((_, flag)) = unsupported.iter().find(|(set, _)| *set) {
            eprintln!(
                "bench: {flag} does not apply with --cluster (frames are offered as fast as the instances score them)"
            );
            return Ok(ExitCode::from(2));
        }
        let Some(url) = database_url else {
            eprintln!("bench: --cluster needs --database-url (a PostgreSQL server)");
            return Ok(ExitCode::from(1));
        };
        crate::bench::run_cluster(&opts, cluster, &url).await?
    } else {
        crate::bench::run(&opts).await?
    };
    crate::bench::print_table(&opts, &rows);
    // With the peer, the limit both are measured against (same frames,
    // zones and model); not with --cluster, which runs no peer.
    if opts.peer && cluster == 0 {
        crate::bench::print_limit(&crate::bench::run_limit(&opts)?, &rows);
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&rows)? + "\n")?;
    }
    Ok(ExitCode::SUCCESS)
}
