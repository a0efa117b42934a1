//! Cluster mode: the instances share their tuning (`[tracking]`, zones,
//! sensors: what the zone editor and `restore` change) and the sites and
//! cameras they spread ([`CLUSTER_SHARED`]). A version accepted by any
//! instance — an API edit, a restore, its file edited, `config apply` — is
//! recorded in `config_versions` and announced with `NOTIFY
//! firelane_config`; every other instance takes those sections into its
//! own file and applies them. What may differ per machine (`[storage]`,
//! `[http]`, `[mqtt]`, `[model]`, `[cluster]`) stays each instance's own. A
//! notification missed while the listener reconnects is caught by a poll
//! every 5 s.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Applied, ApplyError, LiveConfig};
use crate::config::edit::{CLUSTER_SHARED, restore_sections};

/// The channel versions are announced on.
pub const CHANNEL: &str = "firelane_config";

impl LiveConfig {
    /// Takes the cluster's latest version's shared sections, when it is not the one
    /// running here.
    pub async fn adopt_latest(&self) -> Option<Result<Applied, ApplyError>> {
        let latest = match self.store.config_versions(1).await {
            Ok(v) => v.into_iter().next()?,
            Err(e) => return Some(Err(e.into())),
        };
        let mut running = self.running.lock().await;
        if running.version.is_some_and(|v| v >= latest.id) {
            return None;
        }
        // A config built in code has no file to take the tuning into.
        self.path.as_ref()?;
        let old = match self.store.config_version(latest.id).await {
            Ok(v) => v?,
            Err(e) => return Some(Err(e.into())),
        };
        let text = match restore_sections(&running.text, &old.toml, &self.file, &CLUSTER_SHARED) {
            Ok(t) => t,
            Err(e) => return Some(Err(e.into())),
        };
        if text == running.text {
            running.version = Some(latest.id);
            return None;
        }
        let applied = self
            .accept(
                &mut running,
                text,
                &old.actor,
                "cluster",
                true,
                None,
                Some(latest.id),
            )
            .await;
        if let Err(e) = &applied {
            tracing::error!(version = latest.id, error = %e, "the cluster's configuration version was refused here; the running one stays");
        }
        Some(applied)
    }

    /// Follows the versions other instances record, until `stop`.
    pub async fn follow_cluster(self: Arc<Self>, database_url: String, stop: CancellationToken) {
        let mut poll = tokio::time::interval(Duration::from_secs(5));
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect(&database_url).await {
                Ok(mut l) => match l.listen(CHANNEL).await {
                    Ok(()) => Some(l),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for configuration versions; polling");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %crate::base::redact::text(&e.to_string()), "cannot listen for configuration versions; polling");
                    None
                }
            };
            loop {
                let heard = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = poll.tick() => {}
                    r = heard => if r.is_err() {
                        // Reconnect; the poll covers the gap.
                        break;
                    },
                }
                self.adopt_latest().await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
