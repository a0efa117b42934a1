//! `firelane config apply FILE`: in cluster mode, the configuration every
//! instance runs is the newest version in `config_versions`; this records
//! FILE as that version, and each instance applies its shared sections
//! (tuning, sites, cameras), woken by `NOTIFY` or its 5 s poll. A single instance takes edits from its own
//! file (SIGHUP, `systemctl reload firelane`) or from the API instead.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::{SiteArgs, config_failure};
use crate::audit::Actor;
use crate::base::digest::sha256_hex;
use crate::base::time::wall_clock_ms;
use crate::config::Config;
use crate::config::edit::{CLUSTER_SHARED, restore_sections};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Cluster mode: record FILE as the cluster's newest version; every
    /// instance applies its [tracking], zones, sensors, sites and cameras
    /// within seconds. Each instance's own sections (storage, HTTP, MQTT,
    /// model, cluster) stay as its file has them.
    Apply {
        file: PathBuf,
        /// Who the version and its audit entry name (default local:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
}

pub async fn run(action: ConfigAction, site: &SiteArgs) -> anyhow::Result<ExitCode> {
    let ConfigAction::Apply { file, actor } = action;
    let cfg = match site.load() {
        Ok(c) => c,
        Err(e) => return Ok(config_failure(&e)),
    };
    if cfg.cluster.is_none() {
        eprintln!(
            "config apply: {} does not enable [cluster]; a single instance takes edits from its own file (send it SIGHUP, or `systemctl reload firelane`) or from the API",
            cfg.source
        );
        return Ok(ExitCode::from(1));
    }
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("config apply: cannot read {name}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    // FILE must be a valid configuration, and so must this instance's file
    // with FILE's shared sections: what every instance checks before
    // applying it.
    if let Err(e) = Config::from_toml(&text, &name) {
        return Ok(config_failure(&e));
    }
    let Some(site_path) = site_file(site) else {
        eprintln!("config apply: needs the instance's configuration file (--config)");
        return Ok(ExitCode::from(1));
    };
    let site_text = std::fs::read_to_string(&site_path)?;
    let merged = match restore_sections(&site_text, &text, &cfg.source, &CLUSTER_SHARED) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("config apply: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let merged_cfg = match Config::from_toml(
        &merged,
        &format!("{} with the shared sections of {name}", cfg.source),
    ) {
        Ok(c) => c,
        Err(e) => return Ok(config_failure(&e)),
    };
    let store = Store::open(&cfg.storage.database_url).await?;
    let actor = match actor {
        Some(a) => Actor {
            name: a,
            ..Actor::local()
        },
        None => Actor::local(),
    };
    let now = wall_clock_ms();
    let draft = actor.draft(
        "config.apply",
        &name,
        serde_json::json!({ "sections": CLUSTER_SHARED, "cameras": merged_cfg.cameras.len(), "zones": merged_cfg.zones.len() }),
        now,
    );
    let version = store
        .add_config_version(
            now,
            &actor.name,
            "apply",
            &sha256_hex(text.as_bytes()),
            &text,
            Some(&draft),
        )
        .await?;
    if let Err(e) = store.notify_config(version).await {
        eprintln!(
            "config apply: instances were not woken ({e}); they poll and apply it within 5 s"
        );
    }
    println!(
        "version {version} recorded from {name}: {} cameras, {} zones, {} sensors; every instance applies its {} within seconds",
        merged_cfg.cameras.len(),
        merged_cfg.zones.len(),
        merged_cfg.sensors.len(),
        CLUSTER_SHARED.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// The instance's configuration file, as `SiteArgs::load` picks it.
fn site_file(site: &SiteArgs) -> Option<PathBuf> {
    match &site.config {
        Some(p) => Some(p.clone()),
        None => {
            let local = PathBuf::from(super::DEFAULT_CONFIG);
            local.exists().then_some(local)
        }
    }
}
