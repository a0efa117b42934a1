//! `firelane record`: the rolling recording exported as a scenario.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{SiteArgs, config_failure};

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// The scenario folder to write (new or empty).
    #[arg(long)]
    pub out: PathBuf,
    /// The scenario's name; default the folder's name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub site: SiteArgs,
}

pub async fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let RecordArgs { out, name, site } = args;

    let cfg = match site.load() {
        Ok(c) => c,
        Err(e) => return Ok(config_failure(&e)),
    };
    let text = match std::path::Path::new(&cfg.source) {
        p if p.is_file() => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        _ => crate::config::BUILTIN_CONFIG.to_string(),
    };
    let name = name.unwrap_or_else(|| {
        out.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "recording".into())
    });
    let dir = cfg.recording.dir.clone();
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
