//! The running configuration: changed from the web page or on disk without
//! a restart, every version kept.
//!
//! The TOML file stays the source of truth. An edit through the API is
//! validated like `check-config`, written to the file (comments kept, see
//! [`crate::config::edit`]), recorded in `config_versions` and then published to the
//! pipeline and ingest through a `watch` channel. An edit of the file on
//! disk is picked up by [`LiveConfig::watch_file`]; a bad file is refused
//! with its problems logged and shown, and the running config stays.

use crate::store::AuditDraft;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::base::digest::sha256_hex;
use crate::base::time::wall_clock_ms;
use crate::config::edit::EditError;
use crate::config::{Config, ConfigError, RawConfig};
use crate::store::{Store, StoreError};

pub mod cluster;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no configuration version {0}")]
    UnknownVersion(i64),
    #[error("the configuration was not loaded from a file; nothing to edit")]
    NoFile,
    #[error("{0} changed on disk and is not applied yet; reload and make the change again")]
    ChangedOnDisk(String),
}

/// What the API shows about the running configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigStatus {
    /// SHA-256 of the validated settings (as recorded with violations).
    pub sha256: String,
    pub file: String,
    /// The `config_versions` id of the running text.
    pub version: Option<i64>,
    /// Why the file on disk was refused, while it still is.
    pub reload_error: Option<String>,
}

/// The outcome of an accepted change.
#[derive(Debug, Clone)]
pub struct Applied {
    pub config: Arc<Config>,
    pub version: i64,
    /// Sections that changed but are read only at start.
    pub restart_needed: Vec<&'static str>,
}

struct Running {
    text: String,
    text_sha256: String,
    version: Option<i64>,
    /// A refused file's hash, so it is reported once, not every poll.
    refused_sha256: Option<String>,
    /// A changed file's hash seen once: applied when the next poll sees it
    /// again, so a file caught half-written (emptied, then written) is not.
    settling_sha256: Option<String>,
}

pub struct LiveConfig {
    /// `None` for a configuration built in code (tests): read-only.
    path: Option<PathBuf>,
    file: String,
    card_threshold: Option<f64>,
    /// `--data-dir` given on the command line: it outlives reloads.
    data_dir_override: Option<PathBuf>,
    store: Store,
    tx: watch::Sender<Arc<Config>>,
    running: tokio::sync::Mutex<Running>,
    reload_error: Mutex<Option<String>>,
    /// Cluster mode: tuning is shared through `config_versions` (see
    /// [`cluster`]).
    shared: bool,
}

