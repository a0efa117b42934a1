//! `firelane replay`: a scenario folder through the pipeline, scored
//! against its truth.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::replay::{self, ReplayOptions, Scenario};

#[derive(Args, Debug)]
pub struct ReplayArgs {
    pub scenario: PathBuf,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Database and evidence folder; default ./data/replay/<scenario name>.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Grace period in seconds instead of the scenario's.
    #[arg(long)]
    pub grace_s: Option<f64>,
    /// The ONNX model (its card is the .json beside it).
    #[arg(long, default_value = crate::config::DEFAULT_MODEL)]
    pub model: PathBuf,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let ReplayArgs {
        scenario,
        report,
        data_dir,
        grace_s,
        model,
    } = args;

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
    if let Some(t) = &rep.truth {
        println!("scored against {t}");
    }
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
