//! The database: violations, their evidence records, and zone state.
//!
//! SQLite by default, PostgreSQL by URL, through sqlx's `Any` driver with
//! one migrations folder per dialect. Rows are written on state changes
//! only (a zone starting, confirming, reminding, clearing), never per frame.

mod config_versions;
mod enforcement;
mod outbox;

use std::path::Path;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::time::Millis;

pub use config_versions::ConfigVersionRow;
pub use enforcement::{AuditRow, ReviewRow, TokenRow, ViolationFilter};
pub use outbox::OutboxRow;

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
    #[error("stored zone state for {zone} is unreadable: {message}")]
    BadState { zone: String, message: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ViolationRow {
    pub id: String,
    pub camera: String,
    pub zone: String,
    pub start_ms: Millis,
    pub confirmed_ms: Millis,
    pub cleared_ms: Option<Millis>,
    pub last_obstructed_ms: Millis,
    pub peak_score: f64,
    pub model_name: String,
    pub model_sha256: String,
    /// `open` or `cleared`.
    pub status: String,
    pub end_reason: Option<String>,
    /// The zone's polygon (JSON, image fractions) when it was confirmed.
    pub zone_polygon: String,
    /// SHA-256 of the configuration it was confirmed under.
    pub config_sha256: String,
    /// `pending`, or an officer's latest review: `confirmed`, `dismissed`, `cited`.
    pub review_status: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceRow {
    pub violation_id: String,
    /// `first`, `confirm` or `clear`.
    pub kind: String,
    /// `original` or `annotated`.
    pub variant: String,
    pub sha256: String,
    /// Relative to the evidence folder.
    pub path: String,
    pub bytes: i64,
    pub captured_ms: Millis,
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZoneStateRow {
    pub zone: String,
    pub camera: String,
    pub phase: crate::tracking::Phase,
    pub last_at_ms: Option<Millis>,
    pub violation_id: Option<String>,
    /// The original bytes of the first obstructed frame, already in the
    /// evidence store, so a restart keeps it.
    pub first_sha256: Option<String>,
    pub first_captured_ms: Option<Millis>,
    pub first_score: Option<f64>,
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
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact(url),
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

    /// Inserts a violation, or replaces it when the same id comes again (a
    /// replay run twice): ids derive from camera, zone and start.
    pub async fn upsert_violation(&self, v: &ViolationRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO violations (id, camera, zone, start_ms, confirmed_ms, cleared_ms, last_obstructed_ms, peak_score, model_name, model_sha256, status, end_reason, zone_polygon, config_sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (id) DO UPDATE SET confirmed_ms = excluded.confirmed_ms, cleared_ms = excluded.cleared_ms,
               last_obstructed_ms = excluded.last_obstructed_ms, peak_score = excluded.peak_score,
               model_name = excluded.model_name, model_sha256 = excluded.model_sha256,
               status = excluded.status, end_reason = excluded.end_reason,
               zone_polygon = excluded.zone_polygon, config_sha256 = excluded.config_sha256",
        )
        .bind(&v.id)
        .bind(&v.camera)
        .bind(&v.zone)
        .bind(v.start_ms)
        .bind(v.confirmed_ms)
        .bind(v.cleared_ms)
        .bind(v.last_obstructed_ms)
        .bind(v.peak_score)
        .bind(&v.model_name)
        .bind(&v.model_sha256)
        .bind(&v.status)
        .bind(&v.end_reason)
        .bind(&v.zone_polygon)
        .bind(&v.config_sha256)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn update_progress(
        &self,
        id: &str,
        last_obstructed_ms: Millis,
        peak: f64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE violations SET last_obstructed_ms = $1, peak_score = $2 WHERE id = $3")
            .bind(last_obstructed_ms)
            .bind(peak)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn end_violation(
        &self,
        id: &str,
        cleared_ms: Millis,
        last_obstructed_ms: Millis,
        peak: f64,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE violations SET cleared_ms = $1, last_obstructed_ms = $2, peak_score = $3, status = 'cleared', end_reason = $4 WHERE id = $5",
        )
        .bind(cleared_ms)
        .bind(last_obstructed_ms)
        .bind(peak)
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn add_evidence(&self, e: &EvidenceRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO evidence (violation_id, kind, variant, sha256, path, bytes, captured_ms, score)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (violation_id, kind, variant) DO UPDATE SET sha256 = excluded.sha256, path = excluded.path,
               bytes = excluded.bytes, captured_ms = excluded.captured_ms, score = excluded.score",
        )
        .bind(&e.violation_id)
        .bind(&e.kind)
        .bind(&e.variant)
        .bind(&e.sha256)
        .bind(&e.path)
        .bind(e.bytes)
        .bind(e.captured_ms)
        .bind(e.score)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn violation(&self, id: &str) -> Result<Option<ViolationRow>, StoreError> {
        let sql = format!("SELECT {VIOLATION_COLUMNS} FROM violations WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(violation_from_row).transpose()?)
    }

    /// All violations, oldest start first.
    pub async fn violations(&self) -> Result<Vec<ViolationRow>, StoreError> {
        let sql = format!("SELECT {VIOLATION_COLUMNS} FROM violations ORDER BY start_ms, zone");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(violation_from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn evidence(&self, violation_id: &str) -> Result<Vec<EvidenceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT violation_id, kind, variant, sha256, path, bytes, captured_ms, score FROM evidence
             WHERE violation_id = $1 ORDER BY captured_ms, kind, variant",
        )
        .bind(violation_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(EvidenceRow {
                violation_id: r.try_get("violation_id")?,
                kind: r.try_get("kind")?,
                variant: r.try_get("variant")?,
                sha256: r.try_get("sha256")?,
                path: r.try_get("path")?,
                bytes: r.try_get("bytes")?,
                captured_ms: r.try_get("captured_ms")?,
                score: r.try_get("score")?,
            });
        }
        Ok(out)
    }

    pub async fn save_zone_state(&self, s: &ZoneStateRow) -> Result<(), StoreError> {
        let json = serde_json::to_string(&s.phase).expect("phase serialises");
        sqlx::query(
            "INSERT INTO zone_state (zone, camera, phase, phase_json, last_at_ms, violation_id, first_sha256, first_captured_ms, first_score)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (zone) DO UPDATE SET camera = excluded.camera, phase = excluded.phase, phase_json = excluded.phase_json,
               last_at_ms = excluded.last_at_ms, violation_id = excluded.violation_id, first_sha256 = excluded.first_sha256,
               first_captured_ms = excluded.first_captured_ms, first_score = excluded.first_score",
        )
        .bind(&s.zone)
        .bind(&s.camera)
        .bind(s.phase.name())
        .bind(json)
        .bind(s.last_at_ms)
        .bind(&s.violation_id)
        .bind(&s.first_sha256)
        .bind(s.first_captured_ms)
        .bind(s.first_score)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn zone_states(&self) -> Result<Vec<ZoneStateRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT zone, camera, phase_json, last_at_ms, violation_id, first_sha256, first_captured_ms, first_score FROM zone_state ORDER BY zone",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let zone: String = r.try_get("zone")?;
            let json: String = r.try_get("phase_json")?;
            let phase = serde_json::from_str(&json).map_err(|e| StoreError::BadState {
                zone: zone.clone(),
                message: e.to_string(),
            })?;
            out.push(ZoneStateRow {
                zone,
                camera: r.try_get("camera")?,
                phase,
                last_at_ms: r.try_get("last_at_ms")?,
                violation_id: r.try_get("violation_id")?,
                first_sha256: r.try_get("first_sha256")?,
                first_captured_ms: r.try_get("first_captured_ms")?,
                first_score: r.try_get("first_score")?,
            });
        }
        Ok(out)
    }

    pub async fn save_sensor_state(
        &self,
        sensor: &str,
        occupied: bool,
        measured_ms: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sensor_state (sensor, occupied, measured_ms) VALUES ($1, $2, $3)
             ON CONFLICT (sensor) DO UPDATE SET occupied = excluded.occupied, measured_ms = excluded.measured_ms",
        )
        .bind(sensor)
        .bind(occupied as i64)
        .bind(measured_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Latest reading of every sensor: (sensor, occupied, measured_ms).
    pub async fn sensor_states(&self) -> Result<Vec<(String, bool, Millis)>, StoreError> {
        let rows =
            sqlx::query("SELECT sensor, occupied, measured_ms FROM sensor_state ORDER BY sensor")
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let occupied: i64 = r.try_get("occupied")?;
            out.push((
                r.try_get("sensor")?,
                occupied != 0,
                r.try_get("measured_ms")?,
            ));
        }
        Ok(out)
    }

    /// Forgets tracker state (a replay starts from clear zones).
    pub async fn clear_zone_states(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM zone_state")
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM sensor_state")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

pub(crate) fn violation_from_row(r: &sqlx::any::AnyRow) -> Result<ViolationRow, sqlx::Error> {
    Ok(ViolationRow {
        id: r.try_get("id")?,
        camera: r.try_get("camera")?,
        zone: r.try_get("zone")?,
        start_ms: r.try_get("start_ms")?,
        confirmed_ms: r.try_get("confirmed_ms")?,
        cleared_ms: r.try_get("cleared_ms")?,
        last_obstructed_ms: r.try_get("last_obstructed_ms")?,
        peak_score: r.try_get("peak_score")?,
        model_name: r.try_get("model_name")?,
        model_sha256: r.try_get("model_sha256")?,
        status: r.try_get("status")?,
        end_reason: r.try_get("end_reason")?,
        zone_polygon: r.try_get("zone_polygon")?,
        config_sha256: r.try_get("config_sha256")?,
        review_status: r.try_get("review_status")?,
    })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A violation's id: stable for a camera, zone and start time, so a
/// restart or a second replay never duplicates it.
pub fn violation_id(camera: &str, zone: &str, start_ms: Millis) -> String {
    let digest =
        crate::vision::model::sha256_hex(format!("{camera}\n{zone}\n{start_ms}").as_bytes());
    format!("v-{}", &digest[..20])
}
