//! The database: violations, their evidence records, and zone state.
//!
//! SQLite by default, PostgreSQL by URL, through sqlx's `Any` driver with
//! one migrations folder per dialect. Rows are written on state changes
//! only (a zone starting, confirming, reminding, clearing), never per frame.

mod audit;
mod cameras;
mod cluster;
mod config_versions;
mod enforcement;
mod outbox;
mod records;

use std::path::Path;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

pub use audit::{AuditDraft, AuditRow, GENESIS, entry_hash};
pub use cluster::{Fence, Holder, LeaseRow, MemberRow, Taken, UnwatchedCause, UnwatchedRow};
pub use config_versions::ConfigVersionRow;
pub use enforcement::{ReviewRow, TokenRow, ViolationFilter};
pub use outbox::OutboxRow;
pub(crate) use records::violation_from_row;
pub use records::{EvidenceRow, StoreTx, ViolationRow, ZoneStateRow};

pub use crate::base::ids::violation_id;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "camera \"{camera}\" is no longer held by this instance (its lease ran out or was taken over); not recorded here"
    )]
    Fenced { camera: String },
    #[error("stored zone state for {zone} is unreadable: {message}")]
    BadState { zone: String, message: String },
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
}

pub(crate) const VIOLATION_COLUMNS: &str = "id, camera, zone, start_ms, confirmed_ms, cleared_ms, last_obstructed_ms, peak_score, model_name, model_sha256, status, end_reason, zone_polygon, config_sha256, review_status";

impl Store {
    /// Connects and migrates. `sqlite://` files (and their folder) are created.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = Path::new(file)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { 8 } else { 4 })
            // A write that cannot get a connection fails soon: the pipeline
            // decides the same step again on the next input, and the
            // daemon's loop keeps moving during a database outage.
            .acquire_timeout(std::time::Duration::from_secs(3))
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: crate::base::redact::url(url),
                source,
            })?;
        if postgres {
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        } else {
            // WAL lets the API read while the daemon writes; it persists in the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        }
        Ok(Store { pool })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Forgets tracker state (a replay starts from clear zones).
    pub async fn clear_zone_states(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM zone_state")
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM sensor_state")
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM camera_clock")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
