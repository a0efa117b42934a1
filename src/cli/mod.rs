//! The command line. Each subcommand parses its flags here and calls the
//! library; exit codes: 0 ok, 1 a problem was found (invalid config, failed
//! check), 2 an error stopped the command.

mod admin;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::replay::{self, ReplayOptions, Scenario};
use crate::vision::Classifier;

#[derive(Parser, Debug)]
#[command(
    name = "firelane",
    version,
    about = "Keeps fire lanes clear: cameras and presence sensors in, violations with evidence out."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon (logs: FIRELANE_LOG, e.g. `debug` or `info,rumqttd=info`).
    Run {
        #[command(flatten)]
        site: SiteArgs,
    },
    /// Run a scenario folder (shared/scenarios/FORMAT.md) through the pipeline.
    Replay {
        scenario: PathBuf,
        /// Write the JSON report here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Database and evidence folder; default ./data/replay/<scenario name>.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Grace period in seconds instead of the scenario's.
        #[arg(long)]
        grace_s: Option<f64>,
        /// The ONNX model (its card is the .json beside it).
        #[arg(long, default_value = "models/obstruction-v1.onnx")]
        model: PathBuf,
    },
    /// Validate a configuration and print a summary.
    CheckConfig { file: PathBuf },
    /// Score image files or folders with the obstruction classifier.
    Classify {
        /// Images, or folders searched recursively.
        paths: Vec<PathBuf>,
        /// One JSON line per image.
        #[arg(long)]
        json: bool,
        /// A folder with busy/ and free/ subfolders: print accuracy metrics.
        #[arg(long, conflicts_with = "paths")]
        eval: Option<PathBuf>,
        #[arg(long, default_value = "models/obstruction-v1.onnx")]
        model: PathBuf,
    },
    /// Measure the pipeline under load (in-process and through mosquitto),
    /// optionally beside the Python peer; prints a Markdown table.
    Bench {
        /// Scenario whose frames and first camera's zones are used.
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long, default_value_t = 1)]
        cameras: usize,
        /// Offered frames per second over all cameras (0: as fast as it goes).
        #[arg(long, default_value_t = 0.0)]
        fps: f64,
        /// Frames to send in all.
        #[arg(long, default_value_t = 300)]
        frames: usize,
        /// Frame size the scenario's frames are resized to.
        #[arg(long, default_value = "1920x1080")]
        resolution: String,
        /// Zones per camera (the scenario camera's first ones).
        #[arg(long, default_value_t = 6)]
        zones: usize,
        /// Scoring threads (default: cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Also run through a mosquitto started on a free port.
        #[arg(long)]
        mqtt: bool,
        /// Also run bench/peer.py on the same frames and zones.
        #[arg(long)]
        peer: bool,
        /// Python with Pillow, NumPy and onnxruntime (bench/requirements.txt).
        #[arg(long, default_value = "python3")]
        python: String,
        #[arg(long, default_value = "models/obstruction-v1.onnx")]
        model: PathBuf,
        /// Prepared frames and the runs' databases; default data/bench.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Also write the rows as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Export the daemon's rolling recording ([recording]) as a scenario
    /// folder, with the zones and the config it ran under.
    Record {
        /// The scenario folder to write (new or empty).
        #[arg(long)]
        out: PathBuf,
        /// The scenario's name; default the folder's name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// Run a scenario under the current and a new config and show, per
    /// zone, the violations the change adds, removes and changes.
    Whatif {
        /// The new configuration (TOML). Without zones it takes the
        /// scenario's, to try tracking settings alone.
        #[arg(long)]
        config: PathBuf,
        /// The current configuration; default the scenario's config.toml
        /// (written by `firelane record`), else its scenario.json zones.
        #[arg(long)]
        current: Option<PathBuf>,
        scenario: PathBuf,
        #[arg(long, default_value = "models/obstruction-v1.onnx")]
        model: PathBuf,
        /// The two runs' databases; default data/whatif.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Also write the comparison as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// API tokens: create (printed once), list, revoke.
    Token {
        #[command(subcommand)]
        action: TokenAction,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// The audit log of evidence access and reviews.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// Signed evidence bundles: export, verify, and the site's public key.
    Evidence {
        #[command(subcommand)]
        action: EvidenceAction,
    },
}

/// Which site's data a command works on; the same flags as `run`.
#[derive(Args, Debug, Clone)]
pub struct SiteArgs {
    /// TOML configuration.
    #[arg(
        long,
        short,
        default_value = "config/firelane.toml",
        env = "FIRELANE_CONFIG",
        global = true
    )]
    pub config: PathBuf,
    /// Overrides [storage] data_dir (database, evidence, site key); a
    /// replay's folder works too.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Create a token and print it (only its hash is kept).
    Create {
        #[arg(long)]
        role: crate::api::auth::Role,
        #[arg(long)]
        name: String,
    },
    List,
    /// Revoke a token by its id (the 8 hex characters after `flt_`).
    Revoke {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditAction {
    /// Check the hash chain; exit 1 naming the first broken entries.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum EvidenceAction {
    /// Write a violation's signed evidence bundle (a ZIP).
    Export {
        id: String,
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// Check a bundle's hashes and signature; exit 1 naming what failed.
    Verify {
        bundle: PathBuf,
        /// The site's public key (hex, as `evidence public-key` prints it);
        /// without it the key inside the bundle is used.
        #[arg(long)]
        public_key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print the site key's public half (creating the key if needed).
    PublicKey {
        #[command(flatten)]
        site: SiteArgs,
    },
}

pub fn init_tracing(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    // A what-if's per-violation lines would bury its table and progress bar.
    let default = match cli.command {
        Command::Whatif { .. } => "warn,rumqttd=off",
        _ => "info,rumqttd=off",
    };
    let filter =
        EnvFilter::try_from_env("FIRELANE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { site } => {
            let cfg = match site.load() {
                Ok(c) => c,
                Err(e) => return Ok(config_failure(&e)),
            };
            let shutdown = CancellationToken::new();
            let s = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                s.cancel();
            });
            crate::daemon::run(cfg, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            scenario,
            report,
            data_dir,
            grace_s,
            model,
        } => {
            let sc = Scenario::load(&scenario)?;
            let data_dir = data_dir.unwrap_or_else(|| replay::default_data_dir(&sc));
            let opts = ReplayOptions {
                data_dir,
                grace_s,
                model,
                base_config: None,
                progress: None,
            };
            let rep = replay::run(&sc, &opts).await?;
            if let Some(path) = &report {
                let json = serde_json::to_string_pretty(&rep)?;
                std::fs::write(path, json + "\n")
                    .with_context(|| format!("writing report {}", path.display()))?;
            }
            println!(
                "scenario {}: {} frames, {} crops, {} sensor readings, {} skipped, {:.1} s",
                rep.scenario,
                rep.stats.frames,
                rep.stats.crops,
                rep.stats.sensor_readings,
                rep.stats.rejected,
                rep.stats.seconds
            );
            println!(
                "violations: {} (grace {} s, data in {})",
                rep.violations.len(),
                rep.grace_s,
                opts.data_dir.display()
            );
            if let Some(s) = &rep.score {
                println!(
                    "precision {:.3}  recall {:.3}  F1 {:.3}  (matched {} of {} true, {} reported)  mean start error {}",
                    s.precision,
                    s.recall,
                    s.f1,
                    s.matched,
                    s.truth,
                    s.reported,
                    s.mean_start_error_s
                        .map_or("n/a".to_string(), |e| format!("{e:.0} s"))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => {
            let cfg = match Config::load(&file) {
                Ok(c) => c,
                Err(e) => return Ok(config_failure(&e)),
            };
            let model = &cfg.raw.model.path;
            if let Err(e) = Classifier::load(model) {
                eprintln!("{}: [model]: path: {e}", file.display());
                return Ok(ExitCode::from(1));
            }
            print_summary(&cfg);
            Ok(ExitCode::SUCCESS)
        }
        Command::Classify {
            paths,
            json,
            eval,
            model,
        } => {
            let classifier = Classifier::load(&model)?;
            match eval {
                Some(dir) => crate::vision::eval::print_eval(&classifier, &dir),
                None => crate::vision::eval::print_scores(&classifier, &paths, json),
            }
        }
        Command::Bench {
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
        } => {
            let Some((w, h)) = resolution
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
            else {
                eprintln!("bench: --resolution {resolution:?} is not WIDTHxHEIGHT");
                return Ok(ExitCode::from(1));
            };
            let opts = crate::bench::BenchOptions {
                scenario,
                cameras: cameras.max(1),
                fps,
                frames: frames.max(1),
                width: w,
                height: h,
                zones: zones.max(1),
                workers: crate::engine::worker_count(workers),
                mqtt,
                peer,
                python,
                model,
                work_dir: work_dir.unwrap_or_else(crate::bench::default_work_dir),
            };
            let rows = crate::bench::run(&opts).await?;
            crate::bench::print_table(&opts, &rows);
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&rows)? + "\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Record { out, name, site } => {
            let cfg = match site.load() {
                Ok(c) => c,
                Err(e) => return Ok(config_failure(&e)),
            };
            let text = std::fs::read_to_string(&site.config)
                .with_context(|| format!("reading {}", site.config.display()))?;
            let name = name.unwrap_or_else(|| {
                out.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "recording".into())
            });
            let dir = cfg.raw.recording.dir(&cfg.raw.storage);
            let summary = crate::recording::export_scenario(&cfg, &text, &dir, &out, &name)?;
            println!(
                "scenario {} written to {}: {} frames of {} cameras, {} sensor readings, {} to {}",
                name,
                summary.dir.display(),
                summary.frames,
                summary.cameras,
                summary.sensor_readings,
                summary.from,
                summary.to
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Whatif {
            config,
            current,
            scenario,
            model,
            work_dir,
            json,
        } => {
            let sc = Scenario::load(&scenario)?;
            let current = current.or_else(|| {
                let recorded = scenario.join("config.toml");
                recorded.exists().then_some(recorded)
            });
            let sides = (|| {
                let cur = match &current {
                    Some(path) => crate::whatif::Side::load(path, &sc)?,
                    None => crate::whatif::Side {
                        label: format!(
                            "{} (its own zones)",
                            scenario.join("scenario.json").display()
                        ),
                        raw: None,
                    },
                };
                Ok::<_, crate::whatif::WhatIfError>((cur, crate::whatif::Side::load(&config, &sc)?))
            })();
            let (cur, new) = match sides {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(1));
                }
            };
            let bar = indicatif::ProgressBar::new(2 * sc.frames.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} frames  {elapsed}  {msg}",
                )
                .expect("progress template"),
            );
            let work_dir = work_dir.unwrap_or_else(|| PathBuf::from("data/whatif"));
            let result = crate::whatif::run(&sc, &cur, &new, &model, &work_dir, Some(bar)).await?;
            print!("{}", result.render());
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { action, site } => admin::token(action, &site).await,
        Command::Audit { action, site } => admin::audit(action, &site).await,
        Command::Evidence { action } => admin::evidence(action).await,
    }
}

impl SiteArgs {
    /// The config with `--data-dir` applied.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut cfg = Config::load(&self.config)?;
        if let Some(d) = &self.data_dir {
            cfg.raw.storage.data_dir = d.clone();
        }
        Ok(cfg)
    }
}

pub(crate) fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(1)
}

fn print_summary(cfg: &Config) {
    println!("{}: OK", cfg.source);
    println!(
        "  mqtt: {} (prefix {}){}",
        cfg.raw.mqtt.url,
        cfg.prefix(),
        if cfg.raw.mqtt.embedded_broker.is_some() {
            ", embedded broker"
        } else {
            ""
        }
    );
    println!(
        "  storage: {} ; evidence in {}",
        cfg.raw.storage.database_url(),
        cfg.raw.storage.evidence_dir().display()
    );
    println!("  model: {}", cfg.raw.model.path.display());
    for c in &cfg.cameras {
        println!("  camera {} on {}", c.id, c.topic);
        for z in cfg.zones_of(&c.id) {
            println!(
                "    zone {}: {} points, threshold {}, grace {} s, clear {} s{}",
                z.id,
                z.polygon.points().len(),
                z.params.threshold,
                z.params.grace_ms as f64 / 1000.0,
                z.params.clear_ms as f64 / 1000.0,
                if z.sensors.is_empty() {
                    String::new()
                } else {
                    format!(", sensors {}", z.sensors.join(", "))
                } + if z.schedule.is_some() {
                    ", on a schedule"
                } else {
                    ""
                }
            );
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
