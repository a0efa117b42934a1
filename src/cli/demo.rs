//! `firelane demo`: the daemon on embedded defaults, fed a scenario through
//! its own broker, with an admin token and the page's address printed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::base::time::wall_clock_ms;
use crate::demo;
use crate::replay::scenario::Scenario;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// A scenario folder (shared/scenarios/FORMAT.md); default the bundled
    /// sample (samples/demo).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// The demo's data folder; default a new one in the system's temporary
    /// folder (kept, so it can be looked at afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The web page's and API's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// How long the scenario's whole span takes to play.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Stop once everything is fed and judged, instead of serving the page
    /// until Ctrl-C.
    #[arg(long)]
    pub exit_when_fed: bool,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = match &args.scenario {
        Some(d) => d.clone(),
        None => demo::sample_dirs()
            .into_iter()
            .find(|d| d.join("scenario.json").is_file())
            .context("the bundled sample (samples/demo) is not here; pass --scenario DIR")?,
    };
    let scenario = Scenario::load(&dir)?;
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        anyhow::bail!("--seconds {} must be a positive number", args.seconds);
    }
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("firelane-demo-{}", wall_clock_ms() / 1000)),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    // Said plainly here rather than as a bind error after the start.
    drop(std::net::TcpListener::bind(&args.listen).with_context(|| {
        format!(
            "cannot serve the page on {}; pass --listen 127.0.0.1:PORT",
            args.listen
        )
    })?);
    let broker = (demo::free_loopback()?, demo::free_loopback()?);
    let cfg = demo::config(&scenario, &data_dir, &args.listen, broker)?;

    let store = Store::open(&cfg.storage.database_url).await?;
    let token = crate::api::auth::create_token(
        &store,
        "demo",
        crate::api::auth::Role::Admin,
        wall_clock_ms(),
    )
    .await?
    .token;
    drop(store);

    let shutdown = CancellationToken::new();
    super::run::cancel_on_signal(&shutdown)?;
    let daemon = tokio::spawn(crate::runtime::daemon::run(cfg.clone(), shutdown.clone()));
    wait_until_listening(args.listen.parse()?, &daemon).await?;

    let mut out = std::io::stdout();
    writeln!(
        out,
        "firelane demo: {} ({})",
        scenario.file.name,
        dir.display()
    )?;
    writeln!(out, "  data folder: {}", data_dir.display())?;
    writeln!(out, "  page:  http://{}/#token={token}", args.listen)?;
    writeln!(out, "  token: {token}  (admin)")?;
    writeln!(
        out,
        "  feeding {} frames and {} sensor readings over {} s ...",
        scenario.frames.len(),
        scenario.sensors.len(),
        args.seconds
    )?;
    out.flush()?;

    let stop = shutdown.clone();
    let fed = demo::feed(
        &scenario,
        cfg.prefix(),
        broker.0.port(),
        args.seconds,
        &stop,
    )
    .await?;
    // The last frame is judged after it is published.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let store = Store::open(&cfg.storage.database_url).await?;
    let violations = store.violations().await?.len();
    drop(store);
    writeln!(
        out,
        "fed {} frames and {} readings; {violations} violations recorded",
        fed.frames, fed.readings
    )?;
    if !args.exit_when_fed {
        writeln!(out, "the page stays up: Ctrl-C to stop")?;
        out.flush()?;
        shutdown.cancelled().await;
    }
    shutdown.cancel();
    daemon.await??;
    Ok(ExitCode::SUCCESS)
}

/// Waits until `addr` accepts connections, or the daemon stops first.
async fn wait_until_listening<T>(
    addr: std::net::SocketAddr,
    daemon: &tokio::task::JoinHandle<T>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if daemon.is_finished() {
            anyhow::bail!("the demo daemon stopped while starting (see the log above)");
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the demo daemon did not listen on {addr} within a minute");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
