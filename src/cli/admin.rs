//! `firelane token`, `audit` and `evidence`: the site's administration
//! commands. They open the same database and data folder as `run`.

use std::process::ExitCode;

use anyhow::Context;

use std::path::PathBuf;

use clap::Subcommand;

use super::{SiteArgs, config_failure};
use crate::audit::{Actor, AuditLog};
use crate::base::time::{format_rfc3339, wall_clock_ms};
use crate::evidence::EvidenceStore;
use crate::evidence::bundle;
use crate::evidence::signing::SiteKey;
use crate::store::Store;

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

/// `evidence verify`'s exit code when the bundle is intact but its
/// signature could be checked only against the key it carries.
const UNPINNED: u8 = 3;

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
    /// Check a bundle's hashes and signature against the site's key; exit
    /// 1 naming what failed, 3 when only the key inside the bundle could be
    /// used (anyone can sign with a key of their own).
    Verify {
        bundle: PathBuf,
        /// The site's public key (hex, as `evidence public-key` prints it);
        /// default the site key of `--config`/`--data-dir` when it exists.
        #[arg(long)]
        public_key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// Print the site key's public half (creating the key if needed).
    PublicKey {
        #[command(flatten)]
        site: SiteArgs,
    },
}

async fn open_store(
    site: &SiteArgs,
) -> anyhow::Result<Result<(crate::config::Config, Store), ExitCode>> {
    let cfg = match site.load() {
        Ok(c) => c,
        Err(e) => return Ok(Err(config_failure(&e))),
    };
    let store = Store::open(&cfg.storage.database_url).await?;
    Ok(Ok((cfg, store)))
}

