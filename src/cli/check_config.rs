//! `firelane check-config`: validate a configuration and its model.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::config_failure;
use crate::config::Config;
use crate::vision::Classifier;

#[derive(Args, Debug)]
pub struct CheckConfigArgs {
    pub file: PathBuf,
}

pub async fn run(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let CheckConfigArgs { file } = args;

    let cfg = match Config::load(&file) {
        Ok(c) => c,
        Err(e) => return Ok(config_failure(&e)),
    };
    let model = &cfg.model.path;
    if let Err(e) = Classifier::load(model) {
        eprintln!("{}: [model]: path: {e}", file.display());
        return Ok(ExitCode::from(1));
    }
    print_summary(&cfg);
    Ok(ExitCode::SUCCESS)
}

fn print_summary(cfg: &Config) {
    println!("{}: OK", cfg.source);
    println!(
        "  mqtt: {} (prefix {}){}",
        cfg.mqtt.url,
        cfg.prefix(),
        if cfg.mqtt.embedded_broker.is_some() {
            ", embedded broker"
        } else {
            ""
        }
    );
    println!(
        "  storage: {} ; evidence in {}",
        crate::base::redact::url(&cfg.storage.database_url),
        cfg.storage.evidence_dir.display()
    );
    println!("  model: {}", cfg.model.path.display());
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