/// Sections only read at start: changing them needs a restart.
fn restart_sections(old: &RawConfig, new: &RawConfig) -> Vec<&'static str> {
    let pairs: [(&'static str, String, String); 7] = [
        ("[storage]", json(&old.storage), json(&new.storage)),
        ("[model]", json(&old.model), json(&new.model)),
        ("[mqtt]", json(&old.mqtt), json(&new.mqtt)),
        ("[http]", json(&old.http), json(&new.http)),
        ("[alerts]", json(&old.alerts), json(&new.alerts)),
        ("[[sites]]", json(&old.sites), json(&new.sites)),
        (
            "[ingest]/[recording]",
            json(&(&old.ingest, &old.recording)),
            json(&(&new.ingest, &new.recording)),
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, _, _)| name)
        .collect()
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl LiveConfig {
    /// Starts from `config` (already validated, loaded from `path`) and
    /// records its text as a version unless it is the latest one already.
    /// A config whose `source` is not a readable file is served read-only.
    pub async fn start(
        config: Arc<Config>,
        card_threshold: Option<f64>,
        store: Store,
    ) -> Result<Arc<LiveConfig>, ApplyError> {
        let file = config.source.clone();
        let path = PathBuf::from(&file);
        let (path, text, version) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let sha = sha256_hex(text.as_bytes());
                let latest = store.config_versions(1).await?.into_iter().next();
                let version = match latest {
                    Some(v) if v.sha256 == sha => Some(v.id),
                    // Cluster mode: the cluster's latest version is what
                    // counts; it is adopted right after the start
                    // ([`LiveConfig::adopt_latest`]), this file's tuning is
                    // not pushed on the others.
                    Some(_) if config.cluster.is_some() => None,
                    _ => Some({
                        store
                            .add_config_version(
                                wall_clock_ms(),
                                "firelane",
                                "start",
                                &sha,
                                &text,
                                None,
                            )
                            .await?
                    }),
                };
                (Some(path), text, version)
            }
            Err(_) => (None, String::new(), None),
        };
        let text_sha256 = sha256_hex(text.as_bytes());
        let data_dir_override = Config::from_toml(&text, &file)
            .ok()
            .filter(|on_disk| on_disk.storage.data_dir != config.storage.data_dir)
            .map(|_| config.storage.data_dir.clone());
        let shared = config.cluster.is_some();
        let (tx, _) = watch::channel(config);
        Ok(Arc::new(LiveConfig {
            shared,
            path,
            file,
            card_threshold,
            data_dir_override,
            store,
            tx,
            running: tokio::sync::Mutex::new(Running {
                text,
                text_sha256,
                version,
                refused_sha256: None,
                settling_sha256: None,
            }),
            reload_error: Mutex::new(None),
        }))
    }

    pub fn current(&self) -> Arc<Config> {
        self.tx.borrow().clone()
    }

    /// Receives every accepted configuration.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.tx.subscribe()
    }

    pub async fn status(&self) -> ConfigStatus {
        let version = self.running.lock().await.version;
        ConfigStatus {
            sha256: self.current().sha256.clone(),
            file: self.file.clone(),
            version,
            reload_error: self.reload_error.lock().expect("lock").clone(),
        }
    }

    fn validate(&self, text: &str) -> Result<Config, ConfigError> {
        let mut config = Config::from_toml(text, &self.file)?;
        if let Some(dir) = &self.data_dir_override {
            config = config.with_data_dir(dir);
        }
        if let Some(t) = self.card_threshold {
            config = config.with_threshold(t);
        }
        Ok(config)
    }

    /// Applies `edit` to the file's text: validated, written, recorded
    /// (with `audit`, its entry in the same transaction), published.
    /// Nothing changes when any step before the write fails.
    pub async fn edit(
        &self,
        actor: &str,
        audit: Option<AuditDraft>,
        edit: impl FnOnce(&str, &str) -> Result<String, EditError>,
    ) -> Result<Applied, ApplyError> {
        if self.path.is_none() {
            return Err(ApplyError::NoFile);
        }
        let mut running = self.running.lock().await;
        self.check_disk(&running, false).await?;
        let text = edit(&running.text, &self.file)?;
        self.accept(&mut running, text, actor, "api", true, audit, None)
            .await
    }

    /// Makes version `id` the running configuration (written to the file):
    /// all of it, or (`tuning_only`, what an operator may restore) only its
    /// zones, sensors and `[tracking]`, the rest of the running file kept.
    pub async fn restore(
        &self,
        id: i64,
        actor: &str,
        tuning_only: bool,
        audit: Option<AuditDraft>,
    ) -> Result<Applied, ApplyError> {
        if self.path.is_none() {
            return Err(ApplyError::NoFile);
        }
        let old = self
            .store
            .config_version(id)
            .await?
            .ok_or(ApplyError::UnknownVersion(id))?;
        let mut running = self.running.lock().await;
        // Restoring is also the way back from a file that was refused.
        self.check_disk(&running, true).await?;
        let text = if tuning_only {
            crate::config::edit::restore_tuning(&running.text, &old.toml, &self.file)?
        } else {
            old.toml
        };
        self.accept(&mut running, text, actor, "restore", true, audit, None)
            .await
    }

    /// An edit on disk not applied yet (or refused) would be overwritten
    /// by an edit through the API: refuse instead.
    async fn check_disk(&self, running: &Running, refused_ok: bool) -> Result<(), ApplyError> {
        if let Some(path) = &self.path
            && let Ok(text) = tokio::fs::read_to_string(path).await
        {
            let sha = sha256_hex(text.as_bytes());
            let refused = running.refused_sha256.as_ref() == Some(&sha);
            if sha != running.text_sha256 && !(refused_ok && refused) {
                return Err(ApplyError::ChangedOnDisk(self.file.clone()));
            }
        }
        Ok(())
    }

    /// Validates, writes (with `write`), records and publishes `text`;
    /// with `recorded`, the version another instance recorded (cluster
    /// mode): applied here, not recorded again.
    #[allow(clippy::too_many_arguments)]
    async fn accept(
        &self,
        running: &mut Running,
        text: String,
        actor: &str,
        source: &str,
        write: bool,
        audit: Option<AuditDraft>,
        recorded: Option<i64>,
    ) -> Result<Applied, ApplyError> {
        let config = Arc::new(self.validate(&text)?);
        if write && let Some(path) = &self.path {
            write_atomically(path, &text).map_err(|source| ApplyError::Write {
                path: self.file.clone(),
                source,
            })?;
        }
        let sha = sha256_hex(text.as_bytes());
        let added = match recorded {
            Some(id) => Ok(id),
            None => {
                self.store
                    .add_config_version(wall_clock_ms(), actor, source, &sha, &text, audit.as_ref())
                    .await
            }
        };
        let version = match added {
            Ok(v) => v,
            Err(e) => {
                // Not recorded, so not applied: put the running text back.
                if write && let Some(path) = &self.path {
                    let _ = write_atomically(path, &running.text);
                }
                return Err(e.into());
            }
        };
        let restart_needed = restart_sections(self.current().raw(), config.raw());
        if !restart_needed.is_empty() {
            tracing::warn!(sections = ?restart_needed, "configuration changes that take effect after a restart");
        }
        running.text = text;
        running.text_sha256 = sha;
        running.version = Some(version);
        running.refused_sha256 = None;
        running.settling_sha256 = None;
        *self.reload_error.lock().expect("lock") = None;
        self.tx.send_replace(config.clone());
        if self.shared && recorded.is_none() {
            self.store.notify_config(version).await.unwrap_or_else(
                |e| tracing::warn!(error = %e, "other instances will see this version within 5 s"),
            );
        }
        tracing::info!(
            version,
            actor,
            source,
            zones = config.zones.len(),
            "configuration applied"
        );
        Ok(Applied {
            config,
            version,
            restart_needed,
        })
    }

    /// Checks the file once: a changed, valid file is applied; a changed,
    /// bad one is refused (logged once) and the running config kept.
    pub async fn reload_if_changed(&self) -> Option<Result<Applied, ApplyError>> {
        self.reload(true).await
    }

    /// SIGHUP: the file as it is now, applied at once when it changed (the
    /// sender says the edit is complete, so no settling poll). A file
    /// refused before is reported again.
    pub async fn reload_now(&self) -> Option<Result<Applied, ApplyError>> {
        self.running.lock().await.refused_sha256 = None;
        self.reload(false).await
    }

    async fn reload(&self, settle: bool) -> Option<Result<Applied, ApplyError>> {
        let path = self.path.as_ref()?;
        // Read under the lock: an API edit writing meanwhile must not be
        // mistaken for an older file edited on disk.
        let mut running = self.running.lock().await;
        let text = match tokio::fs::read_to_string(path).await {
            Ok(t) => t,
            // Editors replace files by rename: a moment without one is normal.
            Err(_) => return None,
        };
        let sha = sha256_hex(text.as_bytes());
        if sha == running.text_sha256 || running.refused_sha256.as_ref() == Some(&sha) {
            running.settling_sha256 = None;
            return None;
        }
        if settle && running.settling_sha256.as_ref() != Some(&sha) {
            running.settling_sha256 = Some(sha);
            return None;
        }
        match self
            .accept(&mut running, text, "file", "file", false, None, None)
            .await
        {
            Ok(applied) => Some(Ok(applied)),
            Err(e @ ApplyError::Store(_)) => {
                // Not the file's fault: try again on the next poll.
                tracing::error!(error = %e, "configuration file change not recorded");
                Some(Err(e))
            }
            Err(e) => {
                tracing::error!(file = %self.file, "configuration file refused; the running configuration stays:\n{e}");
                running.refused_sha256 = Some(sha);
                *self.reload_error.lock().expect("lock") = Some(e.to_string());
                Some(Err(e))
            }
        }
    }

    /// Polls the file every `every` until `stop` (a poll is a read and a
    /// hash: cheap, and it works where file notifications do not).
    pub async fn watch_file(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        if self.path.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => { self.reload_if_changed().await; }
            }
        }
    }
}

/// Writes beside the file and renames over it, so a crash or a reader
/// never sees half a file. A symlinked config is written at its target;
/// the file keeps its permissions (it may hold secrets).
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    // Through a symlink to its target, keeping the file's permissions.
    let path = &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    crate::base::durable::write(
        path,
        text.as_bytes(),
        None,
        crate::base::durable::Existing::Replace,
    )
}