pub async fn token(action: TokenAction, site: &SiteArgs) -> anyhow::Result<ExitCode> {
    let (_, store) = match open_store(site).await? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    match action {
        TokenAction::Create { role, name } => {
            if name.trim().is_empty() {
                eprintln!("token create: --name must not be empty");
                return Ok(ExitCode::from(1));
            }
            let t =
                crate::api::auth::create_token(&store, name.trim(), role, wall_clock_ms()).await?;
            eprintln!(
                "token {} for {} ({}) created; it is shown only now:",
                t.row.id, t.row.name, t.row.role
            );
            println!("{}", t.token);
        }
        TokenAction::List => {
            println!(
                "{:<10} {:<9} {:<25} {:<25} name",
                "id", "role", "created", "revoked"
            );
            for t in store.tokens().await? {
                println!(
                    "{:<10} {:<9} {:<25} {:<25} {}",
                    t.id,
                    t.role,
                    format_rfc3339(t.created_ms),
                    t.revoked_ms.map_or("-".to_string(), format_rfc3339),
                    t.name
                );
            }
        }
        TokenAction::Revoke { id } => {
            let id = id.strip_prefix("flt_").unwrap_or(&id);
            let id = id.split('_').next().unwrap_or(id);
            if store.revoke_token(id, wall_clock_ms()).await? {
                println!("token {id} revoked");
            } else {
                eprintln!("token revoke: no live token with id {id:?} (see `firelane token list`)");
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum CalibrationAction {
    /// Each camera's threshold learned from its presence sensors.
    Show,
    /// Forget what was learned (one camera, or all): back to the
    /// configured threshold at the daemon's next start.
    Reset {
        #[arg(long)]
        camera: Option<String>,
    },
}

pub async fn calibration(action: CalibrationAction, site: &SiteArgs) -> anyhow::Result<ExitCode> {
    let (_, store) = match open_store(site).await? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    match action {
        CalibrationAction::Show => {
            println!("{:<20} {:>9} {:>8}", "camera", "threshold", "samples");
            for (camera, threshold, samples) in store.calibrations().await? {
                println!("{camera:<20} {threshold:>9.3} {samples:>8}");
            }
        }
        CalibrationAction::Reset { camera } => {
            let n = store.reset_calibration(camera.as_deref()).await?;
            println!("{n} calibration(s) forgotten");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(action: AuditAction, site: &SiteArgs) -> anyhow::Result<ExitCode> {
    let (_, store) = match open_store(site).await? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    match action {
        AuditAction::Verify { json } => {
            let report = crate::audit::verify(&store).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.problems.is_empty() {
                println!(
                    "audit log OK: {} entries, head {}",
                    report.entries, report.head
                );
            } else {
                for p in &report.problems {
                    eprintln!("audit log: {p}");
                }
                eprintln!(
                    "audit log BROKEN: {} problems in {} entries",
                    report.problems.len(),
                    report.entries
                );
            }
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

pub async fn evidence(action: EvidenceAction) -> anyhow::Result<ExitCode> {
    match action {
        EvidenceAction::Export { id, output, site } => {
            let (cfg, store) = match open_store(&site).await? {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let evidence = EvidenceStore::open(&cfg.storage.evidence_dir)?;
            let key = SiteKey::load_or_create(&cfg.storage.site_key)?;
            let zip = match bundle::export(&store, &evidence, &key, &id, wall_clock_ms()).await {
                Ok(z) => z,
                Err(bundle::BundleError::NotFound(_)) => {
                    eprintln!(
                        "evidence export: no violation {id:?} in {}",
                        crate::base::redact::url(&cfg.storage.database_url)
                    );
                    return Ok(ExitCode::from(1));
                }
                Err(e) => return Err(e.into()),
            };
            std::fs::write(&output, &zip)
                .with_context(|| format!("writing {}", output.display()))?;
            let sha = crate::base::digest::sha256_hex(&zip);
            AuditLog::default()
                .record(
                    &store,
                    &Actor::local(),
                    "bundle.export",
                    &id,
                    serde_json::json!({"bytes": zip.len(), "sha256": sha, "output": output.display().to_string()}),
                    wall_clock_ms(),
                )
                .await?;
            println!(
                "{}: {} bytes, SHA-256 {sha}, signed by {}",
                output.display(),
                zip.len(),
                key.public_key_hex()
            );
            Ok(ExitCode::SUCCESS)
        }
        EvidenceAction::Verify {
            bundle: path,
            public_key,
            json,
            site,
        } => {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            // The key to trust: the one given, else this site's own.
            let public_key = public_key.or_else(|| {
                let key = site.load().ok()?.storage.site_key;
                let public = key.with_extension("key.pub");
                public.exists().then_some(public)
            });
            let trusted = match &public_key {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("reading public key {}", p.display()))?,
                ),
                None => None,
            };
            let report = bundle::verify(&bytes, trusted.as_deref());
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.problems.is_empty() {
                println!(
                    "{}: OK: violation {}, {} files, every SHA-256 and the signature hold (key {}{})",
                    path.display(),
                    report.violation.as_deref().unwrap_or("?"),
                    report.files_checked,
                    report.signed_by.as_deref().unwrap_or("?"),
                    if report.key_from_caller {
                        ", the site's"
                    } else {
                        ", taken from the bundle only: NOT VERIFIED against the site's key (pass --public-key)"
                    }
                );
            } else {
                for p in &report.problems {
                    eprintln!("{}: {p}", path.display());
                }
                eprintln!(
                    "{}: FAILED ({} problems)",
                    path.display(),
                    report.problems.len()
                );
            }
            Ok(if !report.problems.is_empty() {
                ExitCode::from(1)
            } else if !report.key_from_caller {
                // Intact, but signed by whoever made it: not a verification.
                ExitCode::from(UNPINNED)
            } else {
                ExitCode::SUCCESS
            })
        }
        EvidenceAction::PublicKey { site } => {
            let cfg = match site.load() {
                Ok(c) => c,
                Err(e) => return Ok(config_failure(&e)),
            };
            let key = SiteKey::load_or_create(&cfg.storage.site_key)?;
            println!("{}", key.public_key_hex());
            Ok(ExitCode::SUCCESS)
        }
    }
}
